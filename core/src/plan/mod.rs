//! The planner: a pure function from desired and observed state to actions.
//!
//! No I/O and no clock reads happen here (the time is an argument), so
//! every situation the controller can meet is a unit test ([`tests`]).
//! [`plan`] runs named phases in order, each in its own file, as Cluster
//! API's KubeadmControlPlane splits `remediation.go` and `scale.go`:
//!
//! 0. [`restore`]: a restore asked for and no manager left → a new manager
//!    restored from the backup, and nothing else that pass; once restored,
//!    the old cluster's workers rejoin.
//! 0. [`recover`]: a majority of the managers gone for good → the cluster
//!    re-formed on a survivor, and nothing else that pass.
//! 1. [`remediate`]: unhealthy nodes past their grace are retired (unless
//!    too many are, or quorum is at stake).
//! 2. [`scale`]: surplus nodes retired (scale-in); [`rollout`]: the first
//!    group whose machines changed replaced node by node; missing nodes
//!    added (a rolling group's surge too).
//! 3. [`form`]: the cluster initialised once; new and unfinished nodes
//!    created, bootstrapped and joined.
//! 4. [`reconfigure`]: one node a pass restarted with the current managers.
//! 5. [`departures`]: retiring nodes drained, removed, deleted, forgotten.
//! 6. [`orphans`]: what no record knows (down members, machines,
//!    duplicates) removed.

mod certificates;
mod departures;
mod form;
mod orphans;
mod reconfigure;
mod recover;
mod remediate;
mod restore;
pub mod rollout;
mod scale;
#[cfg(test)]
mod tests;
mod zones;

use std::collections::BTreeMap;

#[cfg(test)]
use provision_provider::MachineState;
use provision_provider::{Machine, Role};

use crate::health::{assess, due_at, Condition};
use crate::reported::{Member, NodeProbe};
#[cfg(test)]
use crate::spec::node_name;
use crate::spec::{ClusterSpec, HealthPolicy};
use crate::state::{NodeRecord, Reason};

/// What one observation knows of a node itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// SSH did not answer, or the probe script failed.
    Unreachable(String),
    /// The node's own report, over SSH.
    Reached(NodeProbe),
    /// Not probed: the orchestrator's membership lists it as a ready member
    /// in its role, which is what a probe would have told (membership-first
    /// observation). Holds what that listing implies.
    Vouched(NodeProbe),
    /// Not known this pass, for a reason on our side (no SSH session slot
    /// free, out of file descriptors): never evidence against the node.
    Unknown(String),
}

impl Probe {
    /// What the membership's listing of a ready member implies of it.
    pub fn vouched(member_id: &str) -> Probe {
        Probe::Vouched(NodeProbe {
            engine_running: true,
            joined: true,
            member_id: Some(member_id.to_string()),
            // Control is only claimed by a manager's own probe.
            control: false,
            config_stale: false,
            certificates: Default::default(),
        })
    }

    /// The node's report, or what its listing implies.
    pub fn node(&self) -> Option<&NodeProbe> {
        match self {
            Probe::Reached(p) | Probe::Vouched(p) => Some(p),
            Probe::Unreachable(_) | Probe::Unknown(_) => None,
        }
    }

    /// A manager that said itself it can manage the cluster.
    pub fn has_control(&self) -> bool {
        matches!(self, Probe::Reached(p) if p.control)
    }
}

/// Everything one observation found.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The cloud's machines carrying the cluster id (one list call), one a
    /// node.
    pub machines: Vec<Machine>,
    /// Machines of a node beyond the one in `machines` (a create the cloud
    /// carried out although its answer was lost, then retried).
    pub duplicates: Vec<Machine>,
    /// Per-node results, by node name: a node the membership vouches for is
    /// not probed; machines that are not running are not either.
    pub probes: BTreeMap<String, Probe>,
    /// Membership as a manager lists it; `None` when no manager answered.
    pub members: Option<Vec<Member>>,
    /// The managers as `members` lists them, in one line (what a node's
    /// `managers_seen` is compared with); `None` without a listing.
    pub managers_view: Option<String>,
    /// Reports of nodes or members that were not used (not in a form an
    /// orchestrator makes), each with why: they become events.
    pub refused: Vec<String>,
    /// How long this process has itself seen each node's machine missing
    /// from the listing, in consecutive listings, by its own monotonic
    /// clock: quorum recovery's evidence (controller/gone_watch.rs).
    pub gone_for: BTreeMap<String, std::time::Duration>,
    /// Availability zones the cloud lists as unavailable (asked only of a
    /// cluster with zones): nothing new is placed there.
    pub zones_down: std::collections::BTreeSet<String>,
}

