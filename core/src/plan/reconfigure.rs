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

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::*;

    #[test]
    fn stale_nodes_are_reconfigured_one_a_pass_managers_first() {
        let (records, mut observed) = converged(3, 2);
        stale(
            &mut observed,
            &["web-worker-1", "web-manager-3", "web-manager-2"],
        );
        let p = plan(&spec(3, 2), &records, &observed, NOW);
        assert_eq!(reconfigured(&p), ["web-manager-2"]);
        assert_eq!(p.actions().len(), 1, "{:?}", p.describe());
        // With the managers current, the workers follow.
        let (records, mut observed) = converged(3, 2);
        stale(&mut observed, &["web-worker-2", "web-worker-1"]);
        assert_eq!(
            reconfigured(&plan(&spec(3, 2), &records, &observed, NOW)),
            ["web-worker-1"]
        );
        // Nothing stale, nothing to do.
        let (records, observed) = converged(3, 2);
        assert!(plan(&spec(3, 2), &records, &observed, NOW).is_empty());
    }

    #[test]
    fn no_reconfigure_while_managers_change_or_one_is_unhealthy() {
        // A manager joining this pass: its join changes the list again.
        let (records, observed) = converged(1, 1);
        let mut joining = observed.clone();
        let p = plan(&spec(3, 1), &records, &joining, NOW);
        assert_eq!(added(&p), ["web-manager-2", "web-manager-3"]);
        stale(&mut joining, &["web-worker-1"]);
        let p = plan(&spec(3, 1), &records, &joining, NOW);
        assert!(reconfigured(&p).is_empty(), "{:?}", p.describe());
        // An unhealthy manager: restarting another could cost the quorum.
        let (mut records, mut observed) = converged(3, 1);
        stale(&mut observed, &["web-manager-1"]);
        lose_machine(&mut records, &mut observed, "web-manager-3");
        let p = plan(&spec(3, 1), &records, &observed, NOW);
        assert!(reconfigured(&p).is_empty(), "{:?}", p.describe());
    }
}
