//! What the controller works with, and its errors.

use std::sync::Arc;
use std::time::Duration;

use provision_provider::{ClusterRef, Provider, ProviderError};

use crate::bootstrap::{keys::KeyError, ClusterKey, Scripts, ShellError, SshError};
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
}

/// One cluster, as the controller sees it during a run.
#[derive(Clone)]
pub struct ClusterContext {
    pub record: ClusterRecord,
    pub cluster: ClusterRef,
    pub key: ClusterKey,
}

impl ClusterContext {
    pub fn new(paths: &StatePaths, record: ClusterRecord) -> Result<ClusterContext, KeyError> {
        let key = ClusterKey::load_or_create(paths, &record.spec.name)?;
        let cluster = ClusterRef {
            name: record.spec.name.clone(),
            id: record.id.clone(),
            ssh_public_key: key.public_line(),
            firewall: record.spec.firewall(),
            minimum_size: record.spec.minimum_machine(),
        };
        Ok(ClusterContext {
            record,
            cluster,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.record.spec.name
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
