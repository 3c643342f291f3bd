//! Scale: surplus nodes are retired (the unhealthy first, then the highest
//! index; managers one at a time), and missing ones added at the lowest
//! free index of their role.

use std::collections::BTreeSet;

use provision_provider::Role;

use super::{Decisions, Inputs, NodeView};
use crate::spec::node_name;

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
                    d.plan.notes.push(
                        "managers leave one at a time: the next one goes in a later pass".into(),
                    );
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
            d.plan.notes.push(
                "the running managers are restarted with the new quorum before new managers start"
                    .into(),
            );
            continue;
        }
        if let (Role::Manager, Some(dead)) = (role, dead_manager) {
            if have < want {
                d.plan.notes.push(format!(
                    "manager {dead} is removed from the cluster before its replacement joins"
                ));
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
