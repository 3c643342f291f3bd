//! Orchestrators: which scripts run where, how a node joins, how membership
//! is read and how a node is removed. One implementation per COE behind
//! [`Orchestrator`]; the controller never knows which one it drives.

mod kubernetes;
mod mesos;
pub(crate) mod swarm;

use std::path::Path;

use async_trait::async_trait;
use provision_provider::Role;

pub use kubernetes::Kubernetes;
pub use mesos::Mesos;
pub use swarm::Swarm;

// What a node and the membership report, and the checks they pass first.
pub use provision_core::reported::{self, Member, NodeProbe};

use crate::bootstrap::{ArchiveInfo, NodeShell, ShellError};
use crate::secret::Secret;
use crate::spec::{ClusterSpec, Coe};

/// How long a drain waits for a node's work to move before it fails.
pub const DRAIN_WAIT_SECONDS: u32 = 120;

/// What a node needs to join, kept out of every log.
#[derive(Debug, Clone)]
pub struct JoinSecrets {
    pub worker: Secret,
    pub manager: Secret,
    /// What the cluster's next [`Orchestrator::join_secrets`] is to be
    /// handed, whichever manager it runs on (Kubernetes: the certificate
    /// key and its expiry), kept by the controller with the cluster.
    pub keep: Option<Secret>,
}

impl JoinSecrets {
    /// What a node joining as `role` is given.
    pub fn for_role(&self, role: Role) -> &Secret {
        match role {
            Role::Manager => &self.manager,
            Role::Worker => &self.worker,
        }
    }
}

#[async_trait]
pub trait Orchestrator: Send + Sync {
    fn coe(&self) -> Coe;

