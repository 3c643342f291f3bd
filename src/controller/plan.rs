//! The planner: a pure function from desired and observed state to actions.
//!
//! No I/O and no clock reads happen here (the time is an argument), so
//! every situation the controller can meet is a unit test below.

use std::collections::{BTreeMap, BTreeSet};

use provision_provider::{Machine, MachineState, Role};

use super::health::{assess, is_due, max_unhealthy, Condition};
use crate::orchestrator::{Member, NodeProbe};
use crate::spec::{node_name, ClusterSpec};
use crate::state::NodeRecord;

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
            | Action::Reconfigure { node } => node,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Action::AddNode { node, role, .. } => format!("add {role} {node}"),
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
        }
    }
}

/// The actions of one reconcile pass, in the order they are to start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Manager that joins go through: one that already has control, or the
    /// one being initialised in this pass.
    pub join_via: Option<String>,
    /// Why something that looks needed is not done (max_unhealthy, quorum, backoff).
    pub notes: Vec<String>,
    /// Nodes replaced in this pass because they are unhealthy.
    pub remediations: Vec<String>,
    /// Nodes that never joined and are not replaced again: the cluster's
    /// budget of attempts in a row is spent (an operator must look).
    pub stalled: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Whether the pass creates (or starts) a machine, so the cloud
    /// prerequisites must exist first.
    pub fn creates_machines(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::CreateMachine { .. }))
    }

    /// Human-readable lines, one an action, for `--dry-run` and logs.
    pub fn describe(&self) -> Vec<String> {
        self.actions.iter().map(Action::describe).collect()
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

/// Plans one reconcile pass at time `now` (unix seconds).
pub fn plan(spec: &ClusterSpec, records: &[NodeRecord], observed: &Observed, now: i64) -> Plan {
    let policy = &spec.health;
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

    let mut plan = Plan {
        notes: observed.refused.clone(),
        ..Plan::default()
    };
    let mut retire: BTreeMap<String, String> = BTreeMap::new();
    // Managers leave one at a time: taken once one is already leaving, or
    // this pass retires one (for remediation or for scale-in).
    let mut manager_turn_taken = views
        .iter()
        .any(|v| v.record.retiring && v.role() == Role::Manager);

    // Remediation: unhealthy past their grace period, unless too many are.
    let active: Vec<&NodeView> = views.iter().filter(|v| !v.record.retiring).collect();
    let due: Vec<&NodeView> = active
        .iter()
        .copied()
        .filter(|v| is_due(policy, v.record, &v.condition, now))
        .collect();
    let limit = max_unhealthy(policy, active.len());
    if due.len() > limit {
        let names: Vec<String> = due
            .iter()
            .map(|v| format!("{} ({})", v.name(), v.condition.reason()))
            .collect();
        plan.notes.push(format!(
            "{} of {} nodes are unhealthy, above max_unhealthy {limit}: remediating none: {}",
            due.len(),
            active.len(),
            names.join(", ")
        ));
    } else {
        let managers_total = active.iter().filter(|v| v.role() == Role::Manager).count();
        for v in &due {
            if v.backing_off(now) {
                plan.notes.push(format!(
                    "{} is unhealthy but backing off after a failed attempt",
                    v.name()
                ));
                continue;
            }
            if v.condition == Condition::Starting
                && v.record.start_attempt >= policy.max_start_attempts
            {
                plan.stalled.push(v.name().to_string());
                plan.notes.push(format!(
                    "{} has not joined {}s after its machine was created, and it is attempt {} in a row \
                     that never joined: no further replacement (max_start_attempts {}). It is kept for \
                     inspection (`provision ssh`, its log under the cluster's directory); fix the cause \
                     and run `provision heal` to try again",
                    v.name(),
                    policy.startup_timeout.as_secs(),
                    v.record.start_attempt,
                    policy.max_start_attempts
                ));
                continue;
            }
            if v.role() == Role::Manager {
                let healthy_others = active
                    .iter()
                    .filter(|o| {
                        o.role() == Role::Manager
                            && o.name() != v.name()
                            && o.condition.is_healthy()
                    })
                    .count();
                if manager_turn_taken {
                    plan.notes.push(format!(
                        "{} is unhealthy; managers are replaced one at a time",
                        v.name()
                    ));
                    continue;
                }
                if healthy_others < managers_total / 2 + 1 {
                    plan.notes.push(format!(
                        "manager {} is unhealthy but only {healthy_others} of {managers_total} managers are healthy: \
                         replacing it could lose quorum, so it is left for an operator",
                        v.name()
                    ));
                    continue;
                }
                manager_turn_taken = true;
            }
            plan.remediations.push(v.name().to_string());
            retire.insert(
                v.name().to_string(),
                format!("unhealthy: {}", v.condition.reason()),
            );
        }
    }

    // Scale-in: retire the unhealthy first, then the highest index. After a
    // manager leaves, the rest are restarted with the new quorum (one at a
    // time) before the next one goes.
    let managers_stale = active
        .iter()
        .any(|v| v.role() == Role::Manager && v.probe.is_some_and(|p| p.config_stale));

    for role in [Role::Manager, Role::Worker] {
        let mut remaining: Vec<&NodeView> = active
            .iter()
            .copied()
            .filter(|v| v.role() == role && !retire.contains_key(v.name()))
            .collect();
        let want = spec.count(role) as usize;
        while remaining.len() > want {
            let pick = remaining
                .iter()
                .enumerate()
                .max_by_key(|(_, v)| (!v.condition.is_healthy(), v.record.index))
                .map(|(i, _)| i)
                .expect("not empty");
            if role == Role::Manager {
                if manager_turn_taken || managers_stale {
                    plan.notes.push(
                        "managers leave one at a time: the next one goes in a later pass".into(),
                    );
                    break;
                }
                manager_turn_taken = true;
            }
            let v = remaining.remove(pick);
            retire.insert(v.name().to_string(), "scale in".into());
        }
    }
    for (node, reason) in &retire {
        plan.actions.push(Action::Retire {
            node: node.clone(),
            reason: reason.clone(),
        });
    }

    let kept: Vec<&NodeView> = active
        .iter()
        .copied()
        .filter(|v| !retire.contains_key(v.name()))
        .collect();

    // Managers that run with an older view of the managers (Mesos: a lower
    // quorum than the masters wanted need) are restarted before new managers
    // start, as Mesos's operational guide orders it ("Increasing the quorum
    // size": restart the running masters with the higher quorum, then start
    // the new ones). Only while they can be restarted (all healthy, no
    // manager leaving), so an unhealthy manager's replacement is never held up.
    let restart_first = managers_stale
        && !manager_turn_taken
        && kept
            .iter()
            .filter(|v| v.role() == Role::Manager)
            .all(|v| v.condition.is_healthy());

    // A manager that left unhealthy is taken out of the orchestrator's
    // membership before its replacement joins: adding first would make, of
    // 3 managers with 1 dead, 4 voters with 2 alive, and one failed join
    // would lose quorum.
    let leaving_dead_manager = views
        .iter()
        .filter(|v| v.record.retiring || retire.contains_key(v.name()))
        .find(|v| v.role() == Role::Manager && !v.condition.is_healthy() && v.ever_joined())
        .map(|v| v.name().to_string());
    // A replacement of nodes that never joined counts on from theirs.
    let attempt = |role: Role| {
        views
            .iter()
            .filter(|v| v.role() == role && retire.contains_key(v.name()))
            .filter(|v| v.condition == Condition::Starting)
            .map(|v| v.record.start_attempt + 1)
            .max()
            .unwrap_or(1)
    };

    // New nodes at the lowest free index of their role.
    let mut new: Vec<(String, Role, u32)> = Vec::new();
    for role in [Role::Manager, Role::Worker] {
        let have = kept.iter().filter(|v| v.role() == role).count();
        if role == Role::Manager && restart_first && have < spec.count(role) as usize {
            plan.notes.push(
                "the running managers are restarted with the new quorum before new managers start"
                    .into(),
            );
            continue;
        }
        if let (Role::Manager, Some(dead)) = (role, &leaving_dead_manager) {
            if have < spec.count(role) as usize {
                plan.notes.push(format!(
                    "manager {dead} is removed from the cluster before its replacement joins"
                ));
                continue;
            }
        }
        let used: BTreeSet<u32> = records
            .iter()
            .filter(|r| r.role == role)
            .map(|r| r.index)
            .collect();
        let mut index = 1;
        for _ in have..spec.count(role) as usize {
            while used.contains(&index) {
                index += 1;
            }
            new.push((node_name(&spec.name, role, index), role, index));
            index += 1;
        }
    }

    // The cluster exists when a node says it manages one, or a manager listed members.
    let controller = views
        .iter()
        .filter(|v| v.role() == Role::Manager && v.probe.is_some_and(|p| p.control))
        .min_by_key(|v| {
            (
                v.record.retiring || retire.contains_key(v.name()),
                v.record.index,
            )
        })
        .map(|v| v.name().to_string());
    let cluster_exists =
        controller.is_some() || observed.members.as_ref().is_some_and(|m| !m.is_empty());
    // Without a cluster, it is created on the first manager by index: always
    // the same node, so an interrupted init is finished, never repeated elsewhere.
    let init_node = if cluster_exists {
        None
    } else {
        kept.iter()
            .filter(|v| v.role() == Role::Manager)
            .map(|v| (v.record.index, v.name().to_string()))
            .chain(
                new.iter()
                    .filter(|n| n.1 == Role::Manager)
                    .map(|n| (n.2, n.0.clone())),
            )
            .min()
            .map(|(_, n)| n)
    };
    let join_step = |node: &str, role: Role| {
        if init_node.as_deref() == Some(node) {
            Action::InitCluster {
                node: node.to_string(),
            }
        } else {
            Action::Join {
                node: node.to_string(),
                role,
            }
        }
    };

    let mut steps = Vec::new();
    for (name, role, index) in &new {
        plan.actions.push(Action::AddNode {
            node: name.clone(),
            role: *role,
            index: *index,
            attempt: attempt(*role),
        });
        steps.push(Action::CreateMachine {
            node: name.clone(),
            role: *role,
        });
        steps.push(Action::Bootstrap { node: name.clone() });
        steps.push(join_step(name, *role));
    }
    for v in &kept {
        // Its budget of attempts is spent: kept as it is for an operator.
        if plan.stalled.iter().any(|n| n == v.name()) {
            continue;
        }
        if v.backing_off(now) {
            if !v.condition.is_healthy() {
                plan.notes.push(format!(
                    "{} is backing off after a failed attempt",
                    v.name()
                ));
            }
            continue;
        }
        let name = v.name().to_string();
        let create_chain = |steps: &mut Vec<Action>| {
            steps.push(Action::CreateMachine {
                node: name.clone(),
                role: v.role(),
            });
            steps.push(Action::Bootstrap { node: name.clone() });
            steps.push(join_step(&name, v.role()));
        };
        match v.machine.map(|m| &m.state) {
            // Recorded but never created (a run stopped before): create it.
            None if v.record.machine_id.is_none() => create_chain(&mut steps),
            // Created but never started (a run killed in between): start it.
            Some(MachineState::Pending) => create_chain(&mut steps),
            // Gone, stopped or failed: the health policy replaces it. Being
            // rebooted or migrated by the cloud: it comes back by itself.
            None
            | Some(MachineState::Stopped)
            | Some(MachineState::Error(_))
            | Some(MachineState::Busy(_)) => {}
            Some(MachineState::Running) => match (v.probe, v.ever_joined()) {
                (Some(p), _) if p.joined => {}
                (Some(p), _) if p.engine_running => steps.push(join_step(&name, v.role())),
                (Some(_), _) | (None, false) => {
                    steps.push(Action::Bootstrap { node: name.clone() });
                    steps.push(join_step(&name, v.role()));
                }
                // A member that does not answer: the health policy decides.
                (None, true) => {}
            },
        }
    }

    // Retiring nodes leave once their role's remaining nodes are all healthy
    // (replace before remove), managers one at a time. Two leave at once:
    // a node that never became a member (nothing to replace it for), and a
    // dead manager (removed before its replacement joins, see above).
    let adding = |role: Role| new.iter().any(|n| n.1 == role);
    if let Some(node) = next_reconfigure(&kept, manager_turn_taken || adding(Role::Manager), now) {
        steps.push(Action::Reconfigure { node });
    }
    let role_settled = |role: Role| {
        !adding(role)
            && kept
                .iter()
                .filter(|v| v.role() == role)
                .all(|v| v.condition.is_healthy())
    };
    let mut manager_leaving = false;
    for v in views
        .iter()
        .filter(|v| v.record.retiring || retire.contains_key(v.name()))
    {
        if v.backing_off(now) {
            plan.notes.push(format!(
                "{} is leaving but backing off after a failed attempt",
                v.name()
            ));
            continue;
        }
        let leaves_now = !v.ever_joined() || leaving_dead_manager.as_deref() == Some(v.name());
        if !leaves_now && !role_settled(v.role()) {
            continue;
        }
        if v.role() == Role::Manager {
            if manager_leaving {
                continue;
            }
            manager_leaving = true;
        }
        let name = v.name().to_string();
        if let Some(member) = v.member {
            if v.condition.is_healthy() {
                steps.push(Action::Drain {
                    node: name.clone(),
                    member: member.clone(),
                });
            }
            steps.push(Action::RemoveMember {
                node: name.clone(),
                member: member.clone(),
            });
        }
        if let Some(m) = v.machine {
            steps.push(Action::DeleteMachine {
                node: name.clone(),
                machine_id: m.id.clone(),
            });
        }
        steps.push(Action::ForgetNode { node: name });
    }

    // Members nobody recorded that are down: left by a crash or a lost machine.
    let known_ids: BTreeSet<&str> = views
        .iter()
        .filter_map(|v| v.member.map(|m| m.id.as_str()))
        .chain(records.iter().filter_map(|r| r.member_id.as_deref()))
        .collect();
    for m in observed.members.iter().flatten() {
        if !known_ids.contains(m.id.as_str()) && !m.ready {
            plan.actions.push(Action::RemoveMember {
                node: m.hostname.clone(),
                member: m.clone(),
            });
        }
    }
    // Machines with the cluster's label that no record knows.
    let recorded: BTreeSet<&str> = records.iter().map(|r| r.name.as_str()).collect();
    for m in &observed.machines {
        if !recorded.contains(m.node.as_str()) {
            plan.actions.push(Action::DeleteMachine {
                node: m.node.clone(),
                machine_id: m.id.clone(),
            });
        }
    }
    // Second machines of one node (a create the cloud carried out although
    // its answer was lost, then retried): one is kept, the rest deleted.
    for m in &observed.duplicates {
        plan.notes.push(format!(
            "{} has more than one machine: {} is deleted",
            m.node, m.id
        ));
        plan.actions.push(Action::DeleteMachine {
            node: m.node.clone(),
            machine_id: m.id.clone(),
        });
    }

    plan.actions.extend(steps);
    plan.join_via = init_node.or(controller).filter(|_| {
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::Join { .. } | Action::InitCluster { .. }))
    });
    plan
}

