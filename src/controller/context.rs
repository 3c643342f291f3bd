//! What the controller works with, and its errors.

use std::sync::Arc;
use std::time::Duration;

use provision_provider::{ClusterRef, Provider, ProviderError};

use super::observe::Probing;
use crate::bootstrap::{keys::KeyError, ClusterKey, Connector, Scripts, ShellError, SshError};
use crate::orchestrator::Orchestrator;
use crate::progress::Reporter;
use crate::state::{ClusterRecord, StatePaths, Store, StoreError};

/// The parts one controller run uses.
pub struct Controller {
    pub store: Arc<dyn Store>,
    pub provider: Arc<dyn Provider>,
    pub orchestrator: Arc<dyn Orchestrator>,
    pub scripts: Arc<Scripts>,
    pub paths: StatePaths,
    pub reporter: Arc<dyn Reporter>,
    /// How shells on nodes are opened (SSH; an in-memory double in tests).
    pub connector: Arc<dyn Connector>,
    /// Which nodes a reconcile pass probes: every one for a person's
    /// command, membership first for the daemon.
    pub probing: Probing,
    /// Machines seen gone, for as long as the process lives (the daemon's
    /// controllers share the session's).
    pub gone: Arc<super::GoneWatch>,
    /// Asked by the daemon on SIGTERM: passes stop at their next step.
    pub stop: Arc<super::Stop>,
}

impl Controller {
    /// Whether a pass may take its next step: not once its lock is lost
    /// (its writes would be refused too: state/etcd/fence.rs), nor once this
    /// process was asked to stop.
    pub(super) fn may_go_on(&self, cluster: &str) -> Result<(), ControllerError> {
        self.store.still_held(cluster)?;
        if self.stop.asked() {
            return Err(ControllerError::Stopped);
        }
        Ok(())
    }
}

/// One cluster, as the controller sees it during a run.
#[derive(Clone)]
pub struct ClusterContext {
    pub record: ClusterRecord,
    pub cluster: ClusterRef,
    pub key: ClusterKey,
}

impl ClusterContext {
    /// The context of a cluster that exists: its key must be there (a lost
    /// key is an error that says what to do, never silently a new key).
    pub fn new(store: &dyn Store, record: ClusterRecord) -> Result<ClusterContext, KeyError> {
        let key = ClusterKey::load_for(store, &record.spec.name)?;
        Ok(Self::with_key(record, key))
    }

    /// The context of a cluster being created now (not in the state store
    /// yet): makes its key.
    pub fn create(store: &dyn Store, record: ClusterRecord) -> Result<ClusterContext, KeyError> {
        let key = ClusterKey::for_new_cluster(store, &record.spec.name)?;
        Ok(Self::with_key(record, key))
    }

    fn with_key(record: ClusterRecord, key: ClusterKey) -> ClusterContext {
        let cluster = cluster_ref(&record, key.public_line());
        ClusterContext {
            record,
            cluster,
            key,
        }
    }

    pub fn name(&self) -> &str {
        &self.record.spec.name
    }
}

/// What a provider is told of the cluster. Deleting needs no SSH key, so
/// `destroy` finishes even when the key is gone.
pub fn cluster_ref(record: &ClusterRecord, ssh_public_key: String) -> ClusterRef {
    ClusterRef {
        name: record.spec.name.clone(),
        id: record.id.clone(),
        ssh_public_key,
        firewall: record.spec.firewall(),
        minimum_size: record.spec.minimum_machine(),
        kinds: record.spec.machine_kinds(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Shell(#[from] ShellError),
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    Backup(#[from] crate::archive::BackupError),
    #[error("stopped before its next step: this process was asked to stop; the next run finishes what is half done")]
    Stopped,
    #[error("node {node}: {message}")]
    Node { node: String, message: String },
    #[error("{} node(s) failed:\n{}", .0.len(), .0.iter().map(|e| format!("- {e}")).collect::<Vec<_>>().join("\n"))]
    Nodes(Vec<ControllerError>),
    #[error("cluster {cluster} did not converge within {}; run the same command again to continue. Still to do: {}", humantime::format_duration(*after), remaining.join("; "))]
    Timeout {
        cluster: String,
        after: Duration,
        remaining: Vec<String>,
    },
    #[error("cluster {cluster} is not converging after {passes} passes; still to do: {}", remaining.join("; "))]
    NotConverging {
        cluster: String,
        passes: usize,
        remaining: Vec<String>,
    },
}