    /// The orchestrator's facts (ports, what it recovers and backs up).
    fn profile(&self) -> &'static crate::profile::Profile {
        self.coe().profile()
    }

    /// Installs and starts what every node runs. Idempotent.
    async fn install(&self, node: &NodeShell) -> Result<(), ShellError>;

    /// Reads the node's own view of its membership. Changes nothing.
    async fn probe(&self, node: &NodeShell) -> Result<NodeProbe, ShellError>;

    /// Creates the cluster on its first manager. Idempotent.
    async fn init(&self, node: &NodeShell) -> Result<(), ShellError>;

    /// Fetches join credentials from a manager; `kept` is what the last
    /// call asked to keep ([`JoinSecrets::keep`]), if anything.
    async fn join_secrets(
        &self,
        manager: &NodeShell,
        kept: Option<&Secret>,
    ) -> Result<JoinSecrets, ShellError>;

    /// Joins `node` with `role` through the manager at `manager_address`.
    /// Idempotent. Returns the node's report of itself afterwards when the
    /// join script gives one in the same round trip (the caller checks it
    /// as any report); `None` has the caller probe the node.
    async fn join(
        &self,
        node: &NodeShell,
        role: Role,
        manager_address: &str,
        secrets: &JoinSecrets,
    ) -> Result<Option<NodeProbe>, ShellError>;

    /// Gives a member that just joined its labels (`key=value` words),
    /// through a manager, for an orchestrator that keeps node labels in its
    /// membership (Swarm); the others are given them as the node joins.
    /// Idempotent.
    async fn label_member(
        &self,
        _manager: &NodeShell,
        _member_id: &str,
        _labels: &[String],
    ) -> Result<(), ShellError> {
        Ok(())
    }

    /// Lists the cluster's members, through a manager.
    async fn members(&self, manager: &NodeShell) -> Result<Vec<Member>, ShellError>;

    /// Moves a member's work to other nodes and waits until it has moved,
    /// through a manager. Idempotent.
    async fn drain(&self, manager: &NodeShell, member: &Member) -> Result<(), ShellError>;

    /// Removes a member from the cluster's membership, through a manager.
    async fn remove_member(&self, manager: &NodeShell, member: &Member) -> Result<(), ShellError>;

    /// Runs on a node that is leaving, when it can still be reached, so it
    /// holds no cluster state afterwards (`kubeadm reset`). Idempotent.
    async fn leave(&self, _node: &NodeShell) -> Result<(), ShellError> {
        Ok(())
    }

    /// Restarts what runs on a joined node with the cluster's current
    /// managers (Mesos: the masters' quorum and ZooKeeper list), when its
    /// probe said `config_stale`. The controller runs it on one node at a
    /// time, only while every manager is healthy.
    async fn reconfigure(&self, _node: &NodeShell) -> Result<(), ShellError> {
        Ok(())
    }

    /// Upgrades a joined control-plane node in place to the template's
    /// orchestrator version (Kubernetes: `kubeadm upgrade`), when only that
    /// version changed. The planner asks it of an orchestrator whose
    /// machines name a version; others refuse. Idempotent.
    async fn upgrade(&self, node: &NodeShell) -> Result<(), ShellError> {
        Err(ShellError::unreadable(
            node.node(),
            "upgrade",
            format!(
                "in-place upgrades of {} clusters are not implemented",
                self.coe()
            ),
        ))
    }

    /// Renews the control plane's certificates on this control-plane node
    /// and restarts what uses them (Kubernetes: `kubeadm certs renew all`,
    /// then its static pods). Idempotent.
    async fn renew_certificates(&self, node: &NodeShell) -> Result<(), ShellError> {
        Err(ShellError::unreadable(
            node.node(),
            "renew certificates",
            format!(
                "certificate renewal of {} clusters is not implemented",
                self.coe()
            ),
        ))
    }

    /// Rotates the cluster's root CA through `manager` and waits until
    /// every node holds a certificate the new one signed (Swarm: `docker
    /// swarm ca --rotate`).
    async fn rotate_ca(&self, manager: &NodeShell) -> Result<(), ShellError> {
        Err(ShellError::unreadable(
            manager.node(),
            "rotate the CA",
            format!("CA rotation of {} clusters is not implemented", self.coe()),
        ))
    }

    /// The client configuration to keep locally (a kubeconfig), read from a
    /// manager once the cluster exists.
    async fn client_config(&self, _manager: &NodeShell) -> Result<Option<Secret>, ShellError> {
        Ok(None)
    }

    /// Environment variables that point the COE's client at the cluster,
    /// given the SSH alias and the address of a manager, and the cluster's
    /// local directory (where [`client_config`](Self::client_config) was saved).
    fn client_env(
        &self,
        manager_alias: &str,
        manager_address: &str,
        cluster_dir: &Path,
    ) -> Vec<(String, String)>;

    /// Re-forms the cluster on `survivor`, the only manager left with the
    /// cluster's state (Swarm: `docker swarm init --force-new-cluster`).
    /// Idempotent: a cluster with quorum is left as it is.
    async fn recover_quorum(&self, survivor: &NodeShell) -> Result<(), ShellError> {
        Err(ShellError::unreadable(
            survivor.node(),
            "recover quorum",
            format!(
                "quorum recovery of {} clusters is not implemented",
                self.coe()
            ),
        ))
    }

    /// Re-forms the cluster on `node`, a new manager, from `archive` (a
    /// private file holding a backup's archive in base64, streamed to the
    /// node's script; secret). Swarm: the swarm
    /// directory put back with the engine stopped, then `swarm init
    /// --force-new-cluster`; Kubernetes: the PKI back, the etcd snapshot
    /// restored, then `kubeadm init` over them; Mesos: ZooKeeper's data and
    /// the replicated log in place, then the first master's start.
    /// Idempotent: a node that manages a cluster is left as it is.
    async fn restore(&self, node: &NodeShell, _archive: &Path) -> Result<(), ShellError> {
        Err(ShellError::unreadable(
            node.node(),
            "restore",
            format!(
                "restores of {} clusters from a backup are not implemented",
                self.coe()
            ),
        ))
    }

    /// Puts on `node`, a manager about to join a cluster being restored,
    /// the part of `archive` every manager must hold for the restored one
    /// to serve. Mesos: the replicated log, since the registrar needs a
    /// quorum of VOTING replicas and a new replica starts EMPTY (one
    /// restored replica under a quorum of two never recovers). Idempotent:
    /// a node that runs its manager already is left as it is.
    async fn seed_from_backup(&self, _node: &NodeShell, _archive: &Path) -> Result<(), ShellError> {
        Ok(())
    }

    /// Makes a node that still belongs to the cluster as it was before a
    /// restore leave it, so it can join the restored one (Swarm: `swarm
    /// leave --force`; Kubernetes: `kubeadm reset`; Mesos: its containers
    /// and work directory removed). Idempotent.
    async fn leave_old_cluster(&self, node: &NodeShell) -> Result<(), ShellError> {
        Err(ShellError::unreadable(
            node.node(),
            "leave the old cluster",
            format!("{} nodes cannot rejoin a restored cluster", self.coe()),
        ))
    }

    /// Why `manager` cannot give a backup of the cluster's state now
    /// (Swarm: autolock on), or `None` when [`backup`](Self::backup) may run.
    async fn backup_blocker(&self, _manager: &NodeShell) -> Result<Option<String>, ShellError> {
        Ok(Some(format!(
            "backups of {} clusters are not implemented",
            self.coe()
        )))
    }

    /// Takes a backup of the cluster's state on `manager`, as the COE
    /// documents it (Swarm: the raft state with the engine stopped), the
    /// archive (a gzip'd tar; it holds the cluster's keys) written to `to`
    /// as it arrives.
    async fn backup(
        &self,
        manager: &NodeShell,
        _to: &mut (dyn std::io::Write + Send),
    ) -> Result<ArchiveInfo, ShellError> {
        Err(ShellError::unreadable(
            manager.node(),
            "backup",
            format!("backups of {} clusters are not implemented yet", self.coe()),
        ))
    }
}

pub(crate) use crate::bootstrap::shell::field;

/// The orchestrator of a cluster spec.
pub fn for_spec(spec: &ClusterSpec) -> Box<dyn Orchestrator> {
    match spec.coe {
        Coe::Swarm => Box::new(Swarm),
        Coe::Kubernetes => Box::new(Kubernetes {
            settings: spec.kubernetes.clone().unwrap_or_default(),
        }),
        Coe::Mesos => Box::new(Mesos {
            settings: spec.mesos.clone().unwrap_or_default(),
        }),
    }
}
