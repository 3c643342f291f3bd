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

/// What the daemon knows of each cluster's backups, so a pass reads the
/// backup location only when one may be due (once an interval), not every
/// pass: a listing reads every manifest, and on S3 that is a request each.
#[derive(Default)]
pub struct Backups {
    known: Mutex<HashMap<String, Known>>,
}

#[derive(Clone, Default)]
struct Known {
    /// The location it was read from (a changed `backup.to` reads afresh).
    location: String,
    /// The newest backup's time, unix seconds; `None`: there is none.
    newest: Option<i64>,
    /// No try before this, after a failure.
    retry_at: Option<Instant>,
}

impl Backups {
    fn get(&self, cluster: &str, location: &str) -> Option<Known> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known
            .get(cluster)
            .filter(|k| k.location == location)
            .cloned()
    }

    fn set(&self, cluster: &str, k: Known) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.insert(cluster.to_string(), k);
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
    let now = crate::controller::unix_now();
    let result = async {
        let location = backup::policy_location(session, name, policy)?;
        let key = location.to_string();
        let cached = backups.get(name, &key);
        let waiting = cached.as_ref().is_some_and(|k| {
            k.retry_at.is_some_and(|t| Instant::now() < t)
                || !backup::due_after(policy, k.newest, now)
        });
        if waiting {
            return Ok(None);
        }
        // Due by what is known, or nothing known yet: the location says
        // (a person or another daemon may have taken one meanwhile).
        let store = backup::open(&location).await?;
        let all = backup::list(&*store, name, Some(&record.id)).await?;
        let mut known = Known {
            location: key,
            newest: all.last().and_then(backup::Manifest::taken_at_unix),
            retry_at: None,
        };
        backups.set(name, known.clone());
        if let Some(at) = known.newest {
            metrics.set_backup_last_success(name, at);
        }
        if !backup::due_after(policy, known.newest, now) {
            return Ok(None);
        }
        let started = Instant::now();
        let m = backup::take(session, record, &location, false).await?;
        let seconds = started.elapsed().as_secs_f64();
        known.newest = m.taken_at_unix();
        backups.set(name, known.clone());
        let pruned = backup::prune(&*store, name, &record.id, policy.keep as usize).await?;
        Ok::<_, anyhow::Error>(Some((m, seconds, pruned)))
    }
    .await;
    match result {
        Ok(None) => {}
        Ok(Some((m, seconds, pruned))) => {
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
            // Every try may stop a manager's engine: the next waits.
            let location = backup::policy_location(session, name, policy)
                .map(|l| l.to_string())
                .unwrap_or_default();
            let mut known = backups.get(name, &location).unwrap_or_default();
            known.location = location;
            known.retry_at = Some(Instant::now() + RETRY_AFTER_FAILURE.min(policy.interval));
            backups.set(name, known);
            warn!(cluster = %name, error = format!("{e:#}"), "scheduled backup failed; tried again later");
            metrics.add_backup_failure(name);
            let _ = session
                .store
                .add_event(name, None, &format!("scheduled backup failed: {e:#}"));
        }
    }
}
