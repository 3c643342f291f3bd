//! Orphans: what no record knows is removed: members that are down (left
//! by a crash or a lost machine), machines with the cluster's label, and a
//! node's second machine (a create the cloud carried out although its
//! answer was lost, then retried).

use std::collections::BTreeSet;

use super::{Action, Decisions, Inputs, NodeView};
use crate::state::Reason;

pub(super) fn remove(input: &Inputs, views: &[NodeView], d: &mut Decisions) {
    let known_ids: BTreeSet<&str> = views
        .iter()
        .filter_map(|v| v.member.map(|m| m.id.as_str()))
        .chain(input.records.iter().filter_map(|r| r.member_id.as_deref()))
        .collect();
    for m in input.observed.members.iter().flatten() {
        if !known_ids.contains(m.id.as_str()) && !m.ready {
            d.orphans.push(Action::RemoveMember {
                node: m.hostname.clone(),
                member: m.clone(),
            });
        }
    }
    let recorded: BTreeSet<&str> = input.records.iter().map(|r| r.name.as_str()).collect();
    for m in &input.observed.machines {
        if !recorded.contains(m.node.as_str()) {
            d.orphans.push(Action::DeleteMachine {
                node: m.node.clone(),
                machine_id: m.id.clone(),
            });
        }
    }
    // One is kept, the rest deleted.
    for m in &input.observed.duplicates {
        d.plan.notes.push(Reason::ExtraMachine {
            node: m.node.clone(),
            machine: m.id.clone(),
        });
        d.orphans.push(Action::DeleteMachine {
            node: m.node.clone(),
            machine_id: m.id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::*;

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
}
