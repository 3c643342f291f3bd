//! Formation: the cluster is initialised once, on the first manager by
//! index, and every new or unfinished node is created, bootstrapped and
//! joined as far as it still needs.

use provision_provider::{MachineState, Role};

use super::scale::NewNode;
use super::{Action, Condition, Decisions, Inputs, NodeView, Observed};

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
                    d.plan.notes.push(format!(
                        "{} is backing off after a failed attempt",
                        v.name()
                    ));
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
