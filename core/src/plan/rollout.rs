//! Rollout: a group whose machines changed (its [`Group::machine`] is not
//! what its nodes recorded) is replaced node by node, the managers first,
//! then each pool in the spec's order, one group at a time, as Cluster
//! API's MachineDeployment rolling update and KubeadmControlPlane rollout:
//! up to `max_surge` new nodes beyond the group's count are added; an old
//! node is retired only while at least `count - max_unavailable` of the
//! group stay healthy (so with the defaults only after a new one joined);
//! managers one at a time. A new node not healthy within its startup
//! timeout halts the rollout: it is kept (not replaced) for a person to
//! look at, the old nodes stay and serve, a reason says why. A paused
//! rollout adds and retires nothing for itself. Its state is the records
//! (each node's machine) and the spec, so any later run, after a kill -9
//! of the one before, goes on from where it stands.

use provision_provider::Role;

use super::zones::placed;
use super::{Decisions, Inputs, NodeView};
use crate::health::is_due;
use crate::spec::{only_version_differs, same_machine, ClusterSpec, Group, RolloutPolicy};
use crate::state::Reason;

/// Whether the node's machine is not what its group now makes (a node of
/// a pool since removed is not: it leaves anyway).
pub(super) fn outdated(spec: &ClusterSpec, v: &NodeView) -> bool {
    let Some(machine) = v.record.machine.as_deref() else {
        return false;
    };
    spec.group(v.role(), v.record.pool.as_deref())
        .is_some_and(|g| !same_machine(machine, &g.machine()))
}

/// Whether a group's outdated nodes are upgraded in place: control-plane
/// nodes that differ from `machine` only in their Kubernetes version.
fn upgrades_in_place<'a>(
    g: &Group,
    machine: &str,
    mut outdated: impl Iterator<Item = &'a crate::state::NodeRecord>,
) -> bool {
    g.role == Role::Manager
        && outdated.all(|r| {
            r.machine
                .as_deref()
                .is_some_and(|m| only_version_differs(m, machine))
        })
}

/// Seconds after which a moving rollout is looked at again.
const ROLLOUT_LOOK_S: i64 = 5;

/// The group being rolled out this pass, if any.
pub(super) struct Rollout {
    group: Option<Rolling>,
}

struct Rolling {
    label: String,
    role: Role,
    pool: Option<String>,
    count: u32,
    machine: String,
    policy: RolloutPolicy,
    /// A new node not healthy within its startup timeout, and why.
    halted_by: Option<String>,
    paused: bool,
    /// Control-plane nodes that differ only in their Kubernetes version:
    /// upgraded in place, one at a time (kubeadm's upgrade), not replaced.
    in_place: bool,
}

impl Rolling {
    fn holds(&self, v: &NodeView) -> bool {
        v.role() == self.role && v.record.pool == self.pool
    }
}

impl Rollout {
    /// The first group, in order, with an outdated node among `active`.
    pub(super) fn of(input: &Inputs, active: &[&NodeView]) -> Rollout {
        let spec = input.spec;
        let group = spec.groups().into_iter().find_map(|g: Group| {
            let mut members = active
                .iter()
                .filter(|v| g.holds(v.role(), v.record.pool.as_deref()));
            if !members.any(|v| outdated(spec, v)) {
                return None;
            }
            let machine = g.machine();
            let halted_by = active
                .iter()
                .filter(|v| g.holds(v.role(), v.record.pool.as_deref()))
                .find(|v| {
                    v.record
                        .machine
                        .as_deref()
                        .is_some_and(|m| same_machine(m, &machine))
                        && !v.ever_joined()
                        && !v.condition.is_healthy()
                        && is_due(&spec.health, v.record, &v.condition, input.now)
                })
                .map(|v| v.name().to_string());
            let in_place = upgrades_in_place(
                &g,
                &machine,
                active
                    .iter()
                    .filter(|v| g.holds(v.role(), v.record.pool.as_deref()))
                    .filter(|v| outdated(spec, v))
                    .map(|v| v.record),
            );
            Some(Rolling {
                in_place,
                label: g.label().to_string(),
                role: g.role,
                pool: g.pool.map(str::to_string),
                count: g.count,
                machine,
                policy: spec.rollout_policy(&g),
                halted_by,
                paused: spec.change.as_ref().is_some_and(|c| c.paused),
            })
        });
        Rollout { group }
    }

    /// A new node that halted the rollout: kept as it is, not replaced.
    pub(super) fn keeps(&self, v: &NodeView) -> bool {
        self.group
            .as_ref()
            .is_some_and(|g| g.halted_by.as_deref() == Some(v.name()))
    }

