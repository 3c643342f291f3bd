//! How long this process has itself seen each node's machine gone from the
//! cloud's listing, in consecutive observations, by its own monotonic
//! clock. Quorum recovery counts only this: the time a node record says
//! (wall-clock seconds another host's daemon may have written, and one kind
//! of trouble for stopped, ERROR and gone alike) could make one listing
//! without a server look like an hour of it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// First sightings of gone machines, by cluster and node; kept for the
/// process's life (the daemon's), shared by its controllers.
#[derive(Default)]
pub struct GoneWatch {
    since: Mutex<HashMap<(String, String), Instant>>,
}

impl GoneWatch {
    /// Notes one listing's word on `node`: gone or not. Returns how long it
    /// has been gone without a listing that showed it, `None` if it is not.
    pub fn observe(&self, cluster: &str, node: &str, gone: bool) -> Option<Duration> {
        let mut since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        let key = (cluster.to_string(), node.to_string());
        if !gone {
            since.remove(&key);
            return None;
        }
        Some(since.entry(key).or_insert_with(Instant::now).elapsed())
    }

    /// Forgets a cluster's nodes that no longer have records.
    pub fn retain(&self, cluster: &str, nodes: &[&str]) {
        let mut since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        since.retain(|(c, n), _| c != cluster || nodes.contains(&n.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn only_consecutive_sightings_count() {
        let watch = GoneWatch::default();
        assert_eq!(watch.observe("web", "m2", true), Some(Duration::ZERO));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(
            watch.observe("web", "m2", true),
            Some(Duration::from_secs(30))
        );
        // One listing that shows it again starts the count over.
        assert_eq!(watch.observe("web", "m2", false), None);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(watch.observe("web", "m2", true), Some(Duration::ZERO));
        // Per cluster and node.
        assert_eq!(watch.observe("api", "m2", true), Some(Duration::ZERO));
        watch.retain("web", &[]);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(watch.observe("web", "m2", true), Some(Duration::ZERO));
        assert_eq!(
            watch.observe("api", "m2", true),
            Some(Duration::from_secs(5))
        );
    }
}
