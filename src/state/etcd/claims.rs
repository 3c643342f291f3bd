//! Which daemon reconciles which cluster, when several share one etcd.
//!
//! Each daemon registers `P/daemons/ID` under a lease it keeps alive and
//! claims clusters by creating `P/owners/NAME` under that same lease, up to
//! its fair share (clusters ÷ live daemons, rounded up); a daemon past its
//! share (one more daemon started) gives the surplus back. A daemon killed
//! by `kill -9` stops renewing: etcd drops its keys after the TTL and the
//! others, told by a watch, claim its clusters at once. A daemon that
//! cannot reach etcd claims nothing and so runs no pass: it never acts on
//! state it cannot read. The per-pass cluster lock still keeps a daemon and
//! a person's command off one cluster at the same time.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
};
use rand::Rng;
use tokio::sync::{mpsc, watch, Mutex};
use tracing::{debug, info, warn};

use super::fence::Vouched;
use super::keys::Keys;
use super::lock::{keep_alive, lease_margin};
use super::{put_if_absent, EtcdStore, Pool};
use crate::state::lock::hostname;
use crate::state::Wake;

/// etcd could not be asked: the daemon owns nothing until it can.
#[derive(Debug, thiserror::Error)]
#[error("cannot claim clusters in {location}: {message}")]
pub struct ClaimsLost {
    location: String,
    message: String,
}

struct Lease {
    id: i64,
    lost: watch::Receiver<bool>,
    keeper: tokio::task::JoinHandle<()>,
}

pub struct Claims {
    pool: Arc<Pool>,
    keys: Keys,
    runtime: Arc<super::ClientRuntime>,
    location: String,
    /// `host-pid-random`: unique among the daemons of one etcd.
    id: String,
    ttl: Duration,
    lease: Mutex<Option<Lease>>,
}

impl Claims {
    pub fn new(store: &EtcdStore, ttl: Duration) -> Claims {
        let tail: u16 = rand::thread_rng().gen();
        Claims {
            pool: store.pool().clone(),
            keys: store.keys().clone(),
            runtime: store.runtime().clone(),
            location: store.location.clone(),
            id: format!("{}-{}-{tail:04x}", hostname(), std::process::id()),
            ttl,
            lease: Mutex::new(None),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs `call` on the etcd client's runtime (on the next endpoint
    /// while one does not answer), within the pool's deadline.
    async fn call<T, F, Fut>(&self, what: &str, call: F) -> Result<T, ClaimsLost>
    where
        T: Send + 'static,
        F: Fn(Client) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
    {
        let deadline = self.pool.deadline();
        let pool = self.pool.clone();
        let fail = |message: String| ClaimsLost {
            location: self.location.clone(),
            message: format!("{what}: {message}"),
        };
        match self
            .runtime
            .spawn(async move { tokio::time::timeout(deadline, pool.call(call)).await })
            .await
        {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(e))) => Err(fail(e.to_string())),
            Ok(Err(_)) => Err(fail(format!("no answer within {}s", deadline.as_secs()))),
            Err(e) => Err(fail(e.to_string())),
        }
    }

    /// This daemon's lease, granted again (and the daemon registered again)
    /// when the last one was lost.
    async fn lease(&self) -> Result<i64, ClaimsLost> {
        let mut held = self.lease.lock().await;
        if let Some(lease) = held.as_ref() {
            if !*lease.lost.borrow() {
                return Ok(lease.id);
            }
            lease.keeper.abort();
            warn!(daemon = %self.id, "lost the daemon's etcd lease; registering again");
        }
        *held = None;
        let ttl = self.ttl;
        let key = self.keys.daemon(&self.id);
        let value = serde_json::to_vec(&crate::state::Holder::me()).expect("serialises");
        let asked = tokio::time::Instant::now();
        let id = self
            .call("register the daemon", move |mut client| {
                let (key, value) = (key.clone(), value.clone());
                async move {
                    let lease = client.lease_grant(ttl.as_secs() as i64, None).await?.id();
                    client
                        .put(key, value, Some(PutOptions::new().with_lease(lease)))
                        .await?;
                    Ok(lease)
                }
            })
            .await?;
        let (tx, lost) = watch::channel(false);
        let keeper = self.runtime.spawn(keep_alive(
            self.pool.clone(),
            id,
            ttl,
            Vouched::until(asked + ttl - lease_margin(ttl)),
            tx,
            format!("daemon {}", self.id),
        ));
        info!(daemon = %self.id, ttl_s = ttl.as_secs(), "registered in etcd");
        *held = Some(Lease { id, lost, keeper });
        Ok(id)
    }

