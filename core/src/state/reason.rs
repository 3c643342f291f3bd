//! Why the planner holds something back, or does something a person should
//! hear of: typed, so a pass compares them by value, and each says what to
//! do in its message. A reason about one node is recorded on that node (its
//! conditions, as Cluster API keeps conditions on each machine) and becomes
//! an event only when it is new there.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a node that is backing off was trying to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attempt {
    /// Creating, installing or joining it.
    Start,
    /// Taking it out of the cluster.
    Leave,
    /// Replacing it, unhealthy.
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// A failed attempt's backoff has not run out.
    BackingOff { node: String, attempt: Attempt },
    /// The cloud has two machines for one node; the extra one goes.
    ExtraMachine { node: String, machine: String },
    /// Replacements of a node that never joined are used up.
    StartAttemptsSpent {
        node: String,
        waited_s: u64,
        attempt: u32,
        max: u32,
    },
    /// Another manager is being replaced in this pass.
    ManagersReplacedOneAtATime { node: String },
    /// Replacing this manager could lose quorum.
    ReplacingCouldLoseQuorum {
        node: String,
        healthy: usize,
        total: usize,
    },
    /// A dead manager leaves the membership before its replacement joins.
    DeadManagerRemovedFirst { node: String },
    /// Too many nodes are unhealthy to replace any (`max_unhealthy`).
    AboveMaxUnhealthy {
        /// Each node and why it is not healthy.
        unhealthy: Vec<(String, String)>,
        active: usize,
        limit: usize,
    },
    /// A majority of managers is gone and none is left to re-form from.
    NoSurvivor { gone: usize, managers: usize },
    /// A majority of managers is gone: the cluster is re-formed on one.
    ReformingOnSurvivor {
        gone: Vec<String>,
        managers: usize,
        survivor: String,
    },
    /// A restore was asked for, but a manager still holds the cluster.
    SurvivorHoldsState { survivor: String },
    /// A restore waits while old managers' machines are still there.
    RestoreWaitsForMachines {
        managers: Vec<String>,
        cluster: String,
    },
    /// The old managers' machines go before the restored manager comes.
    OldManagersDeletedFirst { managers: Vec<String> },
    /// The cluster is restored on this node.
    RestoringOn { node: String, taken_at: String },
    /// Scale-in takes one manager per pass.
    ManagersLeaveOneAtATime,
    /// Control-plane nodes are upgraded in place one at a time, each
    /// while every one is healthy.
    UpgradeOneAtATime,
    /// No worker is added while the control plane is upgraded in place.
    WorkersWaitForControlPlane,
    /// Certificates near expiry are renewed once every manager is healthy
    /// and no other manager changes.
    RenewalWaits,
    /// A CA the orchestrator does not renew itself expires within the
    /// threshold (kubeadm's: a person rotates it).
    CaExpiresSoon { node: String, expires: i64 },
    /// Managers restart with the new quorum before new ones start.
    RestartForNewQuorum,
    /// What a node or a member reported was not in a form an orchestrator
    /// makes, and was not used.
    ReportRefused { why: String },
    /// New nodes are not placed in this zone: the cloud lists it
    /// unavailable (no `nodes`), or none of the cluster's nodes there is
    /// healthy and these have failed there.
    ZoneFailing { zone: String, nodes: Vec<String> },
    /// `provision rollout NAME pause`: the group's rollout waits.
    RolloutPaused { group: String },
    /// A new node of the rollout was not healthy within its startup
    /// timeout: the rollout stops, the node and the old ones are kept.
    RolloutHalted {
        node: String,
        group: String,
        machine: String,
        waited_s: u64,
    },
}

