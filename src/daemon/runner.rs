//! One pass of one cluster, as the daemon runs it: the lock-free settled
//! look where it pays (etcd), else the pass under the cluster's lock; what
//! it measured; how it ended, and when the planner wants to look again.
//! When a pass runs is the schedule's (`schedule.rs`), not this file's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use super::{backups, Shared};
use crate::controller::{unix_now, ClusterContext, ControllerError, ConvergeReport, Probing};
use crate::progress::LogReporter;
use crate::state::off_workers::off_worker;
use crate::state::LockError;

/// How one cluster's pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Converged,
    Degraded,
    Busy,
    /// A destroy did not finish; only `destroy` touches it.
    Destroying,
    Failed,
    /// Stopped at a step because the daemon is stopping.
    Stopped,
}

/// How a pass ended: its outcome, the nodes it set out to replace, and how
/// soon the planner wants to look again (a grace or backoff that runs out
/// before the next interval), if it said.
#[derive(Debug, Clone, Copy)]
pub(super) struct PassEnd {
    pub outcome: Outcome,
    pub remediations: usize,
    pub look_again_in: Option<Duration>,
}

impl PassEnd {
    fn of(outcome: Outcome) -> PassEnd {
        PassEnd {
            outcome,
            remediations: 0,
            look_again_in: None,
        }
    }
}

/// One pass of one cluster: how it ended, how many nodes it set out to
/// replace, and when the planner wants to look again. A pass whose lock is
/// lost (its etcd lease could not be renewed) is dropped where it stands:
/// another daemon may hold the cluster soon, and what was half done is
/// finished by the next pass.
pub(super) async fn reconcile_cluster(shared: &Shared, name: &str) -> PassEnd {
    if passes_settled(shared, name).await {
        return PassEnd::of(Outcome::Converged);
    }
    let lock = match off_worker(|| shared.session.lock(name)) {
        Ok(lock) => lock,
        Err(LockError::Busy { holder, .. }) => {
            debug!(
                cluster = name,
                pid = holder.pid,
                host = holder.host,
                "another command holds the cluster: skipped this pass"
            );
            shared.metrics.add_skipped_busy(name);
            return PassEnd::of(Outcome::Busy);
        }
        Err(e) => {
            error!(cluster = name, error = %e, "cannot lock");
            return PassEnd::of(Outcome::Failed);
        }
    };
    tokio::select! {
        ended = reconcile_locked(shared, name) => ended,
        _ = lock.lost() => {
            warn!(cluster = name, "lost the cluster's lock (etcd unreachable): pass stopped; the next pass finishes it");
            PassEnd::of(Outcome::Failed)
        }
    }
}

/// Whether the state is in etcd and nobody holds `name`'s lock there.
fn unlocked_in_etcd(session: &crate::session::Session, name: &str) -> bool {
    #[cfg(feature = "etcd")]
    if let Some(etcd) = &session.etcd {
        return matches!(off_worker(|| etcd.lock_held(name)), Ok(false));
    }
    let _ = (session, name);
    false
}

/// A pass that finds the cluster settled without taking its lock
/// ([`crate::controller::Controller::settled`]), with state in etcd: a
/// converged pass writes nothing, not even the lock's key. Anything else (something to
/// do, a failure, a scheduled backup that may be due) is left to the pass
/// under the lock.
async fn passes_settled(shared: &Shared, name: &str) -> bool {
    let (session, metrics) = (&shared.session, &shared.metrics);
    // Only where taking the lock is a write (etcd), and only while nobody
    // holds it: a person's command in the middle of a change is waited for
    // as before (the pass under the lock finds it busy).
    if !unlocked_in_etcd(session, name) {
        return false;
    }
    let record = match off_worker(|| session.store.cluster(name)) {
        Ok(Some(record)) => record,
        _ => return false,
    };
    if record.is_destroying() || backups::may_be_due(session, &record, &shared.backups) {
        return false;
    }
    let started = Instant::now();
    let settled = async {
        let provider = shared.providers.for_spec(&record.spec).await?;
        let ctx = ClusterContext::new(&*session.store, record.clone())?;
        let mut controller = session.controller(provider, &record.spec, Arc::new(LogReporter));
        controller.probing = Probing::MembershipFirst;
        Ok::<_, anyhow::Error>(controller.settled(&ctx).await?)
    }
    .await;
    match settled {
        Ok(true) => {
            info!(
                cluster = name,
                phase = "ready",
                "converged (settled: no lock taken, nothing written)"
            );
            metrics.observe_pass(name, started.elapsed().as_secs_f64(), false);
            record_node_metrics(shared, name);
            true
        }
        Ok(false) => false,
        Err(e) => {
            debug!(
                cluster = name,
                error = format!("{e:#}"),
                "the settled check failed: the pass runs under the lock"
            );
            false
        }
    }
}

