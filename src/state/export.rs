//! One cluster with everything the store keeps of it: what
//! `provision state export` writes and `provision state import` reads, so
//! clusters move between SQLite and etcd with their ids, history and keys.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::sqlite::EVENTS_KEPT;
use super::{ClusterRecord, Event, NodeRecord, Resource, Store, StoreError, CLUSTER_FILES};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterExport {
    pub record: ClusterRecord,
    pub nodes: Vec<NodeRecord>,
    pub resources: Vec<Resource>,
    /// Oldest first.
    pub events: Vec<Event>,
    /// The cluster's files ([`CLUSTER_FILES`]), base64. They hold the
    /// cluster's private key: the export is as secret as the store.
    pub files: BTreeMap<String, String>,
}

impl ClusterExport {
    pub fn file(&self, name: &str) -> Option<Vec<u8>> {
        self.files.get(name).and_then(|b| STANDARD.decode(b).ok())
    }
}

/// Everything `store` keeps of cluster `name`; `None` when it has no such cluster.
pub fn export_cluster(store: &dyn Store, name: &str) -> Result<Option<ClusterExport>, StoreError> {
    let Some(record) = store.cluster(name)? else {
        return Ok(None);
    };
    let events = store.events(name, EVENTS_KEPT)?;
    let mut files = BTreeMap::new();
    for file in CLUSTER_FILES {
        if let Some(bytes) = store.file(name, file)? {
            files.insert(file.to_string(), STANDARD.encode(bytes));
        }
    }
    Ok(Some(ClusterExport {
        nodes: store.nodes(name)?,
        resources: store.resources(name)?,
        events,
        files,
        record,
    }))
}
