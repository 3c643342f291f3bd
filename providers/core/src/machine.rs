use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What a provider needs to know about the cluster it works for.
#[derive(Debug, Clone)]
pub struct ClusterRef {
    /// The user's name for the cluster, a DNS label.
    pub name: String,
    /// Unique id stamped on every resource (tag/label `provision.cluster-id`).
    pub id: String,
    /// OpenSSH public key line installed for root on every machine.
    pub ssh_public_key: String,
    /// Who may reach the machines, and on which ports.
    pub firewall: crate::Firewall,
}

/// A node's place in the cluster. Kubernetes control-plane nodes and Mesos
/// masters are `Manager`s; everything that only runs work is a `Worker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Manager,
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Worker => "worker",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "manager" => Some(Role::Manager),
            "worker" => Some(Role::Worker),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The machine to create for one node.
#[derive(Debug, Clone)]
pub struct MachineSpec {
    /// Node name, unique in the cluster; also the machine's hostname.
    pub node: String,
    pub role: Role,
    /// Image name or id; the provider's default when `None`.
    pub image: Option<String>,
    /// Flavor / instance type; the provider's default when `None`.
    pub flavor: Option<String>,
    /// Extra labels or metadata to stamp on the machine.
    pub labels: BTreeMap<String, String>,
}

/// The machine's lifecycle as the cloud reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "detail")]
pub enum MachineState {
    /// Being created or booting.
    Pending,
    Running,
    /// Stopped or paused; exists but does not run.
    Stopped,
    /// The cloud says it failed, with the cloud's reason.
    Error(String),
}

impl MachineState {
    pub fn as_str(&self) -> &'static str {
        match self {
            MachineState::Pending => "pending",
            MachineState::Running => "running",
            MachineState::Stopped => "stopped",
            MachineState::Error(_) => "error",
        }
    }
}

/// A machine as the cloud lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// The cloud's id for it (container id, server UUID, instance id).
    pub id: String,
    /// Node name from the machine's tag or label.
    pub node: String,
    pub role: Role,
    pub state: MachineState,
    /// Address the controller reaches it on (SSH), once known.
    pub address: Option<String>,
}
