//! [`Store`] in etcd: everything under one key prefix, so a team shares
//! its clusters and several daemons share the work (issue 16).
//!
//! Layout under the prefix `P` (JSON values unless said):
//!
//! | key | value |
//! |---|---|
//! | `P/clusters/NAME` | the cluster record (spec, id, phase, times) |
//! | `P/nodes/NAME/NODE` | a node record |
//! | `P/resources/NAME/KIND/ID` | a recorded cloud resource |
//! | `P/events/NAME/TIME` | an event (the newest [`EVENTS_KEPT`] kept) |
//! | `P/files/NAME/FILE` | the cluster's SSH key, its kubeconfig (raw bytes) |
//! | `P/locks/NAME` | who holds the cluster, under that holder's lease |
//! | `P/daemons/ID`, `P/owners/NAME` | live daemons, and which one reconciles a cluster |
//!
//! The store's calls are synchronous, as the SQLite store's are; the etcd
//! client runs on a small runtime of its own, so a call works from any
//! thread, inside an async task or not. Every call has a deadline.

mod claims;
mod connect;
mod fence;
mod keys;
mod lock;
mod pool;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use etcd_client::{Client, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use claims::{Claims, ClaimsLost};
pub use lock::{EtcdLock, LOCK_TTL};

use super::sqlite::EVENTS_KEPT;
use super::EtcdTarget;
use super::{ClusterExport, ClusterRecord, Event, NodeRecord, Resource, Store, StoreError};
use keys::Keys;

pub use pool::Pool;

pub struct EtcdStore {
    pool: Arc<Pool>,
    keys: Keys,
    location: String,
    runtime: Arc<ClientRuntime>,
    events_kept: usize,
    fences: fence::Fences,
}

/// The etcd client's own runtime. Dropped in the background: the last
/// handle may go inside another runtime's task (the daemon ending), where
/// a blocking shutdown is not allowed.
pub struct ClientRuntime(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for ClientRuntime {
    type Target = tokio::runtime::Runtime;
    fn deref(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("present until dropped")
    }
}

impl Drop for ClientRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

impl EtcdStore {
    /// Connects to `target`; fails (within the pool's deadline) when no
    /// endpoint answers or the credentials are refused.
    pub fn open(target: &EtcdTarget) -> Result<EtcdStore, StoreError> {
        let location = target.shown();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("etcd-client")
            .enable_all()
            .build()
            .map_err(|source| StoreError::Io {
                path: location.clone(),
                source,
            })?;
        let runtime = Arc::new(ClientRuntime(Some(runtime)));
        let pool = Arc::new(Pool::new(target.clone()));
        // Ask once, so a wrong address or refused credentials fail here,
        // named, and not at the first record.
        run_within(
            &runtime,
            &pool,
            &location,
            "connect",
            pool.deadline(),
            |mut c| async move { c.status().await.map(|_| ()) },
        )?;
        warn_if_plain(target);
        Ok(EtcdStore {
            pool,
            keys: Keys::new(&target.prefix),
            location,
            runtime,
            events_kept: EVENTS_KEPT,
            fences: fence::Fences::default(),
        })
    }

    /// Runs `call` on the client's runtime (on the next endpoint while one
    /// does not answer) and waits for it, with the deadline.
    fn run<T, F, Fut>(&self, what: &str, call: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(Client) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
    {
        run_within(
            &self.runtime,
            &self.pool,
            &self.location,
            what,
            self.pool.deadline(),
            call,
        )
    }

    fn get_json<T: DeserializeOwned>(&self, key: String) -> Result<Option<T>, StoreError> {
        let what = format!("get {}", self.keys.shown(&key));
        let kvs = self.run(&what, move |mut c| {
            let key = key.clone();
            async move { Ok(c.get(key, None).await?.take_kvs()) }
        })?;
        kvs.first()
            .map(|kv| self.decode(&what, kv.value()))
            .transpose()
    }

    fn list_json<T: DeserializeOwned>(&self, prefix: String) -> Result<Vec<T>, StoreError> {
        let what = format!("list {}", self.keys.shown(&prefix));
        let kvs = self.run(&what, move |mut c| {
            let prefix = prefix.clone();
            async move {
                let options = GetOptions::new().with_prefix();
                Ok(c.get(prefix, Some(options)).await?.take_kvs())
            }
        })?;
        kvs.iter()
            .map(|kv| self.decode(&what, kv.value()))
            .collect()
    }

    fn put_json<T: Serialize>(
        &self,
        cluster: &str,
        key: String,
        value: &T,
    ) -> Result<(), StoreError> {
        let what = format!("put {}", self.keys.shown(&key));
        let bytes = serde_json::to_vec(value).expect("records always serialise");
        self.write(cluster, &what, vec![TxnOp::put(key, bytes, None)])
    }

    /// Carries out `ops` on `cluster`'s keys as one transaction: fenced by
    /// this process's lock on the cluster when it holds one (see
    /// [`fence`]), so a holder that lost its lock writes nothing.
    fn write(&self, cluster: &str, what: &str, ops: Vec<TxnOp>) -> Result<(), StoreError> {
        let fence = self.fences.of(cluster);
        let lost = || StoreError::LockLost {
            location: self.location.clone(),
            cluster: cluster.to_string(),
            call: what.to_string(),
        };
        let txn = match &fence {
            Some(f) if !f.vouched.holds() || *f.lost.borrow() => return Err(lost()),
            Some(f) => Txn::new()
                .when(vec![Compare::lease(
                    f.key.clone(),
                    CompareOp::Equal,
                    f.lease,
                )])
                .and_then(ops),
            None => Txn::new().and_then(ops),
        };
        let done = self.run(what, move |mut c| {
            let txn = txn.clone();
            async move { Ok(c.txn(txn).await?.succeeded()) }
        })?;
        if done {
            Ok(())
        } else {
            Err(lost())
        }
    }

    fn decode<T: DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Result<T, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            path: self.location.clone(),
            what: what.to_string(),
            message: e.to_string(),
        })
    }