    /// Whether the control plane is being upgraded in place: workers are
    /// not added meanwhile, as they would install the new version and a
    /// kubelet must not be newer than an API server it talks to (the
    /// version skew policy).
    pub(super) fn upgrades_control_plane(&self) -> bool {
        self.group
            .as_ref()
            .is_some_and(|g| g.in_place && !g.paused && g.halted_by.is_none())
    }

    /// Whether the group of `role` and `pool` is the one rolling.
    pub(super) fn rolls(&self, role: Role, pool: Option<&str>) -> bool {
        self.group
            .as_ref()
            .is_some_and(|g| g.role == role && g.pool.as_deref() == pool)
    }

    /// How many nodes the group of `role` and `pool` may have beyond its
    /// count: its surge while it rolls (none for a group of no nodes), and
    /// none to add while it is paused or halted.
    pub(super) fn surge(&self, role: Role, pool: Option<&str>, adding: bool) -> u32 {
        match &self.group {
            Some(g)
                if g.role == role && g.pool.as_deref() == pool && g.count > 0 && !g.in_place =>
            {
                let moving = !g.paused && g.halted_by.is_none();
                if adding && !moving {
                    0
                } else {
                    g.policy.max_surge
                }
            }
            _ => 0,
        }
    }

    /// Retires the rolling group's outdated nodes as far as its policy
    /// lets (the unhealthy first, then from the fullest zone, the highest
    /// index; a manager only when no other is leaving and the rest run
    /// with the current managers); notes a pause or a halt.
    pub(super) fn retire_outdated(
        &self,
        input: &Inputs,
        active: &[&NodeView],
        managers_stale: bool,
        d: &mut Decisions,
    ) {
        let Some(g) = &self.group else {
            return;
        };
        if g.paused {
            d.plan.notes.push(Reason::RolloutPaused {
                group: g.label.clone(),
            });
            return;
        }
        if let Some(node) = &g.halted_by {
            d.plan.stalled.push(node.clone());
            d.plan.notes.push(Reason::RolloutHalted {
                node: node.clone(),
                group: g.label.clone(),
                machine: g.machine.clone(),
                waited_s: input.spec.health.startup_timeout.as_secs(),
            });
            return;
        }
        // Moving: the next look comes soon, not a daemon's interval on.
        d.plan.rolling = true;
        let soon = input.now + ROLLOUT_LOOK_S;
        d.plan.next_look = Some(d.plan.next_look.map_or(soon, |at| at.min(soon)));
        let members: Vec<&NodeView> = active
            .iter()
            .copied()
            .filter(|v| g.holds(v) && !d.retire.contains_key(v.name()))
            .collect();
        if g.in_place {
            return upgrade_next(input, g, &members, managers_stale, d);
        }
        // Counted only as the orchestrator lists them Ready: a node that
        // has just joined may not be yet, and an old one retired on its
        // word would leave fewer Ready than the policy allows.
        let healthy = members
            .iter()
            .filter(|v| v.condition.is_healthy() && v.member.is_some_and(|m| m.ready))
            .count();
        let floor = g.count.saturating_sub(g.policy.max_unavailable) as usize;
        let mut allowed = healthy.saturating_sub(floor);
        let fill = placed(members.iter().copied());
        let mut old: Vec<&NodeView> = members
            .iter()
            .copied()
            .filter(|v| outdated(input.spec, v))
            .collect();
        old.sort_by_key(|v| {
            let zone_fill = v.record.zone.as_ref().and_then(|z| fill.get(z)).copied();
            std::cmp::Reverse((!v.condition.is_healthy(), zone_fill, v.record.index))
        });
        for v in old {
            if v.condition.is_healthy() {
                if allowed == 0 {
                    break;
                }
                allowed -= 1;
            }
            if g.role == Role::Manager {
                if d.manager_turn_taken || managers_stale {
                    d.plan.notes.push(Reason::ManagersLeaveOneAtATime);
                    break;
                }
                d.manager_turn_taken = true;
            }
            d.retire.insert(
                v.name().to_string(),
                format!("rollout: its group's machines are now {}", g.machine),
            );
        }
    }
}

