//! Remediation: nodes unhealthy past their grace period are retired (and so
//! replaced), unless more than `max_unhealthy` are (a partition must never
//! trigger mass replacement), a node is backing off, its budget of attempts
//! is spent, or replacing a manager could lose quorum.

use provision_provider::Role;

use super::rollout::Rollout;
use super::{Decisions, Inputs, NodeView};
use crate::health::{is_due, max_unhealthy, Condition};
use crate::spec::HealthPolicy;
use crate::state::{Attempt, Reason};

pub(super) fn retire_unhealthy(
    input: &Inputs,
    counted: &[&NodeView],
    active: &[&NodeView],
    rollout: &Rollout,
    d: &mut Decisions,
) {
    let policy = &input.spec.health;
    let now = input.now;
    // A rollout's new node that never became healthy halts the rollout
    // instead (kept for a person to look at).
    let due: Vec<&NodeView> = active
        .iter()
        .copied()
        .filter(|v| is_due(policy, v.record, &v.condition, now) && !rollout.keeps(v))
        .collect();
    if due.is_empty() {
        return;
    }
    // The limit counts every node not healthy now, in its grace or not, and
    // those already on their way out (Cluster API's maxUnhealthy counts the
    // same): the nodes a partition cuts off are seen at different passes,
    // and counting only the due ones would replace them one by one.
    let not_healthy: Vec<&NodeView> = counted
        .iter()
        .copied()
        .filter(|v| counts_against_limit(policy, v, now))
        .collect();
    let limit = max_unhealthy(policy, active.len());
    if not_healthy.len() > limit {
        d.plan.notes.push(Reason::AboveMaxUnhealthy {
            unhealthy: not_healthy
                .iter()
                .map(|v| (v.name().to_string(), v.condition.reason()))
                .collect(),
            active: active.len(),
            limit,
        });
        return;
    }
    let managers_total = active.iter().filter(|v| v.role() == Role::Manager).count();
    for v in &due {
        if v.backing_off(now) {
            d.plan.notes.push(Reason::BackingOff {
                node: v.name().to_string(),
                attempt: Attempt::Replace,
            });
            continue;
        }
        if v.condition == Condition::Starting && v.record.start_attempt >= policy.max_start_attempts
        {
            d.plan.stalled.push(v.name().to_string());
            d.plan.notes.push(Reason::StartAttemptsSpent {
                node: v.name().to_string(),
                waited_s: policy.startup_timeout.as_secs(),
                attempt: v.record.start_attempt,
                max: policy.max_start_attempts,
            });
            continue;
        }
        if v.role() == Role::Manager {
            let healthy_others = active
                .iter()
                .filter(|o| {
                    o.role() == Role::Manager && o.name() != v.name() && o.condition.is_healthy()
                })
                .count();
            if d.manager_turn_taken {
                d.plan.notes.push(Reason::ManagersReplacedOneAtATime {
                    node: v.name().to_string(),
                });
                continue;
            }
            // A manager that never joined is no voter: replacing it cannot
            // lose quorum (a first manager whose server failed to build).
            if v.ever_joined() && healthy_others < managers_total / 2 + 1 {
                d.plan.notes.push(Reason::ReplacingCouldLoseQuorum {
                    node: v.name().to_string(),
                    healthy: healthy_others,
                    total: managers_total,
                });
                continue;
            }
            d.manager_turn_taken = true;
        }
        d.plan.remediations.push(v.name().to_string());
        d.retire.insert(
            v.name().to_string(),
            format!("unhealthy: {}", v.condition.reason()),
        );
    }
}

