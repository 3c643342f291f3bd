//! Formation: the cluster is initialised once, on the first manager by
//! index, and every new or unfinished node is created, bootstrapped and
//! joined as far as it still needs.

use provision_provider::{MachineState, Role};

use super::scale::NewNode;
use super::{Action, Condition, Decisions, Inputs, NodeView, Observed};
use crate::state::{Attempt, Reason};

/// Whether the cluster exists, and through which manager nodes join.
pub(super) struct Formation {
    /// A manager that said it has control (the first by index, not leaving).
    controller: Option<String>,
    /// The node that initialises the cluster this pass, when none exists.
    init_node: Option<String>,
}

impl Formation {
    pub(super) fn of(
        views: &[NodeView],
        kept: &[&NodeView],
        new: &[NewNode],
        d: &Decisions,
        observed: &Observed,
    ) -> Formation {
        let controller = views
            .iter()
            .filter(|v| v.role() == Role::Manager && v.probe.is_some_and(|p| p.control))
            .min_by_key(|v| (d.retiring(v), v.record.index))
            .map(|v| v.name().to_string());
        // The cluster exists when a node says it manages one, or a manager listed members.
        let cluster_exists =
            controller.is_some() || observed.members.as_ref().is_some_and(|m| !m.is_empty());
        // Without a cluster, it is created on the first manager by index:
        // always the same node, so an interrupted init is finished, never
        // repeated elsewhere.
        let init_node = if cluster_exists {
            None
        } else {
            kept.iter()
                .filter(|v| v.role() == Role::Manager)
                .map(|v| (v.record.index, v.name().to_string()))
                .chain(
                    new.iter()
                        .filter(|n| n.role == Role::Manager)
                        .map(|n| (n.index, n.name.clone())),
                )
                .min()
                .map(|(_, n)| n)
        };
        Formation {
            controller,
            init_node,
        }
    }

    /// The manager joins go through: the one initialising, else one with control.
    pub(super) fn join_via(&self) -> Option<String> {
        self.init_node.clone().or_else(|| self.controller.clone())
    }

    fn join_step(&self, node: &str, role: Role) -> Action {
        if self.init_node.as_deref() == Some(node) {
            Action::InitCluster {
                node: node.to_string(),
            }
        } else {
            Action::Join {
                node: node.to_string(),
                role,
            }
        }
    }

    fn create_chain(&self, node: &str, role: Role, steps: &mut Vec<Action>) {
        steps.push(Action::CreateMachine {
            node: node.to_string(),
            role,
        });
        steps.push(Action::Bootstrap {
            node: node.to_string(),
        });
        steps.push(self.join_step(node, role));
    }

    /// Records each new node, then creates, bootstraps and joins it. A
    /// replacement of nodes that never joined counts on from theirs.
    pub(super) fn add_new(&self, views: &[NodeView], new: &[NewNode], d: &mut Decisions) {
        for n in new {
            let attempt = views
                .iter()
                .filter(|v| v.role() == n.role && d.retire.contains_key(v.name()))
                .filter(|v| v.condition == Condition::Starting)
                .map(|v| v.record.start_attempt + 1)
                .max()
                .unwrap_or(1);
            d.plan.changes.push(Action::AddNode {
                node: n.name.clone(),
                role: n.role,
                index: n.index,
                attempt,
                pool: n.pool.clone(),
                zone: n.zone.clone(),
                machine: Some(n.machine.clone()),
            });
            self.create_chain(&n.name, n.role, &mut d.steps);
        }
    }

    /// Takes each kept node as far as it still needs: a machine recorded
    /// but never created or started, an engine missing, a join not done.
    pub(super) fn finish_kept(&self, input: &Inputs, kept: &[&NodeView], d: &mut Decisions) {
        for v in kept {
            // Its budget of attempts is spent: kept as it is for an operator.
            if d.plan.stalled.iter().any(|n| n == v.name()) {
                continue;
            }
            if v.backing_off(input.now) {
                if !v.condition.is_healthy() {
                    d.plan.notes.push(Reason::BackingOff {
                        node: v.name().to_string(),
                        attempt: Attempt::Start,
                    });
                }
                continue;
            }
            let name = v.name();
            match v.machine.map(|m| &m.state) {
                // Recorded but never created (a run stopped before): create it.
                None if v.record.machine_id.is_none() => {
                    self.create_chain(name, v.role(), &mut d.steps)
                }
                // Created but never started (a run killed in between): start it.
                Some(MachineState::Pending) => self.create_chain(name, v.role(), &mut d.steps),
                // Gone, stopped or failed: the health policy replaces it. Being
                // rebooted or migrated by the cloud: it comes back by itself.
                None
                | Some(MachineState::Stopped)
                | Some(MachineState::Error(_))
                | Some(MachineState::Busy(_)) => {}
                Some(MachineState::Running) => match (v.probe, v.ever_joined()) {
                    (Some(p), _) if p.joined => {}
                    (Some(p), _) if p.engine_running => {
                        d.steps.push(self.join_step(name, v.role()))
                    }
                    (Some(_), _) | (None, false) => {
                        d.steps.push(Action::Bootstrap {
                            node: name.to_string(),
                        });
                        d.steps.push(self.join_step(name, v.role()));
                    }
                    // A member that does not answer: the health policy decides.
                    (None, true) => {}
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::*;

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
                    attempt: 1,
                    pool: None,
                    zone: None,
                    machine: Some("image=- flavor=-".into()),
                },
                Action::AddNode {
                    node: "web-worker-1".into(),
                    role: Role::Worker,
                    index: 1,
                    attempt: 1,
                    pool: None,
                    zone: None,
                    machine: Some("image=- flavor=-".into()),
                },
                Action::AddNode {
                    node: "web-worker-2".into(),
                    role: Role::Worker,
                    index: 2,
                    attempt: 1,
                    pool: None,
                    zone: None,
                    machine: Some("image=- flavor=-".into()),
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
                certificates: Default::default(),
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
}