impl Reason {
    /// The node the reason is about, when it is about one.
    pub fn node(&self) -> Option<&str> {
        match self {
            Reason::BackingOff { node, .. }
            | Reason::ExtraMachine { node, .. }
            | Reason::StartAttemptsSpent { node, .. }
            | Reason::ManagersReplacedOneAtATime { node }
            | Reason::ReplacingCouldLoseQuorum { node, .. }
            | Reason::DeadManagerRemovedFirst { node }
            | Reason::RolloutHalted { node, .. } => Some(node),
            _ => None,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::BackingOff { node, attempt } => match attempt {
                Attempt::Start => write!(f, "{node} is backing off after a failed attempt"),
                Attempt::Leave => {
                    write!(f, "{node} is leaving but backing off after a failed attempt")
                }
                Attempt::Replace => {
                    write!(f, "{node} is unhealthy but backing off after a failed attempt")
                }
            },
            Reason::ExtraMachine { node, machine } => {
                write!(f, "{node} has more than one machine: {machine} is deleted")
            }
            Reason::StartAttemptsSpent {
                node,
                waited_s,
                attempt,
                max,
            } => write!(
                f,
                "{node} has not joined {waited_s}s after its machine was created, and it is attempt \
                 {attempt} in a row that never joined: no further replacement (max_start_attempts \
                 {max}). It is kept for inspection (`provision ssh`, its log under the cluster's \
                 directory); fix the cause and run `provision heal` to try again"
            ),
            Reason::ManagersReplacedOneAtATime { node } => {
                write!(f, "{node} is unhealthy; managers are replaced one at a time")
            }
            Reason::ReplacingCouldLoseQuorum {
                node,
                healthy,
                total,
            } => write!(
                f,
                "manager {node} is unhealthy but only {healthy} of {total} managers are healthy: \
                 replacing it could lose quorum, so it is left for an operator"
            ),
            Reason::DeadManagerRemovedFirst { node } => write!(
                f,
                "manager {node} is removed from the cluster before its replacement joins"
            ),
            Reason::AboveMaxUnhealthy {
                unhealthy,
                active,
                limit,
            } => {
                let names: Vec<String> = unhealthy
                    .iter()
                    .map(|(node, why)| format!("{node} ({why})"))
                    .collect();
                write!(
                    f,
                    "{} of {active} nodes are unhealthy, above max_unhealthy {limit}: remediating \
                     none: {}",
                    unhealthy.len(),
                    names.join(", ")
                )
            }
            Reason::NoSurvivor { gone, managers } => write!(
                f,
                "{gone} of {managers} managers are gone and no other answers: the cluster cannot \
                 be re-formed from a survivor; restore it from a backup"
            ),
            Reason::ReformingOnSurvivor {
                gone,
                managers,
                survivor,
            } => write!(
                f,
                "quorum lost: {} of {managers} managers are gone for good ({}); re-forming the \
                 cluster on {survivor}",
                gone.len(),
                gone.join(", ")
            ),
            Reason::SurvivorHoldsState { survivor } => write!(
                f,
                "not restoring from the backup: manager {survivor} still holds the cluster's \
                 state; it is re-formed from it instead when a majority of the managers is gone"
            ),
            Reason::RestoreWaitsForMachines { managers, cluster } => write!(
                f,
                "restore waits: the machine of manager {} is still there; a manager only cut off \
                 still holds the cluster, and a restore beside it makes two. Delete the machine, \
                 or run `provision restore {cluster} --force` if it is dead",
                managers.join(", ")
            ),
            Reason::OldManagersDeletedFirst { managers } => write!(
                f,
                "the old managers' machines are deleted before the restore ({}): the restored \
                 manager takes the backed-up manager's address",
                managers.join(", ")
            ),
            Reason::RestoringOn { node, taken_at } => write!(
                f,
                "no manager holds the cluster's state: restoring it on {node} from the backup of \
                 {taken_at}"
            ),
            Reason::ManagersLeaveOneAtATime => {
                f.write_str("managers leave one at a time: the next one goes in a later pass")
            }
            Reason::WorkersWaitForControlPlane => f.write_str(
                "workers are added once the control plane is upgraded: a new one would install \
                 the new version while API servers still run the old (a kubelet must not be \
                 newer than its API server)",
            ),
            Reason::RenewalWaits => f.write_str(
                "certificates near expiry are renewed once every manager is healthy and no \
                 other manager changes: in a later pass",
            ),
            Reason::CaExpiresSoon { node, expires } => write!(
                f,
                "the cluster CA on {node} expires at {} (Unix {expires}), within \
                 health.renew_certificates_before; kubeadm does not renew CAs: rotate it by \
                 hand (kubeadm's \"Manual rotation of CA certificates\")",
                crate::state::rfc3339(*expires)
            ),
            Reason::UpgradeOneAtATime => f.write_str(
                "control-plane nodes are upgraded one at a time, each while every one is \
                 healthy: the next one in a later pass",
            ),
            Reason::RestartForNewQuorum => f.write_str(
                "the running managers are restarted with the new quorum before new managers start",
            ),
            Reason::ReportRefused { why } => f.write_str(why),
            Reason::RolloutPaused { group } => write!(
                f,
                "the rollout of the {group} is paused: `provision rollout NAME resume` goes on"
            ),
            Reason::RolloutHalted {
                node,
                group,
                machine,
                waited_s,
            } => write!(
                f,
                "the rollout of the {group} halted: new node {node} ({machine}) is not healthy \
                 {waited_s}s after its machine was created; the old nodes are kept. Look at it \
                 (`provision ssh`, its log under the cluster's directory), then `provision \
                 rollout NAME undo` goes back, or give the cluster fixed machines"
            ),
            Reason::ZoneFailing { zone, nodes } if nodes.is_empty() => write!(
                f,
                "zone {zone} is failing (the cloud lists it unavailable): new nodes go to the \
                 other zones until it is back"
            ),
            Reason::ZoneFailing { zone, nodes } => write!(
                f,
                "zone {zone} is failing ({} down, none healthy there): new nodes go to the other \
                 zones until a node there is healthy again",
                nodes.join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_kept_as_json_and_read_back_equal() {
        let reasons = vec![
            Reason::BackingOff {
                node: "web-worker-1".into(),
                attempt: Attempt::Leave,
            },
            Reason::AboveMaxUnhealthy {
                unhealthy: vec![("web-worker-2".into(), "machine gone".into())],
                active: 3,
                limit: 1,
            },
            Reason::ManagersLeaveOneAtATime,
        ];
        let text = serde_json::to_string(&reasons).unwrap();
        assert!(text.contains(r#""reason":"backing_off""#), "{text}");
        let back: Vec<Reason> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, reasons);
        assert_eq!(back[0].node(), Some("web-worker-1"));
        assert_eq!(back[2].node(), None);
        assert_eq!(
            back[1].to_string(),
            "1 of 3 nodes are unhealthy, above max_unhealthy 1: remediating none: web-worker-2 (machine gone)"
        );
    }
}