/// One step the actor takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Record a new node (before anything is created for it).
    AddNode {
        node: String,
        role: Role,
        index: u32,
        /// 1, or one more than the never-joined node it replaces.
        attempt: u32,
        /// Its worker pool; `None` for a manager or a default worker.
        pool: Option<String>,
        /// The availability zone its machine goes to; `None` for the
        /// cloud's choice.
        zone: Option<String>,
        /// What its group's machines are made of ([`crate::spec::Group::machine`]).
        machine: Option<String>,
    },
    /// Mark a node as leaving: scale-in, or replaced after a failure.
    Retire { node: String, reason: String },
    /// Create the node's machine, or start it if it was created but never started.
    CreateMachine { node: String, role: Role },
    /// Wait for SSH and install the container engine.
    Bootstrap { node: String },
    /// Create the orchestrator cluster on this first manager.
    InitCluster { node: String },
    /// Join the node to the orchestrator cluster.
    Join { node: String, role: Role },
    /// Move the node's work elsewhere before it leaves.
    Drain { node: String, member: Member },
    /// Remove an entry from the orchestrator's membership (demoting a manager first).
    RemoveMember { node: String, member: Member },
    /// Delete a machine that is not wanted (retiring, or unknown).
    DeleteMachine { node: String, machine_id: String },
    /// Drop the record of a node that has left.
    ForgetNode { node: String },
    /// Restart a joined node's services with the current managers (Mesos:
    /// quorum and ZooKeeper list), one node a pass.
    Reconfigure { node: String },
    /// Upgrade a joined control-plane node in place to the orchestrator
    /// version `machine` names (Kubernetes: `kubeadm upgrade`), one a pass;
    /// the record says `machine` afterwards.
    Upgrade { node: String, machine: String },
    /// Re-form the cluster on this surviving manager: a majority of the
    /// managers is gone for good (Swarm: `--force-new-cluster`).
    RecoverQuorum { node: String },
    /// Re-form the cluster on this new manager from the backup the spec's
    /// `restore` names (no manager survives).
    RestoreCluster { node: String },
    /// Leave the cluster as it was before a restore, join the restored
    /// one, and remove the entry the restored one has of it from before
    /// (`old`): the node left it, though it may still be listed Ready.
    Rejoin {
        node: String,
        role: Role,
        old: Option<Member>,
        cause: RejoinCause,
    },
    /// Renew the control plane's certificates on this control-plane node
    /// and restart what uses them (Kubernetes: `kubeadm certs renew all`).
    RenewCertificates { node: String },
    /// Rotate the cluster's root CA through this manager (Swarm: `docker
    /// swarm ca --rotate`, which reissues every node's certificate).
    RotateCa { node: String },
}

/// Why a node leaves and joins again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejoinCause {
    /// It left with the cluster as it was before a restore.
    Restore,
    /// Its own certificate expired: the managers refuse it.
    CertificateExpired,
}

