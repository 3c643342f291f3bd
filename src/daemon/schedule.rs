//! When each cluster is reconciled next: every cluster on its own timer, so
//! a long converge of one (a replacement's SSH wait and install) never
//! delays another's pass. Pure: the clock and the jitter are arguments.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How soon a cluster another command held is looked at again.
pub const BUSY_RETRY: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Schedule {
    interval: Duration,
    next: BTreeMap<String, Instant>,
    running: BTreeSet<String>,
    /// Running clusters whose record changed during the pass.
    changed: BTreeSet<String>,
}

impl Schedule {
    pub fn new(interval: Duration) -> Schedule {
        Schedule {
            interval,
            next: BTreeMap::new(),
            running: BTreeSet::new(),
            changed: BTreeSet::new(),
        }
    }

    /// Takes the store's list of clusters: clusters met for the first time
    /// are spread over one interval when the schedule is empty (a daemon
    /// starting on 1,000 clusters does not open 1,000 connections in its
    /// first second) and due at once otherwise (a cluster just created);
    /// clusters gone are dropped.
    pub fn sync(&mut self, names: &[String], now: Instant) {
        let starting = self.next.is_empty();
        let known: BTreeSet<&String> = names.iter().collect();
        self.next.retain(|name, _| known.contains(name));
        let new: Vec<&String> = names
            .iter()
            .filter(|n| !self.next.contains_key(*n))
            .collect();
        let count = new.len().max(1) as u32;
        for (i, name) in new.into_iter().enumerate() {
            let at = if starting {
                now + self.interval * i as u32 / count
            } else {
                now
            };
            self.next.insert(name.clone(), at);
        }
    }

    /// Makes a known cluster due at `now` (its record just changed: a scale
    /// request seen through a watch); false when the schedule has no such
    /// cluster. A running pass is not doubled: the cluster is due again
    /// when it ends.
    pub fn due_now(&mut self, name: &str, now: Instant) -> bool {
        if self.running.contains(name) {
            self.changed.insert(name.to_string());
        }
        match self.next.get_mut(name) {
            Some(at) => {
                *at = (*at).min(now);
                true
            }
            None => false,
        }
    }

    /// Clusters due at `now` and not running, the most overdue first.
    pub fn due(&self, now: Instant) -> Vec<String> {
        let mut due: Vec<(&Instant, &String)> = self
            .next
            .iter()
            .filter(|(name, at)| **at <= now && !self.running.contains(*name))
            .map(|(name, at)| (at, name))
            .collect();
        due.sort();
        due.into_iter().map(|(_, name)| name.clone()).collect()
    }

    /// How late `name` starts at `now` (zero when on time).
    pub fn lateness(&self, name: &str, now: Instant) -> Duration {
        self.next
            .get(name)
            .map(|at| now.saturating_duration_since(*at))
            .unwrap_or_default()
    }

    pub fn started(&mut self, name: &str) {
        self.running.insert(name.to_string());
    }

    /// A pass of `name` that started at `started` ended at `now`: the next
    /// is an interval (times `jitter`, around 1) after the start, so a
    /// cluster keeps its rhythm, or at `requeue` when the planner asked to
    /// look sooner (a grace or a backoff running out), and never before now.
    pub fn finished(
        &mut self,
        name: &str,
        started: Instant,
        now: Instant,
        jitter: f64,
        requeue: Option<Instant>,
    ) {
        self.running.remove(name);
        if let Some(at) = self.next.get_mut(name) {
            // Changed during the pass (due_now): the change is acted on at once.
            *at = if self.changed.remove(name) {
                now
            } else {
                let rhythm = started + self.interval.mul_f64(jitter);
                requeue.map_or(rhythm, |r| r.min(rhythm)).max(now)
            };
        }
    }

    /// A pass of `name` found the cluster held by another command: due
    /// again in [`BUSY_RETRY`] (or the interval, if shorter), so a request
    /// that command wrote is acted on once it lets go.
    pub fn retry_soon(&mut self, name: &str, now: Instant) {
        self.running.remove(name);
        self.changed.remove(name);
        if let Some(at) = self.next.get_mut(name) {
            *at = now + BUSY_RETRY.min(self.interval);
        }
    }

    #[cfg(test)]
    pub fn is_running(&self, name: &str) -> bool {
        self.running.contains(name)
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// The earliest time a cluster not running falls due.
    pub fn next_due(&self) -> Option<Instant> {
        self.next
            .iter()
            .filter(|(name, _)| !self.running.contains(*name))
            .map(|(_, at)| *at)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i:02}")).collect()
    }

