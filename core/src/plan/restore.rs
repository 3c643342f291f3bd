//! Restore from a backup (`provision restore`): no manager survives with the
//! cluster's state, and the desired state asks for the cluster re-formed
//! from an archive. As Docker documents it ("Restore from a backup"): a new
//! manager gets the backed-up swarm directory and runs `swarm init
//! --force-new-cluster`; then the rest is the normal path (the old
//! managers removed, new ones joined one at a time).
//!
//! Two steps over passes:
//!
//! 1. No cluster answers: the old managers are retired and a new manager
//!    (a never-joined one left by an earlier attempt, else the lowest free
//!    index) is created, bootstrapped and restored — nothing else that
//!    pass. Never while an old manager answers with its state (the
//!    survivor path, [`super::recover`], re-forms from it instead), and
//!    never while an old manager's machine is still there, unless forced:
//!    a manager cut off by a partition still holds the swarm, and a restore
//!    beside it would make two.
//! 2. The restored cluster answers: workers still in the old cluster (they
//!    report themselves joined, the restored membership does not list them
//!    Ready: they know only the old managers' addresses) leave it and join
//!    again, instead of being replaced.

use std::collections::BTreeSet;

use provision_provider::{MachineState, Role};

use super::zones::{placed, Zones};
use super::{Action, Condition, Decisions, Inputs, NodeView, RejoinCause};
use crate::spec::node_name;
use crate::state::Reason;

/// What the restore phase decided for the rest of the pass.
pub(super) enum Restore {
    /// No restore is asked for, or it waits for the survivor path.
    None,
    /// The pass is the restore's first step alone.
    Alone,
    /// Workers that rejoin the restored cluster this pass: the other phases
    /// leave them be.
    Rejoining(BTreeSet<String>),
}

pub(super) fn restore(input: &Inputs, views: &[NodeView], d: &mut Decisions) -> Restore {
    let Some(request) = &input.spec.restore else {
        return Restore::None;
    };
    // A manager listed the members: the cluster has quorum (a Swarm
    // manager says it has control with or without it).
    if input.observed.members.is_some() {
        return rejoin_workers(views, d);
    }
    let old: Vec<&NodeView> = views
        .iter()
        .filter(|v| v.role() == Role::Manager && v.ever_joined())
        .collect();
    if let Some(survivor) = old
        .iter()
        .find(|v| v.machine.is_some() && v.probe.is_some_and(|p| p.joined && p.engine_running))
    {
        d.plan.notes.push(Reason::SurvivorHoldsState {
            survivor: survivor.name().to_string(),
        });
        return Restore::None;
    }
    let present: Vec<String> = old
        .iter()
        .filter(|v| {
            !matches!(
                v.condition,
                Condition::MachineGone | Condition::MachineError(_)
            )
        })
        .filter_map(|v| {
            v.machine
                .map(|m| format!("{} ({})", v.name(), m.state.as_str()))
        })
        .collect();
    if !present.is_empty() && !request.force {
        d.plan.notes.push(Reason::RestoreWaitsForMachines {
            managers: present,
            cluster: input.spec.name.clone(),
        });
        return Restore::Alone;
    }
    for v in &old {
        if !v.record.retiring {
            d.retire.insert(
                v.name().to_string(),
                format!("gone: restoring from the backup of {}", request.taken_at),
            );
        }
    }
    // An old manager's machine still there (in error, or forced) may hold
    // the address the restored manager must have: deleted first, alone.
    let leftovers: Vec<&&NodeView> = old.iter().filter(|v| v.machine.is_some()).collect();
    if !leftovers.is_empty() {
        for v in &leftovers {
            let m = v.machine.expect("filtered");
            d.steps.push(Action::DeleteMachine {
                node: v.name().to_string(),
                machine_id: m.id.clone(),
            });
        }
        d.plan.restoring = true;
        d.plan.notes.push(Reason::OldManagersDeletedFirst {
            managers: leftovers.iter().map(|v| v.name().to_string()).collect(),
        });
        return Restore::Alone;
    }
    // A manager an earlier attempt added (it never joined) is the one
    // restored, so an interrupted restore is finished, never repeated.
    let target = views
        .iter()
        .filter(|v| v.role() == Role::Manager && !v.ever_joined() && !v.record.retiring)
        .min_by_key(|v| v.record.index);
    let node = match target {
        Some(v) => {
            let running = v
                .machine
                .is_some_and(|m| matches!(m.state, MachineState::Running));
            if !running {
                d.steps.push(Action::CreateMachine {
                    node: v.name().to_string(),
                    role: Role::Manager,
                });
            }
            v.name().to_string()
        }
        None => {
            let used: BTreeSet<u32> = views
                .iter()
                .filter(|v| v.role() == Role::Manager)
                .map(|v| v.record.index)
                .collect();
            let index = (1..).find(|i| !used.contains(i)).expect("a free index");
            let node = node_name(&input.spec.name, Role::Manager, index);
            let managers = views
                .iter()
                .filter(|v| v.role() == Role::Manager && !v.record.retiring);
            let zone = Zones::of(views, &input.observed.zones_down)
                .choose(&input.spec.zones, &placed(managers));
            d.plan.changes.push(Action::AddNode {
                node: node.clone(),
                role: Role::Manager,
                index,
                attempt: 1,
                pool: None,
                zone,
                machine: input.spec.group(Role::Manager, None).map(|g| g.machine()),
            });
            d.steps.push(Action::CreateMachine {
                node: node.clone(),
                role: Role::Manager,
            });
            node
        }
    };
    d.plan.notes.push(Reason::RestoringOn {
        node: node.clone(),
        taken_at: request.taken_at.to_string(),
    });
    d.steps.push(Action::Bootstrap { node: node.clone() });
    d.steps.push(Action::RestoreCluster { node });
    d.plan.restoring = true;
    Restore::Alone
}