    /// Claims this daemon's fair share of `clusters` and gives back any
    /// surplus; the clusters it owns now.
    pub async fn claim(&self, clusters: &[String]) -> Result<Vec<String>, ClaimsLost> {
        let lease = self.lease().await?;
        let (daemons, owners) = (self.keys.daemons(), self.keys.owners());
        let (live, owned) = self
            .call("list daemons and owners", move |mut client| {
                let (daemons, owners) = (daemons.clone(), owners.clone());
                async move {
                    let live = client
                        .get(
                            daemons,
                            Some(GetOptions::new().with_prefix().with_count_only()),
                        )
                        .await?
                        .count();
                    let owned = client
                        .get(owners, Some(GetOptions::new().with_prefix()))
                        .await?
                        .take_kvs();
                    Ok((live, owned))
                }
            })
            .await?;
        let owners: BTreeMap<String, String> = owned
            .iter()
            .filter_map(|kv| {
                let cluster = self.keys.owned_cluster(kv.key_str().ok()?)?;
                Some((cluster.to_string(), kv.value_str().ok()?.to_string()))
            })
            .collect();
        let share = clusters.len().div_ceil(live.max(1) as usize);
        let mut mine: Vec<String> = clusters
            .iter()
            .filter(|c| owners.get(*c).is_some_and(|o| *o == self.id))
            .cloned()
            .collect();
        while mine.len() > share {
            let give = mine.pop().expect("more than share");
            self.release(&give).await?;
            info!(cluster = %give, daemon = %self.id, share, "gave a cluster back (more daemons now)");
        }
        for cluster in clusters {
            if mine.len() >= share {
                break;
            }
            if owners.contains_key(cluster) {
                continue;
            }
            if self.take(cluster, lease).await? {
                info!(cluster = %cluster, daemon = %self.id, "claimed");
                mine.push(cluster.clone());
            }
        }
        debug!(daemon = %self.id, live, share, owned = mine.len(), "claims");
        Ok(mine)
    }

    async fn take(&self, cluster: &str, lease: i64) -> Result<bool, ClaimsLost> {
        let key = self.keys.owner(cluster);
        let id = self.id.clone();
        self.call("claim a cluster", move |mut client| {
            let txn = put_if_absent(key.clone(), id.clone().into_bytes(), lease);
            async move { Ok(client.txn(txn).await?.succeeded()) }
        })
        .await
    }

    /// Gives `cluster` back if this daemon still owns it.
    async fn release(&self, cluster: &str) -> Result<(), ClaimsLost> {
        let key = self.keys.owner(cluster);
        let id = self.id.clone();
        self.call("give a cluster back", move |mut client| {
            let txn = Txn::new()
                .when(vec![Compare::value(
                    key.clone(),
                    CompareOp::Equal,
                    id.clone(),
                )])
                .and_then(vec![TxnOp::delete(key.clone(), None)]);
            async move { client.txn(txn).await.map(|_| ()) }
        })
        .await
    }

    /// Ends this daemon's lease (a clean stop): its clusters are free for
    /// the others at once rather than after the TTL.
    pub async fn resign(&self) {
        let Some(lease) = self.lease.lock().await.take() else {
            return;
        };
        lease.keeper.abort();
        let id = lease.id;
        let _ = self
            .call("resign", move |mut client| async move {
                client.lease_revoke(id).await.map(|_| ())
            })
            .await;
    }

    /// Watches cluster records and owners for as long as the receiver
    /// lives; after a broken watch it watches again (a missed event only
    /// delays a pass to the next listing).
    pub fn watch(&self) -> mpsc::UnboundedReceiver<Wake> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (pool, keys) = (self.pool.clone(), self.keys.clone());
        self.runtime.spawn(async move {
            loop {
                if let Err(e) = watch_once(&pool, &keys, &tx).await {
                    debug!(error = %e, "etcd watch ended; watching again");
                }
                if tx.is_closed() {
                    return;
                }
                // Whatever happened meanwhile is seen by a listing.
                let _ = tx.send(Wake::Relist);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        rx
    }
}

async fn watch_once(
    pool: &Pool,
    keys: &Keys,
    tx: &mpsc::UnboundedSender<Wake>,
) -> Result<(), etcd_client::Error> {
    let (clusters, owners) = (keys.clusters(), keys.owners());
    let mut stream = pool
        .call(|mut client| {
            let (clusters, owners) = (clusters.clone(), owners.clone());
            async move {
                let mut stream = client
                    .watch(
                        clusters,
                        Some(WatchOptions::new().with_prefix().with_prev_key()),
                    )
                    .await?;
                stream
                    .watch(owners, Some(WatchOptions::new().with_prefix()))
                    .await?;
                Ok(stream)
            }
        })
        .await?;
    while let Some(response) = stream.message().await? {
        if response.canceled() {
            return Ok(());
        }
        for event in response.events() {
            let Some(key) = event.kv().and_then(|kv| kv.key_str().ok()) else {
                continue;
            };
            let wake = match (keys.cluster_of(key), event.event_type()) {
                // Only a change of desired state wakes a pass: a pass writes
                // the cluster's phase itself, which must not wake another.
                (Some(name), EventType::Put) => {
                    let spec = |v: &[u8]| {
                        serde_json::from_slice::<serde_json::Value>(v)
                            .ok()
                            .map(|r| r["spec"].clone())
                    };
                    let before = event.prev_kv().and_then(|kv| spec(kv.value()));
                    let after = event.kv().and_then(|kv| spec(kv.value()));
                    if before.is_some() && before == after {
                        continue;
                    }
                    Wake::Changed(name.to_string())
                }
                (Some(_), EventType::Delete) => Wake::Relist,
                // An owner gone (a daemon died or gave a cluster back).
                (None, EventType::Delete) => Wake::Relist,
                (None, EventType::Put) => continue,
            };
            if tx.send(wake).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

impl Drop for Claims {
    fn drop(&mut self) {
        if let Ok(mut held) = self.lease.try_lock() {
            if let Some(lease) = held.take() {
                lease.keeper.abort();
            }
        }
    }
}