    #[test]
    fn a_starting_daemon_spreads_its_clusters_over_one_interval() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(30));
        s.sync(&names(10), t0);
        assert_eq!(s.due(t0), ["c00"]);
        assert_eq!(s.due(t0 + Duration::from_secs(9)).len(), 4);
        assert_eq!(s.due(t0 + Duration::from_secs(30)).len(), 10);
        // A cluster created later is due at once.
        let t1 = t0 + Duration::from_secs(5);
        let mut more = names(10);
        more.push("new".into());
        s.sync(&more, t1);
        assert!(s.due(t1).contains(&"new".to_string()));
    }

    #[test]
    fn a_changed_cluster_is_due_at_once_and_again_after_a_pass_it_changed_during() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(30);
        let mut s = Schedule::new(interval);
        s.sync(&["a".to_string(), "b".to_string()], t0);
        let t = t0 + interval;
        s.started("a");
        s.finished("a", t, t + Duration::from_secs(1), 1.0, None);
        let soon = t + Duration::from_secs(2);
        assert!(s.due(soon).iter().all(|n| n != "a"));
        assert!(s.due_now("a", soon));
        assert!(s.due(soon).contains(&"a".to_string()));
        assert!(!s.due_now("unknown", soon));
        // A change seen while a pass runs: due again the moment it ends.
        s.started("a");
        assert!(s.due_now("a", soon + Duration::from_secs(1)));
        assert!(s
            .due(soon + Duration::from_secs(1))
            .iter()
            .all(|n| n != "a"));
        let end = soon + Duration::from_secs(3);
        s.finished("a", soon, end, 1.0, None);
        assert!(s.due(end).contains(&"a".to_string()));
        // Without a change, the next pass keeps the interval.
        s.started("a");
        s.finished("a", end, end + Duration::from_secs(1), 1.0, None);
        assert!(s.due(end + Duration::from_secs(2)).iter().all(|n| n != "a"));
    }

    #[test]
    fn a_cluster_found_busy_is_tried_again_soon() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(600));
        s.sync(&["a".to_string()], t0);
        s.started("a");
        s.retry_soon("a", t0 + Duration::from_millis(10));
        assert!(s.due(t0 + Duration::from_secs(1)).is_empty());
        assert_eq!(s.due(t0 + BUSY_RETRY + Duration::from_millis(10)), ["a"]);
        // Never later than the interval itself.
        let mut quick = Schedule::new(Duration::from_secs(1));
        quick.sync(&["a".to_string()], t0);
        quick.started("a");
        quick.retry_soon("a", t0);
        assert_eq!(quick.due(t0 + Duration::from_secs(1)), ["a"]);
    }

    #[test]
    fn a_long_pass_of_one_cluster_holds_back_no_other() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(30);
        let mut s = Schedule::new(interval);
        let all = vec!["slow".to_string(), "quick".to_string()];
        s.sync(&all, t0);
        let t = t0 + interval;
        assert_eq!(s.due(t).len(), 2);
        s.started("slow");
        s.started("quick");
        s.finished("quick", t, t + Duration::from_secs(1), 1.0, None);
        // Fifteen minutes on, "slow" is still converging; "quick" has come
        // due every interval all the while.
        let mut at = t;
        for _ in 0..30 {
            at += interval;
            assert_eq!(s.due(at), ["quick"], "at {:?}", at - t0);
            assert_eq!(s.lateness("quick", at), Duration::ZERO);
            s.started("quick");
            s.finished("quick", at, at + Duration::from_millis(500), 1.0, None);
        }
        assert!(s.is_running("slow"));
        // When it ends, it is due at once (its start is long past).
        let end = at + Duration::from_secs(1);
        s.finished("slow", t, end, 1.0, None);
        assert_eq!(s.due(end), ["slow"]);
    }

    #[test]
    fn the_next_pass_keeps_the_rhythm_and_clusters_gone_are_dropped() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(30);
        let mut s = Schedule::new(interval);
        s.sync(&["a".to_string()], t0);
        s.started("a");
        s.finished("a", t0, t0 + Duration::from_secs(2), 1.1, None);
        assert_eq!(s.next_due(), Some(t0 + Duration::from_secs(33)));
        s.sync(&[], t0 + Duration::from_secs(3));
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn a_pass_whose_planner_looks_sooner_comes_back_then_not_later_nor_before_now() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(60);
        let mut s = Schedule::new(interval);
        s.sync(&["a".to_string()], t0);
        // A grace runs out 20 s after the pass: due then, not a minute on.
        s.started("a");
        let end = t0 + Duration::from_secs(1);
        s.finished("a", t0, end, 1.0, Some(end + Duration::from_secs(20)));
        assert_eq!(s.next_due(), Some(end + Duration::from_secs(20)));
        // A requeue later than the interval does not push the pass back.
        s.started("a");
        s.finished("a", t0, end, 1.0, Some(t0 + Duration::from_secs(600)));
        assert_eq!(s.next_due(), Some(t0 + interval));
        // One already past is due now.
        s.started("a");
        s.finished("a", t0, end, 1.0, Some(t0));
        assert_eq!(s.next_due(), Some(end));
    }
}
