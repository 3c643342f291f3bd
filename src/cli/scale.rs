//! `provision scale` and `provision nodes add|remove`: change the desired
//! state, then reconcile. Scale-in drains before it removes; managers change
//! one at a time and never below quorum unless `--force`.

use anyhow::{bail, Result};
use provision_provider::Role;

use super::output::node_table;
use super::session::{self, connect_provider, Session};
use super::Global;
use crate::controller::quorum::check_manager_change;
use crate::progress;
use crate::spec;
use crate::state::ClusterRecord;

/// What the user asked to change.
pub enum Change {
    Counts {
        managers: Option<u32>,
        workers: Option<u32>,
    },
    Add {
        role: Role,
        count: u32,
    },
    Remove {
        nodes: Vec<String>,
    },
}

/// The command's switches.
#[derive(Debug, Clone, Copy)]
pub struct Flags {
    /// Allow a change that could lose quorum, or counts above the maximums.
    pub force: bool,
    /// Print the plan and change nothing.
    pub dry_run: bool,
    /// Store the new desired state and leave the rest to the daemon.
    pub no_wait: bool,
}

pub async fn run(global: &Global, name: &str, change: Change, flags: Flags) -> Result<()> {
    let Flags {
        force,
        dry_run,
        no_wait,
    } = flags;
    let session = session::open_unless_dry(global, dry_run)?;
    let _lock = session.lock_unless_dry(name, dry_run)?;
    let mut record = session.cluster_to_change(name)?;
    let nodes = session.store.nodes(name)?;

    let managers_before = record.spec.managers;
    let mut leaving = Vec::new();
    match change {
        Change::Counts { managers, workers } => {
            if managers.is_none() && workers.is_none() {
                bail!("give --managers N and/or --workers N");
            }
            record.spec.managers = managers.unwrap_or(record.spec.managers);
            record.spec.workers = workers.unwrap_or(record.spec.workers);
        }
        Change::Add { role, count } => {
            if count == 0 {
                bail!("--count must be at least 1");
            }
            match role {
                Role::Manager => record.spec.managers += count,
                Role::Worker => record.spec.workers += count,
            }
        }
        Change::Remove { nodes: names } => {
            for n in &names {
                let Some(rec) = nodes.iter().find(|r| &r.name == n) else {
                    let known: Vec<&str> = nodes.iter().map(|r| r.name.as_str()).collect();
                    bail!(
                        "cluster {name} has no node {n:?}; its nodes: {}",
                        known.join(", ")
                    );
                };
                if !rec.retiring {
                    match rec.role {
                        Role::Manager => {
                            record.spec.managers = record.spec.managers.saturating_sub(1)
                        }
                        Role::Worker => record.spec.workers = record.spec.workers.saturating_sub(1),
                    }
                }
            }
            leaving = names;
        }
    }
    if let Err(why) = check_manager_change(&nodes, record.spec.managers, &leaving) {
        if record.spec.managers == 0 || !force {
            bail!(
                "refused: {why}{}",
                if record.spec.managers == 0 {
                    ""
                } else {
                    " (add --force to do it anyway)"
                }
            );
        }
    }
    let profile = record.spec.coe.profile();
    if let Err(why) = profile.check_manager_growth(managers_before, record.spec.managers, force) {
        // Say --force only where it would be taken.
        let forced = profile.check_manager_growth(managers_before, record.spec.managers, true);
        bail!(
            "refused: {why}{}",
            if forced.is_ok() {
                " (add --force to do it anyway)"
            } else {
                ""
            }
        );
    }
    spec::check_counts(&record.spec, force)?;
    let reporter = progress::for_stderr();
    for warning in spec::validate(&record.spec)? {
        reporter.note(&format!("warning: {warning}"));
    }

    let provider = connect_provider(&record.spec, None).await?;
    if dry_run {
        return super::session::print_dry_run(&session, &record, provider, &leaving).await;
    }
    // Desired state first, so a crash from here on is finished by the next run.
    session.store.put_cluster(&record)?;
    for n in &leaving {
        if let Some(mut rec) = nodes.iter().find(|r| &r.name == n).cloned() {
            rec.retiring = true;
            session.store.put_node(&rec)?;
            session
                .store
                .add_event(name, Some(n), "retiring: removed by request")?;
        }
    }
    if no_wait {
        session.store.add_event(
            name,
            None,
            &format!(
                "scale requested: {} manager(s), {} worker(s)",
                record.spec.managers, record.spec.workers
            ),
        )?;
        println!(
            "Cluster {name}: {} manager(s), {} worker(s) requested; a running `provision daemon` carries it out \
             (`provision status {name}` shows where it is).",
            record.spec.managers, record.spec.workers
        );
        return Ok(());
    }
    converge_and_show(&session, record, provider, reporter).await
}

pub(super) async fn converge_and_show(
    session: &Session,
    record: ClusterRecord,
    provider: std::sync::Arc<dyn provision_provider::Provider>,
    reporter: std::sync::Arc<dyn progress::Reporter>,
) -> Result<()> {
    let (report, nodes) = session.reconcile(&record, provider, reporter).await?;
    println!(
        "Cluster {}: {} manager(s), {} worker(s), {}.\n",
        record.spec.name,
        record.spec.managers,
        record.spec.workers,
        if report.healthy {
            "all healthy"
        } else {
            "not all healthy (see `provision status --events`)"
        }
    );
    println!("{}", node_table(&nodes));
    Ok(())
}