/// The next control-plane node upgraded in place: one a pass, only while
/// every one is healthy, none is leaving and none runs with stale managers,
/// so the quorum never loses two members; the lowest index first.
fn upgrade_next(
    input: &Inputs,
    g: &Rolling,
    members: &[&NodeView],
    managers_stale: bool,
    d: &mut Decisions,
) {
    if d.manager_turn_taken || managers_stale || !members.iter().all(|v| v.condition.is_healthy()) {
        d.plan.notes.push(Reason::UpgradeOneAtATime);
        return;
    }
    let next = members
        .iter()
        .filter(|v| outdated(input.spec, v) && !v.backing_off(input.now))
        .min_by_key(|v| v.record.index);
    if let Some(v) = next {
        d.manager_turn_taken = true;
        d.steps.push(super::Action::Upgrade {
            node: v.name().to_string(),
            machine: g.machine.clone(),
        });
    }
}

/// Where a group's rollout stands, for `provision rollout NAME status`
/// and a dry run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupRollout {
    /// `managers`, `workers`, or the pool's name.
    pub group: String,
    /// What its machines are now made of.
    pub machine: String,
    /// Its nodes made so, not leaving.
    pub current: usize,
    /// Its nodes made otherwise, in the order they are replaced (the
    /// highest index first, as the planner takes the healthy ones) or
    /// upgraded in place (the lowest first).
    pub outdated: Vec<String>,
    /// Control-plane nodes that differ only in their Kubernetes version:
    /// upgraded in place, not replaced.
    pub in_place: bool,
}

