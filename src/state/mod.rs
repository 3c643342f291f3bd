//! Where desired and observed state lives between runs.
//!
//! [`Store`] is the interface the controller uses; [`SqliteStore`] is the
//! embedded default (one file, mode 0600, in the XDG data directory) and
//! [`EtcdStore`] the shared one (`--state etcd://…`), for teams and for
//! several daemons. [`ClusterLock`] keeps two processes off the same
//! cluster at once: a `flock` beside the SQLite file, a key held by a lease
//! in etcd.

#[cfg(feature = "etcd")]
pub mod etcd;
mod export;
pub mod location;
mod lock;
pub(crate) mod off_workers;
mod paths;
pub use paths::{create_private_dir, write_private_file, write_private_file_with};
mod sqlite;

#[cfg(feature = "etcd")]
pub use etcd::EtcdStore;
pub use export::{export_cluster, ClusterExport, ExportError};
pub use location::{EtcdTarget, EtcdTls, StateLocation};
pub use lock::{ClusterLock, Holder, LockError};
pub use off_workers::OffWorkers;
pub use paths::StatePaths;
// The records' types are the pure core's (crate provision-core).
pub use provision_core::state::{
    rfc3339, Attempt, ClusterRecord, Event, Health, NodePhase, NodeRecord, Reason, Resource,
    UnhealthyKind,
};
pub use sqlite::SqliteStore;

/// What a watch of shared state tells the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// A cluster's record was written (created, scaled): reconcile it now
    /// if it is ours, else look at the clusters again.
    Changed(String),
    /// A cluster or an owner went away: look at the clusters again.
    Relist,
}

/// An error of the state store, with the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("state store {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[cfg(feature = "etcd")]
    #[error("state store {location}: {call}: {source} (is etcd running and reachable? `etcdctl endpoint health` tells)")]
    Etcd {
        location: String,
        /// The etcd call that failed, e.g. `put clusters/web`.
        call: String,
        source: etcd_client::Error,
    },
    #[error("state store {location}: {call} did not finish within {}", humantime::format_duration(*after))]
    EtcdTimeout {
        location: String,
        call: String,
        after: std::time::Duration,
    },
    #[error("state store {location}: {call}: refused, as this process no longer holds cluster {cluster}'s lock (its lease ran out: the process was stopped or etcd was out of reach for longer than the lock's TTL), so another command or daemon may hold it now; nothing more was written. Run the command again: it continues from the state as it is")]
    LockLost {
        location: String,
        cluster: String,
        call: String,
    },
    #[error("state store {path}: record {what} is corrupt: {message}")]
    Corrupt {
        path: String,
        what: String,
        message: String,
    },
}

/// The name of the cluster's SSH private key among its files.
pub const KEY_FILE: &str = "id_ed25519";

/// The files a cluster keeps beside its records: its SSH key, the
/// orchestrator's client configuration once there is one, the join state
/// the next join needs, its backup key, and its last backup.
pub const CLUSTER_FILES: [&str; 5] = [
    KEY_FILE,
    CLIENT_CONFIG_FILE,
    JOIN_STATE_FILE,
    BACKUP_KEY_FILE,
    LAST_BACKUP_FILE,
];

/// The orchestrator's client configuration (a kubeconfig), kept with the
/// cluster's files and saved in its directory under this name.
pub const CLIENT_CONFIG_FILE: &str = "kubeconfig";

/// Where and when the cluster's newest backup was taken, by whichever
/// command or daemon took it (backup/mod.rs `Recorded`): the scheduled
/// backups' due time reads it beside the location's own listing, which may
/// lag (an object store's) or be out of reach.
pub const LAST_BACKUP_FILE: &str = "last-backup";

/// The key the cluster's backups are sealed with (archive/seal.rs): 32
/// random bytes, made at its first backup. Without it (and an export of
/// the state keeps it) its backups cannot be read.
pub const BACKUP_KEY_FILE: &str = "backup-key";

/// What the last join-credentials fetch asked to keep for the next one
/// (Kubernetes: the certificate key of the uploaded control-plane certs),
/// secret. In the store, so every host's commands and daemons hand out the
/// same one.
pub const JOIN_STATE_FILE: &str = "join-state";

/// The controller's view of persistent state.
pub trait Store: Send + Sync {
    /// Where the store is, for messages: the SQLite file or the etcd URL.
    fn location(&self) -> String;

    /// Refuses once this process may no longer act for `cluster`: its
    /// lock on it is lost (etcd's lease, by this process's own clock). A
    /// file lock cannot be lost; nor can a cluster this process holds no
    /// lock on.
    fn still_held(&self, _cluster: &str) -> Result<(), StoreError> {
        Ok(())
    }

    fn put_cluster(&self, cluster: &ClusterRecord) -> Result<(), StoreError>;
    fn cluster(&self, name: &str) -> Result<Option<ClusterRecord>, StoreError>;
    fn clusters(&self) -> Result<Vec<ClusterRecord>, StoreError>;
    /// The clusters' names, sorted, without their records: what the
    /// daemon lists every few seconds.
    fn cluster_names(&self) -> Result<Vec<String>, StoreError>;
    fn set_cluster_phase(&self, name: &str, phase: &str) -> Result<(), StoreError>;
    /// Removes the cluster with its nodes and events.
    fn delete_cluster(&self, name: &str) -> Result<(), StoreError>;

    fn put_node(&self, node: &NodeRecord) -> Result<(), StoreError>;
    fn nodes(&self, cluster: &str) -> Result<Vec<NodeRecord>, StoreError>;
    fn node(&self, cluster: &str, node: &str) -> Result<Option<NodeRecord>, StoreError>;
    fn delete_node(&self, cluster: &str, node: &str) -> Result<(), StoreError>;

    /// Records a cloud resource made for the cluster (kept until it is deleted).
    fn put_resource(&self, cluster: &str, kind: &str, id: &str) -> Result<(), StoreError>;
    fn resources(&self, cluster: &str) -> Result<Vec<Resource>, StoreError>;

    fn add_event(&self, cluster: &str, node: Option<&str>, message: &str)
        -> Result<(), StoreError>;
    /// The newest `limit`, oldest first.
    fn events(&self, cluster: &str, limit: usize) -> Result<Vec<Event>, StoreError>;

    /// Keeps one of [`CLUSTER_FILES`] (secret: never logged).
    fn put_file(&self, cluster: &str, name: &str, contents: &[u8]) -> Result<(), StoreError>;
    fn file(&self, cluster: &str, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Where [`Store::file`] keeps it, for messages.
    fn file_location(&self, cluster: &str, name: &str) -> String;

    /// Writes an exported cluster as it was (ids and times kept), replacing
    /// whatever the store had under its name.
    fn import_cluster(&self, cluster: &ClusterExport) -> Result<(), StoreError>;
}
