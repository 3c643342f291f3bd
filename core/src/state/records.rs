//! Rows of the state store.

use std::fmt;

use provision_provider::{Addresses, Role};
use serde::{Deserialize, Serialize};

use crate::spec::ClusterSpec;

/// A cluster: its spec (desired state) and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub spec: ClusterSpec,
    /// Unique id stamped on every cloud resource of the cluster.
    pub id: String,
    /// `creating`, `ready`, `degraded`, `failed`, `destroying`.
    pub phase: String,
    pub created_at: String,
    pub updated_at: String,
}

impl ClusterRecord {
    /// The phase `destroy` sets before it deletes anything.
    pub const DESTROYING: &'static str = "destroying";

    /// A destroy started and did not finish: nothing may reconcile the
    /// cluster back (that would recreate what was deleted); `destroy`
    /// finishes it.
    pub fn is_destroying(&self) -> bool {
        self.phase == Self::DESTROYING
    }
}

/// Where a node is on its way into the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodePhase {
    /// Recorded; its machine may not exist yet.
    Creating,
    /// Machine started, not answering on SSH yet.
    Booting,
    /// SSH answers.
    Ssh,
    /// Installing the container engine and orchestrator.
    Installing,
    /// Initialising or joining the orchestrator.
    Joining,
    /// A member of the cluster.
    Ready,
    /// The last step failed; the next reconcile retries it.
    Failed,
}

impl NodePhase {
    pub const ALL: [NodePhase; 7] = [
        NodePhase::Creating,
        NodePhase::Booting,
        NodePhase::Ssh,
        NodePhase::Installing,
        NodePhase::Joining,
        NodePhase::Ready,
        NodePhase::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NodePhase::Creating => "creating",
            NodePhase::Booting => "booting",
            NodePhase::Ssh => "ssh",
            NodePhase::Installing => "installing",
            NodePhase::Joining => "joining",
            NodePhase::Ready => "ready",
            NodePhase::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<NodePhase> {
        NodePhase::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for NodePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the last observation said of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Unhealthy,
    Unknown,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Health {
        match s {
            "healthy" => Health::Healthy,
            "unhealthy" => Health::Unhealthy,
            _ => Health::Unknown,
        }
    }
}

/// Which kind of trouble a node's `unhealthy_since` counts from: a change of
/// kind starts the clock again, so a machine the cloud lists as gone must be
/// seen so twice, a grace apart, however long SSH had failed before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnhealthyKind {
    /// The cloud lists the machine as gone, stopped or failed.
    Lost,
    /// The cloud is rebooting, resizing, migrating or rebuilding it.
    Busy,
    /// SSH or the orchestrator does not answer for it.
    Unresponsive,
}

impl UnhealthyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UnhealthyKind::Lost => "lost",
            UnhealthyKind::Busy => "busy",
            UnhealthyKind::Unresponsive => "unresponsive",
        }
    }

    pub fn parse(s: &str) -> Option<UnhealthyKind> {
        [
            UnhealthyKind::Lost,
            UnhealthyKind::Busy,
            UnhealthyKind::Unresponsive,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A node of a cluster, recorded before its machine is created so a crash
/// at any later point leaves a record the next run can finish from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub cluster: String,
    pub name: String,
    pub role: Role,
    /// Number in the node's name (`web-worker-3` → 3), counted per pool.
    pub index: u32,
    /// The worker pool it belongs to; `None` for a manager or a worker of
    /// the default pool (`workers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The availability zone its machine is made in, chosen when the node
    /// is recorded; `None` for the cloud's choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// What its machine is made of, as its group said when it was added
    /// ([`crate::spec::Group::machine`]); a rollout replaces a node whose
    /// group now says otherwise. `None` for a node recorded before
    /// provision kept it: taken as current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    pub machine_id: Option<String>,
    /// The machine's private, public and SSH addresses, once it has them.
    pub addresses: Option<Addresses>,
    pub phase: NodePhase,
    pub health: Health,
    /// OpenSSH public key line of the node's host key, from first contact.
    pub host_key: Option<String>,
    /// The orchestrator's id for the node once it joined.
    pub member_id: Option<String>,
    /// Leaving the cluster (scale-in, or replaced after a failure).
    pub retiring: bool,
    /// Why the node is not healthy, from the last observation.
    pub reason: Option<String>,
    /// Unix seconds since which the node has been unhealthy in this kind of way.
    pub unhealthy_since: Option<i64>,
    pub unhealthy_kind: Option<UnhealthyKind>,
    /// Unix seconds when its current machine was created.
    pub machine_created_at: Option<i64>,
    /// Failed attempts in a row at creating or joining it.
    pub failures: u32,
    /// Unix seconds before which no further attempt is made (backoff).
    pub retry_at: Option<i64>,
    /// 1 for a first try; n+1 for the replacement of a node that was itself
    /// attempt n and never joined. Bounds replacements that keep failing.
    pub start_attempt: u32,
    /// The idempotency token of this node's launch, made and stored before
    /// the cloud is first asked: every retry of the launch (a crash and
    /// re-run included) sends the same one, and no other node record ever
    /// does, so a name reused after scale-in never gets back the machine a
    /// cloud still remembers for an old token (EC2 keeps them ≥ 24 h).
    pub launch_token: Option<String>,
    /// The managers (as the membership listed them) the node's own probe
    /// last found it configured for. A node whose configuration follows
    /// the managers (Mesos) is probed again only when they change.
    pub managers_seen: Option<String>,
    /// Why the planner holds something back about this node, as of the
    /// last pass that planned (each became an event when it was new here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<super::Reason>,
    /// When its certificates expire, as it last reported them (Unix
    /// seconds; see [`crate::reported::CertificateExpiry`]). Kept, as a
    /// pass probes only the nodes it must.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_expires: Option<i64>,
    /// When the CAs it trusts expire, as it last reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_expires: Option<i64>,
    pub updated_at: String,
}

impl NodeRecord {
    pub fn new(cluster: &str, name: &str, role: Role, index: u32) -> NodeRecord {
        NodeRecord {
            cluster: cluster.to_string(),
            name: name.to_string(),
            role,
            index,
            pool: None,
            zone: None,
            machine: None,
            machine_id: None,
            addresses: None,
            phase: NodePhase::Creating,
            health: Health::Unknown,
            host_key: None,
            member_id: None,
            retiring: false,
            reason: None,
            unhealthy_since: None,
            unhealthy_kind: None,
            machine_created_at: None,
            failures: 0,
            retry_at: None,
            start_attempt: 1,
            launch_token: None,
            managers_seen: None,
            conditions: Vec::new(),
            cert_expires: None,
            ca_expires: None,
            updated_at: String::new(),
        }
    }

    /// The nearest expiry its certificates reported: when, and whether
    /// it is a CA's.
    pub fn nearest_certificate(&self) -> Option<(i64, bool)> {
        match (self.cert_expires, self.ca_expires) {
            (Some(leaf), Some(ca)) if ca < leaf => Some((ca, true)),
            (Some(leaf), _) => Some((leaf, false)),
            (None, Some(ca)) => Some((ca, true)),
            (None, None) => None,
        }
    }

    /// What `status` calls its group: `managers`, `workers` or its pool.
    pub fn group_label(&self) -> &str {
        crate::spec::group_label(self.role, self.pool.as_deref())
    }
}

/// Something that happened to a cluster, for `status --events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: String,
    pub node: Option<String>,
    pub message: String,
}

/// A cloud resource made for a cluster, as the provider reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub kind: String,
    pub id: String,
    pub created_at: String,
}