impl Action {
    /// The node the action is about; actions of one node run in order.
    pub fn node(&self) -> &str {
        match self {
            Action::AddNode { node, .. }
            | Action::Retire { node, .. }
            | Action::CreateMachine { node, .. }
            | Action::Bootstrap { node }
            | Action::InitCluster { node }
            | Action::Join { node, .. }
            | Action::Drain { node, .. }
            | Action::RemoveMember { node, .. }
            | Action::DeleteMachine { node, .. }
            | Action::ForgetNode { node }
            | Action::Reconfigure { node }
            | Action::Upgrade { node, .. }
            | Action::RecoverQuorum { node }
            | Action::RestoreCluster { node }
            | Action::Rejoin { node, .. }
            | Action::RenewCertificates { node }
            | Action::RotateCa { node } => node,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Action::AddNode {
                node, role, zone, ..
            } => match zone {
                Some(zone) => format!("add {role} {node} in zone {zone}"),
                None => format!("add {role} {node}"),
            },
            Action::Retire { node, reason } => format!("retire {node} ({reason})"),
            Action::CreateMachine { node, .. } => format!("create machine for {node}"),
            Action::Bootstrap { node } => format!("bootstrap {node} (SSH, install)"),
            Action::InitCluster { node } => format!("initialise the cluster on {node}"),
            Action::Join { node, role } => format!("join {node} as {role}"),
            Action::Drain { node, .. } => format!("drain {node}"),
            Action::RemoveMember { node, member } => {
                format!(
                    "remove {node} from the cluster (member {}, {})",
                    member.id, member.status
                )
            }
            Action::DeleteMachine { node, machine_id } => {
                format!("delete machine {machine_id} of {node}")
            }
            Action::ForgetNode { node } => format!("forget node {node}"),
            Action::Reconfigure { node } => {
                format!("reconfigure {node} for the current managers")
            }
            Action::Upgrade { node, machine } => {
                format!("upgrade {node} in place to {machine}")
            }
            Action::RecoverQuorum { node } => {
                format!("re-form the cluster on surviving manager {node} (quorum lost)")
            }
            Action::RestoreCluster { node } => {
                format!("restore the cluster on {node} from the backup")
            }
            Action::Rejoin {
                node, role, cause, ..
            } => match cause {
                RejoinCause::Restore => {
                    format!("rejoin {node} as {role} (it left with the cluster before the restore)")
                }
                RejoinCause::CertificateExpired => {
                    format!("rejoin {node} as {role} (its certificate has expired)")
                }
            },
            Action::RenewCertificates { node } => {
                format!("renew the certificates of {node} (and restart its control plane)")
            }
            Action::RotateCa { node } => {
                format!("rotate the cluster's root CA through {node}")
            }
        }
    }
}

/// One reconcile pass: the record changes to make first, then each node's
/// steps, which the actor runs as one pipeline a node, nodes side by side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// New nodes to record and nodes to mark retiring ([`Action::AddNode`],
    /// [`Action::Retire`]), written before any step starts, so a crash
    /// after this point finds them.
    pub changes: Vec<Action>,
    /// Each node's steps in order, the nodes in the order they start.
    pub nodes: Vec<NodeSteps>,
    /// Manager that joins go through: one that already has control, or the
    /// one being initialised in this pass.
    pub join_via: Option<String>,
    /// Why something that looks needed is not done (max_unhealthy, quorum,
    /// backoff), or what a person should hear of.
    pub notes: Vec<Reason>,
    /// Nodes replaced in this pass because they are unhealthy.
    pub remediations: Vec<String>,
    /// Nodes that never joined and are not replaced again: the cluster's
    /// budget of attempts in a row is spent (an operator must look).
    pub stalled: Vec<String>,
    /// The pass is a step of a restore from a backup (the old managers'
    /// machines deleted, or the cluster restored on a new manager).
    pub restoring: bool,
    /// A rollout is moving: a later pass has more to do (an old node to
    /// retire once a new one is healthy) even when this one has no step.
    pub rolling: bool,
    /// When the planner next needs to look (unix seconds): the earliest
    /// grace or backoff that runs out later; `None` when nothing waits on
    /// the clock. The daemon comes back then, not only an interval on.
    pub next_look: Option<i64>,
}

