//! Scale: per group (the managers, the default workers, each pool),
//! surplus nodes are retired (the unhealthy first, then from the fullest
//! zone, then the highest index; managers one at a time), and missing ones
//! added at the lowest free index of their group, each in the zone
//! [`Zones`] chooses. A pool the spec no longer has is retired whole.

use std::collections::{BTreeMap, BTreeSet};

use provision_provider::Role;

use super::rollout::{outdated, Rollout};
use super::zones::{placed, Zones};
use super::{Decisions, Inputs, NodeView};
use crate::spec::Group;
use crate::state::Reason;

/// A node this pass adds.
pub(super) struct NewNode {
    pub name: String,
    pub role: Role,
    pub index: u32,
    pub pool: Option<String>,
    pub zone: Option<String>,
    pub machine: String,
}

fn in_group(g: &Group, v: &NodeView) -> bool {
    g.holds(v.role(), v.record.pool.as_deref())
}

/// Scale-in: retires nodes beyond their group's count (and its rollout's
/// surge), outdated ones first, and every node of a pool the spec no
/// longer has. A manager goes only when no other manager is leaving and
/// the running ones have caught up with the last change
/// (`managers_stale`).
pub(super) fn retire_surplus(
    input: &Inputs,
    active: &[&NodeView],
    rollout: &Rollout,
    managers_stale: bool,
    d: &mut Decisions,
) {
    for v in active {
        if let (None, Some(pool)) = (
            input.spec.group(v.role(), v.record.pool.as_deref()),
            v.record.pool.as_deref(),
        ) {
            d.retire
                .entry(v.name().to_string())
                .or_insert_with(|| format!("pool {pool} removed"));
        }
    }
    for g in input.spec.groups() {
        let mut remaining: Vec<&NodeView> = active
            .iter()
            .copied()
            .filter(|v| in_group(&g, v) && !d.retire.contains_key(v.name()))
            .collect();
        let want = (g.count + rollout.surge(g.role, g.pool, false)) as usize;
        while remaining.len() > want {
            let fill = placed(remaining.iter().copied());
            let pick = remaining
                .iter()
                .enumerate()
                .max_by_key(|(_, v)| {
                    let zone_fill = v.record.zone.as_ref().and_then(|z| fill.get(z)).copied();
                    (
                        !v.condition.is_healthy(),
                        outdated(input.spec, v),
                        zone_fill,
                        v.record.index,
                    )
                })
                .map(|(i, _)| i)
                .expect("not empty");
            if g.role == Role::Manager {
                if d.manager_turn_taken || managers_stale {
                    d.plan.notes.push(Reason::ManagersLeaveOneAtATime);
                    break;
                }
                d.manager_turn_taken = true;
            }
            let v = remaining.remove(pick);
            d.retire.insert(v.name().to_string(), "scale in".into());
        }
    }
}

