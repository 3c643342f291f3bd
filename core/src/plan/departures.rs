//! Departures: retiring nodes leave once their role's remaining nodes are
//! all healthy (replace before remove), managers one at a time. Two leave
//! at once: a node that never became a member (nothing to replace it for),
//! and a dead manager (removed before its replacement joins).

use provision_provider::Role;

use super::scale::NewNode;
use super::{Action, Decisions, Inputs, NodeView};
use crate::state::{Attempt, Reason};

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
            d.plan.notes.push(Reason::BackingOff {
                node: v.name().to_string(),
                attempt: Attempt::Leave,
            });
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
        // A member id another node now says is its own (a manager restored
        // from a backup taken on this one carries its identity) is that
        // node's: removing it would remove the node that stays.
        let claimed = |id: &str| {
            views.iter().any(|o| {
                o.name() != v.name()
                    && !d.retiring(o)
                    && (o.record.member_id.as_deref() == Some(id)
                        || o.probe.and_then(|p| p.member_id.as_deref()) == Some(id))
            })
        };
        let member = v.member.filter(|m| !claimed(&m.id));
        // A member leaves through another manager with control: when the
        // leaving manager is the only one this observation asked (the
        // lowest index, an old one in a rollout), it waits a pass, and the
        // next observation asks a manager that stays first.
        let via_other = input
            .observed
            .probes
            .iter()
            .any(|(node, p)| node != v.name() && p.has_control());
        if member.is_some() && v.role() == Role::Manager && !via_other {
            continue;
        }
        if let Some(member) = member {
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

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::*;

    #[test]
    fn a_manager_leaves_through_another_manager_with_control() {
        // Manager 1 is the one the observation asked (control); 2 and 3
        // were vouched for. Retiring 1 waits a pass.
        let (mut records, observed) = converged_listed(3, 0);
        records[0].retiring = true;
        let p = plan(&spec(2, 0), &records, &observed, NOW);
        assert!(
            !p.actions()
                .iter()
                .any(|a| matches!(a, Action::Drain { .. } | Action::RemoveMember { .. })),
            "{:?}",
            p.describe()
        );
        // Asked of manager 2 next: it goes.
        let mut observed = observed;
        observed
            .probes
            .insert("web-manager-2".into(), joined("m2", true));
        let p = plan(&spec(2, 0), &records, &observed, NOW);
        assert!(p.actions().contains(&Action::Drain {
            node: "web-manager-1".into(),
            member: member("m1", "web-manager-1", Role::Manager, true)
        }));
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
                    attempt: 1,
                    pool: None,
                    zone: None,
                    machine: Some("image=- flavor=-".into()),
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
}
