//! Scale: surplus nodes are retired (the unhealthy first, then the highest
//! index; managers one at a time), and missing ones added at the lowest
//! free index of their role.

use std::collections::BTreeSet;

use provision_provider::Role;

use super::{Decisions, Inputs, NodeView};
use crate::spec::node_name;
use crate::state::Reason;

/// A node this pass adds.
pub(super) struct NewNode {
    pub name: String,
    pub role: Role,
    pub index: u32,
}

/// Scale-in: retires nodes beyond the spec's count of their role. A manager
/// goes only when no other manager is leaving and the running ones have
/// caught up with the last change (`managers_stale`).
pub(super) fn retire_surplus(
    input: &Inputs,
    active: &[&NodeView],
    managers_stale: bool,
    d: &mut Decisions,
) {
    for role in [Role::Manager, Role::Worker] {
        let mut remaining: Vec<&NodeView> = active
            .iter()
            .copied()
            .filter(|v| v.role() == role && !d.retire.contains_key(v.name()))
            .collect();
        let want = input.spec.count(role) as usize;
        while remaining.len() > want {
            let pick = remaining
                .iter()
                .enumerate()
                .max_by_key(|(_, v)| (!v.condition.is_healthy(), v.record.index))
                .map(|(i, _)| i)
                .expect("not empty");
            if role == Role::Manager {
                if d.manager_turn_taken || managers_stale {
                    d.plan.notes.push(Reason::ManagersLeaveOneAtATime);
                    break;
                }
                d.manager_turn_taken = true;
            }
            let v = remaining.remove(pick);
            d.retire.insert(v.name().to_string(), "scale in".into());
        }
    }
}

/// Scale-out: the nodes missing from each role's count. New managers wait
/// while the running ones are restarted with a new quorum (Mesos's
/// operational guide, "Increasing the quorum size": restart the running
/// masters with the higher quorum, then start the new ones) and while a
/// dead manager (`dead_manager`) is still in the membership: adding first
/// would make, of 3 managers with 1 dead, 4 voters with 2 alive, and one
/// failed join would lose quorum.
pub(super) fn add_missing(
    input: &Inputs,
    kept: &[&NodeView],
    managers_stale: bool,
    dead_manager: Option<&str>,
    d: &mut Decisions,
) -> Vec<NewNode> {
    // Only while they can be restarted (all healthy, no manager leaving),
    // so an unhealthy manager's replacement is never held up.
    let restart_first = managers_stale
        && !d.manager_turn_taken
        && kept
            .iter()
            .filter(|v| v.role() == Role::Manager)
            .all(|v| v.condition.is_healthy());
    let mut new = Vec::new();
    for role in [Role::Manager, Role::Worker] {
        let have = kept.iter().filter(|v| v.role() == role).count();
        let want = input.spec.count(role) as usize;
        if role == Role::Manager && restart_first && have < want {
            d.plan.notes.push(Reason::RestartForNewQuorum);
            continue;
        }
        if let (Role::Manager, Some(dead)) = (role, dead_manager) {
            if have < want {
                d.plan.notes.push(Reason::DeadManagerRemovedFirst {
                    node: dead.to_string(),
                });
                continue;
            }
        }
        let used: BTreeSet<u32> = input
            .records
            .iter()
            .filter(|r| r.role == role)
            .map(|r| r.index)
            .collect();
        let mut index = 1;
        for _ in have..want {
            while used.contains(&index) {
                index += 1;
            }
            new.push(NewNode {
                name: node_name(&input.spec.name, role, index),
                role,
                index,
            });
            index += 1;
        }
    }
    new
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::*;

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
        assert!(p.notes.contains(&Reason::RestartForNewQuorum));
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
    fn new_nodes_take_the_lowest_free_index() {
        let records = vec![
            record(Role::Manager, 1, Some("m1")),
            record(Role::Worker, 2, Some("w2")),
        ];
        let p = plan(&spec(1, 3), &records, &Observed::default(), NOW);
        assert_eq!(added(&p), vec!["web-worker-1", "web-worker-3"]);
    }
}