    /// Drops the oldest events past the number kept.
    fn prune_events(&self, cluster: &str) -> Result<(), StoreError> {
        let prefix = self.keys.events(cluster);
        let kept = self.events_kept as i64;
        self.run(
            &format!("prune {}", self.keys.shown(&prefix)),
            move |mut c| {
                let prefix = prefix.clone();
                async move {
                    let count = c
                        .get(
                            prefix.clone(),
                            Some(GetOptions::new().with_prefix().with_count_only()),
                        )
                        .await?
                        .count();
                    if count <= kept {
                        return Ok(());
                    }
                    // Keys sort by time: the first (count - kept) are the oldest.
                    let oldest = c
                        .get(
                            prefix.clone(),
                            Some(
                                GetOptions::new()
                                    .with_prefix()
                                    .with_keys_only()
                                    .with_limit(count - kept),
                            ),
                        )
                        .await?
                        .take_kvs();
                    if let Some(last) = oldest.last() {
                        let mut end = last.key().to_vec();
                        end.push(0);
                        c.delete(prefix, Some(DeleteOptions::new().with_range(end)))
                            .await?;
                    }
                    Ok(())
                }
            },
        )
    }

    pub(crate) fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(crate) fn runtime(&self) -> &Arc<ClientRuntime> {
        &self.runtime
    }

    pub(crate) fn fences(&self) -> &fence::Fences {
        &self.fences
    }

