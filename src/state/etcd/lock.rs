//! A cluster's lock in etcd: the key `P/locks/NAME`, created only when
//! absent, under a lease this process keeps alive. Never waits: a held key
//! is "busy" with its holder. A holder killed by `kill -9` stops renewing,
//! and etcd drops the key when the lease's TTL runs out.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, TxnOp, TxnOpResponse};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::warn;

use super::fence::{Fence, Fences, Vouched};
use super::{put_if_absent, run_within, EtcdStore, Pool};
use crate::state::{Holder, LockError, StoreError};

/// How long a lock outlives its holder: a killed command's cluster is free
/// again after this.
pub const LOCK_TTL: Duration = Duration::from_secs(10);

pub struct EtcdLock {
    pool: Arc<Pool>,
    fences: Fences,
    cluster: String,
    lease: i64,
    runtime: Arc<super::ClientRuntime>,
    location: String,
    keeper: tokio::task::JoinHandle<()>,
    lost: watch::Receiver<bool>,
}

enum Taken {
    Held(i64),
    Busy(Option<Vec<u8>>),
}

impl EtcdLock {
    pub fn acquire(store: &EtcdStore, cluster: &str) -> Result<EtcdLock, LockError> {
        let key = store.keys().lock(cluster);
        let holder = serde_json::to_vec(&Holder::me()).expect("a holder always serialises");
        let fail = |source: StoreError| LockError::Store {
            cluster: cluster.to_string(),
            source,
        };
        let location = store.location.clone();
        let what = format!("lock {}", store.keys().shown(&key));
        let pool = store.pool();
        // Vouched for from before the grant: etcd counts the TTL from when
        // it granted the lease, which is later.
        let asked = Instant::now();
        let lock_key = key.clone();
        let taken = run_within(
            store.runtime(),
            pool,
            &location,
            &what,
            pool.deadline(),
            move |c| take(c, key.clone(), holder.clone(), LOCK_TTL),
        )
        .map_err(fail)?;
        let lease = match taken {
            Taken::Held(lease) => lease,
            Taken::Busy(value) => {
                let holder = value
                    .and_then(|v| serde_json::from_slice::<Holder>(&v).ok())
                    .unwrap_or(Holder {
                        host: "unknown".into(),
                        pid: "unknown".into(),
                        since: "unknown".into(),
                    });
                return Err(LockError::Busy {
                    cluster: cluster.to_string(),
                    holder,
                });
            }
        };
        let vouched = Vouched::until(asked + LOCK_TTL - lease_margin(LOCK_TTL));
        let (tx, lost) = watch::channel(false);
        store.fences().hold(
            cluster,
            Fence {
                key: lock_key,
                lease,
                vouched: vouched.clone(),
                lost: lost.clone(),
            },
        );
        let keeper = store.runtime().spawn(keep_alive(
            store.pool().clone(),
            lease,
            LOCK_TTL,
            vouched,
            tx,
            cluster.to_string(),
        ));
        Ok(EtcdLock {
            pool: store.pool().clone(),
            fences: store.fences().clone(),
            cluster: cluster.to_string(),
            lease,
            runtime: store.runtime().clone(),
            location,
            keeper,
            lost,
        })
    }

    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        if lost.wait_for(|l| *l).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Creates `key` under a new lease when no one has it; else reads who does.
async fn take(
    mut client: Client,
    key: String,
    holder: Vec<u8>,
    ttl: Duration,
) -> Result<Taken, etcd_client::Error> {
    let lease = client.lease_grant(ttl.as_secs() as i64, None).await?.id();
    let txn = put_if_absent(key.clone(), holder, lease).or_else(vec![TxnOp::get(key, None)]);
    let response = client.txn(txn).await?;
    if response.succeeded() {
        return Ok(Taken::Held(lease));
    }
    let _ = client.lease_revoke(lease).await;
    let value = response.op_responses().into_iter().find_map(|r| match r {
        TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.value().to_vec()),
        _ => None,
    });
    Ok(Taken::Busy(value))
}

/// How much sooner than etcd a holder stops counting on its lease: the
/// renewal's own round trip, and the servers' clock against ours.
pub(crate) fn lease_margin(ttl: Duration) -> Duration {
    ttl / 5
}

/// Renews `lease` every third of its TTL and moves `vouched` on after each
/// renewal (from the time it was sent, so the round trip is not counted
/// twice); says "lost" as soon as `vouched` passes without a renewal, or
/// etcd says the lease is gone. It wakes at that deadline rather than at
/// the next renewal, so a holder learns it before etcd frees the key.
pub(crate) async fn keep_alive(
    pool: Arc<Pool>,
    lease: i64,
    ttl: Duration,
    vouched: Vouched,
    lost: watch::Sender<bool>,
    what: String,
) {
    let margin = lease_margin(ttl);
    loop {
        let deadline = vouched.deadline();
        tokio::time::sleep_until(deadline.min(Instant::now() + ttl / 3)).await;
        if Instant::now() >= deadline {
            warn!(%what, "the etcd lease was not renewed in time: no longer held");
            let _ = lost.send(true);
            return;
        }
        let sent = Instant::now();
        let renewed = tokio::time::timeout_at(deadline, pool.call(move |c| renew(c, lease))).await;
        match renewed {
            Ok(Ok(left)) if left > 0 => {
                vouched.set(sent + Duration::from_secs(left as u64).saturating_sub(margin));
            }
            Ok(Ok(_)) => {
                warn!(%what, "etcd dropped the lease: no longer held");
                vouched.set(sent);
                let _ = lost.send(true);
                return;
            }
            Ok(Err(e)) => warn!(%what, error = %e, "could not renew the etcd lease"),
            Err(_) => warn!(%what, "renewing the etcd lease timed out"),
        }
    }
}

/// One keep-alive round trip: the TTL etcd has left on the lease (0: gone).
async fn renew(mut client: Client, lease: i64) -> Result<i64, etcd_client::Error> {
    let (mut keeper, mut stream) = client.lease_keep_alive(lease).await?;
    keeper.keep_alive().await?;
    match stream.message().await? {
        Some(response) => Ok(response.ttl()),
        None => Err(etcd_client::Error::LeaseKeepAliveError(
            "the keep-alive stream closed".into(),
        )),
    }
}

impl Drop for EtcdLock {
    fn drop(&mut self) {
        self.keeper.abort();
        self.fences.release(&self.cluster, self.lease);
        // A lease already lost is etcd's to have dropped: nothing to release.
        if *self.lost.borrow() {
            return;
        }
        // Released now rather than at the TTL, so the next command does not
        // find the cluster busy; waited for briefly (the process may exit
        // next), and a failure only means the TTL frees it.
        let lease = self.lease;
        let released = run_within(
            &self.runtime,
            &self.pool,
            &self.location,
            "unlock",
            Duration::from_secs(2),
            move |mut c| async move { c.lease_revoke(lease).await.map(|_| ()) },
        );
        if let Err(e) = released {
            warn!(error = %e, "could not release the cluster lock; it frees itself after {}s", LOCK_TTL.as_secs());
        }
    }
}
