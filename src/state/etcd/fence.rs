//! Fencing: while this process holds a cluster's lock, every write it makes
//! to that cluster's keys is one etcd transaction that succeeds only while
//! the lock key is still under this process's lease (a LEASE compare, which
//! fails once etcd has dropped the key, or someone else's lease holds it).
//! A holder stopped past its lease's TTL (a laptop asleep, SIGSTOP, a
//! partition) so writes nothing once another actor may hold the cluster; and
//! it refuses before asking etcd once its own monotonic clock can no longer
//! vouch for the lease ([`Vouched`]), since etcd frees the key by the
//! server's clock, not ours.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::time::Instant;

/// Until when a lease is vouched for: moved on by its keeper after each
/// renewal (the renewal's send time plus the TTL etcd answered, less a
/// margin), read by every fenced write.
#[derive(Clone)]
pub(crate) struct Vouched(Arc<Mutex<Instant>>);

impl Vouched {
    pub fn until(at: Instant) -> Vouched {
        Vouched(Arc::new(Mutex::new(at)))
    }

    pub fn set(&self, at: Instant) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    pub fn deadline(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the lease is still ours by this process's clock.
    pub fn holds(&self) -> bool {
        Instant::now() < self.deadline()
    }
}

/// What a held cluster's writes are conditional on: its lock key under
/// this lease.
#[derive(Clone)]
pub(crate) struct Fence {
    pub key: String,
    pub lease: i64,
    pub vouched: Vouched,
    /// Set by the lease's keeper once it is lost.
    pub lost: watch::Receiver<bool>,
}

/// The fences of the clusters this process holds, by cluster name; shared
/// by the store (which reads them on every write) and its locks (which put
/// and take theirs).
#[derive(Clone, Default)]
pub(crate) struct Fences(Arc<Mutex<HashMap<String, Fence>>>);

impl Fences {
    pub fn hold(&self, cluster: &str, fence: Fence) {
        self.map().insert(cluster.to_string(), fence);
    }

    /// Forgets `cluster`'s fence if it is still the one of `lease`.
    pub fn release(&self, cluster: &str, lease: i64) {
        let mut map = self.map();
        if map.get(cluster).is_some_and(|f| f.lease == lease) {
            map.remove(cluster);
        }
    }

    pub fn of(&self, cluster: &str) -> Option<Fence> {
        self.map().get(cluster).cloned()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Fence>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_lease_is_vouched_for_until_its_deadline_only() {
        let vouched = Vouched::until(Instant::now() + Duration::from_secs(8));
        assert!(vouched.holds());
        tokio::time::advance(Duration::from_secs(8)).await;
        assert!(!vouched.holds());
        vouched.set(Instant::now() + Duration::from_secs(1));
        assert!(vouched.holds());
    }

    #[test]
    fn a_fence_is_released_only_by_its_own_lease() {
        let fences = Fences::default();
        let (_, lost) = watch::channel(false);
        let fence = |lease| Fence {
            key: "/p/locks/web".into(),
            lease,
            vouched: Vouched::until(Instant::now()),
            lost: lost.clone(),
        };
        fences.hold("web", fence(1));
        fences.hold("web", fence(2));
        fences.release("web", 1);
        assert_eq!(fences.of("web").map(|f| f.lease), Some(2));
        fences.release("web", 2);
        assert!(fences.of("web").is_none());
    }
}
