//! The planner's fixtures: records, machines, probes and members of a
//! cluster in a known state, shared by each phase's tests; and the tests of
//! the plan as a whole.

use super::*;
use crate::state::NodePhase;

pub(super) const NOW: i64 = 1_000_000;

/// Whether one of the plan's notes says `part`.
pub(super) fn noted(p: &Plan, part: &str) -> bool {
    p.notes.iter().any(|n| n.to_string().contains(part))
}

pub(super) fn spec(managers: u32, workers: u32) -> ClusterSpec {
    ClusterSpec::example("web", managers, workers)
}

/// A node that joined long ago (member `m1`, `w2`…) or, without a member,
/// one that was only recorded.
pub(super) fn record(role: Role, index: u32, member: Option<&str>) -> NodeRecord {
    let mut r = NodeRecord::new("web", &node_name("web", role, index), role, index);
    r.member_id = member.map(str::to_string);
    if member.is_some() {
        r.phase = NodePhase::Ready;
        r.machine_id = Some(format!("id-{}-{index}", role.as_str()));
        r.machine_created_at = Some(NOW - 3600);
    }
    r
}

pub(super) fn machine(role: Role, index: u32, state: MachineState) -> Machine {
    Machine {
        id: format!("id-{}-{index}", role.as_str()),
        node: node_name("web", role, index),
        role,
        state,
        addresses: Some(provision_provider::Addresses::private_only(&format!(
            "10.0.0.{index}"
        ))),
        zone: None,
    }
}

pub(super) fn joined(id: &str, control: bool) -> Probe {
    Probe::Reached(NodeProbe {
        engine_running: true,
        joined: true,
        member_id: Some(id.into()),
        control,
        config_stale: false,
        certificates: Default::default(),
    })
}

pub(super) fn fresh() -> Probe {
    Probe::Reached(NodeProbe {
        engine_running: true,
        joined: false,
        member_id: None,
        control: false,
        config_stale: false,
        certificates: Default::default(),
    })
}

pub(super) fn member(id: &str, host: &str, role: Role, ready: bool) -> Member {
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
pub(super) fn converged(managers: u32, workers: u32) -> (Vec<NodeRecord>, Observed) {
    let mut records = Vec::new();
    let mut observed = Observed {
        members: Some(Vec::new()),
        ..Default::default()
    };
    for (role, count) in [(Role::Manager, managers), (Role::Worker, workers)] {
        for i in 1..=count {
            add_joined(&mut records, &mut observed, role, i);
        }
    }
    (records, observed)
}

/// A node of `role` and `index` that joined long ago (member `m1`, `w2`…):
/// its record, running machine, probe and listing. Returns its record.
pub(super) fn add_joined<'a>(
    records: &'a mut Vec<NodeRecord>,
    observed: &mut Observed,
    role: Role,
    index: u32,
) -> &'a mut NodeRecord {
    let id = match role {
        Role::Manager => format!("m{index}"),
        Role::Worker => format!("w{index}"),
    };
    let name = node_name("web", role, index);
    observed
        .machines
        .push(machine(role, index, MachineState::Running));
    observed
        .probes
        .insert(name.clone(), joined(&id, role == Role::Manager));
    observed
        .members
        .get_or_insert_with(Vec::new)
        .push(member(&id, &name, role, true));
    records.push(record(role, index, Some(&id)));
    records.last_mut().expect("just pushed")
}

/// The node's machine is missing from the listing, as it was an hour
/// ago (so past `lost_timeout`).
pub(super) fn lose_machine(records: &mut [NodeRecord], observed: &mut Observed, node: &str) {
    observed.machines.retain(|m| m.node != node);
    observed.probes.remove(node);
    observed
        .gone_for
        .insert(node.to_string(), std::time::Duration::from_secs(3600));
    seen_lost(records, node);
}

/// The node's record says the cloud has reported it lost for an hour.
pub(super) fn seen_lost(records: &mut [NodeRecord], node: &str) {
    let r = records.iter_mut().find(|r| r.name == node).unwrap();
    r.unhealthy_kind = Some(crate::state::UnhealthyKind::Lost);
    r.unhealthy_since = Some(NOW - 3600);
}

pub(super) fn added(p: &Plan) -> Vec<&str> {
    p.changes
        .iter()
        .filter_map(|a| match a {
            Action::AddNode { node, .. } => Some(node.as_str()),
            _ => None,
        })
        .collect()
}

/// Each node the plan retires, with why.
pub(super) fn retired(p: &Plan) -> Vec<(&str, &str)> {
    p.changes
        .iter()
        .filter_map(|a| match a {
            Action::Retire { node, reason } => Some((node.as_str(), reason.as_str())),
            _ => None,
        })
        .collect()
}

/// Marks nodes' probes as running with an out-of-date view of the managers.
pub(super) fn stale(observed: &mut Observed, nodes: &[&str]) {
    for node in nodes {
        if let Some(Probe::Reached(p)) = observed.probes.get_mut(*node) {
            p.config_stale = true;
        }
    }
}

pub(super) fn reconfigured(p: &Plan) -> Vec<&str> {
    p.nodes
        .iter()
        .flat_map(|n| n.steps.iter())
        .filter_map(|a| match a {
            Action::Reconfigure { node } => Some(node.as_str()),
            _ => None,
        })
        .collect()
}

/// As membership-first observation leaves it: the first manager probed,
/// every other node vouched for by the listing.
pub(super) fn converged_listed(managers: u32, workers: u32) -> (Vec<NodeRecord>, Observed) {
    let (records, mut observed) = converged(managers, workers);
    for r in &records {
        if r.index != 1 || r.role != Role::Manager {
            let id = r.member_id.clone().unwrap();
            observed.probes.insert(r.name.clone(), Probe::vouched(&id));
        }
    }
    (records, observed)
}

/// worker-2 never joined, its machine created `age` seconds ago.
pub(super) fn never_joined(age: i64, attempt: u32) -> (Vec<NodeRecord>, Observed) {
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
fn nothing_to_do_when_converged() {
    let (records, observed) = converged(1, 2);
    let p = plan(&spec(1, 2), &records, &observed, NOW);
    assert!(p.is_empty(), "{:?}", p.describe());
    assert_eq!(p.join_via, None);
    assert!(p.notes.is_empty());
}

#[test]
fn describe_has_a_line_per_action() {
    let p = plan(&spec(1, 1), &[], &Observed::default(), NOW);
    let lines = p.describe();
    assert_eq!(lines.len(), p.actions().len());
    assert_eq!(lines[0], "add manager web-manager-1");
}
