//! The planner: a pure function from desired and observed state to actions.
//!
//! No I/O and no clock reads happen here, so every situation the controller
//! can meet is a unit test below.

use std::collections::{BTreeMap, BTreeSet};

use provision_provider::{Machine, MachineState, Role};

use crate::orchestrator::{Member, NodeProbe};
use crate::spec::{node_name, ClusterSpec};
use crate::state::NodeRecord;

/// What one SSH probe of a node found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// SSH did not answer, or the probe script failed.
    Unreachable(String),
    Reached(NodeProbe),
}

/// Everything one observation found.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The cloud's machines carrying the cluster id (one list call).
    pub machines: Vec<Machine>,
    /// Per-node probe results, by node name; only running machines are probed.
    pub probes: BTreeMap<String, Probe>,
    /// Membership as a manager lists it; `None` when no manager answered.
    pub members: Option<Vec<Member>>,
}

/// One step the actor takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Record a new node (before anything is created for it).
    AddNode {
        node: String,
        role: Role,
        index: u32,
    },
    /// Create the node's machine, or start it if it exists but does not run.
    CreateMachine { node: String, role: Role },
    /// Wait for SSH and install the container engine.
    Bootstrap { node: String },
    /// Create the orchestrator cluster on this first manager.
    InitCluster { node: String },
    /// Join the node to the orchestrator cluster.
    Join { node: String, role: Role },
    /// Remove a stale entry from the orchestrator's membership.
    RemoveMember { member: Member },
    /// Delete a machine that is not wanted (surplus, failed, or unknown).
    DeleteMachine { node: String, machine_id: String },
    /// Drop the record of a node that is no longer wanted.
    ForgetNode { node: String },
}

/// The actions of one reconcile pass, in the order they are to start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Manager that joins go through: one that already has control, or the
    /// one being initialised in this pass.
    pub join_via: Option<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Human-readable lines, one an action, for `--dry-run` and logs.
    pub fn describe(&self) -> Vec<String> {
        self.actions
            .iter()
            .map(|a| match a {
                Action::AddNode { node, role, .. } => format!("add {role} {node}"),
                Action::CreateMachine { node, .. } => format!("create machine for {node}"),
                Action::Bootstrap { node } => format!("bootstrap {node} (SSH, install)"),
                Action::InitCluster { node } => format!("initialise the cluster on {node}"),
                Action::Join { node, role } => format!("join {node} as {role}"),
                Action::RemoveMember { member } => {
                    format!("remove stale member {} ({})", member.hostname, member.id)
                }
                Action::DeleteMachine { node, machine_id } => {
                    format!("delete machine {machine_id} of {node}")
                }
                Action::ForgetNode { node } => format!("forget node {node}"),
            })
            .collect()
    }
}

/// The nodes the spec wants, sorted out from the records.
struct Desired<'a> {
    /// Existing records the spec keeps (lowest indices first).
    kept: Vec<&'a NodeRecord>,
    /// Nodes to add: name, role, index (lowest free index).
    new: Vec<(String, Role, u32)>,
    /// Records beyond the spec's counts.
    surplus: Vec<&'a NodeRecord>,
}

fn desired_nodes<'a>(spec: &ClusterSpec, records: &'a [NodeRecord]) -> Desired<'a> {
    let mut d = Desired {
        kept: Vec::new(),
        new: Vec::new(),
        surplus: Vec::new(),
    };
    for role in [Role::Manager, Role::Worker] {
        let mut of_role: Vec<&NodeRecord> = records.iter().filter(|r| r.role == role).collect();
        of_role.sort_by_key(|r| r.index);
        let want = spec.count(role) as usize;
        let used: BTreeSet<u32> = of_role.iter().map(|r| r.index).collect();
        let have = of_role.len().min(want);
        for (i, r) in of_role.into_iter().enumerate() {
            if i < want {
                d.kept.push(r);
            } else {
                d.surplus.push(r);
            }
        }
        let mut index = 1;
        for _ in have..want {
            while used.contains(&index) {
                index += 1;
            }
            d.new
                .push((node_name(&spec.name, role, index), role, index));
            index += 1;
        }
    }
    d
}

