//! Departures: retiring nodes leave once their role's remaining nodes are
//! all healthy (replace before remove), managers one at a time. Two leave
//! at once: a node that never became a member (nothing to replace it for),
//! and a dead manager (removed before its replacement joins).

use provision_provider::Role;

use super::scale::NewNode;
use super::{Action, Decisions, Inputs, NodeView};

/// A manager that is leaving unhealthy after it joined: it is taken out of
/// the orchestrator's membership before its replacement joins.
pub(super) fn leaving_dead_manager(views: &[NodeView], d: &Decisions) -> Option<String> {
    views
        .iter()
        .filter(|v| d.retiring(v))
        .find(|v| v.role() == Role::Manager && !v.condition.is_healthy() && v.ever_joined())
        .map(|v| v.name().to_string())
}

pub(super) fn leave(
    input: &Inputs,
    views: &[NodeView],
    kept: &[&NodeView],
    new: &[NewNode],
    dead_manager: Option<&str>,
    d: &mut Decisions,
) {
    let adding = |role: Role| new.iter().any(|n| n.role == role);
    let role_settled = |role: Role| {
        !adding(role)
            && kept
                .iter()
                .filter(|v| v.role() == role)
                .all(|v| v.condition.is_healthy())
    };
    let mut manager_leaving = false;
    let leaving: Vec<&NodeView> = views.iter().filter(|v| d.retiring(v)).collect();
    for v in leaving {
        if v.backing_off(input.now) {
            d.plan.notes.push(format!(
                "{} is leaving but backing off after a failed attempt",
                v.name()
            ));
            continue;
        }
        let leaves_now = !v.ever_joined() || dead_manager == Some(v.name());
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
                d.steps.push(Action::Drain {
                    node: name.clone(),
                    member: member.clone(),
                });
            }
            d.steps.push(Action::RemoveMember {
                node: name.clone(),
                member: member.clone(),
            });
        }
        if let Some(m) = v.machine {
            d.steps.push(Action::DeleteMachine {
                node: name.clone(),
                machine_id: m.id.clone(),
            });
        }
        d.steps.push(Action::ForgetNode { node: name });
    }
}