/// One node's steps in a pass, run in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSteps {
    pub node: String,
    pub steps: Vec<Action>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.nodes.is_empty()
    }

    /// Every action: the record changes, then each node's steps.
    pub fn actions(&self) -> Vec<Action> {
        self.changes
            .iter()
            .chain(self.nodes.iter().flat_map(|n| n.steps.iter()))
            .cloned()
            .collect()
    }

    /// Whether any step is `wanted`.
    pub fn any_step(&self, wanted: impl Fn(&Action) -> bool) -> bool {
        self.nodes.iter().flat_map(|n| n.steps.iter()).any(wanted)
    }

    /// Adds `step` to the end of its node's steps.
    fn push_step(&mut self, step: Action) {
        match self.nodes.iter_mut().find(|n| n.node == step.node()) {
            Some(n) => n.steps.push(step),
            None => self.nodes.push(NodeSteps {
                node: step.node().to_string(),
                steps: vec![step],
            }),
        }
    }

    /// Whether the pass creates (or starts) a machine, so the cloud
    /// prerequisites must exist first.
    pub fn creates_machines(&self) -> bool {
        self.any_step(|a| matches!(a, Action::CreateMachine { .. }))
    }

    /// Human-readable lines, one an action, for `--dry-run` and logs.
    pub fn describe(&self) -> Vec<String> {
        self.actions().iter().map(Action::describe).collect()
    }
}

/// Per-node facts the planner works from.
struct NodeView<'a> {
    record: &'a NodeRecord,
    machine: Option<&'a Machine>,
    probe: Option<&'a NodeProbe>,
    member: Option<&'a Member>,
    condition: Condition,
}

impl NodeView<'_> {
    fn name(&self) -> &str {
        &self.record.name
    }
    fn role(&self) -> Role {
        self.record.role
    }
    fn ever_joined(&self) -> bool {
        self.record.member_id.is_some()
    }
    fn backing_off(&self, now: i64) -> bool {
        self.record.retry_at.is_some_and(|t| t > now)
    }
}

/// What every phase reads.
struct Inputs<'a> {
    spec: &'a ClusterSpec,
    records: &'a [NodeRecord],
    observed: &'a Observed,
    now: i64,
}

/// What the phases decide, as they go.
struct Decisions {
    plan: Plan,
    /// Nodes retired this pass, with why.
    retire: BTreeMap<String, String>,
    /// A manager is leaving already, or one is retired this pass: managers
    /// leave one at a time.
    manager_turn_taken: bool,
    /// What no record knows, removed first (see [`orphans`]).
    orphans: Vec<Action>,
    /// Per-node steps, after the record changes in `plan.changes`.
    steps: Vec<Action>,
}

impl Decisions {
    fn retiring(&self, v: &NodeView) -> bool {
        v.record.retiring || self.retire.contains_key(v.name())
    }
}

