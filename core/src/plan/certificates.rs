//! Certificate lifetimes: what the orchestrator's profile renews
//! ([`Certificates`]) is renewed `health.renew_certificates_before` its
//! expiry, one manager at a time and only while every manager is healthy
//! (a renewal restarts what serves the cluster on that node); a Swarm node
//! whose own certificate has expired (it was off past it, moby#24132) is
//! rejoined. What each node last reported is kept on its record, so a pass
//! that asked only one manager still knows every node's.

use provision_provider::Role;

use super::{Action, Decisions, Inputs, NodeView, RejoinCause};
use crate::profile::Certificates;
use crate::state::Reason;

/// Adds this pass's renewal, if one is due.
pub(super) fn renew(
    input: &Inputs,
    kept: &[&NodeView],
    managers_changing: bool,
    d: &mut Decisions,
) {
    let spec = input.spec;
    let before = spec.health.renew_certificates_before.as_secs() as i64;
    let due = |at: Option<i64>| at.is_some_and(|t| t - input.now < before);
    let managers: Vec<&NodeView> = kept
        .iter()
        .copied()
        .filter(|v| v.role() == Role::Manager)
        .collect();
    let steady = !managers_changing
        && !d.manager_turn_taken
        && managers.iter().all(|v| v.condition.is_healthy());
    match spec.coe.profile().certificates {
        Certificates::None => {}
        Certificates::RotateCa => {
            rejoin_expired(input, kept, d);
            let Some(expires) = managers.iter().filter_map(|v| v.record.ca_expires).min() else {
                return;
            };
            if !due(Some(expires)) {
                return;
            }
            // Through a manager with control; one rotation at a time.
            let via = managers
                .iter()
                .filter(|v| v.probe.is_some_and(|p| p.control) && !v.backing_off(input.now))
                .min_by_key(|v| v.record.index);
            match via {
                Some(v) if steady => {
                    d.manager_turn_taken = true;
                    d.steps.push(Action::RotateCa {
                        node: v.name().to_string(),
                    });
                }
                _ => d.plan.notes.push(Reason::RenewalWaits),
            }
        }
        Certificates::RenewControlPlane => {
            if let Some(v) = managers.iter().find(|v| due(v.record.ca_expires)) {
                d.plan.notes.push(Reason::CaExpiresSoon {
                    node: v.name().to_string(),
                    expires: v.record.ca_expires.unwrap_or_default(),
                });
            }
            let next = managers
                .iter()
                .filter(|v| due(v.record.cert_expires) && !v.backing_off(input.now))
                .min_by_key(|v| v.record.index);
            match next {
                Some(v) if steady => {
                    d.manager_turn_taken = true;
                    d.steps.push(Action::RenewCertificates {
                        node: v.name().to_string(),
                    });
                }
                Some(_) => d.plan.notes.push(Reason::RenewalWaits),
                None => {}
            }
        }
    }
}

