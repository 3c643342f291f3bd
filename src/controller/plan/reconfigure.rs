//! Rolling reconfiguration: nodes that run with an older view of the
//! managers (Mesos: another quorum or ZooKeeper list) are restarted with
//! the current one, one node a pass.

use provision_provider::Role;

use super::NodeView;

/// The one node whose services are restarted with the current managers
/// this pass: a stale manager first, then a stale worker once no manager is
/// stale; none while managers change or any manager is unhealthy, so a
/// quorum never loses two members at once.
pub(super) fn next(kept: &[&NodeView], managers_changing: bool, now: i64) -> Option<String> {
    let managers_healthy = kept
        .iter()
        .filter(|v| v.role() == Role::Manager)
        .all(|v| v.condition.is_healthy());
    if managers_changing || !managers_healthy {
        return None;
    }
    let stale =
        |v: &&&NodeView| v.probe.is_some_and(|p| p.joined && p.config_stale) && !v.backing_off(now);
    [Role::Manager, Role::Worker].into_iter().find_map(|role| {
        kept.iter()
            .filter(|v| v.role() == role)
            .filter(stale)
            .min_by_key(|v| v.record.index)
            .map(|v| v.name().to_string())
    })
}