/// Whether a node counts as not healthy for `max_unhealthy`: any trouble
/// the node shows, and a new node past its startup timeout. A new node still
/// in its startup time is on its way, and a node not observed for a reason
/// on our side is no evidence either way.
fn counts_against_limit(policy: &HealthPolicy, v: &NodeView, now: i64) -> bool {
    match v.condition {
        Condition::Healthy | Condition::Unknown(_) => false,
        Condition::Starting => is_due(policy, v.record, &v.condition, now),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::*;
    use crate::spec::MaxUnhealthy;
    use crate::state::UnhealthyKind;

    #[test]
    fn a_sole_manager_that_never_joined_is_replaced() {
        // Its server failed to build: no voter is lost by replacing it.
        let mut records = vec![record(Role::Manager, 1, None)];
        records[0].machine_id = Some("id-manager-1".into());
        records[0].machine_created_at = Some(NOW - 3600);
        let observed = Observed {
            machines: vec![machine(
                Role::Manager,
                1,
                MachineState::Error("No valid host".into()),
            )],
            ..Default::default()
        };
        let p = plan(&spec(1, 0), &records, &observed, NOW);
        assert_eq!(p.remediations, ["web-manager-1"], "{:?}", p.describe());
        assert!(!noted(&p, "could lose quorum"), "{:?}", p.notes);
    }

    #[test]
    fn a_node_not_observed_for_our_own_reasons_is_never_remediated() {
        let (mut records, mut observed) = converged_listed(1, 3);
        for r in records.iter_mut().filter(|r| r.role == Role::Worker) {
            r.unhealthy_since = Some(NOW - 3600);
            r.unhealthy_kind = Some(UnhealthyKind::Unresponsive);
            observed
                .probes
                .insert(r.name.clone(), Probe::Unknown("no SSH slot".into()));
        }
        let p = plan(&spec(1, 3), &records, &observed, NOW);
        assert!(p.is_empty(), "{:?}", p.describe());
        assert!(p.remediations.is_empty());
        // Nor is it taken for settled: a retiring worker waits.
        records[1].retiring = true;
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert!(
            !p.actions()
                .iter()
                .any(|a| matches!(a, Action::ForgetNode { .. })),
            "{:?}",
            p.describe()
        );
    }

    /// The plan says when its next look is due: a node lost 20 s ago
    /// is replaced when its grace runs out, not up to an interval later; a
    /// failed attempt's backoff ending sooner comes first; a converged
    /// cluster waits on no clock.
    #[test]
    fn the_plan_says_when_a_grace_or_a_backoff_runs_out() {
        let s = spec(1, 2);
        let lost = s.health.lost_timeout.as_secs() as i64;
        let (records, observed) = converged(1, 2);
        assert_eq!(plan(&s, &records, &observed, NOW).next_look, None);
        let (mut records, mut observed) = converged(1, 2);
        lose_machine(&mut records, &mut observed, "web-worker-1");
        records[1].unhealthy_since = Some(NOW - 20);
        let p = plan(&s, &records, &observed, NOW);
        assert!(p.remediations.is_empty(), "{:?}", p.describe());
        assert_eq!(p.next_look, Some(NOW - 20 + lost));
        records[2].retry_at = Some(NOW + 30);
        assert_eq!(plan(&s, &records, &observed, NOW).next_look, Some(NOW + 30));
        // Past due: replaced now, and nothing else waits on the clock.
        records[1].unhealthy_since = Some(NOW - lost);
        records[2].retry_at = None;
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(p.remediations, ["web-worker-1"]);
        assert_eq!(p.next_look, None, "{:?}", p.describe());
    }

    #[test]
    fn stopped_or_failed_machines_are_replaced() {
        let (mut records, mut observed) = converged(1, 2);
        observed.machines[1].state = MachineState::Stopped;
        observed.probes.remove("web-worker-1");
        seen_lost(&mut records, "web-worker-1");
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert_eq!(p.remediations, vec!["web-worker-1".to_string()]);
        assert_eq!(added(&p), vec!["web-worker-3"]);
        let (mut records, mut observed) = converged(1, 2);
        observed.machines[2].state = MachineState::Error("no valid host".into());
        observed.probes.remove("web-worker-2");
        seen_lost(&mut records, "web-worker-2");
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert!(p.actions().contains(&Action::Retire {
            node: "web-worker-2".into(),
            reason: "unhealthy: machine in error: no valid host".into()
        }));
    }

    #[test]
    fn above_max_unhealthy_nothing_is_remediated_and_a_note_says_why() {
        let mut s = spec(1, 3);
        s.health.max_unhealthy = MaxUnhealthy::Count(1);
        let (mut records, mut observed) = converged(1, 3);
        lose_machine(&mut records, &mut observed, "web-worker-1");
        lose_machine(&mut records, &mut observed, "web-worker-2");
        let p = plan(&s, &records, &observed, NOW);
        assert!(p.is_empty(), "{:?}", p.describe());
        assert!(p.remediations.is_empty());
        assert_eq!(p.notes.len(), 1);
        assert!(
            matches!(
                &p.notes[0],
                Reason::AboveMaxUnhealthy { unhealthy, active: 4, limit: 1 } if unhealthy.len() == 2
            ),
            "{}",
            p.notes[0]
        );
        // One failure is within the limit.
        let (mut records, mut observed) = converged(1, 3);
        lose_machine(&mut records, &mut observed, "web-worker-1");
        assert_eq!(
            plan(&s, &records, &observed, NOW).remediations,
            vec!["web-worker-1".to_string()]
        );
    }

    #[test]
    fn nodes_in_their_grace_and_nodes_leaving_count_against_max_unhealthy() {
        let mut s = spec(1, 3);
        s.health.max_unhealthy = MaxUnhealthy::Count(1);
        // A partition: worker 1 was seen unreachable an hour ago, worker 2
        // only now (its grace has not run). Neither is replaced.
        let (mut records, mut observed) = converged(1, 3);
        lose_machine(&mut records, &mut observed, "web-worker-1");
        observed.probes.insert(
            "web-worker-2".into(),
            Probe::Unreachable("no answer within 10s".into()),
        );
        let p = plan(&s, &records, &observed, NOW);
        assert!(p.remediations.is_empty(), "{:?}", p.describe());
        assert!(
            matches!(
                &p.notes[0],
                Reason::AboveMaxUnhealthy { unhealthy, active: 4, limit: 1 } if unhealthy.len() == 2
            ),
            "{:?}",
            p.notes
        );
        // The next pass, worker 1 already leaving: worker 2, due now, waits.
        let (mut records, mut observed) = converged(1, 3);
        lose_machine(&mut records, &mut observed, "web-worker-1");
        records[1].retiring = true;
        observed.probes.insert(
            "web-worker-2".into(),
            Probe::Unreachable("no answer within 10s".into()),
        );
        let r = records
            .iter_mut()
            .find(|r| r.name == "web-worker-2")
            .unwrap();
        r.unhealthy_kind = Some(UnhealthyKind::Unresponsive);
        r.unhealthy_since = Some(NOW - 3600);
        let p = plan(&s, &records, &observed, NOW);
        assert!(p.remediations.is_empty(), "{:?}", p.describe());
        // A healthy node leaving (scale-in) and a new node in its startup
        // time are no trouble: the one failure is replaced.
        let (mut records, mut observed) = converged(1, 3);
        lose_machine(&mut records, &mut observed, "web-worker-1");
        records[2].retiring = true;
        let mut new = record(Role::Worker, 4, None);
        new.machine_created_at = Some(NOW - 10);
        records.push(new);
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(p.remediations, vec!["web-worker-1".to_string()]);
    }

    #[test]
    fn member_conditions_are_tolerated_until_their_timeout() {
        let s = spec(1, 2);
        let ssh_fails = |o: &mut Observed| {
            o.probes.insert(
                "web-worker-1".into(),
                Probe::Unreachable("no answer within 30s".into()),
            );
        };
        let swarm_says_down = |o: &mut Observed| o.members.as_mut().unwrap()[1].ready = false;
        type Breaks<'a> = &'a dyn Fn(&mut Observed);
        let cases: [(&str, Breaks, u64); 2] = [
            (
                "ssh unreachable",
                &ssh_fails,
                s.health.ssh_timeout.as_secs(),
            ),
            (
                "orchestrator down",
                &swarm_says_down,
                s.health.not_ready_timeout.as_secs(),
            ),
        ];
        for (what, break_it, grace) in cases {
            let (mut records, mut observed) = converged(1, 2);
            break_it(&mut observed);
            records[1].unhealthy_kind = Some(crate::state::UnhealthyKind::Unresponsive);
            records[1].unhealthy_since = Some(NOW - grace as i64 + 1);
            assert!(
                plan(&s, &records, &observed, NOW).is_empty(),
                "{what}: too early"
            );
            records[1].unhealthy_since = Some(NOW - grace as i64);
            let p = plan(&s, &records, &observed, NOW);
            assert_eq!(p.remediations, vec!["web-worker-1".to_string()], "{what}");
        }
    }

    #[test]
    fn a_node_that_never_joins_is_replaced_after_the_startup_timeout() {
        let s = spec(1, 1);
        let (mut records, mut observed) = converged(1, 1);
        records[1].member_id = None;
        records[1].machine_created_at = Some(NOW - 60);
        observed
            .probes
            .insert("web-worker-1".into(), Probe::Unreachable("refused".into()));
        observed.members.as_mut().unwrap().retain(|m| m.id != "w1");
        // Within the startup timeout it is bootstrapped again.
        let p = plan(&s, &records, &observed, NOW);
        assert!(p.remediations.is_empty());
        assert!(p.actions().contains(&Action::Bootstrap {
            node: "web-worker-1".into()
        }));
        records[1].machine_created_at = Some(NOW - s.health.startup_timeout.as_secs() as i64);
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(p.remediations, vec!["web-worker-1".to_string()]);
    }

    #[test]
    fn a_failed_node_backs_off() {
        let (mut records, observed) = converged(1, 1);
        records.push(record(Role::Worker, 2, None));
        records[2].failures = 2;
        records[2].retry_at = Some(NOW + 30);
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert!(p.is_empty(), "{:?}", p.describe());
        let p = plan(&spec(1, 2), &records, &observed, NOW + 30);
        assert!(p.actions().contains(&Action::CreateMachine {
            node: "web-worker-2".into(),
            role: Role::Worker
        }));
    }

    #[test]
    fn a_dead_worker_is_still_replaced_before_it_is_removed() {
        let (mut records, mut observed) = converged(1, 2);
        lose_machine(&mut records, &mut observed, "web-worker-1");
        observed.members.as_mut().unwrap()[1].ready = false;
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert_eq!(added(&p), vec!["web-worker-3"]);
        assert!(!p
            .actions()
            .iter()
            .any(|a| matches!(a, Action::RemoveMember { .. } | Action::ForgetNode { .. })));
    }

    #[test]
    fn a_member_the_cloud_is_rebooting_or_migrating_is_left_alone_for_busy_timeout() {
        let s = spec(1, 2);
        for status in [
            "Nova reports REBOOT",
            "Nova reports MIGRATING",
            "Docker reports restarting",
        ] {
            let (mut records, mut observed) = converged(1, 2);
            observed.machines[1].state = MachineState::Busy(status.into());
            observed.probes.remove("web-worker-1");
            // Swarm says Down while it reboots.
            observed.members.as_mut().unwrap()[1].ready = false;
            records[1].unhealthy_kind = Some(crate::state::UnhealthyKind::Busy);
            records[1].unhealthy_since = Some(NOW - s.health.startup_timeout.as_secs() as i64);
            let p = plan(&s, &records, &observed, NOW);
            assert!(p.is_empty(), "{status}: {:?}", p.describe());
            assert!(p.remediations.is_empty());
            records[1].unhealthy_since = Some(NOW - s.health.busy_timeout.as_secs() as i64);
            let p = plan(&s, &records, &observed, NOW);
            assert_eq!(p.remediations, vec!["web-worker-1".to_string()], "{status}");
        }
    }

    #[test]
    fn one_listing_without_a_server_replaces_nothing() {
        let s = spec(1, 2);
        let (mut records, mut observed) = converged(1, 2);
        observed.machines.retain(|m| m.node != "web-worker-1");
        observed.probes.remove("web-worker-1");
        // SSH had been failing for long: still, the first "gone" is not due.
        records[1].unhealthy_kind = Some(crate::state::UnhealthyKind::Unresponsive);
        records[1].unhealthy_since = Some(NOW - 3600);
        let p = plan(&s, &records, &observed, NOW);
        assert!(p.is_empty(), "{:?}", p.describe());
        // The server is back in the next listing: it is a known node, never
        // an unknown machine to delete.
        let (records, observed) = converged(1, 2);
        let p = plan(&s, &records, &observed, NOW + 10);
        assert!(p.is_empty(), "{:?}", p.describe());
    }

    #[test]
    fn a_node_that_never_joined_is_deleted_at_once_and_its_replacement_counts_on() {
        let s = spec(1, 2);
        let (records, observed) = never_joined(s.health.startup_timeout.as_secs() as i64, 1);
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(p.remediations, vec!["web-worker-2".to_string()]);
        assert!(p.actions().contains(&Action::AddNode {
            node: "web-worker-3".into(),
            role: Role::Worker,
            index: 3,
            attempt: 2,
            pool: None,
            zone: None,
            machine: Some("image=- flavor=-".into()),
        }));
        // Deleted in the same pass: it was never a member, nothing waits on it.
        assert!(p.actions().contains(&Action::DeleteMachine {
            node: "web-worker-2".into(),
            machine_id: "id-worker-2".into()
        }));
        assert!(p.actions().contains(&Action::ForgetNode {
            node: "web-worker-2".into()
        }));
    }

    #[test]
    fn replacements_that_never_join_stop_at_max_start_attempts() {
        let s = spec(1, 2);
        let max = s.health.max_start_attempts;
        let late = s.health.startup_timeout.as_secs() as i64 + 1;
        let (records, observed) = never_joined(late, max - 1);
        let p = plan(&s, &records, &observed, NOW);
        assert!(p
            .actions()
            .iter()
            .any(|a| matches!(a, Action::AddNode { attempt, .. } if *attempt == max)));
        let (records, observed) = never_joined(late, max);
        let p = plan(&s, &records, &observed, NOW);
        assert!(p.remediations.is_empty());
        assert_eq!(p.stalled, vec!["web-worker-2".to_string()]);
        assert!(added(&p).is_empty(), "{:?}", p.describe());
        // Left as it is for an operator: not deleted, not tried again.
        assert!(p.is_empty(), "{:?}", p.describe());
        assert!(
            p.notes.iter().any(
                |n| matches!(n, Reason::StartAttemptsSpent { attempt, max: m, .. }
                    if *attempt == max && *m == max)
                    && n.to_string().contains("provision heal")
            ),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn managers_are_not_replaced_when_that_could_lose_quorum() {
        let mut s = spec(3, 0);
        s.health.max_unhealthy = MaxUnhealthy::Count(3);
        let (mut records, mut observed) = converged(3, 0);
        lose_machine(&mut records, &mut observed, "web-manager-2");
        lose_machine(&mut records, &mut observed, "web-manager-3");
        let p = plan(&s, &records, &observed, NOW);
        assert!(p.remediations.is_empty(), "{:?}", p.describe());
        assert!(noted(&p, "could lose quorum"), "{:?}", p.notes);
    }

    #[test]
    fn managers_are_replaced_one_at_a_time() {
        let mut s = spec(5, 0);
        s.health.max_unhealthy = MaxUnhealthy::Count(2);
        let (mut records, mut observed) = converged(5, 0);
        lose_machine(&mut records, &mut observed, "web-manager-4");
        lose_machine(&mut records, &mut observed, "web-manager-5");
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(p.remediations, vec!["web-manager-4".to_string()]);
        assert!(noted(&p, "one at a time"));
    }
}
