//! `provision swarm`: store the spec, then reconcile until converged.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use rand::RngCore;

use super::output::node_table;
use super::session::{self, connect_provider};
use super::{CreateArgs, Global};
use crate::controller::quorum::check_manager_change;
use crate::controller::{cluster_ref, unix_now, ClusterContext, DryRun, Observed};
use crate::progress;
use crate::spec::{self, ClusterSpec, ClusterTemplate, Coe, TemplateError};
use crate::state::ClusterRecord;

/// A create command: the orchestrator its name chose, and its flags. The
/// commands are made from the profiles, so a new orchestrator has its own
/// without a line here.
#[derive(Debug)]
pub struct Create {
    pub coe: Coe,
    pub args: CreateArgs,
}

impl clap::FromArgMatches for Create {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let Some((name, sub)) = matches.subcommand() else {
            return Err(clap::Error::new(clap::error::ErrorKind::MissingSubcommand));
        };
        let coe = Coe::from_name(name)
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidSubcommand))?;
        let mut args = CreateArgs::from_arg_matches(sub)?;
        args.cloud_flags = spec::cloud_flags()
            .into_iter()
            .filter_map(|f| {
                let value = sub.get_one::<String>(f.long)?;
                Some((f.long.to_string(), value.clone()))
            })
            .collect();
        Ok(Create { coe, args })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Subcommand for Create {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        use clap::Args as _;
        Coe::ALL.into_iter().fold(cmd, |cmd, coe| {
            let p = coe.profile();
            let create = CreateArgs::augment_args(
                clap::Command::new(p.name)
                    .about(p.create_about)
                    .aliases(p.aliases.iter().copied()),
            );
            let create = spec::cloud_flags().into_iter().fold(create, |create, f| {
                create.arg(
                    clap::Arg::new(f.long)
                        .long(f.long)
                        .value_name(f.value_name)
                        .help(f.help),
                )
            });
            cmd.subcommand(create)
        })
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        Coe::from_name(name).is_some()
    }
}

