use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ProviderError;

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
    /// The smallest machine the cluster's orchestrator runs on, checked by
    /// `preflight` against the flavor / instance type.
    pub minimum_size: Option<MinimumSize>,
    /// Each kind of machine the cluster's groups (managers, workers, each
    /// pool) are made of, for `preflight` to check before anything exists.
    pub kinds: Vec<MachineKind>,
}

impl ClusterRef {
    /// Whether its groups differ in flavor or image, so a refusal of one
    /// names the group (`flavor of the gpu`).
    pub fn names_groups(&self) -> bool {
        self.kinds
            .windows(2)
            .any(|w| (&w[0].flavor, &w[0].image) != (&w[1].flavor, &w[1].image))
            || self.kinds.iter().any(|k| !k.zones.is_empty())
    }
}

/// The machines of one group of nodes: what `preflight` checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineKind {
    /// The group's name for messages: `managers`, `workers`, a pool's.
    pub group: String,
    /// Flavor / instance type; the provider's default when `None`.
    pub flavor: Option<String>,
    /// Image; the provider's default when `None`.
    pub image: Option<String>,
    /// Availability zones its machines go to.
    pub zones: Vec<String>,
}

/// The smallest machine (flavor, instance type) an orchestrator's nodes run
/// on, and whose rule that is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinimumSize {
    pub vcpus: u32,
    pub memory_mib: u64,
    /// Who needs it, for the message: "Kubernetes control-plane nodes (…)".
    pub needed_by: String,
}

impl MinimumSize {
    /// Refuses `flavor` of `vcpus` and `memory_mib` when it is smaller,
    /// naming the setting to change.
    pub fn check(&self, flavor: &str, vcpus: u32, memory_mib: u64) -> Result<(), ProviderError> {
        if vcpus >= self.vcpus && memory_mib >= self.memory_mib {
            return Ok(());
        }
        Err(ProviderError::Invalid {
            field: "flavor".into(),
            message: format!(
                "{flavor} has {vcpus} vCPU(s) and {memory_mib} MiB of memory, but {} need at \
                 least {} vCPUs and {} MiB: choose a larger one with --flavor or node.flavor \
                 in the template",
                self.needed_by, self.vcpus, self.memory_mib
            ),
        })
    }
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
    /// The availability zone to make it in; the cloud's (or the cloud
    /// settings') choice when `None`. A cloud without zones refuses one.
    pub zone: Option<String>,
    /// Unique to this launch of this node, the same on every retry of it:
    /// what a cloud's idempotency token (EC2's ClientToken) is made from.
    /// At most 32 characters of `[0-9a-f]`.
    pub launch_token: String,
    /// The private address the machine must have, when it matters: a Swarm
    /// manager restored from a backup keeps the raft address of the manager
    /// the backup was taken on (`swarm init --force-new-cluster` ignores
    /// `--advertise-addr` for it, docker/for-linux#523), so it must be
    /// there again. A cloud that cannot give it says so; one whose address
    /// is taken refuses.
    pub private_address: Option<String>,
}

/// The machine's lifecycle as the cloud reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "detail")]
pub enum MachineState {
    /// Being created or booting.
    Pending,
    Running,
    /// Exists and is expected back without anyone acting: the cloud is
    /// rebooting, resizing, migrating or rebuilding it, or cannot tell its
    /// state right now (Nova's UNKNOWN when a cell is down). Carries the
    /// cloud's word for it. A joined node in this state is given its own,
    /// longer grace before it is replaced.
    Busy(String),
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
            MachineState::Busy(_) => "busy",
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
    /// Its addresses, once it has the one SSH uses.
    pub addresses: Option<Addresses>,
    /// The availability zone the cloud says it is in, when it has zones.
    pub zone: Option<String>,
}

/// A machine's addresses, as real clouds give them: a private address on
/// the machine's own interface, and maybe a public one that is NAT (an EC2
/// public IPv4, an OpenStack floating IP) — on no interface of the machine,
/// so nothing on it can bind to or advertise it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    /// On the machine's interface: every cluster-internal purpose (advertise,
    /// listen and bind addresses, joins, peers), and what a member-to-member
    /// firewall rule admits.
    pub private: String,
    /// Reaches the machine from outside through the cloud's NAT, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
    /// The one the controller's SSH and the user's clients use (the cloud's
    /// `ssh_address` setting chooses): `private` or `public`.
    pub ssh: String,
}

impl Addresses {
    /// A machine with one address for everything (the local cloud, or a
    /// private-only machine).
    pub fn private_only(address: &str) -> Addresses {
        Addresses {
            private: address.to_string(),
            public: None,
            ssh: address.to_string(),
        }
    }

    /// Addresses once the one SSH uses is known: `None` while a wanted
    /// public address is still missing (not yet allocated).
    pub fn with_ssh(
        private: Option<&str>,
        public: Option<&str>,
        ssh_public: bool,
    ) -> Option<Addresses> {
        let private = private?;
        let ssh = if ssh_public { public? } else { private };
        Some(Addresses {
            private: private.to_string(),
            public: public.map(str::to_string),
            ssh: ssh.to_string(),
        })
    }
}