/// The node phases and health of `name` as the store has them, for the
/// metrics.
fn record_node_metrics(shared: &Shared, name: &str) {
    if let Ok(nodes) = shared.session.store.nodes(name) {
        let phases: Vec<(String, String)> = nodes
            .iter()
            .map(|n| (n.phase.to_string(), n.health.as_str().to_string()))
            .collect();
        shared.metrics.set_nodes(name, &phases);
        let kept = || nodes.iter().filter(|n| !n.retiring);
        shared.metrics.set_certificate_expiry(
            name,
            kept().filter_map(|n| n.cert_expires).min(),
            kept().filter_map(|n| n.ca_expires).min(),
        );
    }
}

async fn reconcile_locked(shared: &Shared, name: &str) -> PassEnd {
    let (session, metrics, providers) = (&shared.session, &shared.metrics, &shared.providers);
    // Re-read under the lock: the spec may have changed since the listing.
    let record = match session.store.cluster(name) {
        Ok(Some(r)) => r,
        Ok(None) => {
            metrics.forget_cluster(name);
            return PassEnd::of(Outcome::Converged);
        }
        Err(e) => {
            error!(cluster = name, error = %e, "cannot read the cluster");
            return PassEnd::of(Outcome::Failed);
        }
    };
    if record.is_destroying() {
        debug!(
            cluster = name,
            "a destroy did not finish: left for `provision destroy`"
        );
        return PassEnd::of(Outcome::Destroying);
    }
    let started = Instant::now();
    let mut report = ConvergeReport::default();
    let result = async {
        let provider = providers.for_spec(&record.spec).await?;
        let ctx = ClusterContext::new(&*session.store, record.clone())?;
        let mut controller = session.controller(provider, &record.spec, Arc::new(LogReporter));
        controller.probing = Probing::MembershipFirst;
        Ok::<_, anyhow::Error>(controller.converge_into(&ctx, &mut report).await)
    }
    .await;
    // Counted whether or not the pass failed later on.
    metrics.add_remediations(name, report.remediations.len() as u64);
    metrics.set_stalled(name, report.stalled.len() as u64);
    let outcome = match result {
        Ok(Ok(())) => {
            if report.healthy {
                Outcome::Converged
            } else {
                Outcome::Degraded
            }
        }
        Ok(Err(e)) if stopped_only(&e) => {
            info!(
                cluster = name,
                "pass stopped at a step boundary: the daemon is stopping"
            );
            Outcome::Stopped
        }
        Ok(Err(e)) => {
            if counts_as_cloud_error(&e) {
                metrics.add_cloud_error(name);
                providers.forget(&record.spec);
            }
            warn!(cluster = name, error = %e, "reconcile failed; retrying next pass");
            let _ = session
                .store
                .add_event(name, None, &format!("reconcile failed: {e}"));
            Outcome::Failed
        }
        Err(e) => {
            metrics.add_cloud_error(name);
            warn!(
                cluster = name,
                error = format!("{e:#}"),
                "cannot reach the cluster's cloud"
            );
            Outcome::Failed
        }
    };
    metrics.observe_pass(
        name,
        started.elapsed().as_secs_f64(),
        outcome == Outcome::Failed,
    );
    // A backup of a cluster that is whole: never in the middle of a
    // replacement, whose managers it would stop one of.
    if outcome == Outcome::Converged {
        backups::take_if_due(session, &record, metrics, &shared.backups).await;
    }
    record_node_metrics(shared, name);
    PassEnd {
        outcome,
        remediations: report.remediations.len(),
        look_again_in: report
            .next_look
            .map(|at| Duration::from_secs(at.saturating_sub(unix_now()).max(0) as u64)),
    }
}

/// Whether a pass ended only because the daemon is stopping (every node's
/// steps stopped, none failed).
fn stopped_only(e: &ControllerError) -> bool {
    match e {
        ControllerError::Stopped => true,
        ControllerError::Nodes(all) => !all.is_empty() && all.iter().all(stopped_only),
        _ => false,
    }
}

fn counts_as_cloud_error(e: &ControllerError) -> bool {
    match e {
        ControllerError::Provider(_) => true,
        ControllerError::Nodes(all) => all.iter().any(counts_as_cloud_error),
        _ => false,
    }
}