/// The one node whose services are restarted with the current managers
/// this pass: a stale manager first, then a stale worker once no manager is
/// stale; none while managers change or any manager is unhealthy, so a
/// quorum never loses two members at once.
fn next_reconfigure(kept: &[&NodeView], managers_changing: bool, now: i64) -> Option<String> {
    let managers_healthy = kept
        .iter()
        .filter(|v| v.role() == Role::Manager)
        .all(|v| v.condition.is_healthy());
    if managers_changing || !managers_healthy {
        return None;
    }
    let stale =
        |v: &&&NodeView| v.probe.is_some_and(|p| p.joined && p.config_stale) && !v.backing_off(now);
    [Role::Manager, Role::Worker].into_iter().find_map(|role| {
        kept.iter()
            .filter(|v| v.role() == role)
            .filter(stale)
            .min_by_key(|v| v.record.index)
            .map(|v| v.name().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::MaxUnhealthy;
    use crate::state::{NodePhase, UnhealthyKind};

    const NOW: i64 = 1_000_000;

    fn spec(managers: u32, workers: u32) -> ClusterSpec {
        ClusterSpec::example("web", managers, workers)
    }

    /// A node that joined long ago (member `m1`, `w2`…) or, without a member,
    /// one that was only recorded.
    fn record(role: Role, index: u32, member: Option<&str>) -> NodeRecord {
        let mut r = NodeRecord::new("web", &node_name("web", role, index), role, index);
        r.member_id = member.map(str::to_string);
        if member.is_some() {
            r.phase = NodePhase::Ready;
            r.machine_id = Some(format!("id-{}-{index}", role.as_str()));
            r.machine_created_at = Some(NOW - 3600);
        }
        r
    }

    fn machine(role: Role, index: u32, state: MachineState) -> Machine {
        Machine {
            id: format!("id-{}-{index}", role.as_str()),
            node: node_name("web", role, index),
            role,
            state,
            addresses: Some(provision_provider::Addresses::private_only(&format!(
                "10.0.0.{index}"
            ))),
        }
    }

    fn joined(id: &str, control: bool) -> Probe {
        Probe::Reached(NodeProbe {
            engine_running: true,
            joined: true,
            member_id: Some(id.into()),
            control,
            config_stale: false,
        })
    }

    fn fresh() -> Probe {
        Probe::Reached(NodeProbe {
            engine_running: true,
            joined: false,
            member_id: None,
            control: false,
            config_stale: false,
        })
    }

    fn member(id: &str, host: &str, role: Role, ready: bool) -> Member {
        Member {
            id: id.into(),
            hostname: host.into(),
            role,
            ready,
            status: if ready { "Ready".into() } else { "Down".into() },
        }
    }

    /// A converged cluster of `managers` + `workers`: records, running
    /// machines, probes and members.
    fn converged(managers: u32, workers: u32) -> (Vec<NodeRecord>, Observed) {
        let mut records = Vec::new();
        let mut observed = Observed {
            members: Some(Vec::new()),
            ..Default::default()
        };
        for (role, count, prefix) in [(Role::Manager, managers, "m"), (Role::Worker, workers, "w")]
        {
            for i in 1..=count {
                let id = format!("{prefix}{i}");
                let name = node_name("web", role, i);
                records.push(record(role, i, Some(&id)));
                observed
                    .machines
                    .push(machine(role, i, MachineState::Running));
                observed
                    .probes
                    .insert(name.clone(), joined(&id, role == Role::Manager));
                observed
                    .members
                    .as_mut()
                    .unwrap()
                    .push(member(&id, &name, role, true));
            }
        }
        (records, observed)
    }

    /// The node's machine is missing from the listing, as it was an hour
    /// ago (so past `lost_timeout`).
    fn lose_machine(records: &mut [NodeRecord], observed: &mut Observed, node: &str) {
        observed.machines.retain(|m| m.node != node);
        observed.probes.remove(node);
        seen_lost(records, node);
    }

    /// The node's record says the cloud has reported it lost for an hour.
    fn seen_lost(records: &mut [NodeRecord], node: &str) {
        let r = records.iter_mut().find(|r| r.name == node).unwrap();
        r.unhealthy_kind = Some(crate::state::UnhealthyKind::Lost);
        r.unhealthy_since = Some(NOW - 3600);
    }

    fn added(p: &Plan) -> Vec<&str> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::AddNode { node, .. } => Some(node.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Marks nodes' probes as running with an out-of-date view of the managers.
    fn stale(observed: &mut Observed, nodes: &[&str]) {
        for node in nodes {
            if let Some(Probe::Reached(p)) = observed.probes.get_mut(*node) {
                p.config_stale = true;
            }
        }
    }

    fn reconfigured(p: &Plan) -> Vec<&str> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::Reconfigure { node } => Some(node.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn stale_nodes_are_reconfigured_one_a_pass_managers_first() {
        let (records, mut observed) = converged(3, 2);
        stale(
            &mut observed,
            &["web-worker-1", "web-manager-3", "web-manager-2"],
        );
        let p = plan(&spec(3, 2), &records, &observed, NOW);
        assert_eq!(reconfigured(&p), ["web-manager-2"]);
        assert_eq!(p.actions.len(), 1, "{:?}", p.describe());
        // With the managers current, the workers follow.
        let (records, mut observed) = converged(3, 2);
        stale(&mut observed, &["web-worker-2", "web-worker-1"]);
        assert_eq!(
            reconfigured(&plan(&spec(3, 2), &records, &observed, NOW)),
            ["web-worker-1"]
        );
        // Nothing stale, nothing to do.
        let (records, observed) = converged(3, 2);
        assert!(plan(&spec(3, 2), &records, &observed, NOW).is_empty());
    }

    #[test]
    fn running_managers_restart_with_the_new_quorum_before_new_ones_start() {
        // Masters wanted 3 → 5: the running ones say they are stale (their
        // quorum is now too low); they restart one a pass, no master is
        // added meanwhile, workers still are.
        let (records, mut observed) = converged(3, 1);
        stale(&mut observed, &["web-manager-2", "web-manager-1"]);
        let p = plan(&spec(5, 2), &records, &observed, NOW);
        assert_eq!(reconfigured(&p), ["web-manager-1"]);
        assert_eq!(added(&p), ["web-worker-2"], "{:?}", p.describe());
        assert!(p
            .notes
            .iter()
            .any(|n| n.contains("before new managers start")));
        // Once they run with it, the new managers are added.
        let (records, observed) = converged(3, 1);
        let p = plan(&spec(5, 1), &records, &observed, NOW);
        assert_eq!(added(&p), ["web-manager-4", "web-manager-5"]);
        // A stale manager that cannot be restarted (another is down) does
        // not hold up the down one's removal, which goes before its
        // replacement.
        let (mut records, mut observed) = converged(3, 1);
        stale(&mut observed, &["web-manager-1"]);
        lose_machine(&mut records, &mut observed, "web-manager-3");
        let p = plan(&spec(3, 1), &records, &observed, NOW);
        assert!(
            p.actions
                .iter()
                .any(|a| matches!(a, Action::RemoveMember { node, .. } if node == "web-manager-3")),
            "{:?}",
            p.describe()
        );
        assert!(reconfigured(&p).is_empty(), "{:?}", p.describe());
    }

    #[test]
    fn no_reconfigure_while_managers_change_or_one_is_unhealthy() {
        // A manager joining this pass: its join changes the list again.
        let (records, observed) = converged(1, 1);
        let mut joining = observed.clone();
        let p = plan(&spec(3, 1), &records, &joining, NOW);
        assert_eq!(added(&p), ["web-manager-2", "web-manager-3"]);
        stale(&mut joining, &["web-worker-1"]);
        let p = plan(&spec(3, 1), &records, &joining, NOW);
        assert!(reconfigured(&p).is_empty(), "{:?}", p.describe());
        // An unhealthy manager: restarting another could cost the quorum.
        let (mut records, mut observed) = converged(3, 1);
        stale(&mut observed, &["web-manager-1"]);
        lose_machine(&mut records, &mut observed, "web-manager-3");
        let p = plan(&spec(3, 1), &records, &observed, NOW);
        assert!(reconfigured(&p).is_empty(), "{:?}", p.describe());
    }

    #[test]
    fn the_next_manager_leaves_only_after_the_rest_run_with_the_new_quorum() {
        let (records, mut observed) = converged(3, 0);
        stale(&mut observed, &["web-manager-1"]);
        let p = plan(&spec(1, 0), &records, &observed, NOW);
        assert!(
            !p.actions.iter().any(|a| matches!(a, Action::Retire { .. })),
            "{:?}",
            p.describe()
        );
        assert_eq!(reconfigured(&p), ["web-manager-1"]);
        // Once current, the next manager retires.
        let (records, observed) = converged(3, 0);
        let p = plan(&spec(1, 0), &records, &observed, NOW);
        assert!(p.actions.iter().any(|a| matches!(a, Action::Retire { .. })));
    }

    #[test]
    fn from_nothing_every_node_is_added_created_bootstrapped_and_joined() {
        let p = plan(&spec(1, 2), &[], &Observed::default(), NOW);
        assert_eq!(
            p.actions,
            vec![
                Action::AddNode {
                    node: "web-manager-1".into(),
                    role: Role::Manager,
                    index: 1,
                    attempt: 1
                },
                Action::AddNode {
                    node: "web-worker-1".into(),
                    role: Role::Worker,
                    index: 1,
                    attempt: 1
                },
                Action::AddNode {
                    node: "web-worker-2".into(),
                    role: Role::Worker,
                    index: 2,
                    attempt: 1
                },
                Action::CreateMachine {
                    node: "web-manager-1".into(),
                    role: Role::Manager
                },
                Action::Bootstrap {
                    node: "web-manager-1".into()
                },
                Action::InitCluster {
                    node: "web-manager-1".into()
                },
                Action::CreateMachine {
                    node: "web-worker-1".into(),
                    role: Role::Worker
                },
                Action::Bootstrap {
                    node: "web-worker-1".into()
                },
                Action::Join {
                    node: "web-worker-1".into(),
                    role: Role::Worker
                },
                Action::CreateMachine {
                    node: "web-worker-2".into(),
                    role: Role::Worker
                },
                Action::Bootstrap {
                    node: "web-worker-2".into()
                },
                Action::Join {
                    node: "web-worker-2".into(),
                    role: Role::Worker
                },
            ]
        );
        assert_eq!(p.join_via.as_deref(), Some("web-manager-1"));
        assert!(p.notes.is_empty() && p.remediations.is_empty());
    }

    #[test]
    fn from_nothing_with_three_managers_only_the_first_initialises() {
        let p = plan(&spec(3, 0), &[], &Observed::default(), NOW);
        let inits: Vec<_> = p
            .actions
            .iter()
            .filter(|a| matches!(a, Action::InitCluster { .. }))
            .collect();
        assert_eq!(
            inits,
            vec![&Action::InitCluster {
                node: "web-manager-1".into()
            }]
        );
        assert!(p.actions.contains(&Action::Join {
            node: "web-manager-2".into(),
            role: Role::Manager
        }));
        assert!(p.actions.contains(&Action::Join {
            node: "web-manager-3".into(),
            role: Role::Manager
        }));
    }

    /// As membership-first observation leaves it: the first manager probed,
    /// every other node vouched for by the listing.
    fn converged_listed(managers: u32, workers: u32) -> (Vec<NodeRecord>, Observed) {
        let (records, mut observed) = converged(managers, workers);
        for r in &records {
            if r.index != 1 || r.role != Role::Manager {
                let id = r.member_id.clone().unwrap();
                observed.probes.insert(r.name.clone(), Probe::vouched(&id));
            }
        }
        (records, observed)
    }

    #[test]
    fn vouched_members_are_healthy_and_joins_go_through_the_probed_manager() {
        let (records, observed) = converged_listed(3, 4);
        let p = plan(&spec(3, 4), &records, &observed, NOW);
        assert!(p.is_empty(), "{:?}", p.describe());
        let p = plan(&spec(3, 5), &records, &observed, NOW);
        assert_eq!(added(&p), ["web-worker-5"]);
        assert_eq!(p.join_via.as_deref(), Some("web-manager-1"));
    }

    #[test]
    fn a_node_not_observed_for_our_own_reasons_is_never_remediated() {
        let (mut records, mut observed) = converged_listed(1, 3);
        for r in records.iter_mut().filter(|r| r.role == Role::Worker) {
            r.unhealthy_since = Some(NOW - 3600);
            r.unhealthy_kind = Some(UnhealthyKind::Unresponsive);
            observed
                .probes
                .insert(r.name.clone(), Probe::Unknown("no SSH slot".into()));
        }
        let p = plan(&spec(1, 3), &records, &observed, NOW);
        assert!(p.is_empty(), "{:?}", p.describe());
        assert!(p.remediations.is_empty());
        // Nor is it taken for settled: a retiring worker waits.
        records[1].retiring = true;
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert!(
            !p.actions
                .iter()
                .any(|a| matches!(a, Action::ForgetNode { .. })),
            "{:?}",
            p.describe()
        );
    }

    #[test]
    fn nothing_to_do_when_converged() {
        let (records, observed) = converged(1, 2);
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert!(p.is_empty(), "{:?}", p.describe());
        assert_eq!(p.join_via, None);
        assert!(p.notes.is_empty());
    }

    #[test]
    fn recorded_nodes_without_machines_are_created_not_added_again() {
        // A crash after the records were written, before any machine existed.
        let records = vec![
            record(Role::Manager, 1, None),
            record(Role::Worker, 1, None),
            record(Role::Worker, 2, None),
        ];
        let p = plan(&spec(1, 2), &records, &Observed::default(), NOW);
        assert!(added(&p).is_empty());
        let creates = p
            .actions
            .iter()
            .filter(|a| matches!(a, Action::CreateMachine { .. }))
            .count();
        assert_eq!(creates, 3);
    }

    #[test]
    fn machines_exist_but_some_never_joined() {
        let (mut records, mut observed) = converged(1, 2);
        // worker-1's machine exists but never answered SSH (crash during boot).
        records[1].member_id = None;
        observed.probes.insert(
            "web-worker-1".into(),
            Probe::Unreachable("connection refused".into()),
        );
        observed.members.as_mut().unwrap().retain(|m| m.id != "w1");
        // worker-2 was installed, but the run died before its join.
        records[2].member_id = None;
        observed.probes.insert("web-worker-2".into(), fresh());
        observed.members.as_mut().unwrap().retain(|m| m.id != "w2");
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert_eq!(
            p.actions,
            vec![
                Action::Bootstrap {
                    node: "web-worker-1".into()
                },
                Action::Join {
                    node: "web-worker-1".into(),
                    role: Role::Worker
                },
                Action::Join {
                    node: "web-worker-2".into(),
                    role: Role::Worker
                },
            ]
        );
        assert_eq!(p.join_via.as_deref(), Some("web-manager-1"));
    }

    #[test]
    fn swarm_initialised_but_not_recorded_is_not_initialised_again() {
        // Crash right after `swarm init`: the manager says it has control.
        let records = vec![
            record(Role::Manager, 1, None),
            record(Role::Worker, 1, None),
        ];
        let observed = Observed {
            machines: vec![
                machine(Role::Manager, 1, MachineState::Running),
                machine(Role::Worker, 1, MachineState::Running),
            ],
            probes: BTreeMap::from([
                ("web-manager-1".into(), joined("m1", true)),
                ("web-worker-1".into(), fresh()),
            ]),
            members: Some(vec![member("m1", "web-manager-1", Role::Manager, true)]),
            ..Default::default()
        };
        let p = plan(&spec(1, 1), &records, &observed, NOW);
        assert_eq!(
            p.actions,
            vec![Action::Join {
                node: "web-worker-1".into(),
                role: Role::Worker
            }]
        );
    }

    #[test]
    fn a_machine_created_but_never_started_is_started_then_bootstrapped() {
        let records = vec![record(Role::Manager, 1, None)];
        let mut m = machine(Role::Manager, 1, MachineState::Pending);
        m.addresses = None;
        let observed = Observed {
            machines: vec![m],
            ..Default::default()
        };
        let p = plan(&spec(1, 0), &records, &observed, NOW);
        assert_eq!(
            p.actions,
            vec![
                Action::CreateMachine {
                    node: "web-manager-1".into(),
                    role: Role::Manager
                },
                Action::Bootstrap {
                    node: "web-manager-1".into()
                },
                Action::InitCluster {
                    node: "web-manager-1".into()
                },
            ]
        );
    }

    #[test]
    fn a_vanished_worker_is_replaced_first_and_removed_after() {
        let (mut records, mut observed) = converged(1, 2);
        lose_machine(&mut records, &mut observed, "web-worker-2");
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert_eq!(
            p.actions,
            vec![
                Action::Retire {
                    node: "web-worker-2".into(),
                    reason: "unhealthy: machine gone".into()
                },
                Action::AddNode {
                    node: "web-worker-3".into(),
                    role: Role::Worker,
                    index: 3,
                    attempt: 1
                },
                Action::CreateMachine {
                    node: "web-worker-3".into(),
                    role: Role::Worker
                },
                Action::Bootstrap {
                    node: "web-worker-3".into()
                },
                Action::Join {
                    node: "web-worker-3".into(),
                    role: Role::Worker
                },
            ]
        );
        assert_eq!(p.remediations, vec!["web-worker-2".to_string()]);

        // Next pass: the replacement is a healthy member, so the old one goes.
        let (mut records2, mut observed2) = converged(1, 3);
        records2[2].retiring = true;
        lose_machine(&mut records2, &mut observed2, "web-worker-2");
        observed2.members.as_mut().unwrap()[2].ready = false;
        let p = plan(&spec(1, 2), &records2, &observed2, NOW);
        assert_eq!(
            p.actions,
            vec![
                Action::RemoveMember {
                    node: "web-worker-2".into(),
                    member: Member {
                        ready: false,
                        ..member("w2", "web-worker-2", Role::Worker, true)
                    }
                },
                Action::ForgetNode {
                    node: "web-worker-2".into()
                },
            ]
        );
    }

    #[test]
    fn a_retiring_node_waits_while_its_replacement_starts() {
        let (mut records, mut observed) = converged(1, 3);
        records[2].retiring = true;
        lose_machine(&mut records, &mut observed, "web-worker-2");
        // worker-3 is still joining.
        records[3].member_id = None;
        records[3].machine_created_at = Some(NOW - 10);
        observed.probes.insert("web-worker-3".into(), fresh());
        observed.members.as_mut().unwrap().retain(|m| m.id != "w3");
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert_eq!(
            p.actions,
            vec![Action::Join {
                node: "web-worker-3".into(),
                role: Role::Worker
            }]
        );
    }

    #[test]
    fn stopped_or_failed_machines_are_replaced() {
        let (mut records, mut observed) = converged(1, 2);
        observed.machines[1].state = MachineState::Stopped;
        observed.probes.remove("web-worker-1");
        seen_lost(&mut records, "web-worker-1");
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert_eq!(p.remediations, vec!["web-worker-1".to_string()]);
        assert_eq!(added(&p), vec!["web-worker-3"]);
        let (mut records, mut observed) = converged(1, 2);
        observed.machines[2].state = MachineState::Error("no valid host".into());
        observed.probes.remove("web-worker-2");
        seen_lost(&mut records, "web-worker-2");
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert!(p.actions.contains(&Action::Retire {
            node: "web-worker-2".into(),
            reason: "unhealthy: machine in error: no valid host".into()
        }));
    }

    #[test]
    fn above_max_unhealthy_nothing_is_remediated_and_a_note_says_why() {
        let mut s = spec(1, 3);
        s.health.max_unhealthy = MaxUnhealthy::Count(1);
        let (mut records, mut observed) = converged(1, 3);
        lose_machine(&mut records, &mut observed, "web-worker-1");
        lose_machine(&mut records, &mut observed, "web-worker-2");
        let p = plan(&s, &records, &observed, NOW);
        assert!(p.is_empty(), "{:?}", p.describe());
        assert!(p.remediations.is_empty());
        assert_eq!(p.notes.len(), 1);
        assert!(
            p.notes[0].starts_with("2 of 4 nodes are unhealthy, above max_unhealthy 1"),
            "{}",
            p.notes[0]
        );
        // One failure is within the limit.
        let (mut records, mut observed) = converged(1, 3);
        lose_machine(&mut records, &mut observed, "web-worker-1");
        assert_eq!(
            plan(&s, &records, &observed, NOW).remediations,
            vec!["web-worker-1".to_string()]
        );
    }

    #[test]
    fn member_conditions_are_tolerated_until_their_timeout() {
        let s = spec(1, 2);
        let ssh_fails = |o: &mut Observed| {
            o.probes.insert(
                "web-worker-1".into(),
                Probe::Unreachable("no answer within 30s".into()),
            );
        };
        let swarm_says_down = |o: &mut Observed| o.members.as_mut().unwrap()[1].ready = false;
        type Breaks<'a> = &'a dyn Fn(&mut Observed);
        let cases: [(&str, Breaks, u64); 2] = [
            (
                "ssh unreachable",
                &ssh_fails,
                s.health.ssh_timeout.as_secs(),
            ),
            (
                "orchestrator down",
                &swarm_says_down,
                s.health.not_ready_timeout.as_secs(),
            ),
        ];
        for (what, break_it, grace) in cases {
            let (mut records, mut observed) = converged(1, 2);
            break_it(&mut observed);
            records[1].unhealthy_kind = Some(crate::state::UnhealthyKind::Unresponsive);
            records[1].unhealthy_since = Some(NOW - grace as i64 + 1);
            assert!(
                plan(&s, &records, &observed, NOW).is_empty(),
                "{what}: too early"
            );
            records[1].unhealthy_since = Some(NOW - grace as i64);
            let p = plan(&s, &records, &observed, NOW);
            assert_eq!(p.remediations, vec!["web-worker-1".to_string()], "{what}");
        }
    }

    #[test]
    fn a_node_that_never_joins_is_replaced_after_the_startup_timeout() {
        let s = spec(1, 1);
        let (mut records, mut observed) = converged(1, 1);
        records[1].member_id = None;
        records[1].machine_created_at = Some(NOW - 60);
        observed
            .probes
            .insert("web-worker-1".into(), Probe::Unreachable("refused".into()));
        observed.members.as_mut().unwrap().retain(|m| m.id != "w1");
        // Within the startup timeout it is bootstrapped again.
        let p = plan(&s, &records, &observed, NOW);
        assert!(p.remediations.is_empty());
        assert!(p.actions.contains(&Action::Bootstrap {
            node: "web-worker-1".into()
        }));
        records[1].machine_created_at = Some(NOW - s.health.startup_timeout.as_secs() as i64);
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(p.remediations, vec!["web-worker-1".to_string()]);
    }

    #[test]
    fn a_failed_node_backs_off() {
        let (mut records, observed) = converged(1, 1);
        records.push(record(Role::Worker, 2, None));
        records[2].failures = 2;
        records[2].retry_at = Some(NOW + 30);
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert!(p.is_empty(), "{:?}", p.describe());
        let p = plan(&spec(1, 2), &records, &observed, NOW + 30);
        assert!(p.actions.contains(&Action::CreateMachine {
            node: "web-worker-2".into(),
            role: Role::Worker
        }));
    }

    #[test]
    fn a_dead_manager_is_removed_before_its_replacement_joins() {
        let (mut records, mut observed) = converged(3, 0);
        lose_machine(&mut records, &mut observed, "web-manager-2");
        observed.members.as_mut().unwrap()[1].ready = false;
        let p = plan(&spec(3, 0), &records, &observed, NOW);
        assert_eq!(p.remediations, vec!["web-manager-2".to_string()]);
        // Removed from the membership first; nothing joins in this pass, so
        // the voters never outnumber the live managers by more than before.
        assert_eq!(
            p.actions,
            vec![
                Action::Retire {
                    node: "web-manager-2".into(),
                    reason: "unhealthy: machine gone".into()
                },
                Action::RemoveMember {
                    node: "web-manager-2".into(),
                    member: Member {
                        ready: false,
                        ..member("m2", "web-manager-2", Role::Manager, true)
                    }
                },
                Action::ForgetNode {
                    node: "web-manager-2".into()
                },
            ]
        );
        assert!(
            p.notes.iter().any(|n| n.contains("before its replacement")),
            "{:?}",
            p.notes
        );
        // Next pass: the member is gone, so its replacement is added.
        let (mut records, mut observed) = converged(3, 0);
        records.remove(1);
        observed.machines.retain(|m| m.node != "web-manager-2");
        observed.probes.remove("web-manager-2");
        observed.members.as_mut().unwrap().remove(1);
        let p = plan(&spec(3, 0), &records, &observed, NOW);
        assert_eq!(added(&p), vec!["web-manager-2"]);
        assert_eq!(p.join_via.as_deref(), Some("web-manager-1"));
    }

    #[test]
    fn a_dead_worker_is_still_replaced_before_it_is_removed() {
        let (mut records, mut observed) = converged(1, 2);
        lose_machine(&mut records, &mut observed, "web-worker-1");
        observed.members.as_mut().unwrap()[1].ready = false;
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert_eq!(added(&p), vec!["web-worker-3"]);
        assert!(!p
            .actions
            .iter()
            .any(|a| matches!(a, Action::RemoveMember { .. } | Action::ForgetNode { .. })));
    }

    #[test]
    fn a_member_the_cloud_is_rebooting_or_migrating_is_left_alone_for_busy_timeout() {
        let s = spec(1, 2);
        for status in [
            "Nova reports REBOOT",
            "Nova reports MIGRATING",
            "Docker reports restarting",
        ] {
            let (mut records, mut observed) = converged(1, 2);
            observed.machines[1].state = MachineState::Busy(status.into());
            observed.probes.remove("web-worker-1");
            // Swarm says Down while it reboots.
            observed.members.as_mut().unwrap()[1].ready = false;
            records[1].unhealthy_kind = Some(crate::state::UnhealthyKind::Busy);
            records[1].unhealthy_since = Some(NOW - s.health.startup_timeout.as_secs() as i64);
            let p = plan(&s, &records, &observed, NOW);
            assert!(p.is_empty(), "{status}: {:?}", p.describe());
            assert!(p.remediations.is_empty());
            records[1].unhealthy_since = Some(NOW - s.health.busy_timeout.as_secs() as i64);
            let p = plan(&s, &records, &observed, NOW);
            assert_eq!(p.remediations, vec!["web-worker-1".to_string()], "{status}");
        }
    }

    #[test]
    fn one_listing_without_a_server_replaces_nothing() {
        let s = spec(1, 2);
        let (mut records, mut observed) = converged(1, 2);
        observed.machines.retain(|m| m.node != "web-worker-1");
        observed.probes.remove("web-worker-1");
        // SSH had been failing for long: still, the first "gone" is not due.
        records[1].unhealthy_kind = Some(crate::state::UnhealthyKind::Unresponsive);
        records[1].unhealthy_since = Some(NOW - 3600);
        let p = plan(&s, &records, &observed, NOW);
        assert!(p.is_empty(), "{:?}", p.describe());
        // The server is back in the next listing: it is a known node, never
        // an unknown machine to delete.
        let (records, observed) = converged(1, 2);
        let p = plan(&s, &records, &observed, NOW + 10);
        assert!(p.is_empty(), "{:?}", p.describe());
    }

    /// worker-2 never joined, its machine created `age` seconds ago.
    fn never_joined(age: i64, attempt: u32) -> (Vec<NodeRecord>, Observed) {
        let (mut records, mut observed) = converged(1, 2);
        records[2].member_id = None;
        records[2].phase = NodePhase::Installing;
        records[2].machine_created_at = Some(NOW - age);
        records[2].start_attempt = attempt;
        observed
            .probes
            .insert("web-worker-2".into(), Probe::Unreachable("refused".into()));
        observed.members.as_mut().unwrap().retain(|m| m.id != "w2");
        (records, observed)
    }

    #[test]
    fn a_node_that_never_joined_is_deleted_at_once_and_its_replacement_counts_on() {
        let s = spec(1, 2);
        let (records, observed) = never_joined(s.health.startup_timeout.as_secs() as i64, 1);
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(p.remediations, vec!["web-worker-2".to_string()]);
        assert!(p.actions.contains(&Action::AddNode {
            node: "web-worker-3".into(),
            role: Role::Worker,
            index: 3,
            attempt: 2
        }));
        // Deleted in the same pass: it was never a member, nothing waits on it.
        assert!(p.actions.contains(&Action::DeleteMachine {
            node: "web-worker-2".into(),
            machine_id: "id-worker-2".into()
        }));
        assert!(p.actions.contains(&Action::ForgetNode {
            node: "web-worker-2".into()
        }));
    }

    #[test]
    fn replacements_that_never_join_stop_at_max_start_attempts() {
        let s = spec(1, 2);
        let max = s.health.max_start_attempts;
        let late = s.health.startup_timeout.as_secs() as i64 + 1;
        let (records, observed) = never_joined(late, max - 1);
        let p = plan(&s, &records, &observed, NOW);
        assert!(p
            .actions
            .iter()
            .any(|a| matches!(a, Action::AddNode { attempt, .. } if *attempt == max)));
        let (records, observed) = never_joined(late, max);
        let p = plan(&s, &records, &observed, NOW);
        assert!(p.remediations.is_empty());
        assert_eq!(p.stalled, vec!["web-worker-2".to_string()]);
        assert!(added(&p).is_empty(), "{:?}", p.describe());
        // Left as it is for an operator: not deleted, not tried again.
        assert!(p.is_empty(), "{:?}", p.describe());
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("max_start_attempts") && n.contains("provision heal")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn managers_are_not_replaced_when_that_could_lose_quorum() {
        let mut s = spec(3, 0);
        s.health.max_unhealthy = MaxUnhealthy::Count(3);
        let (mut records, mut observed) = converged(3, 0);
        lose_machine(&mut records, &mut observed, "web-manager-2");
        lose_machine(&mut records, &mut observed, "web-manager-3");
        let p = plan(&s, &records, &observed, NOW);
        assert!(p.remediations.is_empty(), "{:?}", p.describe());
        assert!(
            p.notes.iter().any(|n| n.contains("could lose quorum")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn managers_are_replaced_one_at_a_time() {
        let mut s = spec(5, 0);
        s.health.max_unhealthy = MaxUnhealthy::Count(2);
        let (mut records, mut observed) = converged(5, 0);
        lose_machine(&mut records, &mut observed, "web-manager-4");
        lose_machine(&mut records, &mut observed, "web-manager-5");
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(p.remediations, vec!["web-manager-4".to_string()]);
        assert!(p.notes.iter().any(|n| n.contains("one at a time")));
    }

    #[test]
    fn scale_in_drains_removes_deletes_and_forgets_the_highest_index() {
        let (records, observed) = converged(1, 3);
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert_eq!(
            p.actions,
            vec![
                Action::Retire {
                    node: "web-worker-3".into(),
                    reason: "scale in".into()
                },
                Action::Drain {
                    node: "web-worker-3".into(),
                    member: member("w3", "web-worker-3", Role::Worker, true)
                },
                Action::RemoveMember {
                    node: "web-worker-3".into(),
                    member: member("w3", "web-worker-3", Role::Worker, true)
                },
                Action::DeleteMachine {
                    node: "web-worker-3".into(),
                    machine_id: "id-worker-3".into()
                },
                Action::ForgetNode {
                    node: "web-worker-3".into()
                },
            ]
        );
    }

    #[test]
    fn scale_in_takes_an_unhealthy_node_first() {
        let (mut records, mut observed) = converged(1, 3);
        observed
            .probes
            .insert("web-worker-1".into(), Probe::Unreachable("x".into()));
        records[1].unhealthy_since = Some(NOW);
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert_eq!(
            p.actions[0],
            Action::Retire {
                node: "web-worker-1".into(),
                reason: "scale in".into()
            }
        );
    }

    #[test]
    fn managers_scale_in_one_at_a_time() {
        let (records, observed) = converged(3, 1);
        let p = plan(&spec(1, 1), &records, &observed, NOW);
        let retired: Vec<_> = p
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Retire { .. }))
            .collect();
        assert_eq!(
            retired,
            vec![&Action::Retire {
                node: "web-manager-3".into(),
                reason: "scale in".into()
            }]
        );
        assert!(p.actions.contains(&Action::Drain {
            node: "web-manager-3".into(),
            member: member("m3", "web-manager-3", Role::Manager, true)
        }));
    }

    #[test]
    fn a_second_machine_of_a_node_is_deleted() {
        let (records, mut observed) = converged(1, 1);
        let mut twin = machine(Role::Worker, 1, MachineState::Running);
        twin.id = "id-worker-1-twin".into();
        observed.duplicates.push(twin);
        let p = plan(&spec(1, 1), &records, &observed, NOW);
        assert_eq!(
            p.actions,
            vec![Action::DeleteMachine {
                node: "web-worker-1".into(),
                machine_id: "id-worker-1-twin".into()
            }]
        );
        assert!(p.notes.iter().any(|n| n.contains("more than one machine")));
    }

    #[test]
    fn machines_nobody_recorded_are_deleted() {
        let (records, mut observed) = converged(1, 2);
        observed
            .machines
            .push(machine(Role::Worker, 9, MachineState::Running));
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert_eq!(
            p.actions,
            vec![Action::DeleteMachine {
                node: "web-worker-9".into(),
                machine_id: "id-worker-9".into()
            }]
        );
    }

    #[test]
    fn down_members_nobody_recorded_are_removed() {
        let (records, mut observed) = converged(1, 2);
        let ghost = member("zz", "web-worker-7", Role::Worker, false);
        observed.members.as_mut().unwrap().push(ghost.clone());
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert_eq!(
            p.actions,
            vec![Action::RemoveMember {
                node: "web-worker-7".into(),
                member: ghost
            }]
        );
        // A Ready one is left alone: it may be a node someone joined by hand.
        let (records, mut observed) = converged(1, 2);
        observed
            .members
            .as_mut()
            .unwrap()
            .push(member("zz", "extra", Role::Worker, true));
        assert!(plan(&spec(1, 2), &records, &observed, NOW).is_empty());
    }

    #[test]
    fn new_nodes_take_the_lowest_free_index() {
        let records = vec![
            record(Role::Manager, 1, Some("m1")),
            record(Role::Worker, 2, Some("w2")),
        ];
        let p = plan(&spec(1, 3), &records, &Observed::default(), NOW);
        assert_eq!(added(&p), vec!["web-worker-1", "web-worker-3"]);
    }

    #[test]
    fn a_node_whose_engine_is_missing_is_bootstrapped_again() {
        let (records, mut observed) = converged(1, 2);
        observed.probes.insert(
            "web-worker-1".into(),
            Probe::Reached(NodeProbe {
                engine_running: false,
                joined: false,
                member_id: None,
                control: false,
                config_stale: false,
            }),
        );
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert_eq!(
            p.actions,
            vec![
                Action::Bootstrap {
                    node: "web-worker-1".into()
                },
                Action::Join {
                    node: "web-worker-1".into(),
                    role: Role::Worker
                },
            ]
        );
    }

    #[test]
    fn describe_has_a_line_per_action() {
        let p = plan(&spec(1, 1), &[], &Observed::default(), NOW);
        let lines = p.describe();
        assert_eq!(lines.len(), p.actions.len());
        assert_eq!(lines[0], "add manager web-manager-1");
    }
}