/// Each group with a node to replace, in the order they are rolled out
/// (the managers first, then the pools as the spec lists them).
pub fn pending(spec: &ClusterSpec, records: &[crate::state::NodeRecord]) -> Vec<GroupRollout> {
    spec.groups()
        .iter()
        .filter_map(|g| {
            let machine = g.machine();
            let members: Vec<&crate::state::NodeRecord> = records
                .iter()
                .filter(|r| !r.retiring && g.holds(r.role, r.pool.as_deref()))
                .collect();
            let mut outdated: Vec<&crate::state::NodeRecord> = members
                .iter()
                .copied()
                .filter(|r| {
                    r.machine
                        .as_deref()
                        .is_some_and(|m| !same_machine(m, &machine))
                })
                .collect();
            if outdated.is_empty() {
                return None;
            }
            let in_place = upgrades_in_place(g, &machine, outdated.iter().copied());
            if in_place {
                outdated.sort_by_key(|r| r.index);
            } else {
                outdated.sort_by_key(|r| std::cmp::Reverse(r.index));
            }
            Some(GroupRollout {
                in_place,
                group: g.label().to_string(),
                current: members.len() - outdated.len(),
                outdated: outdated.iter().map(|r| r.name.clone()).collect(),
                machine,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::*;
    use crate::spec::{Change, RolloutPolicy};
    use crate::state::NodePhase;

    const OLD: &str = "image=- flavor=-";
    const NEW: &str = "image=- flavor=m1.medium";

    /// A converged cluster whose every node was made from OLD, and a spec
    /// whose workers (`workers_only`) or all nodes now make NEW.
    fn changed(
        managers: u32,
        workers: u32,
        workers_only: bool,
    ) -> (ClusterSpec, Vec<NodeRecord>, Observed) {
        let (mut records, observed) = converged(managers, workers);
        for r in &mut records {
            r.machine = Some(OLD.into());
        }
        let mut s = spec(managers, workers);
        if workers_only {
            s.pools = vec![crate::spec::Pool {
                name: "small".into(),
                count: 0,
                flavor: None,
                image: None,
                zones: Vec::new(),
                labels: Default::default(),
                taints: Vec::new(),
                rollout: None,
            }];
        }
        let before = s.machines();
        s.flavor = Some("m1.medium".into());
        if workers_only {
            // The managers keep theirs: only the default workers change.
            for r in records.iter_mut().filter(|r| r.role == Role::Manager) {
                r.machine = Some(NEW.into());
            }
        }
        s.change_machines_from(before);
        (s, records, observed)
    }

    /// A new node that joined: recorded with NEW, its machine running.
    fn join_new(records: &mut Vec<NodeRecord>, observed: &mut Observed, role: Role, index: u32) {
        add_joined(records, observed, role, index).machine = Some(NEW.into());
    }

    fn forget(records: &mut Vec<NodeRecord>, observed: &mut Observed, node: &str) {
        records.retain(|r| r.name != node);
        observed.machines.retain(|m| m.node != node);
        observed.probes.remove(node);
        observed
            .members
            .as_mut()
            .unwrap()
            .retain(|m| m.hostname != node);
    }

    fn machine_of<'a>(p: &'a Plan, node: &str) -> Option<&'a str> {
        p.changes.iter().find_map(|a| match a {
            Action::AddNode {
                node: n, machine, ..
            } if n == node => machine.as_deref(),
            _ => None,
        })
    }

    #[test]
    fn workers_are_replaced_one_at_a_time_a_new_one_joined_first() {
        let (s, mut records, mut observed) = changed(1, 2, true);
        // A new node first; nothing retired while only the old two serve.
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(added(&p), ["web-worker-3"]);
        assert_eq!(machine_of(&p, "web-worker-3"), Some(NEW));
        assert!(retired(&p).is_empty(), "{:?}", p.describe());
        // It joined: the highest old one goes, and nothing more is added
        // while it leaves (the surge is in use). Not before the
        // orchestrator lists the new one Ready.
        join_new(&mut records, &mut observed, Role::Worker, 3);
        let mut unlisted = observed.clone();
        unlisted
            .members
            .as_mut()
            .unwrap()
            .retain(|m| m.hostname != "web-worker-3");
        let p = plan(&s, &records, &unlisted, NOW);
        assert!(retired(&p).is_empty(), "{:?}", p.describe());
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(
            retired(&p),
            [(
                "web-worker-2",
                "rollout: its group's machines are now image=- flavor=m1.medium"
            )]
        );
        assert!(added(&p).is_empty(), "{:?}", p.describe());
        // Gone: the next new one, then the last old one goes.
        forget(&mut records, &mut observed, "web-worker-2");
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(added(&p), ["web-worker-2"]);
        assert_eq!(machine_of(&p, "web-worker-2"), Some(NEW));
        join_new(&mut records, &mut observed, Role::Worker, 2);
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(
            retired(&p).iter().map(|r| r.0).collect::<Vec<_>>(),
            ["web-worker-1"]
        );
        forget(&mut records, &mut observed, "web-worker-1");
        let p = plan(&s, &records, &observed, NOW);
        assert!(p.is_empty(), "done: {:?}", p.describe());
    }

    #[test]
    fn the_managers_go_first_and_the_workers_wait() {
        let (s, mut records, mut observed) = changed(3, 2, false);
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(added(&p), ["web-manager-4"], "{:?}", p.describe());
        join_new(&mut records, &mut observed, Role::Manager, 4);
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(
            retired(&p).iter().map(|r| r.0).collect::<Vec<_>>(),
            ["web-manager-3"]
        );
        assert!(added(&p).is_empty(), "{:?}", p.describe());
    }

    #[test]
    fn a_kubernetes_version_rolls_the_control_plane_first() {
        let (mut records, observed) = converged(3, 2);
        let mut s = spec(3, 2);
        s.coe = crate::spec::Coe::Kubernetes;
        s.kubernetes = Some(Default::default());
        s.kubernetes.as_mut().unwrap().version = "1.30".into();
        // Nodes recorded before the version was: not outdated by it.
        for r in &mut records {
            r.machine = Some(OLD.into());
        }
        assert!(plan(&s, &records, &observed, NOW).is_empty());
        for r in &mut records {
            r.machine = Some(format!("{OLD} kubernetes=1.30"));
        }
        let before = s.machines();
        s.kubernetes.as_mut().unwrap().version = "1.31".into();
        s.change_machines_from(before);
        let order = super::pending(&s, &records);
        assert_eq!(
            order.iter().map(|g| g.group.as_str()).collect::<Vec<_>>(),
            ["managers", "workers"]
        );
        // The control plane in place, one node a pass, the lowest first;
        // nothing added or retired for it, the workers wait.
        let upgraded = |p: &Plan| -> Vec<String> {
            p.nodes
                .iter()
                .flat_map(|n| n.steps.iter())
                .filter_map(|a| match a {
                    Action::Upgrade { node, machine } => {
                        assert_eq!(machine, "image=- flavor=- kubernetes=1.31");
                        Some(node.clone())
                    }
                    _ => None,
                })
                .collect()
        };
        const V31: &str = "image=- flavor=- kubernetes=1.31";
        // A worker to add meanwhile waits: it would install 1.31 while
        // API servers still run 1.30.
        let mut fewer = records.clone();
        fewer.retain(|r| r.name != "web-worker-2");
        let mut observed_fewer = observed.clone();
        observed_fewer.machines.retain(|m| m.node != "web-worker-2");
        let p = plan(&s, &fewer, &observed_fewer, NOW);
        assert!(added(&p).is_empty(), "{:?}", p.describe());
        assert!(
            p.notes.contains(&Reason::WorkersWaitForControlPlane),
            "{:?}",
            p.notes
        );
        for (i, node) in ["web-manager-1", "web-manager-2", "web-manager-3"]
            .iter()
            .enumerate()
        {
            let p = plan(&s, &records, &observed, NOW);
            assert_eq!(upgraded(&p), [*node], "{:?}", p.describe());
            assert!(
                added(&p).is_empty() && retired(&p).is_empty(),
                "{:?}",
                p.describe()
            );
            assert!(p.rolling);
            records[i].machine = Some(V31.into());
        }
        // Then the workers are replaced by nodes of the new version.
        let p = plan(&s, &records, &observed, NOW);
        assert!(upgraded(&p).is_empty());
        assert_eq!(added(&p), ["web-worker-3"], "{:?}", p.describe());
        assert_eq!(machine_of(&p, "web-worker-3"), Some(V31));
        // An unhealthy control-plane node holds the next upgrade.
        records[0].machine = Some(format!("{OLD} kubernetes=1.30"));
        records[1].machine = Some(format!("{OLD} kubernetes=1.30"));
        let mut observed = observed.clone();
        observed.machines[2].state =
            provision_provider::MachineState::Error("no valid host".into());
        let p = plan(&s, &records, &observed, NOW);
        assert!(upgraded(&p).is_empty(), "{:?}", p.describe());
        assert!(
            p.notes.contains(&Reason::UpgradeOneAtATime),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn a_new_node_not_healthy_in_time_halts_the_rollout_and_undo_takes_it_away() {
        let (mut s, mut records, observed) = changed(1, 2, true);
        let mut new = record(Role::Worker, 3, None);
        new.machine = Some(NEW.into());
        new.phase = NodePhase::Installing;
        new.machine_created_at = Some(NOW - s.health.startup_timeout.as_secs() as i64 - 1);
        records.push(new);
        let p = plan(&s, &records, &observed, NOW);
        assert!(
            retired(&p).is_empty(),
            "kept, old and new: {:?}",
            p.describe()
        );
        assert!(added(&p).is_empty(), "{:?}", p.describe());
        assert_eq!(p.stalled, ["web-worker-3"]);
        assert!(
            noted(
                &p,
                "the rollout of the workers halted: new node web-worker-3"
            ),
            "{:?}",
            p.notes
        );
        // Undo: the old machines again; the new node is the odd one out.
        let before = s.change.clone().unwrap().before;
        s.set_machines(&before);
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(
            retired(&p).iter().map(|r| r.0).collect::<Vec<_>>(),
            ["web-worker-3"]
        );
        // (The managers, rolled already, go back first.)
        assert_eq!(added(&p), ["web-manager-2"], "{:?}", p.describe());
        assert_eq!(machine_of(&p, "web-manager-2"), Some(OLD));
    }

    #[test]
    fn pending_lists_the_groups_in_order_with_their_old_nodes() {
        let (s, records, _) = changed(3, 2, false);
        let order = super::pending(&s, &records);
        assert_eq!(
            order
                .iter()
                .map(|g| (g.group.as_str(), g.outdated.clone()))
                .collect::<Vec<_>>(),
            [
                (
                    "managers",
                    vec![
                        "web-manager-3".to_string(),
                        "web-manager-2".into(),
                        "web-manager-1".into()
                    ]
                ),
                (
                    "workers",
                    vec!["web-worker-2".into(), "web-worker-1".into()]
                )
            ]
        );
        assert_eq!(order[0].machine, NEW);
    }

    #[test]
    fn a_paused_rollout_adds_and_retires_nothing() {
        let (mut s, mut records, mut observed) = changed(1, 2, true);
        s.change = Some(Change {
            paused: true,
            ..s.change.clone().unwrap()
        });
        let p = plan(&s, &records, &observed, NOW);
        assert!(p.is_empty(), "{:?}", p.describe());
        assert!(noted(&p, "is paused"));
        // A surge node made before the pause stays.
        join_new(&mut records, &mut observed, Role::Worker, 3);
        let p = plan(&s, &records, &observed, NOW);
        assert!(p.is_empty(), "{:?}", p.describe());
    }

    #[test]
    fn without_surge_an_old_node_goes_first() {
        let (mut s, records, observed) = changed(1, 2, true);
        s.rollout = RolloutPolicy {
            max_surge: 0,
            max_unavailable: 1,
        };
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(
            retired(&p).iter().map(|r| r.0).collect::<Vec<_>>(),
            ["web-worker-2"]
        );
        assert!(added(&p).is_empty(), "{:?}", p.describe());
    }
}
