//! Quorum recovery: when the cloud confirms that a majority of the
//! managers' machines are gone for good (no longer listed, in every listing
//! this process made for `lost_timeout` by its own clock: never merely
//! unreachable, which is what a network partition looks like, and never
//! stopped or in ERROR, where the guest may still run with its state, as
//! Nova's ERROR does not say the guest stopped) and no manager can list
//! the members, the
//! cluster is re-formed on a surviving manager that answers for itself
//! (Docker: "Recover from losing the quorum", `docker swarm init
//! --force-new-cluster`). That pass does nothing else; the gone managers
//! are retired, and the normal path removes them from the membership and
//! replaces them, one at a time, once the survivor has quorum.
//!
//! Without any survivor nothing is done here: that takes a backup and
//! `provision restore` (issue 17), a person's decision.

use provision_provider::Role;

use super::{Action, Decisions, Inputs, NodeView};
use crate::health::Condition;
use crate::state::Reason;

/// Plans the recovery when it is due; true when it did (the pass is then
/// the recovery alone).
pub(super) fn lost_quorum(input: &Inputs, views: &[NodeView], d: &mut Decisions) -> bool {
    if !input.spec.coe.profile().recovers_quorum || input.observed.members.is_some() {
        return false;
    }
    // Retiring managers count too: they stay recorded until the membership
    // has forgotten them, so a recovery that failed is tried again.
    let managers: Vec<&NodeView> = views
        .iter()
        .filter(|v| v.role() == Role::Manager && v.ever_joined())
        .collect();
    if managers.len() < 2 {
        return false;
    }
    let lost_timeout = input.spec.health.lost_timeout;
    let gone: Vec<&&NodeView> = managers
        .iter()
        .filter(|v| {
            v.condition == Condition::MachineGone
                && input
                    .observed
                    .gone_for
                    .get(v.name())
                    .is_some_and(|seen| *seen >= lost_timeout)
        })
        .collect();
    if gone.len() <= managers.len() / 2 {
        return false;
    }
    let Some(survivor) = managers
        .iter()
        .filter(|v| v.machine.is_some() && v.probe.is_some_and(|p| p.joined && p.engine_running))
        .min_by_key(|v| v.record.index)
    else {
        d.plan.notes.push(Reason::NoSurvivor {
            gone: gone.len(),
            managers: managers.len(),
        });
        return false;
    };
    d.plan.notes.push(Reason::ReformingOnSurvivor {
        gone: gone.iter().map(|v| v.name().to_string()).collect(),
        managers: managers.len(),
        survivor: survivor.name().to_string(),
    });
    for v in &gone {
        if !v.record.retiring {
            d.retire
                .insert(v.name().to_string(), "gone: quorum lost".to_string());
        }
    }
    d.steps.push(Action::RecoverQuorum {
        node: survivor.name().to_string(),
    });
    true
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::*;
    use crate::spec::Coe;

    /// A converged 3+1 whose managers 2 and 3 are gone long enough, and no
    /// manager can list the members.
    fn two_managers_gone() -> (Vec<NodeRecord>, Observed) {
        let (mut records, mut observed) = converged(3, 1);
        for name in ["web-manager-2", "web-manager-3"] {
            lose_machine(&mut records, &mut observed, name);
        }
        observed.members = None;
        observed.managers_view = None;
        (records, observed)
    }

    #[test]
    fn a_majority_of_managers_gone_re_forms_the_cluster_on_the_survivor_alone() {
        let (records, observed) = two_managers_gone();
        let p = plan(&spec(3, 1), &records, &observed, NOW);
        assert_eq!(
            p.actions(),
            vec![
                Action::Retire {
                    node: "web-manager-2".into(),
                    reason: "gone: quorum lost".into()
                },
                Action::Retire {
                    node: "web-manager-3".into(),
                    reason: "gone: quorum lost".into()
                },
                Action::RecoverQuorum {
                    node: "web-manager-1".into()
                },
            ]
        );
        assert!(
            p.notes.iter().any(|n| matches!(
                n,
                Reason::ReformingOnSurvivor { gone, managers: 3, .. } if gone.len() == 2
            )),
            "{:?}",
            p.notes
        );
        // Retired already (a recovery that failed): tried again.
        let mut again = records.clone();
        for r in again
            .iter_mut()
            .filter(|r| r.name != "web-manager-1" && r.role == Role::Manager)
        {
            r.retiring = true;
        }
        let p = plan(&spec(3, 1), &again, &observed, NOW);
        assert_eq!(
            p.actions(),
            vec![Action::RecoverQuorum {
                node: "web-manager-1".into()
            }]
        );
    }

    #[test]
    fn unreachable_or_stopped_managers_never_trigger_it() {
        // A partition: the machines are there, SSH does not answer.
        let (records, mut observed) = converged(3, 1);
        observed.members = None;
        for name in ["web-manager-2", "web-manager-3"] {
            observed
                .probes
                .insert(name.into(), Probe::Unreachable("timed out".into()));
        }
        let p = plan(&spec(3, 1), &records, &observed, NOW);
        assert!(
            !p.any_step(|a| matches!(a, Action::RecoverQuorum { .. })),
            "{:?}",
            p.actions()
        );
        // Stopped (docker kill) is not gone: it may start again with its state.
        let (mut records, mut observed) = converged(3, 1);
        observed.members = None;
        for name in ["web-manager-2", "web-manager-3"] {
            let i = observed
                .machines
                .iter()
                .position(|m| m.node == name)
                .unwrap();
            observed.machines[i].state = MachineState::Stopped;
            let r = records.iter_mut().find(|r| r.name == name).unwrap();
            r.unhealthy_kind = Some(crate::state::UnhealthyKind::Lost);
            r.unhealthy_since = Some(NOW - 3600);
        }
        let p = plan(&spec(3, 1), &records, &observed, NOW);
        assert!(
            !p.any_step(|a| matches!(a, Action::RecoverQuorum { .. })),
            "{:?}",
            p.actions()
        );
    }

    /// Machines the cloud lists in ERROR, or stopped then in ERROR once, are
    /// never enough, however long the records say (Nova's ERROR does not
    /// say the guest stopped: re-forming beside it could split the swarm).
    #[test]
    fn managers_in_error_or_stopped_then_in_error_never_trigger_it() {
        for states in [
            [
                MachineState::Error("No valid host was found".into()),
                MachineState::Error("No valid host was found".into()),
            ],
            [
                MachineState::Stopped,
                MachineState::Error("hypervisor lost".into()),
            ],
        ] {
            let (mut records, mut observed) = converged(3, 1);
            observed.members = None;
            observed.managers_view = None;
            for (name, state) in ["web-manager-2", "web-manager-3"].into_iter().zip(states) {
                let m = observed
                    .machines
                    .iter_mut()
                    .find(|m| m.node == name)
                    .unwrap();
                m.state = state;
                observed.probes.remove(name);
                seen_lost(&mut records, name);
            }
            let p = plan(&spec(3, 1), &records, &observed, NOW);
            assert!(
                !p.any_step(|a| matches!(a, Action::RecoverQuorum { .. })),
                "{:?}",
                p.actions()
            );
        }
    }

    #[test]
    fn it_waits_for_lost_timeout_needs_a_majority_and_a_survivor() {
        // Gone in this process's listings for less than lost_timeout: not
        // due, though the records (wall times another host may have
        // written, or a stop an hour ago) say an hour.
        let (records, mut observed) = two_managers_gone();
        for seen in observed.gone_for.values_mut() {
            *seen = std::time::Duration::from_secs(1);
        }
        let p = plan(&spec(3, 1), &records, &observed, NOW);
        assert!(!p.any_step(|a| matches!(a, Action::RecoverQuorum { .. })));
        // Not seen gone by this process at all (another host's records).
        let (records, mut observed) = two_managers_gone();
        observed.gone_for.clear();
        let p = plan(&spec(3, 1), &records, &observed, NOW);
        assert!(!p.any_step(|a| matches!(a, Action::RecoverQuorum { .. })));
        // One of three gone: the others keep quorum; the normal path applies.
        let (mut records, mut observed) = converged(3, 1);
        lose_machine(&mut records, &mut observed, "web-manager-3");
        observed.members = None;
        let p = plan(&spec(3, 1), &records, &observed, NOW);
        assert!(!p.any_step(|a| matches!(a, Action::RecoverQuorum { .. })));
        // The members listed: quorum is there.
        let (records, mut observed) = two_managers_gone();
        let (_, listed) = converged(3, 1);
        observed.members = listed.members;
        let p = plan(&spec(3, 1), &records, &observed, NOW);
        assert!(!p.any_step(|a| matches!(a, Action::RecoverQuorum { .. })));
        // No survivor answers: nothing but a note (restore from a backup).
        let (records, mut observed) = two_managers_gone();
        observed
            .probes
            .insert("web-manager-1".into(), Probe::Unreachable("refused".into()));
        let p = plan(&spec(3, 1), &records, &observed, NOW);
        assert!(!p.any_step(|a| matches!(a, Action::RecoverQuorum { .. })));
        assert!(
            p.notes.iter().any(|n| matches!(
                n,
                Reason::NoSurvivor {
                    gone: 2,
                    managers: 3
                }
            )),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn only_the_orchestrators_that_can_recover_are_asked_to() {
        let (records, observed) = two_managers_gone();
        let mut s = spec(3, 1);
        s.coe = Coe::Kubernetes;
        let p = plan(&s, &records, &observed, NOW);
        assert!(!p.any_step(|a| matches!(a, Action::RecoverQuorum { .. })));
    }
}
