//! A [`Store`] whose calls leave the async worker they are made on.
//!
//! SQLite calls block (a write waits for the disk, or for another process's
//! lock up to the busy timeout). In the daemon hundreds of cluster passes
//! share a few runtime workers; a call made inline would stall every task
//! queued on that worker. Each call here runs under
//! [`tokio::task::block_in_place`]: the runtime hands the worker's other
//! tasks to a fresh thread while the call blocks. On a current-thread
//! runtime (tests), where that is not possible, the call runs inline.

use std::sync::Arc;

use tokio::runtime::{Handle, RuntimeFlavor};

use super::{ClusterExport, ClusterRecord, Event, NodeRecord, Resource, Store, StoreError};

pub struct OffWorkers(pub Arc<dyn Store>);

pub(crate) fn off_worker<T>(call: impl FnOnce() -> T) -> T {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(call),
        _ => call(),
    }
}

impl Store for OffWorkers {
    fn location(&self) -> String {
        self.0.location()
    }
    fn put_cluster(&self, cluster: &ClusterRecord) -> Result<(), StoreError> {
        off_worker(|| self.0.put_cluster(cluster))
    }
    fn cluster(&self, name: &str) -> Result<Option<ClusterRecord>, StoreError> {
        off_worker(|| self.0.cluster(name))
    }
    fn clusters(&self) -> Result<Vec<ClusterRecord>, StoreError> {
        off_worker(|| self.0.clusters())
    }
    fn cluster_names(&self) -> Result<Vec<String>, StoreError> {
        off_worker(|| self.0.cluster_names())
    }
    fn set_cluster_phase(&self, name: &str, phase: &str) -> Result<(), StoreError> {
        off_worker(|| self.0.set_cluster_phase(name, phase))
    }
    fn delete_cluster(&self, name: &str) -> Result<(), StoreError> {
        off_worker(|| self.0.delete_cluster(name))
    }
    fn put_node(&self, node: &NodeRecord) -> Result<(), StoreError> {
        off_worker(|| self.0.put_node(node))
    }
    fn nodes(&self, cluster: &str) -> Result<Vec<NodeRecord>, StoreError> {
        off_worker(|| self.0.nodes(cluster))
    }
    fn node(&self, cluster: &str, node: &str) -> Result<Option<NodeRecord>, StoreError> {
        off_worker(|| self.0.node(cluster, node))
    }
    fn delete_node(&self, cluster: &str, node: &str) -> Result<(), StoreError> {
        off_worker(|| self.0.delete_node(cluster, node))
    }
    fn put_resource(&self, cluster: &str, kind: &str, id: &str) -> Result<(), StoreError> {
        off_worker(|| self.0.put_resource(cluster, kind, id))
    }
    fn resources(&self, cluster: &str) -> Result<Vec<Resource>, StoreError> {
        off_worker(|| self.0.resources(cluster))
    }
    fn add_event(
        &self,
        cluster: &str,
        node: Option<&str>,
        message: &str,
    ) -> Result<(), StoreError> {
        off_worker(|| self.0.add_event(cluster, node, message))
    }
    fn events(&self, cluster: &str, limit: usize) -> Result<Vec<Event>, StoreError> {
        off_worker(|| self.0.events(cluster, limit))
    }
    fn put_file(&self, cluster: &str, name: &str, contents: &[u8]) -> Result<(), StoreError> {
        off_worker(|| self.0.put_file(cluster, name, contents))
    }
    fn file(&self, cluster: &str, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        off_worker(|| self.0.file(cluster, name))
    }
    fn file_location(&self, cluster: &str, name: &str) -> String {
        self.0.file_location(cluster, name)
    }
    fn import_cluster(&self, cluster: &ClusterExport) -> Result<(), StoreError> {
        off_worker(|| self.0.import_cluster(cluster))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SqliteStore;
    use std::time::Duration;

    /// While a store call blocks one worker, another task on the runtime
    /// still runs: the call left its worker.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_blocked_store_call_does_not_hold_the_other_tasks() {
        struct Blocking(Arc<dyn Store>);
        // Only `clusters` is called; it sleeps as a locked database would.
        impl Store for Blocking {
            fn clusters(&self) -> Result<Vec<ClusterRecord>, StoreError> {
                std::thread::sleep(Duration::from_millis(400));
                self.0.clusters()
            }
            fn cluster_names(&self) -> Result<Vec<String>, StoreError> {
                self.0.cluster_names()
            }
            fn put_cluster(&self, c: &ClusterRecord) -> Result<(), StoreError> {
                self.0.put_cluster(c)
            }
            fn cluster(&self, n: &str) -> Result<Option<ClusterRecord>, StoreError> {
                self.0.cluster(n)
            }
            fn set_cluster_phase(&self, n: &str, p: &str) -> Result<(), StoreError> {
                self.0.set_cluster_phase(n, p)
            }
            fn delete_cluster(&self, n: &str) -> Result<(), StoreError> {
                self.0.delete_cluster(n)
            }
            fn put_node(&self, n: &NodeRecord) -> Result<(), StoreError> {
                self.0.put_node(n)
            }
            fn nodes(&self, c: &str) -> Result<Vec<NodeRecord>, StoreError> {
                self.0.nodes(c)
            }
            fn node(&self, c: &str, n: &str) -> Result<Option<NodeRecord>, StoreError> {
                self.0.node(c, n)
            }
            fn delete_node(&self, c: &str, n: &str) -> Result<(), StoreError> {
                self.0.delete_node(c, n)
            }
            fn put_resource(&self, c: &str, k: &str, i: &str) -> Result<(), StoreError> {
                self.0.put_resource(c, k, i)
            }
            fn resources(&self, c: &str) -> Result<Vec<Resource>, StoreError> {
                self.0.resources(c)
            }
            fn add_event(&self, c: &str, n: Option<&str>, m: &str) -> Result<(), StoreError> {
                self.0.add_event(c, n, m)
            }
            fn events(&self, c: &str, l: usize) -> Result<Vec<Event>, StoreError> {
                self.0.events(c, l)
            }
            fn location(&self) -> String {
                self.0.location()
            }
            fn put_file(&self, c: &str, n: &str, b: &[u8]) -> Result<(), StoreError> {
                self.0.put_file(c, n, b)
            }
            fn file(&self, c: &str, n: &str) -> Result<Option<Vec<u8>>, StoreError> {
                self.0.file(c, n)
            }
            fn file_location(&self, c: &str, n: &str) -> String {
                self.0.file_location(c, n)
            }
            fn import_cluster(&self, c: &ClusterExport) -> Result<(), StoreError> {
                self.0.import_cluster(c)
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
        let store = Arc::new(OffWorkers(Arc::new(Blocking(sqlite))));
        let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    ticks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        };
        // The call made from a task on the runtime's one worker, as the
        // daemon's passes make theirs.
        tokio::time::sleep(Duration::from_millis(15)).await;
        let call = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                let before = ticks.load(std::sync::atomic::Ordering::SeqCst);
                store.clusters().unwrap();
                ticks.load(std::sync::atomic::Ordering::SeqCst) - before
            })
        };
        let during = call.await.unwrap();
        ticker.await.unwrap();
        assert!(
            during >= 10,
            "the ticker ran {during} times while the store call blocked for 400 ms"
        );
    }
}
