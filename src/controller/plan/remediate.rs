//! Remediation: nodes unhealthy past their grace period are retired (and so
//! replaced), unless more than `max_unhealthy` are (a partition must never
//! trigger mass replacement), a node is backing off, its budget of attempts
//! is spent, or replacing a manager could lose quorum.

use provision_provider::Role;

use super::{Decisions, Inputs, NodeView};
use crate::controller::health::{is_due, max_unhealthy, Condition};

pub(super) fn retire_unhealthy(input: &Inputs, active: &[&NodeView], d: &mut Decisions) {
    let policy = &input.spec.health;
    let now = input.now;
    let due: Vec<&NodeView> = active
        .iter()
        .copied()
        .filter(|v| is_due(policy, v.record, &v.condition, now))
        .collect();
    let limit = max_unhealthy(policy, active.len());
    if due.len() > limit {
        let names: Vec<String> = due
            .iter()
            .map(|v| format!("{} ({})", v.name(), v.condition.reason()))
            .collect();
        d.plan.notes.push(format!(
            "{} of {} nodes are unhealthy, above max_unhealthy {limit}: remediating none: {}",
            due.len(),
            active.len(),
            names.join(", ")
        ));
        return;
    }
    let managers_total = active.iter().filter(|v| v.role() == Role::Manager).count();
    for v in &due {
        if v.backing_off(now) {
            d.plan.notes.push(format!(
                "{} is unhealthy but backing off after a failed attempt",
                v.name()
            ));
            continue;
        }
        if v.condition == Condition::Starting && v.record.start_attempt >= policy.max_start_attempts
        {
            d.plan.stalled.push(v.name().to_string());
            d.plan.notes.push(format!(
                "{} has not joined {}s after its machine was created, and it is attempt {} in a row \
                 that never joined: no further replacement (max_start_attempts {}). It is kept for \
                 inspection (`provision ssh`, its log under the cluster's directory); fix the cause \
                 and run `provision heal` to try again",
                v.name(),
                policy.startup_timeout.as_secs(),
                v.record.start_attempt,
                policy.max_start_attempts
            ));
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
                d.plan.notes.push(format!(
                    "{} is unhealthy; managers are replaced one at a time",
                    v.name()
                ));
                continue;
            }
            if healthy_others < managers_total / 2 + 1 {
                d.plan.notes.push(format!(
                    "manager {} is unhealthy but only {healthy_others} of {managers_total} managers are healthy: \
                     replacing it could lose quorum, so it is left for an operator",
                    v.name()
                ));
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