/// Plans one reconcile pass at time `now` (unix seconds).
pub fn plan(spec: &ClusterSpec, records: &[NodeRecord], observed: &Observed, now: i64) -> Plan {
    let input = Inputs {
        spec,
        records,
        observed,
        now,
    };
    let views = node_views(records, observed);
    let mut d = Decisions {
        plan: Plan {
            notes: observed
                .refused
                .iter()
                .map(|why| Reason::ReportRefused { why: why.clone() })
                .collect(),
            ..Plan::default()
        },
        retire: BTreeMap::new(),
        manager_turn_taken: views
            .iter()
            .any(|v| v.record.retiring && v.role() == Role::Manager),
        orphans: Vec::new(),
        steps: Vec::new(),
    };
    d.plan.next_look = next_look(&spec.health, &views, now);
    let rejoining = match restore::restore(&input, &views, &mut d) {
        restore::Restore::Alone => return alone(d),
        restore::Restore::Rejoining(nodes) => nodes,
        restore::Restore::None => Default::default(),
    };
    if recover::lost_quorum(&input, &views, &mut d) {
        return alone(d);
    }
    let active: Vec<&NodeView> = views.iter().filter(|v| !v.record.retiring).collect();

    // A worker rejoining a restored cluster is not remediated meanwhile.
    let remediable: Vec<&NodeView> = active
        .iter()
        .copied()
        .filter(|v| !rejoining.contains(v.name()))
        .collect();
    let counted: Vec<&NodeView> = views
        .iter()
        .filter(|v| !rejoining.contains(v.name()))
        .collect();
    let rollout = rollout::Rollout::of(&input, &active);
    remediate::retire_unhealthy(&input, &counted, &remediable, &rollout, &mut d);
    // After a manager leaves, the rest are restarted with the new quorum
    // (one at a time) before the next one goes or a new one starts.
    let managers_stale = active
        .iter()
        .any(|v| v.role() == Role::Manager && v.probe.is_some_and(|p| p.config_stale));
    scale::retire_surplus(&input, &active, &rollout, managers_stale, &mut d);
    rollout.retire_outdated(&input, &active, managers_stale, &mut d);
    for (node, reason) in &d.retire {
        d.plan.changes.push(Action::Retire {
            node: node.clone(),
            reason: reason.clone(),
        });
    }
    let kept: Vec<&NodeView> = active
        .iter()
        .copied()
        .filter(|v| !d.retire.contains_key(v.name()))
        .collect();
    let dead_manager = departures::leaving_dead_manager(&views, &d);
    let new = scale::add_missing(
        &input,
        &kept,
        &views,
        &zones::Zones::of(&views, &observed.zones_down),
        &rollout,
        managers_stale,
        dead_manager.as_deref(),
        &mut d,
    );
    let formation = form::Formation::of(&views, &kept, &new, &d, observed);
    formation.add_new(&views, &new, &mut d);
    formation.finish_kept(&input, &kept, &mut d);
    let managers_changing = d.manager_turn_taken || new.iter().any(|n| n.role == Role::Manager);
    if let Some(node) = reconfigure::next(&kept, managers_changing, now) {
        d.steps.push(Action::Reconfigure { node });
    }
    let reconfiguring = d
        .steps
        .iter()
        .any(|a| matches!(a, Action::Reconfigure { .. }));
    certificates::renew(&input, &kept, managers_changing || reconfiguring, &mut d);
    departures::leave(&input, &views, &kept, &new, dead_manager.as_deref(), &mut d);
    orphans::remove(&input, &views, &mut d);

    let Decisions {
        mut plan,
        orphans,
        steps,
        ..
    } = d;
    for step in orphans.into_iter().chain(steps) {
        plan.push_step(step);
    }
    plan.join_via = formation.join_via().filter(|_| {
        plan.any_step(|a| {
            matches!(
                a,
                Action::Join { .. } | Action::Rejoin { .. } | Action::InitCluster { .. }
            )
        })
    });
    plan
}

/// The earliest time after `now` a node's grace or backoff runs out.
fn next_look(policy: &HealthPolicy, views: &[NodeView], now: i64) -> Option<i64> {
    views
        .iter()
        .flat_map(|v| {
            [
                v.record.retry_at,
                due_at(policy, v.record, &v.condition, now),
            ]
        })
        .flatten()
        .filter(|&at| at > now)
        .min()
}

/// The plan of a pass that does one thing (a restore, a quorum recovery):
/// its record changes and steps, nothing from the other phases.
fn alone(d: Decisions) -> Plan {
    let Decisions {
        mut plan,
        retire,
        steps,
        ..
    } = d;
    for (node, reason) in retire {
        plan.changes.push(Action::Retire { node, reason });
    }
    for step in steps {
        plan.push_step(step);
    }
    plan
}

/// Each record with its machine, its own report, its listing and the
/// condition they make, managers first, by index.
fn node_views<'a>(records: &'a [NodeRecord], observed: &'a Observed) -> Vec<NodeView<'a>> {
    let machines: BTreeMap<&str, &Machine> = observed
        .machines
        .iter()
        .map(|m| (m.node.as_str(), m))
        .collect();
    let members: BTreeMap<&str, &Member> = observed
        .members
        .iter()
        .flatten()
        .map(|m| (m.id.as_str(), m))
        .collect();
    let mut views: Vec<NodeView> = records
        .iter()
        .map(|r| {
            let machine = machines.get(r.name.as_str()).copied();
            let probe = observed.probes.get(&r.name).and_then(Probe::node);
            let member_id = probe
                .and_then(|p| p.member_id.as_deref())
                .or(r.member_id.as_deref());
            let member = member_id.and_then(|id| members.get(id).copied());
            let condition = assess(r, machine, observed.probes.get(&r.name), member);
            NodeView {
                record: r,
                machine,
                probe,
                member,
                condition,
            }
        })
        .collect();
    views.sort_by_key(|v| (v.role(), v.record.index));
    views
}
