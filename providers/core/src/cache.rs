use std::collections::HashMap;
use std::sync::Mutex;

/// What a provider found or made once per cluster (its prerequisites),
/// kept for the life of the process so later machines reuse it. A
/// long-running daemon forgets an entry after a failure, so something
/// deleted behind its back is looked up again.
#[derive(Debug)]
pub struct PerCluster<T: Clone>(Mutex<HashMap<String, T>>);

impl<T: Clone> Default for PerCluster<T> {
    fn default() -> Self {
        PerCluster(Mutex::new(HashMap::new()))
    }
}

impl<T: Clone> PerCluster<T> {
    pub fn get(&self, cluster_id: &str) -> Option<T> {
        self.0
            .lock()
            .expect("not poisoned")
            .get(cluster_id)
            .cloned()
    }

    pub fn insert(&self, cluster_id: &str, value: T) {
        self.0
            .lock()
            .expect("not poisoned")
            .insert(cluster_id.to_string(), value);
    }

    /// The cluster's value, made by `make` the first time (a failure is
    /// not kept: the next call makes it again).
    pub async fn get_or_make<F, Fut, E>(&self, cluster_id: &str, make: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        if let Some(value) = self.get(cluster_id) {
            return Ok(value);
        }
        let made = make().await?;
        self.insert(cluster_id, made.clone());
        Ok(made)
    }

    pub fn forget(&self, cluster_id: &str) {
        self.0.lock().expect("not poisoned").remove(cluster_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_cluster_until_forgotten() {
        let c = PerCluster::default();
        c.insert("a", 1);
        c.insert("b", 2);
        assert_eq!((c.get("a"), c.get("b")), (Some(1), Some(2)));
        c.forget("a");
        assert_eq!((c.get("a"), c.get("b")), (None, Some(2)));
    }
}
