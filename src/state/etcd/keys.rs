//! The etcd key of every record (the layout is in the module's docs).

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Keys {
    /// `/provision`: no trailing slash.
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    /// A key as messages show it: without the prefix.
    pub fn shown<'a>(&self, key: &'a str) -> &'a str {
        key.strip_prefix(&self.prefix)
            .map(|k| k.trim_start_matches('/'))
            .unwrap_or(key)
    }

    pub fn clusters(&self) -> String {
        format!("{}/clusters/", self.prefix)
    }

    pub fn cluster(&self, name: &str) -> String {
        format!("{}{name}", self.clusters())
    }

    /// The cluster's name from a key under [`Keys::clusters`].
    pub fn cluster_of<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.clusters())
            .filter(|n| !n.contains('/'))
    }

    pub fn nodes(&self, cluster: &str) -> String {
        format!("{}/nodes/{cluster}/", self.prefix)
    }

    pub fn node(&self, cluster: &str, node: &str) -> String {
        format!("{}{node}", self.nodes(cluster))
    }

    pub fn resources(&self, cluster: &str) -> String {
        format!("{}/resources/{cluster}/", self.prefix)
    }

    pub fn resource(&self, cluster: &str, kind: &str, id: &str) -> String {
        format!("{}{kind}/{id}", self.resources(cluster))
    }

    pub fn events(&self, cluster: &str) -> String {
        format!("{}/events/{cluster}/", self.prefix)
    }

    /// A new event's key: keys sort by time (microseconds, then a random
    /// tail so two writers in one microsecond do not collide).
    pub fn new_event(&self, cluster: &str) -> String {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or_default();
        let tail: u32 = rand::thread_rng().gen();
        format!("{}{micros:020}-{tail:08x}", self.events(cluster))
    }

    /// The key of the `index`th imported event, stamped `at` (RFC 3339):
    /// in time order among new ones, in export order within a second.
    pub fn imported_event(&self, cluster: &str, at: &str, index: usize) -> String {
        let micros = humantime::parse_rfc3339_weak(at)
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_micros())
            .unwrap_or_default();
        format!(
            "{}{:020}-00000000",
            self.events(cluster),
            micros + index as u128
        )
    }

    pub fn files(&self, cluster: &str) -> String {
        format!("{}/files/{cluster}/", self.prefix)
    }

    pub fn file(&self, cluster: &str, name: &str) -> String {
        format!("{}{name}", self.files(cluster))
    }

    pub fn lock(&self, cluster: &str) -> String {
        format!("{}/locks/{cluster}", self.prefix)
    }

    pub fn daemons(&self) -> String {
        format!("{}/daemons/", self.prefix)
    }

    pub fn daemon(&self, id: &str) -> String {
        format!("{}{id}", self.daemons())
    }

    pub fn owners(&self) -> String {
        format!("{}/owners/", self.prefix)
    }

    pub fn owner(&self, cluster: &str) -> String {
        format!("{}{cluster}", self.owners())
    }

    /// The cluster's name from a key under [`Keys::owners`].
    pub fn owned_cluster<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.owners())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cluster_prefix_never_covers_another() {
        let k = Keys::new("/provision/");
        assert_eq!(k.cluster("web"), "/provision/clusters/web");
        assert!(!k.node("web2", "web2-worker-1").starts_with(&k.nodes("web")));
        assert_eq!(
            k.shown(&k.node("web", "web-worker-1")),
            "nodes/web/web-worker-1"
        );
        assert_eq!(k.cluster_of("/provision/clusters/web"), Some("web"));
        assert_eq!(k.cluster_of("/provision/nodes/web/x"), None);
    }

    #[test]
    fn event_keys_sort_by_time_new_and_imported_alike() {
        let k = Keys::new("/p");
        let old = k.imported_event("web", "2020-01-01T00:00:00Z", 0);
        let old2 = k.imported_event("web", "2020-01-01T00:00:00Z", 1);
        let new = k.new_event("web");
        assert!(old < old2 && old2 < new, "{old} {old2} {new}");
    }
}
