use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// What a provider found or made once per cluster (its prerequisites),
/// kept for the life of the process so later machines reuse it. A
/// long-running daemon forgets an entry after a failure, so something
/// deleted behind its back is looked up again.
#[derive(Debug)]
pub struct PerCluster<T: Clone>(Mutex<HashMap<String, Arc<OnceCell<T>>>>);

impl<T: Clone> Default for PerCluster<T> {
    fn default() -> Self {
        PerCluster(Mutex::new(HashMap::new()))
    }
}

impl<T: Clone> PerCluster<T> {
    fn cell(&self, cluster_id: &str) -> Arc<OnceCell<T>> {
        self.0
            .lock()
            .expect("not poisoned")
            .entry(cluster_id.to_string())
            .or_default()
            .clone()
    }

    pub fn get(&self, cluster_id: &str) -> Option<T> {
        self.0
            .lock()
            .expect("not poisoned")
            .get(cluster_id)
            .and_then(|cell| cell.get().cloned())
    }

    pub fn insert(&self, cluster_id: &str, value: T) {
        self.0.lock().expect("not poisoned").insert(
            cluster_id.to_string(),
            Arc::new(OnceCell::new_with(Some(value))),
        );
    }

    /// The cluster's value, made by `make` the first time. Callers that
    /// race wait for the one `make` under way (nodes created in parallel
    /// look the prerequisites up once); a failure is not kept: the next
    /// caller makes it again.
    pub async fn get_or_make<F, Fut, E>(&self, cluster_id: &str, make: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        self.cell(cluster_id).get_or_try_init(make).await.cloned()
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

    #[tokio::test]
    async fn racing_callers_make_the_value_once_and_a_failure_is_not_kept() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let c = Arc::new(PerCluster::default());
        let makes = Arc::new(AtomicU32::new(0));
        let failed: Result<u32, &str> = c.get_or_make("a", || async { Err("cloud down") }).await;
        assert_eq!(failed, Err("cloud down"));
        let callers = (0..8).map(|_| {
            let (c, makes) = (c.clone(), makes.clone());
            tokio::spawn(async move {
                c.get_or_make("a", || async {
                    makes.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Ok::<_, &str>(7)
                })
                .await
            })
        });
        for caller in callers.collect::<Vec<_>>() {
            assert_eq!(caller.await.unwrap(), Ok(7));
        }
        assert_eq!(makes.load(Ordering::SeqCst), 1);
    }
}