/// Workers that still belong to the cluster as it was before the restore.
fn rejoin_workers(views: &[NodeView], d: &mut Decisions) -> Restore {
    let mut rejoining = BTreeSet::new();
    for v in views
        .iter()
        .filter(|v| v.role() == Role::Worker && !v.record.retiring)
    {
        let in_old_cluster = v.probe.is_some_and(|p| p.joined && p.engine_running)
            && v.member.is_none_or(|m| !m.ready);
        if in_old_cluster {
            d.steps.push(Action::Rejoin {
                node: v.name().to_string(),
                role: Role::Worker,
                old: v.member.cloned(),
                cause: RejoinCause::Restore,
            });
            rejoining.insert(v.name().to_string());
        }
    }
    Restore::Rejoining(rejoining)
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::*;
    use crate::spec::RestoreRequest;

    fn restoring(managers: u32, workers: u32, force: bool) -> ClusterSpec {
        let mut s = spec(managers, workers);
        s.restore = Some(RestoreRequest {
            archive: "/backups/web-1.tar.gz".into(),
            taken_at: "2026-12-01T00:00:00Z".into(),
            private_address: Some("10.0.0.2".into()),
            force,
            ..Default::default()
        });
        s
    }

    /// A converged 3+2 whose three managers' machines are gone; the workers
    /// still run, joined to the old cluster, which no manager lists.
    fn managers_gone() -> (Vec<NodeRecord>, Observed) {
        let (mut records, mut observed) = converged(3, 2);
        for i in 1..=3 {
            lose_machine(&mut records, &mut observed, &format!("web-manager-{i}"));
        }
        observed.members = None;
        (records, observed)
    }

    #[test]
    fn with_no_manager_left_a_new_one_is_restored_alone() {
        let (records, observed) = managers_gone();
        let p = plan(&restoring(3, 2, false), &records, &observed, NOW);
        let retire = |i: u32| Action::Retire {
            node: format!("web-manager-{i}"),
            reason: "gone: restoring from the backup of 2026-12-01T00:00:00Z".into(),
        };
        assert_eq!(
            p.actions(),
            vec![
                Action::AddNode {
                    node: "web-manager-4".into(),
                    role: Role::Manager,
                    index: 4,
                    attempt: 1,
                    pool: None,
                    zone: None,
                    machine: Some("image=- flavor=-".into()),
                },
                retire(1),
                retire(2),
                retire(3),
                Action::CreateMachine {
                    node: "web-manager-4".into(),
                    role: Role::Manager
                },
                Action::Bootstrap {
                    node: "web-manager-4".into()
                },
                Action::RestoreCluster {
                    node: "web-manager-4".into()
                },
            ]
        );
        assert!(noted(&p, "restoring it on web-manager-4"), "{:?}", p.notes);
        // Without the request: no restore.
        let p = plan(&spec(3, 2), &records, &observed, NOW);
        assert!(!p.any_step(|a| matches!(a, Action::RestoreCluster { .. })));
    }

    #[test]
    fn a_manager_machine_in_error_is_deleted_before_the_restore() {
        let (mut records, mut observed) = managers_gone();
        observed.machines.push(machine(
            Role::Manager,
            2,
            MachineState::Error("No valid host".into()),
        ));
        let p = plan(&restoring(3, 2, false), &records, &observed, NOW);
        assert!(!p.any_step(|a| matches!(a, Action::RestoreCluster { .. })));
        assert!(p.any_step(|a| matches!(
            a,
            Action::DeleteMachine { node, .. } if node == "web-manager-2"
        )));
        assert!(noted(&p, "deleted before the restore"), "{:?}", p.notes);
        assert!(p.restoring);
        for r in records.iter_mut() {
            r.retiring = r.role == Role::Manager;
        }
        observed.machines.retain(|m| m.node != "web-manager-2");
        let p = plan(&restoring(3, 2, false), &records, &observed, NOW);
        assert!(p.any_step(|a| matches!(a, Action::RestoreCluster { .. })));
    }

    #[test]
    fn an_interrupted_restore_is_finished_on_the_same_new_manager() {
        let (mut records, mut observed) = managers_gone();
        for r in records.iter_mut().filter(|r| r.role == Role::Manager) {
            r.retiring = true;
        }
        // web-manager-4 was recorded and its machine made; the restore failed.
        records.push(record(Role::Manager, 4, None));
        observed
            .machines
            .push(machine(Role::Manager, 4, MachineState::Running));
        observed.probes.insert("web-manager-4".into(), fresh());
        let p = plan(&restoring(3, 2, false), &records, &observed, NOW);
        assert_eq!(
            p.actions(),
            vec![
                Action::Bootstrap {
                    node: "web-manager-4".into()
                },
                Action::RestoreCluster {
                    node: "web-manager-4".into()
                },
            ]
        );
    }

    #[test]
    fn a_manager_that_answers_or_whose_machine_is_there_stops_it() {
        // A survivor with the swarm's state: no restore (recovery's turn).
        let (mut records, mut observed) = converged(3, 2);
        for i in 2..=3 {
            lose_machine(&mut records, &mut observed, &format!("web-manager-{i}"));
        }
        observed.members = None;
        let p = plan(&restoring(3, 2, false), &records, &observed, NOW);
        assert!(!p.any_step(|a| matches!(a, Action::RestoreCluster { .. })));
        assert!(
            noted(&p, "manager web-manager-1 still holds"),
            "{:?}",
            p.notes
        );
        assert!(p.any_step(|a| matches!(a, Action::RecoverQuorum { .. })));

        // A machine there that does not answer (a partition?): only forced.
        let (mut records, mut observed) = managers_gone();
        observed
            .machines
            .push(machine(Role::Manager, 1, MachineState::Running));
        observed.probes.insert(
            "web-manager-1".into(),
            Probe::Unreachable("timed out".into()),
        );
        records[0].unhealthy_kind = Some(crate::state::UnhealthyKind::Unresponsive);
        let p = plan(&restoring(3, 2, false), &records, &observed, NOW);
        assert!(p.is_empty(), "{:?}", p.actions());
        assert!(noted(&p, "restore waits"), "{:?}", p.notes);
        assert!(noted(&p, "--force"), "{:?}", p.notes);
        // Forced: its machine is deleted first, alone (it may hold the
        // address the restored manager needs), then the restore.
        let p = plan(&restoring(3, 2, true), &records, &observed, NOW);
        assert!(p.changes.contains(&Action::Retire {
            node: "web-manager-1".into(),
            reason: "gone: restoring from the backup of 2026-12-01T00:00:00Z".into()
        }));
        assert_eq!(
            p.actions()
                .into_iter()
                .filter(|a| !matches!(a, Action::Retire { .. }))
                .collect::<Vec<_>>(),
            vec![Action::DeleteMachine {
                node: "web-manager-1".into(),
                machine_id: "id-manager-1".into()
            }]
        );
        observed.machines.retain(|m| m.node != "web-manager-1");
        observed.probes.remove("web-manager-1");
        let p = plan(&restoring(3, 2, true), &records, &observed, NOW);
        assert!(p.any_step(|a| matches!(a, Action::RestoreCluster { .. })));
    }

    #[test]
    fn once_restored_old_workers_rejoin_and_new_managers_join() {
        // The restored manager answers; the old managers are retiring and
        // listed Down; the workers still report the old cluster.
        let (mut records, mut observed) = managers_gone();
        for r in records.iter_mut().filter(|r| r.role == Role::Manager) {
            r.retiring = true;
        }
        let mut restored = record(Role::Manager, 4, Some("m2"));
        restored.machine_id = Some("id-manager-4".into());
        records.push(restored);
        observed
            .machines
            .push(machine(Role::Manager, 4, MachineState::Running));
        observed
            .probes
            .insert("web-manager-4".into(), joined("m2", true));
        observed.members = Some(vec![
            member("m1", "web-manager-1", Role::Manager, false),
            member("m2", "web-manager-4", Role::Manager, true),
            member("m3", "web-manager-3", Role::Manager, false),
            member("w1", "web-worker-1", Role::Worker, false),
            member("w2", "web-worker-2", Role::Worker, false),
        ]);
        let p = plan(&restoring(3, 2, false), &records, &observed, NOW);
        let actions = p.actions();
        for w in ["web-worker-1", "web-worker-2"] {
            assert!(
                actions.iter().any(|a| matches!(
                    a,
                    Action::Rejoin { node, role: Role::Worker, old: Some(m), .. }
                        if node == w && m.hostname == *w && !m.ready
                )),
                "{actions:?}"
            );
            assert!(
                !p.remediations.contains(&w.to_string()),
                "{:?}",
                p.remediations
            );
        }
        // web-manager-2's old record shares the restored node's member id:
        // never removed from the membership (that would remove the restored
        // manager itself), only forgotten.
        assert!(
            !actions.iter().any(|a| matches!(
                a,
                Action::RemoveMember { member, .. } if member.id == "m2"
            )),
            "{actions:?}"
        );
        // Without the request, the same workers are left to the health policy.
        let p = plan(&spec(3, 2), &records, &observed, NOW);
        assert!(!p.any_step(|a| matches!(a, Action::Rejoin { .. })));
    }
}
