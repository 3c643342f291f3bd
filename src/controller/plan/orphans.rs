//! Orphans: what no record knows is removed: members that are down (left
//! by a crash or a lost machine), machines with the cluster's label, and a
//! node's second machine (a create the cloud carried out although its
//! answer was lost, then retried).

use std::collections::BTreeSet;

use super::{Action, Decisions, Inputs, NodeView};

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
        d.plan.notes.push(format!(
            "{} has more than one machine: {} is deleted",
            m.node, m.id
        ));
        d.orphans.push(Action::DeleteMachine {
            node: m.node.clone(),
            machine_id: m.id.clone(),
        });
    }
}