/// Swarm: a node that reports its own certificate expired cannot renew it
/// (the managers refuse it): it leaves and joins again. Only on its own
/// word this pass, never on a kept value (Swarm renews certificates by
/// itself, so a kept one may be long replaced).
fn rejoin_expired(input: &Inputs, kept: &[&NodeView], d: &mut Decisions) {
    for v in kept {
        let expired = v.probe.is_some_and(|p| {
            p.engine_running && p.certificates.leaf.is_some_and(|t| t <= input.now)
        });
        if expired && v.ever_joined() && !v.backing_off(input.now) {
            d.steps.push(Action::Rejoin {
                node: v.name().to_string(),
                role: v.role(),
                old: v.member.cloned(),
                cause: RejoinCause::CertificateExpired,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::*;
    use crate::profile::Coe;

    const DAY: i64 = 86_400;

    fn steps(p: &Plan) -> Vec<String> {
        p.nodes
            .iter()
            .flat_map(|n| n.steps.iter())
            .map(|a| a.describe())
            .collect()
    }

    fn kubernetes(managers: u32, workers: u32) -> ClusterSpec {
        let mut s = spec(managers, workers);
        s.coe = Coe::Kubernetes;
        s.kubernetes = Some(Default::default());
        s
    }

    #[test]
    fn kubeadm_certificates_near_expiry_are_renewed_one_node_a_pass() {
        let (mut records, observed) = converged(3, 1);
        let s = kubernetes(3, 1);
        for r in &mut records {
            r.cert_expires = Some(NOW + 300 * DAY);
            r.ca_expires = Some(NOW + 3000 * DAY);
        }
        assert!(plan(&s, &records, &observed, NOW).is_empty());
        // Two within the 30 days: the lower index first, one a pass.
        records[2].cert_expires = Some(NOW + 20 * DAY);
        records[1].cert_expires = Some(NOW + 29 * DAY);
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(
            steps(&p),
            ["renew the certificates of web-manager-2 (and restart its control plane)"]
        );
        // Not while a manager is unhealthy.
        let mut down = observed.clone();
        down.machines[0].state = provision_provider::MachineState::Error("x".into());
        let p = plan(&s, &records, &down, NOW);
        assert!(
            steps(&p).iter().all(|s| !s.starts_with("renew")),
            "{:?}",
            steps(&p)
        );
        assert!(p.notes.contains(&Reason::RenewalWaits), "{:?}", p.notes);
        // Not again while a failed renewal backs off.
        records[1].retry_at = Some(NOW + 60);
        let p = plan(&s, &records, &observed, NOW);
        assert_eq!(
            steps(&p),
            ["renew the certificates of web-manager-3 (and restart its control plane)"]
        );
        // A CA near expiry is said, not renewed (kubeadm renews none).
        for r in &mut records {
            r.cert_expires = Some(NOW + 300 * DAY);
        }
        records[0].ca_expires = Some(NOW + 10 * DAY);
        let p = plan(&s, &records, &observed, NOW);
        assert!(steps(&p).is_empty(), "{:?}", steps(&p));
        assert!(
            p.notes
                .iter()
                .any(|n| matches!(n, Reason::CaExpiresSoon { .. })),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn a_swarm_ca_near_expiry_is_rotated_through_a_manager_and_nodes_are_left_to_swarm() {
        let (mut records, observed) = converged(3, 2);
        let s = spec(3, 2);
        for r in &mut records {
            // Node certificates near expiry are Swarm's to renew.
            r.cert_expires = Some(NOW + DAY);
            r.ca_expires = Some(NOW + 7000 * DAY);
        }
        assert!(plan(&s, &records, &observed, NOW).is_empty());
        for r in &mut records {
            r.ca_expires = Some(NOW + 400 * DAY);
        }
        let mut s2 = s.clone();
        s2.health.renew_certificates_before = std::time::Duration::from_secs(500 * DAY as u64);
        let p = plan(&s2, &records, &observed, NOW);
        assert_eq!(
            steps(&p),
            ["rotate the cluster's root CA through web-manager-1"]
        );
        // Mesos renews nothing.
        let mut m = s2.clone();
        m.coe = Coe::Mesos;
        assert!(steps(&plan(&m, &records, &observed, NOW)).is_empty());
    }

    #[test]
    fn a_swarm_node_whose_own_certificate_expired_is_rejoined() {
        let (records, mut observed) = converged(1, 2);
        if let Some(Probe::Reached(p)) = observed.probes.get_mut("web-worker-2") {
            p.certificates.leaf = Some(NOW - 10);
        }
        let p = plan(&spec(1, 2), &records, &observed, NOW);
        assert_eq!(
            steps(&p),
            ["rejoin web-worker-2 as worker (its certificate has expired)"]
        );
        assert!(p.join_via.is_some());
        // A kept value alone (Swarm may have renewed it since) is not enough.
        let (mut records, observed) = converged(1, 2);
        records[2].cert_expires = Some(NOW - 10);
        assert!(plan(&spec(1, 2), &records, &observed, NOW).is_empty());
    }
}