/// Scale-out: the nodes missing from each group's count. New managers wait
/// while the running ones are restarted with a new quorum (Mesos's
/// operational guide, "Increasing the quorum size": restart the running
/// masters with the higher quorum, then start the new ones) and while a
/// dead manager (`dead_manager`) is still in the membership: adding first
/// would make, of 3 managers with 1 dead, 4 voters with 2 alive, and one
/// failed join would lose quorum. A rolling group also gets its surge,
/// less the nodes of it still leaving.
#[allow(clippy::too_many_arguments)]
pub(super) fn add_missing(
    input: &Inputs,
    kept: &[&NodeView],
    views: &[NodeView],
    zones: &Zones,
    rollout: &Rollout,
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
    for g in input.spec.groups() {
        let members: Vec<&NodeView> = kept.iter().copied().filter(|v| in_group(&g, v)).collect();
        let have = members.len();
        // A rolling group counts its nodes still leaving against its
        // surge: with max_surge 0 an old node is gone before a new one comes.
        let want = if rollout.rolls(g.role, g.pool) {
            let leaving = views
                .iter()
                .filter(|v| in_group(&g, v) && d.retiring(v))
                .count() as u32;
            (g.count + rollout.surge(g.role, g.pool, true)).saturating_sub(leaving)
        } else {
            g.count
        } as usize;
        if have >= want {
            continue;
        }
        if g.role == Role::Worker && rollout.upgrades_control_plane() {
            if !d.plan.notes.contains(&Reason::WorkersWaitForControlPlane) {
                d.plan.notes.push(Reason::WorkersWaitForControlPlane);
            }
            continue;
        }
        if g.role == Role::Manager && restart_first {
            d.plan.notes.push(Reason::RestartForNewQuorum);
            continue;
        }
        if let (Role::Manager, Some(dead)) = (g.role, dead_manager) {
            d.plan.notes.push(Reason::DeadManagerRemovedFirst {
                node: dead.to_string(),
            });
            continue;
        }
        for note in zones.notes(g.zones) {
            if !d.plan.notes.contains(&note) {
                d.plan.notes.push(note);
            }
        }
        let used: BTreeSet<u32> = input
            .records
            .iter()
            .filter(|r| g.holds(r.role, r.pool.as_deref()))
            .map(|r| r.index)
            .collect();
        let mut fill: BTreeMap<String, usize> = placed(members.iter().copied());
        let mut index = 1;
        for _ in have..want {
            while used.contains(&index) {
                index += 1;
            }
            let zone = zones.choose(g.zones, &fill);
            if let Some(z) = &zone {
                *fill.entry(z.clone()).or_default() += 1;
            }
            new.push(NewNode {
                name: g.node_name(&input.spec.name, index),
                role: g.role,
                index,
                pool: g.pool.map(str::to_string),
                zone,
                machine: g.machine(),
            });
            index += 1;
        }
    }
    new
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::*;

    #[test]
    fn running_managers_restart_with_the_new_quorum_before_new_ones_start() {
        // Masters wanted 3 → 5: the running ones say they are stale (their
        // quorum is now too low); they restart one a pass, no master is
        // added meanwhile, workers still are.
        let (records, mut observed) = converged(3, 1);
        stale(&mut observed, &["web-manager-2", "web-manager-1"]);
        let p = plan(&spec(5, 2), &records, &observed, NOW);
        assert_eq!(reconfigured(&p), ["web-manager-1"]);
        assert_eq!(added(&p), ["web-worker-2"], "{:?}", p.describe());
        assert!(p.notes.contains(&Reason::RestartForNewQuorum));
        // Once they run with it, the new managers are added.
        let (records, observed) = converged(3, 1);
        let p = plan(&spec(5, 1), &records, &observed, NOW);
        assert_eq!(added(&p), ["web-manager-4", "web-manager-5"]);
        // A stale manager that cannot be restarted (another is down) does
        // not hold up the down one's removal, which goes before its
        // replacement.
        let (mut records, mut observed) = converged(3, 1);
        stale(&mut observed, &["web-manager-1"]);
        lose_machine(&mut records, &mut observed, "web-manager-3");
        let p = plan(&spec(3, 1), &records, &observed, NOW);
        assert!(
            p.actions()
                .iter()
                .any(|a| matches!(a, Action::RemoveMember { node, .. } if node == "web-manager-3")),
            "{:?}",
            p.describe()
        );
        assert!(reconfigured(&p).is_empty(), "{:?}", p.describe());
    }

    #[test]
    fn the_next_manager_leaves_only_after_the_rest_run_with_the_new_quorum() {
        let (records, mut observed) = converged(3, 0);
        stale(&mut observed, &["web-manager-1"]);
        let p = plan(&spec(1, 0), &records, &observed, NOW);
        assert!(
            !p.actions()
                .iter()
                .any(|a| matches!(a, Action::Retire { .. })),
            "{:?}",
            p.describe()
        );
        assert_eq!(reconfigured(&p), ["web-manager-1"]);
        // Once current, the next manager retires.
        let (records, observed) = converged(3, 0);
        let p = plan(&spec(1, 0), &records, &observed, NOW);
        assert!(p
            .actions()
            .iter()
            .any(|a| matches!(a, Action::Retire { .. })));
    }

    #[test]
    fn scale_in_drains_removes_deletes_and_forgets_the_highest_index() {
        let (records, observed) = converged(1, 3);
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert_eq!(
            p.actions(),
            vec![
                Action::Retire {
                    node: "web-worker-3".into(),
                    reason: "scale in".into()
                },
                Action::Drain {
                    node: "web-worker-3".into(),
                    member: member("w3", "web-worker-3", Role::Worker, true)
                },
                Action::RemoveMember {
                    node: "web-worker-3".into(),
                    member: member("w3", "web-worker-3", Role::Worker, true)
                },
                Action::DeleteMachine {
                    node: "web-worker-3".into(),
                    machine_id: "id-worker-3".into()
                },
                Action::ForgetNode {
                    node: "web-worker-3".into()
                },
            ]
        );
    }

    #[test]
    fn scale_in_takes_an_unhealthy_node_first() {
        let (mut records, mut observed) = converged(1, 3);
        observed
            .probes
            .insert("web-worker-1".into(), Probe::Unreachable("x".into()));
        records[1].unhealthy_since = Some(NOW);
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert_eq!(
            p.actions()[0],
            Action::Retire {
                node: "web-worker-1".into(),
                reason: "scale in".into()
            }
        );
    }

    #[test]
    fn managers_scale_in_one_at_a_time() {
        let (records, observed) = converged(3, 1);
        let p = plan(&spec(1, 1), &records, &observed, NOW);
        assert_eq!(retired(&p), [("web-manager-3", "scale in")]);
        assert!(p.actions().contains(&Action::Drain {
            node: "web-manager-3".into(),
            member: member("m3", "web-manager-3", Role::Manager, true)
        }));
    }

    fn zoned(names: &[&str]) -> Vec<String> {
        names.iter().map(|z| z.to_string()).collect()
    }

    fn pool(name: &str, count: u32, zones: &[&str]) -> crate::spec::Pool {
        crate::spec::Pool {
            name: name.into(),
            count,
            flavor: Some("m1.large".into()),
            image: None,
            zones: zoned(zones),
            labels: Default::default(),
            taints: Vec::new(),
            rollout: None,
        }
    }

    /// Each added node with its zone, as the plan records them.
    fn placed_nodes(p: &Plan) -> Vec<(String, Option<String>, Option<String>)> {
        p.changes
            .iter()
            .filter_map(|a| match a {
                Action::AddNode {
                    node, pool, zone, ..
                } => Some((node.clone(), pool.clone(), zone.clone())),
                _ => None,
            })
            .collect()
    }

    fn entry(
        node: &str,
        pool: Option<&str>,
        zone: &str,
    ) -> (String, Option<String>, Option<String>) {
        (node.into(), pool.map(Into::into), Some(zone.into()))
    }

    /// Puts each node of `records` in the zone its name ends with the
    /// index of: index 1 in az-1, 2 in az-2…
    fn zone_by_index(records: &mut [NodeRecord]) {
        for r in records {
            r.zone = Some(format!("az-{}", r.index));
        }
    }

    #[test]
    fn pools_form_with_their_names_spread_over_their_zones() {
        let mut s = spec(3, 1);
        s.zones = zoned(&["az-1", "az-2", "az-3"]);
        s.pools = vec![pool("gpu", 3, &["az-2", "az-3"])];
        let p = plan(&s, &[], &Observed::default(), NOW);
        assert_eq!(
            placed_nodes(&p),
            [
                entry("web-manager-1", None, "az-1"),
                entry("web-manager-2", None, "az-2"),
                entry("web-manager-3", None, "az-3"),
                entry("web-worker-1", None, "az-1"),
                entry("web-gpu-1", Some("gpu"), "az-2"),
                entry("web-gpu-2", Some("gpu"), "az-3"),
                entry("web-gpu-3", Some("gpu"), "az-2"),
            ]
        );
        assert_eq!(p.describe()[0], "add manager web-manager-1 in zone az-1");
        // Five managers on three zones: no zone holds three, a quorum.
        let mut s = spec(5, 0);
        s.zones = zoned(&["az-1", "az-2", "az-3"]);
        let p = plan(&s, &[], &Observed::default(), NOW);
        let mut per_zone = BTreeMap::<String, usize>::new();
        for (_, _, zone) in placed_nodes(&p) {
            *per_zone.entry(zone.unwrap()).or_default() += 1;
        }
        assert_eq!(per_zone.values().copied().collect::<Vec<_>>(), [2, 2, 1]);
    }

    #[test]
    fn a_pool_scales_alone_and_a_removed_pool_leaves_whole() {
        let (mut records, observed) = converged(1, 1);
        for i in 1..=3 {
            let mut r = record(Role::Worker, i, None);
            r.name = format!("web-gpu-{i}");
            r.pool = Some("gpu".into());
            records.push(r);
        }
        let mut s = spec(1, 1);
        s.pools = vec![pool("gpu", 2, &[])];
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(retired(&p), [("web-gpu-3", "scale in")]);
        s.pools[0].count = 4;
        assert_eq!(added(&plan(&s, &records, &observed, NOW)), ["web-gpu-4"]);
        s.pools.clear();
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(
            retired(&p),
            [
                ("web-gpu-1", "pool gpu removed"),
                ("web-gpu-2", "pool gpu removed"),
                ("web-gpu-3", "pool gpu removed")
            ]
        );
        assert!(added(&p).is_empty(), "{:?}", p.describe());
    }

    #[test]
    fn scale_in_takes_from_the_fullest_zone() {
        let (mut records, observed) = converged(1, 3);
        zone_by_index(&mut records);
        records[1].zone = Some("az-2".into()); // workers: az-2, az-2, az-3
        let mut s = spec(1, 2);
        s.zones = zoned(&["az-1", "az-2", "az-3"]);
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(
            p.changes[0],
            Action::Retire {
                node: "web-worker-2".into(),
                reason: "scale in".into()
            }
        );
    }

    #[test]
    fn a_replacement_goes_back_to_its_zone_unless_the_zone_is_failing() {
        let mut s = spec(3, 3);
        s.zones = zoned(&["az-1", "az-2", "az-3"]);
        // worker-3 of az-3 is lost; manager-3 in az-3 is fine: az-3 holds.
        let (mut records, mut observed) = converged(3, 3);
        zone_by_index(&mut records);
        lose_machine(&mut records, &mut observed, "web-worker-3");
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(placed_nodes(&p), [entry("web-worker-4", None, "az-3")]);
        // Every machine of az-3 failed: the replacements go to az-1 and
        // az-2, and a note says why.
        let (mut records, mut observed) = converged(3, 3);
        zone_by_index(&mut records);
        for m in observed
            .machines
            .iter_mut()
            .filter(|m| m.node.ends_with("-3"))
        {
            m.state = MachineState::Error("no valid host".into());
        }
        for node in ["web-manager-3", "web-worker-3"] {
            observed.probes.remove(node);
            seen_lost(&mut records, node);
        }
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(
            placed_nodes(&p),
            [entry("web-worker-4", None, "az-1")],
            "{:?}",
            p.describe()
        );
        assert!(noted(&p, "zone az-3 is failing"), "{:?}", p.notes);
        // The dead manager leaves first; its replacement follows, also
        // away from az-3 while worker-3 is still there, failed.
        records.retain(|r| r.name != "web-manager-3");
        records
            .iter_mut()
            .find(|r| r.name == "web-worker-3")
            .unwrap()
            .retiring = true;
        let mut worker_4 = record(Role::Worker, 4, None);
        worker_4.zone = Some("az-1".into());
        records.push(worker_4);
        observed.machines.retain(|m| m.node != "web-manager-3");
        let members = observed.members.as_mut().unwrap();
        members.retain(|m| m.id != "m3");
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(
            placed_nodes(&p),
            [entry("web-manager-3", None, "az-1")],
            "{:?}",
            p.describe()
        );
    }

    #[test]
    fn new_nodes_take_the_lowest_free_index() {
        let records = vec![
            record(Role::Manager, 1, Some("m1")),
            record(Role::Worker, 2, Some("w2")),
        ];
        let p = plan(&spec(1, 3), &records, &Observed::default(), NOW);
        assert_eq!(added(&p), vec!["web-worker-1", "web-worker-3"]);
    }
}