pub async fn run(global: &Global, coe: Coe, args: CreateArgs) -> Result<()> {
    let started = Instant::now();
    // Everything that can be refused is checked before anything is created.
    let (template_file, template) =
        ClusterTemplate::load(args.template.as_deref().unwrap_or(coe.as_str()))?;
    if template.coe != coe {
        return Err(TemplateError::WrongCoe {
            file: template_file,
            found: template.coe,
            wanted: coe,
        }
        .into());
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| coe.as_str().to_string());
    let mut spec = template.to_spec(&name, args.cloud);
    spec::validate_cluster_name(&spec.name)?;
    apply_flags(&mut spec, &args)?;
    // Counts given on the command line are checked before any cloud call.
    let mut asked = spec.clone();
    asked.managers = args.managers.unwrap_or(asked.managers);
    asked.workers = args.workers.unwrap_or(asked.workers);
    spec::check_counts(&asked, args.force)?;
    let provider = connect_provider(&spec, Some(&args.image_suite)).await?;
    let dry_run = args.dry_run;
    // A dry run never creates the state store: no store, no cluster yet.
    let session = match session::open_existing(global)? {
        Some(session) => session,
        None if dry_run => return print_new_cluster_plan(spec, &args, provider).await,
        None => session::open(global)?,
    };
    let _lock = session.lock_unless_dry(&spec.name, dry_run)?;

    let existing = session.store.cluster(&spec.name)?;
    let mut unrecorded = Vec::new();
    if existing.is_none() && dry_run {
        return print_new_cluster_plan(spec, &args, provider).await;
    }
    let record = match existing {
        Some(existing) => {
            super::session::refuse_if_destroying(&existing)?;
            if existing.spec.coe != spec.coe || existing.spec.cloud != spec.cloud {
                bail!(
                    "cluster {} already exists as {} on {}: choose another --name, or `provision destroy {}` first",
                    spec.name,
                    existing.spec.coe,
                    existing.spec.cloud,
                    spec.name
                );
            }
            let existing_machines = existing.spec.machines();
            if let Some(why) = unchangeable(&existing.spec, &spec, &args) {
                bail!(
                    "cluster {} already exists with {why}: run without that flag to finish it, or `provision destroy {}` and create it again",
                    spec.name,
                    spec.name
                );
            }
            // Re-running finishes the cluster; counts change only when given.
            let mut s = existing.spec.clone();
            s.managers = args.managers.unwrap_or(s.managers);
            s.workers = args.workers.unwrap_or(s.workers);
            // New machines (--image, --flavor, a template's node and
            // pools) are rolled out node by node.
            let before = s.machines();
            let nodes = session.store.nodes(&spec.name)?;
            if crate::controller::plan::rollout::pending(&s, &nodes).is_empty() {
                // The last change is done: a new one starts from here.
                s.change = None;
            }
            // Nodes recorded before provision kept their machine (or a part
            // of it, as the Kubernetes version) were made from the spec as it
            // stood: said so, so a change replaces them.
            unrecorded = nodes
                .iter()
                .filter_map(|n| {
                    let was = s.group(n.role, n.pool.as_deref())?.machine();
                    let filled = spec::fill_machine(n.machine.as_deref().unwrap_or(&was), &was);
                    if n.machine.as_ref() == Some(&filled) {
                        return None;
                    }
                    let mut n = n.clone();
                    n.machine = Some(filled);
                    Some(n)
                })
                .collect();
            take_machines(&mut s, &spec, &args);
            // kubeadm's upgrade policy, before anything changes: one minor
            // at a time, from the oldest version a node may still run.
            if let (Some(from), Some(to)) = (&before.version, &s.machines().version) {
                let oldest = s
                    .change
                    .as_ref()
                    .and_then(|c| c.before.version.as_deref())
                    .unwrap_or(from);
                for from in [oldest, from.as_str()] {
                    spec::check_kubernetes_upgrade(from, to).map_err(|e| {
                        anyhow::anyhow!(
                            "refused: kubernetes.version of cluster {}: {}",
                            spec.name,
                            e.message
                        )
                    })?;
                }
            }
            s.change_machines_from(before);
            // A new SSH or client range is applied to the cloud's firewall by
            // this run (the old range's rules are revoked).
            set_ranges(&mut s, &args);
            // Fewer managers here is a scale-in: the same quorum rule as `scale`.
            // (Zero managers is refused by validation below, with its own message.)
            if let (Err(why), true, false) = (
                check_manager_change(&nodes, s.managers, &[]),
                s.managers > 0,
                args.force,
            ) {
                bail!(
                    "refused: {why}; `provision scale {} --managers {} --force` does it anyway",
                    spec.name,
                    s.managers
                );
            }
            let profile = s.coe.profile();
            let (from, to) = (existing.spec.managers, s.managers);
            if let Err(why) = profile.check_manager_growth(from, to, false) {
                // A change only --force takes is scale's, said there.
                let force = if profile.check_manager_growth(from, to, true).is_ok() {
                    " --force"
                } else {
                    ""
                };
                bail!(
                    "refused: {why}; use `provision scale {} --managers {to}{force}`",
                    spec.name
                );
            }
            let record = ClusterRecord {
                spec: s,
                ..existing
            };
            // A change is checked against the cloud before anything moves.
            if record.spec.machines() != existing_machines {
                // (The key is not needed to check flavors and images.)
                let cluster = cluster_ref(&record, String::new());
                provider.preflight(&cluster).await.with_context(|| {
                    format!("checking the new machines of cluster {}", record.spec.name)
                })?;
            }
            record
        }
        None => {
            let record = new_record(spec, &args)?;
            let ctx = ClusterContext::create(&*session.store, record.clone())?;
            provider.preflight(&ctx.cluster).await.with_context(|| {
                format!(
                    "checking the {} settings of cluster {}",
                    record.spec.cloud, record.spec.name
                )
            })?;
            record
        }
    };
    spec::check_counts(&record.spec, args.force)?;
    let reporter = progress::for_stderr();
    for warning in spec::validate(&record.spec)? {
        reporter.note(&format!("warning: {warning}"));
    }
    if dry_run {
        return super::session::print_dry_run(&session, &record, provider, &[]).await;
    }
    session
        .store
        .put_cluster(&record)
        .context("storing the cluster spec")?;
    for node in &unrecorded {
        session.store.put_node(node)?;
    }
    let (report, nodes) = session.reconcile(&record, provider, reporter).await?;

    let name = &record.spec.name;
    if !report.healthy {
        println!("Cluster {name} is up but not every node is healthy; `provision status {name} --events` says why.");
        return Ok(());
    }
    println!(
        "Cluster {name} is ready: {} on {} ({}) in {:.0?}.\n",
        record.spec.coe,
        record.spec.cloud,
        super::scale::counts(&record.spec),
        started.elapsed()
    );
    println!("{}\n", node_table(&record.spec, &nodes));
    let state_flag = global
        .state
        .as_ref()
        .map(|p| format!(" --state {}", crate::bootstrap::scripts::shell_quote(p)))
        .unwrap_or_default();
    println!("Connect:");
    println!(
        "  eval \"$(provision{state_flag} env {name})\" && {}",
        record.spec.coe.profile().client_hint
    );
    println!("  provision{state_flag} ssh {name} {name}-manager-1");
    Ok(())
}

/// The record of a cluster not created yet, with the flags' counts; its
/// spec is validated (counts included) before anything else happens.
fn new_record(mut spec: ClusterSpec, args: &CreateArgs) -> Result<ClusterRecord> {
    spec.managers = args.managers.unwrap_or(spec.managers);
    spec.workers = args.workers.unwrap_or(spec.workers);
    spec::check_counts(&spec, args.force)?;
    // Credentials, image, flavor and network are checked before the
    // spec is stored, so a typo leaves nothing behind.
    spec::validate(&spec)?;
    Ok(ClusterRecord {
        spec,
        id: new_cluster_id(),
        phase: "creating".into(),
        created_at: String::new(),
        updated_at: String::new(),
    })
}

