//! A cap on cloud operations in flight, shared by every provider of a
//! process: a daemon reconciling many clusters at once never sends a burst
//! that throttles the account (Cluster API's AWS provider hit EC2's request
//! limits at about 20 clusters, CAPA #1275) and never opens more
//! connections to the cloud than it can keep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::{Apply, ClusterRef, Machine, MachineSpec, Provider, ProviderError, Recorder};

/// Slots for provider operations in flight, and how many have run.
#[derive(Debug)]
pub struct CallLimit {
    slots: Semaphore,
    calls: AtomicU64,
}

impl CallLimit {
    pub fn new(in_flight: usize) -> Arc<CallLimit> {
        Arc::new(CallLimit {
            slots: Semaphore::new(in_flight.max(1)),
            calls: AtomicU64::new(0),
        })
    }

    /// Operations started so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    async fn turn(&self) -> SemaphorePermit<'_> {
        let permit = self.slots.acquire().await.expect("never closed");
        self.calls.fetch_add(1, Ordering::Relaxed);
        permit
    }
}

/// `inner`, with each operation run in a slot of a shared [`CallLimit`].
pub struct Throttled {
    inner: Arc<dyn Provider>,
    limit: Arc<CallLimit>,
}

impl Throttled {
    pub fn new(inner: Arc<dyn Provider>, limit: Arc<CallLimit>) -> Throttled {
        Throttled { inner, limit }
    }
}

#[async_trait]
impl Provider for Throttled {
    fn cloud(&self) -> &'static str {
        self.inner.cloud()
    }

    async fn preflight(&self, cluster: &ClusterRef) -> Result<(), ProviderError> {
        let _turn = self.limit.turn().await;
        self.inner.preflight(cluster).await
    }

    async fn ensure_prerequisites(
        &self,
        cluster: &ClusterRef,
        recorder: &dyn Recorder,
    ) -> Result<(), ProviderError> {
        let _turn = self.limit.turn().await;
        self.inner.ensure_prerequisites(cluster, recorder).await
    }

    async fn reconcile_firewall(
        &self,
        cluster: &ClusterRef,
        apply: Apply,
    ) -> Result<Vec<String>, ProviderError> {
        let _turn = self.limit.turn().await;
        self.inner.reconcile_firewall(cluster, apply).await
    }

    fn prerequisite_kinds(&self) -> &'static [&'static str] {
        self.inner.prerequisite_kinds()
    }

    fn create_concurrency(&self) -> usize {
        self.inner.create_concurrency()
    }

    async fn create_machine(
        &self,
        cluster: &ClusterRef,
        spec: &MachineSpec,
    ) -> Result<Machine, ProviderError> {
        let _turn = self.limit.turn().await;
        self.inner.create_machine(cluster, spec).await
    }

    async fn unavailable_zones(&self, cluster: &ClusterRef) -> Result<Vec<String>, ProviderError> {
        let _turn = self.limit.turn().await;
        self.inner.unavailable_zones(cluster).await
    }

    async fn list_machines(&self, cluster: &ClusterRef) -> Result<Vec<Machine>, ProviderError> {
        let _turn = self.limit.turn().await;
        self.inner.list_machines(cluster).await
    }

    async fn delete_machine(
        &self,
        cluster: &ClusterRef,
        machine_id: &str,
    ) -> Result<(), ProviderError> {
        let _turn = self.limit.turn().await;
        self.inner.delete_machine(cluster, machine_id).await
    }

    async fn destroy_cluster(&self, cluster: &ClusterRef) -> Result<(), ProviderError> {
        let _turn = self.limit.turn().await;
        self.inner.destroy_cluster(cluster).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Lists slowly and remembers how many lists ran at once at most.
    #[derive(Default)]
    struct Slow {
        now: AtomicUsize,
        most: AtomicUsize,
    }

    #[async_trait]
    impl Provider for Slow {
        fn cloud(&self) -> &'static str {
            "slow"
        }
        async fn ensure_prerequisites(
            &self,
            _: &ClusterRef,
            _: &dyn Recorder,
        ) -> Result<(), ProviderError> {
            Ok(())
        }
        async fn create_machine(
            &self,
            _: &ClusterRef,
            _: &MachineSpec,
        ) -> Result<Machine, ProviderError> {
            unimplemented!("not called")
        }
        async fn list_machines(&self, _: &ClusterRef) -> Result<Vec<Machine>, ProviderError> {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(Vec::new())
        }
        async fn delete_machine(&self, _: &ClusterRef, _: &str) -> Result<(), ProviderError> {
            Ok(())
        }
        async fn destroy_cluster(&self, _: &ClusterRef) -> Result<(), ProviderError> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_operations_run_at_once_than_the_limit_across_providers() {
        let limit = CallLimit::new(3);
        let slow = Arc::new(Slow::default());
        let a = Throttled::new(slow.clone(), limit.clone());
        let b = Throttled::new(slow.clone(), limit.clone());
        let cluster = ClusterRef {
            name: "web".into(),
            id: "c-1".into(),
            ssh_public_key: String::new(),
            firewall: crate::Firewall {
                ssh_from: "10.0.0.0/8".into(),
                members: Vec::new(),
                ..crate::Firewall::default()
            },
            minimum_size: None,
            kinds: Vec::new(),
        };
        let lists = (0..10).map(|i| {
            let p = if i % 2 == 0 { &a } else { &b };
            p.list_machines(&cluster)
        });
        for r in futures_util::future::join_all(lists).await {
            r.unwrap();
        }
        assert_eq!(slow.most.load(Ordering::SeqCst), 3);
        assert_eq!(limit.calls(), 10);
    }
}
