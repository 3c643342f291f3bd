//! The planner's cases, one situation a test.

use super::*;
use crate::spec::MaxUnhealthy;
use crate::state::{NodePhase, UnhealthyKind};

const NOW: i64 = 1_000_000;

/// Whether one of the plan's notes says `part`.
fn noted(p: &Plan, part: &str) -> bool {
    p.notes.iter().any(|n| n.contains(part))
}

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
    for (role, count, prefix) in [(Role::Manager, managers, "m"), (Role::Worker, workers, "w")] {
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
    p.changes
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
    p.nodes
        .iter()
        .flat_map(|n| n.steps.iter())
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
    assert_eq!(p.actions().len(), 1, "{:?}", p.describe());
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
        p.actions()
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
        !p.actions()
            .iter()
            .any(|a| matches!(a, Action::Retire { .. })),
        "{:?}",
        p.describe()
    );
    assert_eq!(reconfigured(&p), ["web-manager-1"]);
    // Once current, the next manager retires.
    let (records, observed) = converged(3, 0);
    let p = plan(&spec(1, 0), &records, &observed, NOW);
    assert!(p
        .actions()
        .iter()
        .any(|a| matches!(a, Action::Retire { .. })));
}

#[test]
fn from_nothing_every_node_is_added_created_bootstrapped_and_joined() {
    let p = plan(&spec(1, 2), &[], &Observed::default(), NOW);
    assert_eq!(
        p.actions(),
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
    let actions = p.actions();
    let inits: Vec<_> = actions
        .iter()
        .filter(|a| matches!(a, Action::InitCluster { .. }))
        .collect();
    assert_eq!(
        inits,
        vec![&Action::InitCluster {
            node: "web-manager-1".into()
        }]
    );
    assert!(p.actions().contains(&Action::Join {
        node: "web-manager-2".into(),
        role: Role::Manager
    }));
    assert!(p.actions().contains(&Action::Join {
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
        !p.actions()
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
        .actions()
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
        p.actions(),
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
        p.actions(),
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
        p.actions(),
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
        p.actions(),
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
        p.actions(),
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
        p.actions(),
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
    assert!(p.actions().contains(&Action::Retire {
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
    assert!(p.actions().contains(&Action::Bootstrap {
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
    assert!(p.actions().contains(&Action::CreateMachine {
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
        p.actions(),
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
    assert!(noted(&p, "before its replacement"), "{:?}", p.notes);
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
        .actions()
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
    assert!(p.actions().contains(&Action::AddNode {
        node: "web-worker-3".into(),
        role: Role::Worker,
        index: 3,
        attempt: 2
    }));
    // Deleted in the same pass: it was never a member, nothing waits on it.
    assert!(p.actions().contains(&Action::DeleteMachine {
        node: "web-worker-2".into(),
        machine_id: "id-worker-2".into()
    }));
    assert!(p.actions().contains(&Action::ForgetNode {
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
        .actions()
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
    assert!(noted(&p, "could lose quorum"), "{:?}", p.notes);
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
    assert!(noted(&p, "one at a time"));
}

#[test]
fn scale_in_drains_removes_deletes_and_forgets_the_highest_index() {
    let (records, observed) = converged(1, 3);
    let p = plan(&spec(1, 2), &records, &observed, NOW);
    assert_eq!(
        p.actions(),
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
        p.actions()[0],
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
        .changes
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
    assert!(p.actions().contains(&Action::Drain {
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
        p.actions(),
        vec![Action::DeleteMachine {
            node: "web-worker-1".into(),
            machine_id: "id-worker-1-twin".into()
        }]
    );
    assert!(noted(&p, "more than one machine"));
}

#[test]
fn machines_nobody_recorded_are_deleted() {
    let (records, mut observed) = converged(1, 2);
    observed
        .machines
        .push(machine(Role::Worker, 9, MachineState::Running));
    let p = plan(&spec(1, 2), &records, &observed, NOW);
    assert_eq!(
        p.actions(),
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
        p.actions(),
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
        p.actions(),
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
    assert_eq!(lines.len(), p.actions().len());
    assert_eq!(lines[0], "add manager web-manager-1");
}