    /// Resolves once this process's lock on `cluster` is lost (never when
    /// it holds none): what a command waits on beside its work, to stop.
    pub async fn lock_lost(&self, cluster: &str) {
        match self.fences.of(cluster) {
            Some(mut fence) => {
                if fence.lost.wait_for(|lost| *lost).await.is_err() {
                    // The lock was released: nothing more to stop.
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }

    /// Keeps the newest `kept` events a cluster (the default is
    /// [`EVENTS_KEPT`]); for tests of the pruning.
    /// Whether some actor holds `cluster`'s lock now: a read, where taking
    /// the lock is a write.
    pub fn lock_held(&self, cluster: &str) -> Result<bool, StoreError> {
        Ok(self
            .get_json::<crate::state::Holder>(self.keys.lock(cluster))?
            .is_some())
    }

    pub fn keeping_events(mut self, kept: usize) -> EtcdStore {
        self.events_kept = kept;
        self
    }
}

/// Says once a process that the store is reached without TLS beyond this
/// machine: the clusters' SSH keys, kubeconfigs and backup keys cross the
/// network in clear then.
fn warn_if_plain(target: &EtcdTarget) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if plain_beyond_loopback(&target.endpoints) {
        WARNED.call_once(|| {
            tracing::warn!(
                state = %target.shown(),
                "etcd is reached over plain http: the clusters' SSH keys, kubeconfigs and backup keys cross the network in clear; give --etcd-cacert (TLS) and a client certificate or user"
            )
        });
    }
}

/// Whether any endpoint is plain http to another machine.
fn plain_beyond_loopback(endpoints: &[String]) -> bool {
    endpoints.iter().any(|e| {
        let Some(host) = e.strip_prefix("http://") else {
            return false;
        };
        let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
        !(name == "localhost" || name == "[::1]" || name.starts_with("127."))
    })
}

/// Runs `call` through `pool` on `runtime` from any thread (inside an
/// async task or not) and waits at most `deadline` (the pool's, for a
/// store call: one try at every endpoint).
fn run_within<T, F, Fut>(
    runtime: &tokio::runtime::Runtime,
    pool: &Arc<Pool>,
    location: &str,
    what: &str,
    deadline: Duration,
    call: F,
) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: Fn(Client) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let pool = pool.clone();
    let task = runtime.spawn(async move {
        let result = tokio::time::timeout(deadline, pool.call(call)).await;
        let _ = tx.send(result);
    });
    let fail_timeout = || StoreError::EtcdTimeout {
        location: location.to_string(),
        call: what.to_string(),
        after: deadline,
    };
    match rx.recv_timeout(deadline + Duration::from_secs(1)) {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(source))) => Err(StoreError::Etcd {
            location: location.to_string(),
            call: what.to_string(),
            source,
        }),
        Ok(Err(_)) | Err(_) => {
            task.abort();
            Err(fail_timeout())
        }
    }
}

/// Puts `key` under `lease` only if no one has it: how a lock and a
/// daemon's claim are taken.
fn put_if_absent(key: String, value: Vec<u8>, lease: i64) -> Txn {
    Txn::new()
        .when(vec![Compare::create_revision(
            key.clone(),
            CompareOp::Equal,
            0,
        )])
        .and_then(vec![TxnOp::put(
            key,
            value,
            Some(PutOptions::new().with_lease(lease)),
        )])
}

