//! Where desired and observed state lives between runs.
//!
//! [`Store`] is the interface the controller uses; [`SqliteStore`] is the
//! embedded default (one file, mode 0600, in the XDG data directory).
//! [`ClusterLock`] keeps two processes off the same cluster at once.

mod lock;
mod off_workers;
mod paths;
pub use paths::{create_private_dir, write_private_file};
mod records;
mod sqlite;

pub use lock::{ClusterLock, LockError};
pub use off_workers::OffWorkers;
pub use paths::StatePaths;
pub use records::{ClusterRecord, Event, Health, NodePhase, NodeRecord, Resource, UnhealthyKind};
pub use sqlite::SqliteStore;

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
    #[error("state store {path}: record {what} is corrupt: {message}")]
    Corrupt {
        path: String,
        what: String,
        message: String,
    },
}

/// The controller's view of persistent state.
pub trait Store: Send + Sync {
    fn put_cluster(&self, cluster: &ClusterRecord) -> Result<(), StoreError>;
    fn cluster(&self, name: &str) -> Result<Option<ClusterRecord>, StoreError>;
    fn clusters(&self) -> Result<Vec<ClusterRecord>, StoreError>;
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
    fn events(&self, cluster: &str, limit: usize) -> Result<Vec<Event>, StoreError>;
}
