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
        /// Of the default pool, or of `pool`.
        workers: Option<u32>,
        pool: Option<String>,
    },
    Add {
        role: Role,
        count: u32,
        pool: Option<String>,
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
        Change::Counts {
            managers,
            workers,
            pool,
        } => {
            if managers.is_none() && workers.is_none() {
                bail!("give --managers N and/or --workers N");
            }
            record.spec.managers = managers.unwrap_or(record.spec.managers);
            if let Some(workers) = workers {
                *worker_count(&mut record.spec, pool.as_deref())? = workers;
            }
        }
        Change::Add { role, count, pool } => {
            if count == 0 {
                bail!("--count must be at least 1");
            }
            match (role, pool) {
                (Role::Manager, Some(_)) => {
                    bail!("--pool: pools are of workers; the managers are their own group: leave --pool out")
                }
                (Role::Manager, None) => record.spec.managers += count,
                (Role::Worker, pool) => *worker_count(&mut record.spec, pool.as_deref())? += count,
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
                    match (rec.role, rec.pool.as_deref()) {
                        (Role::Manager, _) => {
                            record.spec.managers = record.spec.managers.saturating_sub(1)
                        }
                        (Role::Worker, None) => {
                            record.spec.workers = record.spec.workers.saturating_sub(1)
                        }
                        // A pool the spec no longer has: its nodes are
                        // leaving anyway.
                        (Role::Worker, Some(pool)) => {
                            if let Some(p) = record.spec.pools.iter_mut().find(|p| p.name == pool) {
                                p.count = p.count.saturating_sub(1);
                            }
                        }
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
            &format!("scale requested: {}", counts(&record.spec)),
        )?;
        println!(
            "Cluster {name}: {} requested; a running `provision daemon` carries it out \
             (`provision status {name}` shows where it is).",
            counts(&record.spec)
        );
        return Ok(());
    }
    converge_and_show(&session, record, provider, reporter).await
}

/// The count `--workers` (with `--pool`) or `nodes add --pool` changes.
fn worker_count<'a>(spec: &'a mut spec::ClusterSpec, pool: Option<&str>) -> Result<&'a mut u32> {
    match pool {
        None => Ok(&mut spec.workers),
        Some(pool) => Ok(&mut spec.pool_mut(pool)?.count),
    }
}

/// `3 managers, 5 workers`, with each pool's count when it has pools:
/// `… 5 workers (workers 2, gpu 3)`.
pub(super) fn counts(spec: &spec::ClusterSpec) -> String {
    let plural = |n: u32, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let mut text = format!(
        "{}, {}",
        plural(spec.managers, "manager"),
        plural(spec.count(Role::Worker), "worker")
    );
    if !spec.pools.is_empty() {
        let pools: Vec<String> = spec
            .groups()
            .iter()
            .skip(1)
            .map(|g| format!("{} {}", g.label(), g.count))
            .collect();
        text.push_str(&format!(" ({})", pools.join(", ")));
    }
    text
}

pub(super) async fn converge_and_show(
    session: &Session,
    record: ClusterRecord,
    provider: std::sync::Arc<dyn provision_provider::Provider>,
    reporter: std::sync::Arc<dyn progress::Reporter>,
) -> Result<()> {
    let (report, nodes) = session.reconcile(&record, provider, reporter).await?;
    println!(
        "Cluster {}: {}, {}.\n",
        record.spec.name,
        counts(&record.spec),
        if report.healthy {
            "all healthy"
        } else {
            "not all healthy (see `provision status --events`)"
        }
    );
    println!("{}", node_table(&record.spec, &nodes));
    Ok(())
}