/// `--dry-run` for a cluster that does not exist: the cloud's read-only
/// checks, then the planner's first pass from nothing (no records, no
/// machines). No key is made and nothing is stored.
async fn print_new_cluster_plan(
    spec: ClusterSpec,
    args: &CreateArgs,
    provider: std::sync::Arc<dyn provision_provider::Provider>,
) -> Result<()> {
    let record = new_record(spec, args)?;
    let name = &record.spec.name;
    for warning in spec::validate(&record.spec)? {
        eprintln!("warning: {warning}");
    }
    provider
        .preflight(&cluster_ref(&record, String::new()))
        .await
        .with_context(|| {
            format!(
                "checking the {} settings of cluster {name}",
                record.spec.cloud
            )
        })?;
    let plan = crate::controller::plan(&record.spec, &[], &Observed::default(), unix_now());
    let dry = DryRun::new(plan, Vec::new(), provider.as_ref());
    println!(
        "Cluster {name} does not exist yet: {} on {}.",
        record.spec.coe, record.spec.cloud
    );
    super::dry_run::print(name, &dry);
    Ok(())
}

/// `--ssh-from` and `--clients-from` on top of the spec's ranges.
fn set_ranges(spec: &mut ClusterSpec, args: &CreateArgs) {
    if args.ssh_from.is_none() && args.clients_from.is_none() {
        return;
    }
    let mut firewall = spec.firewall();
    if let Some(cidr) = &args.ssh_from {
        firewall.ssh_from = cidr.clone();
    }
    if let Some(cidr) = &args.clients_from {
        firewall.clients_from = Some(cidr.clone());
    }
    spec.firewall = Some(firewall);
}

/// Puts the cloud flags on top of the template's values.
fn apply_flags(spec: &mut ClusterSpec, args: &CreateArgs) -> Result<()> {
    if let Some(image) = &args.image {
        spec.image = Some(image.clone());
    }
    if let Some(flavor) = &args.flavor {
        spec.flavor = Some(flavor.clone());
    }
    if let Some(engine) = &args.engine_version {
        spec.engine_version = Some(engine.clone());
    }
    set_kubernetes_version(spec, args)?;
    set_ranges(spec, args);
    spec.apply_cloud_flags(&given_cloud_flags(args))
        .map_err(anyhow::Error::msg)
}

fn given_cloud_flags(args: &CreateArgs) -> Vec<(&str, &str)> {
    args.cloud_flags
        .iter()
        .map(|(flag, value)| (flag.as_str(), value.as_str()))
        .collect()
}

/// A cloud flag given again for an existing cluster that would change
/// where its machines run (its network, region…), which a re-run does not
/// do. (A new image or flavor is rolled out instead.)
fn unchangeable(existing: &ClusterSpec, wanted: &ClusterSpec, args: &CreateArgs) -> Option<String> {
    existing
        .changed_by_cloud_flags(&given_cloud_flags(args))
        .filter(|_| existing.cloud == wanted.cloud)
}

/// What an existing cluster's machines become: `--image` and `--flavor`,
/// and with `--template` its `node:` image and flavor and its pools (their
/// counts and zones too: the template is the desired state).
fn take_machines(spec: &mut ClusterSpec, asked: &ClusterSpec, args: &CreateArgs) {
    if args.template.is_some() {
        spec.image = asked.image.clone();
        spec.flavor = asked.flavor.clone();
        spec.engine_version = asked.engine_version.clone();
        spec.pools = asked.pools.clone();
        spec.rollout = asked.rollout;
    }
    if let Some(image) = &args.image {
        spec.image = Some(image.clone());
    }
    if let Some(flavor) = &args.flavor {
        spec.flavor = Some(flavor.clone());
    }
    if args.template.is_some() {
        if let (Some(k), Some(asked)) = (spec.kubernetes.as_mut(), &asked.kubernetes) {
            k.version = asked.version.clone();
        }
    }
    if let Some(engine) = &args.engine_version {
        spec.engine_version = Some(engine.clone());
    }
    // (`apply_flags` refused it already for other orchestrators.)
    if let (Some(k), Some(version)) = (spec.kubernetes.as_mut(), &args.kubernetes_version) {
        k.version = version.clone();
    }
}

/// `--kubernetes-version`, which only a Kubernetes cluster has.
fn set_kubernetes_version(spec: &mut ClusterSpec, args: &CreateArgs) -> Result<()> {
    let Some(version) = &args.kubernetes_version else {
        return Ok(());
    };
    match spec.kubernetes.as_mut() {
        Some(k) => {
            k.version = version.clone();
            Ok(())
        }
        None => bail!(
            "--kubernetes-version is for a kubernetes cluster, and {} is {}: leave it out",
            spec.name,
            spec.coe
        ),
    }
}

fn new_cluster_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
