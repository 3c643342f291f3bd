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

/// Why an export is refused before anything of it is imported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the export's cluster name is refused: {0}")]
    ClusterName(#[source] crate::spec::SpecError),
    #[error("cluster {cluster} in the export has node {node:?} ({role} {index}), which is not that cluster's name for it ({expected}): the export was not written by `provision state export`, or was changed since")]
    NodeName {
        cluster: String,
        node: String,
        role: String,
        index: u32,
        expected: String,
    },
    #[error("cluster {cluster} in the export has a file {file:?}; a cluster keeps only {}: the export was not written by `provision state export`, or was changed since", CLUSTER_FILES.join(", "))]
    UnknownFile { cluster: String, file: String },
    #[error("cluster {cluster} in the export has file {file} in other than base64")]
    FileEncoding { cluster: String, file: String },
}

impl ClusterExport {
    pub fn file(&self, name: &str) -> Option<Vec<u8>> {
        self.files.get(name).and_then(|b| STANDARD.decode(b).ok())
    }

    /// Refuses what an import would write anywhere but the cluster's own
    /// records and files: an export is input from elsewhere, and its names
    /// become keys, and with SQLite, paths (`clusters/NAME/FILE`, node logs).
    pub fn check(&self) -> Result<(), ExportError> {
        let cluster = &self.record.spec.name;
        crate::spec::validate_cluster_name(cluster).map_err(ExportError::ClusterName)?;
        for n in &self.nodes {
            let expected = crate::spec::node_name(cluster, n.role, n.index);
            if n.cluster != *cluster || n.name != expected {
                return Err(ExportError::NodeName {
                    cluster: cluster.clone(),
                    node: n.name.clone(),
                    role: n.role.as_str().to_string(),
                    index: n.index,
                    expected,
                });
            }
        }
        for (file, contents) in &self.files {
            if !CLUSTER_FILES.contains(&file.as_str()) {
                return Err(ExportError::UnknownFile {
                    cluster: cluster.clone(),
                    file: file.clone(),
                });
            }
            if STANDARD.decode(contents).is_err() {
                return Err(ExportError::FileEncoding {
                    cluster: cluster.clone(),
                    file: file.clone(),
                });
            }
        }
        Ok(())
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
