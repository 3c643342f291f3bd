//! Scheduled backups: after a pass that found the cluster converged, the
//! daemon takes a backup when the template's `backup.interval` has passed
//! since the newest one, then keeps the newest `backup.keep`. Each backup
//! (and each failure) is an event and a metric.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::metrics::Metrics;
use crate::archive;
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
    /// The newest backup; `None`: there is none.
    newest: Option<Seen>,
    /// No try before this, after a failure.
    retry_at: Option<Instant>,
}

impl Known {
    /// Nothing to take yet: a failure's retry time not reached, or the
    /// newest backup younger than the interval.
    fn waiting(&self, policy: &crate::spec::BackupPolicy) -> bool {
        self.retry_at.is_some_and(|t| Instant::now() < t) || !due(policy, self.newest.as_ref())
    }
}

/// The newest backup as this process saw it: its time as written, and its
/// age then by this host's clock, counted on from then by the monotonic
/// clock. So a time written by a host whose clock is ahead delays the next
/// backup by at most an interval (counted from when it was first seen, and
/// kept across listings while the same backup is the newest).
#[derive(Clone)]
struct Seen {
    at: i64,
    age: Duration,
    seen: Instant,
}

impl Seen {
    fn age_now(&self) -> Duration {
        self.age + self.seen.elapsed()
    }

    /// The newest backup, taken at `at`, as seen at `now` (unix seconds):
    /// as before when it is the one `before` saw.
    fn of(before: Option<&Seen>, at: Option<i64>, now: i64) -> Option<Seen> {
        let at = at?;
        match before {
            Some(b) if b.at == at => Some(b.clone()),
            _ => Some(Seen {
                at,
                age: backup::age(at, now),
                seen: Instant::now(),
            }),
        }
    }
}

fn due(policy: &crate::spec::BackupPolicy, newest: Option<&Seen>) -> bool {
    backup::due(policy, newest.map(Seen::age_now))
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
/// Whether a scheduled backup of `record` may be due now: it has a policy,
/// and this daemon knows of no recent backup (or failed attempt) that makes
/// it wait. Such a cluster's pass runs under its lock, where a backup is
/// taken.
pub fn may_be_due(session: &Session, record: &ClusterRecord, backups: &Backups) -> bool {
    let Some(policy) = &record.spec.backup else {
        return false;
    };
    let Ok(location) = backup::policy_location(session, &record.spec.name, policy) else {
        return true;
    };
    !backups
        .get(&record.spec.name, &location.to_string())
        .is_some_and(|k| k.waiting(policy))
}

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
        // The state store's word first (a read): a person or a daemon on
        // another host may have taken one since this daemon last looked.
        let recorded_at = backup::Recorded::taken_at_unix(&*session.store, name, &key)?;
        let mut cached = backups.get(name, &key);
        if let Some(k) = cached.as_mut() {
            if recorded_at.is_some_and(|at| k.newest.as_ref().is_none_or(|n| at > n.at)) {
                k.newest = Seen::of(k.newest.as_ref(), recorded_at, now);
                backups.set(name, k.clone());
            }
        }
        if cached.as_ref().is_some_and(|k| k.waiting(policy)) {
            return Ok(None);
        }
        // Due by what is known, or nothing known yet: the location says
        // too, and the newer of the two counts (its listing may lag, or
        // hold a backup the store has no record of).
        let store = archive::open(&location).await?;
        let all = archive::list(&*store, name, Some(&record.id)).await?;
        let listed_at = all.last().and_then(archive::Manifest::taken_at_unix);
        let newest_at = listed_at.max(recorded_at);
        let before = cached.as_ref().and_then(|k| k.newest.as_ref());
        let mut known = Known {
            location: key,
            newest: Seen::of(before, newest_at, now),
            retry_at: None,
        };
        backups.set(name, known.clone());
        if let Some(at) = newest_at {
            metrics.set_backup_last_success(name, at);
        }
        if !due(policy, known.newest.as_ref()) {
            return Ok(None);
        }
        let started = Instant::now();
        let m = backup::take(session, record, &location, false).await?;
        let seconds = started.elapsed().as_secs_f64();
        known.newest = Seen::of(None, m.taken_at_unix(), crate::controller::unix_now());
        backups.set(name, known.clone());
        let pruned = archive::prune(&*store, name, &record.id, policy.keep as usize).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::BackupPolicy;

    /// Short, so a clock shifted back by it stays within the machine's uptime.
    fn every_10s() -> BackupPolicy {
        BackupPolicy {
            interval: Duration::from_secs(10),
            keep: 7,
            to: None,
        }
    }

    #[test]
    fn a_backup_stamped_a_day_ahead_delays_the_next_by_one_interval_only() {
        let now = 1_000_000;
        let ahead = Seen::of(None, Some(now + 86_400), now).unwrap();
        assert!(!due(&every_10s(), Some(&ahead)));
        // An interval on by this process's clock, the wall time still a day behind.
        let an_interval_on = Seen {
            seen: Instant::now() - Duration::from_secs(10),
            ..ahead.clone()
        };
        assert!(due(&every_10s(), Some(&an_interval_on)));
        // Listed again: the same backup keeps the time it was first seen.
        let again = Seen::of(Some(&an_interval_on), Some(now + 86_400), now + 5).unwrap();
        assert!(due(&every_10s(), Some(&again)));
        // A newer backup starts its own count.
        let newer = Seen::of(Some(&an_interval_on), Some(now + 90_000), now + 5).unwrap();
        assert!(!due(&every_10s(), Some(&newer)));
    }

    #[test]
    fn a_backup_stamped_behind_is_due_by_its_age() {
        let now = 1_000_000;
        assert!(due(
            &every_10s(),
            Seen::of(None, Some(now - 10), now).as_ref()
        ));
        assert!(!due(
            &every_10s(),
            Seen::of(None, Some(now - 9), now).as_ref()
        ));
        assert!(due(&every_10s(), None));
    }
}
