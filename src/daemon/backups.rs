//! Scheduled backups: after a pass that found the cluster converged, the
//! daemon takes a backup when the template's `backup.interval` has passed
//! since the newest one, then keeps the newest `backup.keep`. Each backup
//! (and each failure) is an event and a metric.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::metrics::Metrics;
use crate::backup;
use crate::session::Session;
use crate::state::ClusterRecord;

/// After a failed backup the next try waits this long (or the interval,
/// if shorter): every attempt may stop a manager's engine.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(600);

/// When each cluster's backup may be tried again after a failure.
#[derive(Default)]
pub struct Backups {
    retry_at: Mutex<HashMap<String, Instant>>,
}

impl Backups {
    fn waiting(&self, cluster: &str) -> bool {
        let retry_at = self.retry_at.lock().unwrap_or_else(|p| p.into_inner());
        retry_at.get(cluster).is_some_and(|t| Instant::now() < *t)
    }

    fn failed(&self, cluster: &str, interval: Duration) {
        let mut retry_at = self.retry_at.lock().unwrap_or_else(|p| p.into_inner());
        retry_at.insert(
            cluster.to_string(),
            Instant::now() + RETRY_AFTER_FAILURE.min(interval),
        );
    }

    fn succeeded(&self, cluster: &str) {
        let mut retry_at = self.retry_at.lock().unwrap_or_else(|p| p.into_inner());
        retry_at.remove(cluster);
    }
}

/// Takes `record`'s scheduled backup if one is due; the caller holds the
/// cluster's lock.
pub async fn take_if_due(
    session: &Session,
    record: &ClusterRecord,
    metrics: &Metrics,
    backups: &Backups,
) {
    let Some(policy) = &record.spec.backup else {
        return;
    };
    let name = &record.spec.name;
    if backups.waiting(name) {
        return;
    }
    let result = async {
        let location = backup::policy_location(session, name, policy)?;
        let store = backup::open(&location).await?;
        let all = backup::list(&*store, name).await?;
        let newest = all.last();
        if let Some(at) = newest.and_then(backup::Manifest::taken_at_unix) {
            metrics.set_backup_last_success(name, at);
        }
        if !backup::due(policy, newest, crate::controller::unix_now()) {
            return Ok(None);
        }
        let started = Instant::now();
        let m = backup::take(session, record, &location, false).await?;
        let seconds = started.elapsed().as_secs_f64();
        let pruned = backup::prune(&*store, name, policy.keep as usize).await?;
        Ok::<_, anyhow::Error>(Some((m, seconds, pruned)))
    }
    .await;
    match result {
        Ok(None) => {}
        Ok(Some((m, seconds, pruned))) => {
            backups.succeeded(name);
            info!(cluster = %name, node = %m.node, bytes = m.size, seconds, "scheduled backup taken");
            metrics.observe_backup(name, m.taken_at_unix().unwrap_or_default(), seconds, m.size);
            if !pruned.is_empty() {
                let _ = session.store.add_event(
                    name,
                    None,
                    &format!(
                        "backups beyond the newest {} deleted: {}",
                        policy.keep,
                        pruned.join(", ")
                    ),
                );
            }
        }
        Err(e) => {
            backups.failed(name, policy.interval);
            warn!(cluster = %name, error = format!("{e:#}"), "scheduled backup failed; tried again next pass");
            metrics.add_backup_failure(name);
            let _ = session
                .store
                .add_event(name, None, &format!("scheduled backup failed: {e:#}"));
        }
    }
}