/// Plans one reconcile pass.
pub fn plan(spec: &ClusterSpec, records: &[NodeRecord], observed: &Observed) -> Plan {
    let Desired { kept, new, surplus } = desired_nodes(spec, records);
    let machines: BTreeMap<&str, &Machine> = observed
        .machines
        .iter()
        .map(|m| (m.node.as_str(), m))
        .collect();
    let reached = |node: &str| match observed.probes.get(node) {
        Some(Probe::Reached(p)) => Some(p),
        _ => None,
    };

    // The cluster exists when a node says it manages one, or a manager listed members.
    let controller = kept
        .iter()
        .filter(|r| r.role == Role::Manager)
        .find(|r| reached(&r.name).is_some_and(|p| p.control))
        .map(|r| r.name.clone());
    let cluster_exists =
        controller.is_some() || observed.members.as_ref().is_some_and(|m| !m.is_empty());
    // Without a cluster, it is created on the first manager by index: always
    // the same node, so an interrupted init is finished, never repeated elsewhere.
    let init_node = if cluster_exists {
        None
    } else {
        let first_kept = kept
            .iter()
            .filter(|r| r.role == Role::Manager)
            .map(|r| (r.index, r.name.clone()))
            .min();
        let first_new = new
            .iter()
            .filter(|(_, role, _)| *role == Role::Manager)
            .map(|(name, _, index)| (*index, name.clone()))
            .min();
        match (first_kept, first_new) {
            (Some(a), Some(b)) => Some(a.min(b).1),
            (a, b) => a.or(b).map(|(_, n)| n),
        }
    };

    let mut actions = Vec::new();
    let mut node_steps = Vec::new();

    // Stale members first: entries of machines that are gone, or of surplus nodes.
    let mut live_ids = BTreeSet::new();
    for r in &kept {
        if let Some(p) = reached(&r.name) {
            if let Some(id) = &p.member_id {
                live_ids.insert(id.clone());
            }
        } else if machines.contains_key(r.name.as_str()) {
            // Unreachable but still there: its last known id is not stale yet.
            if let Some(id) = &r.member_id {
                live_ids.insert(id.clone());
            }
        }
    }
    let surplus_names: BTreeSet<&str> = surplus.iter().map(|r| r.name.as_str()).collect();
    if let Some(members) = &observed.members {
        for m in members {
            let of_surplus = surplus_names.contains(m.hostname.as_str());
            if !live_ids.contains(&m.id) && (!m.ready || of_surplus) {
                actions.push(Action::RemoveMember { member: m.clone() });
            }
        }
    }

    // Surplus nodes and machines nobody recorded go.
    for r in &surplus {
        if let Some(m) = machines.get(r.name.as_str()) {
            actions.push(Action::DeleteMachine {
                node: r.name.clone(),
                machine_id: m.id.clone(),
            });
        }
        actions.push(Action::ForgetNode {
            node: r.name.clone(),
        });
    }
    let recorded: BTreeSet<&str> = records.iter().map(|r| r.name.as_str()).collect();
    for m in &observed.machines {
        if !recorded.contains(m.node.as_str()) {
            actions.push(Action::DeleteMachine {
                node: m.node.clone(),
                machine_id: m.id.clone(),
            });
        }
    }

    let join_chain = |node: &str, role: Role, steps: &mut Vec<Action>| {
        if init_node.as_deref() == Some(node) {
            steps.push(Action::InitCluster {
                node: node.to_string(),
            });
        } else {
            steps.push(Action::Join {
                node: node.to_string(),
                role,
            });
        }
    };

    for (name, role, index) in &new {
        actions.push(Action::AddNode {
            node: name.clone(),
            role: *role,
            index: *index,
        });
        node_steps.push(Action::CreateMachine {
            node: name.clone(),
            role: *role,
        });
        node_steps.push(Action::Bootstrap { node: name.clone() });
        join_chain(name, *role, &mut node_steps);
    }

    for r in &kept {
        let name = r.name.as_str();
        match machines.get(name) {
            // Missing, stopped, or created but never started (a run killed
            // between create and start): create_machine finds and starts it.
            None
            | Some(Machine {
                state: MachineState::Stopped | MachineState::Pending,
                ..
            }) => {
                node_steps.push(Action::CreateMachine {
                    node: r.name.clone(),
                    role: r.role,
                });
                node_steps.push(Action::Bootstrap {
                    node: r.name.clone(),
                });
                join_chain(name, r.role, &mut node_steps);
            }
            Some(Machine {
                state: MachineState::Error(_),
                id,
                ..
            }) => {
                actions.push(Action::DeleteMachine {
                    node: r.name.clone(),
                    machine_id: id.clone(),
                });
                node_steps.push(Action::CreateMachine {
                    node: r.name.clone(),
                    role: r.role,
                });
                node_steps.push(Action::Bootstrap {
                    node: r.name.clone(),
                });
                join_chain(name, r.role, &mut node_steps);
            }
            Some(_) => match reached(name) {
                Some(p) if p.joined => {}
                Some(p) if p.engine_running => join_chain(name, r.role, &mut node_steps),
                _ => {
                    node_steps.push(Action::Bootstrap {
                        node: r.name.clone(),
                    });
                    join_chain(name, r.role, &mut node_steps);
                }
            },
        }
    }

    actions.extend(node_steps);
    let join_via = init_node.or(controller).filter(|_| {
        actions
            .iter()
            .any(|a| matches!(a, Action::Join { .. } | Action::InitCluster { .. }))
    });
    Plan { actions, join_via }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Cloud, Coe, Timeouts};
    use crate::state::NodePhase;

    fn spec(managers: u32, workers: u32) -> ClusterSpec {
        ClusterSpec {
            name: "web".into(),
            coe: Coe::Swarm,
            cloud: Cloud::Local,
            managers,
            workers,
            image: None,
            flavor: None,
            ssh_user: "root".into(),
            timeouts: Timeouts::default(),
        }
    }

    fn record(role: Role, index: u32, member: Option<&str>) -> NodeRecord {
        let mut r = NodeRecord::new("web", &node_name("web", role, index), role, index);
        r.member_id = member.map(str::to_string);
        r.phase = if member.is_some() {
            NodePhase::Ready
        } else {
            NodePhase::Creating
        };
        r
    }

    fn machine(role: Role, index: u32, state: MachineState) -> Machine {
        Machine {
            id: format!("id-{}-{index}", role.as_str()),
            node: node_name("web", role, index),
            role,
            state,
            address: Some(format!("10.0.0.{index}")),
        }
    }

    fn joined(id: &str, control: bool) -> Probe {
        Probe::Reached(NodeProbe {
            engine_running: true,
            joined: true,
            member_id: Some(id.into()),
            control,
        })
    }

    fn fresh() -> Probe {
        Probe::Reached(NodeProbe {
            engine_running: true,
            joined: false,
            member_id: None,
            control: false,
        })
    }

    fn member(id: &str, host: &str, role: Role, ready: bool) -> Member {
        Member {
            id: id.into(),
            hostname: host.into(),
            role,
            ready,
            status: if ready { "Ready".into() } else { "Down".into() },
        }
    }

    /// A converged 1+2 cluster: records, running machines, probes, members.
    fn converged() -> (Vec<NodeRecord>, Observed) {
        let records = vec![
            record(Role::Manager, 1, Some("m1")),
            record(Role::Worker, 1, Some("w1")),
            record(Role::Worker, 2, Some("w2")),
        ];
        let observed = Observed {
            machines: vec![
                machine(Role::Manager, 1, MachineState::Running),
                machine(Role::Worker, 1, MachineState::Running),
                machine(Role::Worker, 2, MachineState::Running),
            ],
            probes: BTreeMap::from([
                ("web-manager-1".into(), joined("m1", true)),
                ("web-worker-1".into(), joined("w1", false)),
                ("web-worker-2".into(), joined("w2", false)),
            ]),
            members: Some(vec![
                member("m1", "web-manager-1", Role::Manager, true),
                member("w1", "web-worker-1", Role::Worker, true),
                member("w2", "web-worker-2", Role::Worker, true),
            ]),
        };
        (records, observed)
    }

    #[test]
    fn from_nothing_every_node_is_added_created_bootstrapped_and_joined() {
        let p = plan(&spec(1, 2), &[], &Observed::default());
        assert_eq!(
            p.actions,
            vec![
                Action::AddNode {
                    node: "web-manager-1".into(),
                    role: Role::Manager,
                    index: 1
                },
                Action::AddNode {
                    node: "web-worker-1".into(),
                    role: Role::Worker,
                    index: 1
                },
                Action::AddNode {
                    node: "web-worker-2".into(),
                    role: Role::Worker,
                    index: 2
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
    }

    #[test]
    fn from_nothing_with_three_managers_only_the_first_initialises() {
        let p = plan(&spec(3, 0), &[], &Observed::default());
        let inits: Vec<_> = p
            .actions
            .iter()
            .filter(|a| matches!(a, Action::InitCluster { .. }))
            .collect();
        assert_eq!(
            inits,
            vec![&Action::InitCluster {
                node: "web-manager-1".into()
            }]
        );
        assert!(p.actions.contains(&Action::Join {
            node: "web-manager-2".into(),
            role: Role::Manager
        }));
        assert!(p.actions.contains(&Action::Join {
            node: "web-manager-3".into(),
            role: Role::Manager
        }));
    }

    #[test]
    fn nothing_to_do_when_converged() {
        let (records, observed) = converged();
        let p = plan(&spec(1, 2), &records, &observed);
        assert!(p.is_empty(), "{:?}", p.describe());
        assert_eq!(p.join_via, None);
    }

    #[test]
    fn recorded_nodes_without_machines_are_created_not_added_again() {
        // A crash after the records were written, before any machine existed.
        let records = vec![
            record(Role::Manager, 1, None),
            record(Role::Worker, 1, None),
            record(Role::Worker, 2, None),
        ];
        let p = plan(&spec(1, 2), &records, &Observed::default());
        assert!(!p
            .actions
            .iter()
            .any(|a| matches!(a, Action::AddNode { .. })));
        let creates = p
            .actions
            .iter()
            .filter(|a| matches!(a, Action::CreateMachine { .. }))
            .count();
        assert_eq!(creates, 3);
    }

    #[test]
    fn machines_exist_but_some_never_joined() {
        let (mut records, mut observed) = converged();
        // worker-2 was created and installed, but the run died before its join.
        records[2].member_id = None;
        observed.probes.insert("web-worker-2".into(), fresh());
        observed.members.as_mut().unwrap().retain(|m| m.id != "w2");
        // worker-1's machine exists but never answered SSH (crash during boot).
        observed.probes.insert(
            "web-worker-1".into(),
            Probe::Unreachable("connection refused".into()),
        );
        let p = plan(&spec(1, 2), &records, &observed);
        assert_eq!(
            p.actions,
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
        };
        let p = plan(&spec(1, 1), &records, &observed);
        assert_eq!(
            p.actions,
            vec![Action::Join {
                node: "web-worker-1".into(),
                role: Role::Worker
            }]
        );
    }

    #[test]
    fn a_vanished_worker_is_recreated_and_its_stale_member_removed() {
        let (records, mut observed) = converged();
        observed.machines.retain(|m| m.node != "web-worker-2");
        observed.probes.remove("web-worker-2");
        observed.members.as_mut().unwrap()[2] = member("w2", "web-worker-2", Role::Worker, false);
        let p = plan(&spec(1, 2), &records, &observed);
        assert_eq!(
            p.actions,
            vec![
                Action::RemoveMember {
                    member: member("w2", "web-worker-2", Role::Worker, false)
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
    }

    #[test]
    fn a_vanished_member_still_listed_ready_is_left_until_swarm_sees_it_down() {
        // Swarm needs some seconds to mark a dead node Down; removing a Ready
        // node could remove a live one.
        let (records, mut observed) = converged();
        observed.machines.retain(|m| m.node != "web-worker-2");
        observed.probes.remove("web-worker-2");
        let p = plan(&spec(1, 2), &records, &observed);
        assert!(!p
            .actions
            .iter()
            .any(|a| matches!(a, Action::RemoveMember { .. })));
        assert!(p.actions.contains(&Action::CreateMachine {
            node: "web-worker-2".into(),
            role: Role::Worker
        }));
    }

    #[test]
    fn an_unreachable_node_whose_machine_exists_keeps_its_membership() {
        let (records, mut observed) = converged();
        observed
            .probes
            .insert("web-worker-1".into(), Probe::Unreachable("timeout".into()));
        observed.members.as_mut().unwrap()[1].ready = false;
        let p = plan(&spec(1, 2), &records, &observed);
        assert!(!p
            .actions
            .iter()
            .any(|a| matches!(a, Action::RemoveMember { .. })));
    }

    #[test]
    fn a_stopped_machine_is_started_and_a_failed_one_replaced() {
        let (records, mut observed) = converged();
        observed.machines[1].state = MachineState::Stopped;
        observed.probes.remove("web-worker-1");
        observed.machines[2].state = MachineState::Error("no valid host".into());
        observed.probes.remove("web-worker-2");
        let p = plan(&spec(1, 2), &records, &observed);
        assert!(p.actions.contains(&Action::CreateMachine {
            node: "web-worker-1".into(),
            role: Role::Worker
        }));
        assert!(p.actions.contains(&Action::DeleteMachine {
            node: "web-worker-2".into(),
            machine_id: "id-worker-2".into()
        }));
        let delete = p
            .actions
            .iter()
            .position(|a| matches!(a, Action::DeleteMachine { .. }))
            .unwrap();
        let create = p
            .actions
            .iter()
            .position(|a| {
                a == &Action::CreateMachine {
                    node: "web-worker-2".into(),
                    role: Role::Worker,
                }
            })
            .unwrap();
        assert!(delete < create);
    }

    #[test]
    fn a_machine_created_but_never_started_is_started_then_bootstrapped() {
        let records = vec![record(Role::Manager, 1, None)];
        let mut m = machine(Role::Manager, 1, MachineState::Pending);
        m.address = None;
        let observed = Observed {
            machines: vec![m],
            ..Default::default()
        };
        let p = plan(&spec(1, 0), &records, &observed);
        assert_eq!(
            p.actions,
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
    fn surplus_nodes_leave_the_cluster_and_are_deleted() {
        let (records, observed) = converged();
        let p = plan(&spec(1, 1), &records, &observed);
        assert_eq!(
            p.actions,
            vec![
                Action::RemoveMember {
                    member: member("w2", "web-worker-2", Role::Worker, true)
                },
                Action::DeleteMachine {
                    node: "web-worker-2".into(),
                    machine_id: "id-worker-2".into()
                },
                Action::ForgetNode {
                    node: "web-worker-2".into()
                },
            ]
        );
    }

    #[test]
    fn machines_nobody_recorded_are_deleted() {
        let (records, mut observed) = converged();
        observed
            .machines
            .push(machine(Role::Worker, 9, MachineState::Running));
        let p = plan(&spec(1, 2), &records, &observed);
        assert_eq!(
            p.actions,
            vec![Action::DeleteMachine {
                node: "web-worker-9".into(),
                machine_id: "id-worker-9".into()
            }]
        );
    }

    #[test]
    fn new_nodes_take_the_lowest_free_index() {
        let records = vec![
            record(Role::Manager, 1, Some("m1")),
            record(Role::Worker, 2, Some("w2")),
        ];
        let p = plan(&spec(1, 3), &records, &Observed::default());
        let added: Vec<_> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::AddNode { node, .. } => Some(node.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(added, vec!["web-worker-1", "web-worker-3"]);
    }

    #[test]
    fn a_node_whose_engine_is_missing_is_bootstrapped_again() {
        let (records, mut observed) = converged();
        observed.probes.insert(
            "web-worker-1".into(),
            Probe::Reached(NodeProbe {
                engine_running: false,
                joined: false,
                member_id: None,
                control: false,
            }),
        );
        let p = plan(&spec(1, 2), &records, &observed);
        assert_eq!(
            p.actions,
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

    #[test]
    fn joins_go_through_a_manager_with_control() {
        let (mut records, mut observed) = converged();
        records.push(record(Role::Worker, 3, None));
        observed
            .machines
            .push(machine(Role::Worker, 3, MachineState::Running));
        observed.probes.insert("web-worker-3".into(), fresh());
        let p = plan(&spec(1, 3), &records, &observed);
        assert_eq!(p.join_via.as_deref(), Some("web-manager-1"));
    }

    #[test]
    fn describe_has_a_line_per_action() {
        let p = plan(&spec(1, 1), &[], &Observed::default());
        let lines = p.describe();
        assert_eq!(lines.len(), p.actions.len());
        assert_eq!(lines[0], "add manager web-manager-1");
    }
}