impl Store for EtcdStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn still_held(&self, cluster: &str) -> Result<(), StoreError> {
        match self.fences.of(cluster) {
            Some(f) if !f.vouched.holds() || *f.lost.borrow() => Err(StoreError::LockLost {
                location: self.location.clone(),
                cluster: cluster.to_string(),
                call: "the next step".to_string(),
            }),
            _ => Ok(()),
        }
    }

    fn put_cluster(&self, cluster: &ClusterRecord) -> Result<(), StoreError> {
        // As SQLite's upsert: the id and creation time of a stored cluster stay.
        let key = self.keys.cluster(&cluster.spec.name);
        let mut record = cluster.clone();
        let now = now();
        match self.get_json::<ClusterRecord>(key.clone())? {
            Some(old) => {
                record.id = old.id;
                record.created_at = old.created_at;
            }
            None => record.created_at = now.clone(),
        }
        record.updated_at = now;
        self.put_json(&cluster.spec.name, key, &record)
    }

    fn cluster(&self, name: &str) -> Result<Option<ClusterRecord>, StoreError> {
        self.get_json(self.keys.cluster(name))
    }

    fn clusters(&self) -> Result<Vec<ClusterRecord>, StoreError> {
        let mut all: Vec<ClusterRecord> = self.list_json(self.keys.clusters())?;
        all.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        Ok(all)
    }

    /// Keys only: the records are not sent nor decoded (3,000 of them are
    /// megabytes, and the daemon lists every few seconds).
    fn cluster_names(&self) -> Result<Vec<String>, StoreError> {
        let prefix = self.keys.clusters();
        let what = format!("list {}", self.keys.shown(&prefix));
        let kvs = self.run(&what, move |mut c| {
            let prefix = prefix.clone();
            async move {
                let options = GetOptions::new().with_prefix().with_keys_only();
                Ok(c.get(prefix, Some(options)).await?.take_kvs())
            }
        })?;
        let mut names: Vec<String> = kvs
            .iter()
            .filter_map(|kv| Some(self.keys.cluster_of(kv.key_str().ok()?)?.to_string()))
            .collect();
        names.sort();
        Ok(names)
    }

    fn set_cluster_phase(&self, name: &str, phase: &str) -> Result<(), StoreError> {
        let key = self.keys.cluster(name);
        if let Some(mut record) = self.get_json::<ClusterRecord>(key.clone())? {
            // Every pass sets it: an unchanged phase is not written (one
            // write less a pass, and nothing for the daemons' watches).
            if record.phase == phase {
                return Ok(());
            }
            record.phase = phase.to_string();
            record.updated_at = now();
            self.put_json(name, key, &record)?;
        }
        Ok(())
    }

    fn delete_cluster(&self, name: &str) -> Result<(), StoreError> {
        let prefix = || Some(DeleteOptions::new().with_prefix());
        let keys = &self.keys;
        self.write(
            name,
            &format!("delete cluster {name}"),
            vec![
                TxnOp::delete(keys.cluster(name), None),
                TxnOp::delete(keys.nodes(name), prefix()),
                TxnOp::delete(keys.resources(name), prefix()),
                TxnOp::delete(keys.events(name), prefix()),
                TxnOp::delete(keys.files(name), prefix()),
            ],
        )
    }

    fn put_node(&self, node: &NodeRecord) -> Result<(), StoreError> {
        let mut record = node.clone();
        record.updated_at = now();
        self.put_json(
            &node.cluster,
            self.keys.node(&node.cluster, &node.name),
            &record,
        )
    }

    fn nodes(&self, cluster: &str) -> Result<Vec<NodeRecord>, StoreError> {
        let mut nodes: Vec<NodeRecord> = self.list_json(self.keys.nodes(cluster))?;
        // As SQLite's `ORDER BY role, idx`.
        nodes.sort_by(|a, b| (a.role.as_str(), a.index).cmp(&(b.role.as_str(), b.index)));
        Ok(nodes)
    }

    fn node(&self, cluster: &str, node: &str) -> Result<Option<NodeRecord>, StoreError> {
        self.get_json(self.keys.node(cluster, node))
    }

    fn delete_node(&self, cluster: &str, node: &str) -> Result<(), StoreError> {
        let key = self.keys.node(cluster, node);
        let what = format!("delete {}", self.keys.shown(&key));
        self.write(cluster, &what, vec![TxnOp::delete(key, None)])
    }

    fn put_resource(&self, cluster: &str, kind: &str, id: &str) -> Result<(), StoreError> {
        // As SQLite's INSERT OR IGNORE: the first record's time stays.
        let key = self.keys.resource(cluster, kind, id);
        let value = serde_json::to_vec(&Resource {
            kind: kind.to_string(),
            id: id.to_string(),
            created_at: now(),
        })
        .expect("records always serialise");
        let what = format!("put {}", self.keys.shown(&key));
        let if_absent = Txn::new()
            .when(vec![Compare::create_revision(
                key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then(vec![TxnOp::put(key, value, None)]);
        self.write(cluster, &what, vec![TxnOp::txn(if_absent)])
    }

    fn resources(&self, cluster: &str) -> Result<Vec<Resource>, StoreError> {
        let mut all: Vec<Resource> = self.list_json(self.keys.resources(cluster))?;
        all.sort_by(|a, b| (&a.created_at, &a.kind, &a.id).cmp(&(&b.created_at, &b.kind, &b.id)));
        Ok(all)
    }

    fn add_event(
        &self,
        cluster: &str,
        node: Option<&str>,
        message: &str,
    ) -> Result<(), StoreError> {
        let event = Event {
            at: now(),
            node: node.map(str::to_string),
            message: message.to_string(),
        };
        self.put_json(cluster, self.keys.new_event(cluster), &event)?;
        self.prune_events(cluster)
    }

    fn events(&self, cluster: &str, limit: usize) -> Result<Vec<Event>, StoreError> {
        let prefix = self.keys.events(cluster);
        let what = format!("list {}", self.keys.shown(&prefix));
        let kvs = self.run(&what, move |mut c| {
            let prefix = prefix.clone();
            async move {
                let options = GetOptions::new()
                    .with_prefix()
                    .with_sort(
                        etcd_client::SortTarget::Key,
                        etcd_client::SortOrder::Descend,
                    )
                    .with_limit(limit as i64);
                Ok(c.get(prefix, Some(options)).await?.take_kvs())
            }
        })?;
        // As SQLite's: the newest, oldest first.
        kvs.iter()
            .rev()
            .map(|kv| self.decode(&what, kv.value()))
            .collect()
    }

    fn put_file(&self, cluster: &str, name: &str, contents: &[u8]) -> Result<(), StoreError> {
        let key = self.keys.file(cluster, name);
        let what = format!("put {}", self.keys.shown(&key));
        self.write(
            cluster,
            &what,
            vec![TxnOp::put(key, contents.to_vec(), None)],
        )
    }

    fn file(&self, cluster: &str, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.keys.file(cluster, name);
        let kvs = self.run(&format!("get {}", self.keys.shown(&key)), move |mut c| {
            let key = key.clone();
            async move { Ok(c.get(key, None).await?.take_kvs()) }
        })?;
        Ok(kvs.into_iter().next().map(|kv| kv.into_key_value().1))
    }

    fn file_location(&self, cluster: &str, name: &str) -> String {
        format!(
            "{} key {}",
            self.location,
            self.keys.shown(&self.keys.file(cluster, name))
        )
    }

    fn import_cluster(&self, cluster: &ClusterExport) -> Result<(), StoreError> {
        let name = cluster.record.spec.name.clone();
        self.delete_cluster(&name)?;
        let mut ops = vec![TxnOp::put(
            self.keys.cluster(&name),
            serde_json::to_vec(&cluster.record).expect("records always serialise"),
            None,
        )];
        for n in &cluster.nodes {
            ops.push(TxnOp::put(
                self.keys.node(&name, &n.name),
                serde_json::to_vec(n).expect("records always serialise"),
                None,
            ));
        }
        for r in &cluster.resources {
            ops.push(TxnOp::put(
                self.keys.resource(&name, &r.kind, &r.id),
                serde_json::to_vec(r).expect("records always serialise"),
                None,
            ));
        }
        for (i, e) in cluster.events.iter().enumerate() {
            ops.push(TxnOp::put(
                self.keys.imported_event(&name, &e.at, i),
                serde_json::to_vec(e).expect("records always serialise"),
                None,
            ));
        }
        for file in cluster.files.keys() {
            if let Some(bytes) = cluster.file(file) {
                ops.push(TxnOp::put(self.keys.file(&name, file), bytes, None));
            }
        }
        // etcd caps a transaction's operations (--max-txn-ops, 128 by
        // default): the cluster record goes last, so a cut-short import is
        // not a cluster yet and is simply imported again.
        let record = ops.remove(0);
        ops.push(record);
        for chunk in ops.chunks(100) {
            self.write(&name, &format!("import cluster {name}"), chunk.to_vec())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod plain_tests {
    #[test]
    fn plain_http_beyond_loopback_is_told_apart() {
        let e = |list: &[&str]| {
            super::plain_beyond_loopback(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert!(!e(&[
            "http://127.0.0.1:2379",
            "http://localhost:2379",
            "http://[::1]:2379"
        ]));
        assert!(!e(&["https://10.0.0.5:2379"]));
        assert!(e(&["http://127.0.0.1:2379", "http://10.0.0.5:2379"]));
        assert!(e(&["http://etcd.example.internal:2379"]));
    }
}
