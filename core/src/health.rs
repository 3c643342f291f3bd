//! The health policy: which conditions make a node unhealthy, for how long
//! before it is remediated, and how many may be unhealthy before nothing is
//! remediated at all (so a network partition never triggers mass
//! replacement). Pure functions; the clock is an argument.

use std::time::Duration;

use provision_provider::{Machine, MachineState};

use crate::plan::Probe;
use crate::reported::Member;
use crate::spec::{HealthPolicy, MaxUnhealthy};
use crate::state::{NodeRecord, UnhealthyKind};

/// Why a node is not healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Healthy,
    /// New: still being created, booted, installed or joined.
    Starting,
    /// The machine is gone although it existed.
    MachineGone,
    /// A member's machine the cloud is rebooting, resizing, migrating or
    /// rebuilding, or cannot tell the state of, in the cloud's words.
    MachineBusy(String),
    /// The machine is stopped or paused.
    MachineStopped,
    /// The cloud says the machine failed, with its reason.
    MachineError(String),
    /// SSH does not answer (or does not finish) within the probe deadline.
    SshUnreachable(String),
    /// The orchestrator lists the node as Down / NotReady.
    OrchestratorDown(String),
    /// Not observed this pass, for a reason on our side: no grace runs and
    /// nothing is remediated, but the node is not counted healthy either.
    Unknown(String),
}

impl Condition {
    pub fn is_healthy(&self) -> bool {
        matches!(self, Condition::Healthy)
    }

    /// The kind of trouble, whose start the grace counts from; `None` for
    /// the healthy and the starting.
    pub fn kind(&self) -> Option<UnhealthyKind> {
        match self {
            Condition::Healthy | Condition::Starting | Condition::Unknown(_) => None,
            Condition::MachineGone | Condition::MachineStopped | Condition::MachineError(_) => {
                Some(UnhealthyKind::Lost)
            }
            Condition::MachineBusy(_) => Some(UnhealthyKind::Busy),
            Condition::SshUnreachable(_) | Condition::OrchestratorDown(_) => {
                Some(UnhealthyKind::Unresponsive)
            }
        }
    }

    /// Short text stored with the node and shown in events.
    pub fn reason(&self) -> String {
        match self {
            Condition::Healthy => "healthy".into(),
            Condition::Starting => "starting".into(),
            Condition::MachineGone => "machine gone".into(),
            Condition::MachineBusy(why) => format!("machine busy: {why}"),
            Condition::MachineStopped => "machine stopped".into(),
            Condition::MachineError(why) => format!("machine in error: {why}"),
            Condition::SshUnreachable(why) => format!("SSH unreachable: {why}"),
            Condition::OrchestratorDown(status) => format!("orchestrator reports {status}"),
            Condition::Unknown(why) => format!("not observed: {why}"),
        }
    }
}

/// What one observation says of one node.
pub fn assess(
    record: &NodeRecord,
    machine: Option<&Machine>,
    probe: Option<&Probe>,
    member: Option<&Member>,
) -> Condition {
    let ever_joined = record.member_id.is_some();
    let Some(machine) = machine else {
        return if record.machine_id.is_some() {
            Condition::MachineGone
        } else {
            Condition::Starting
        };
    };
    match &machine.state {
        MachineState::Error(why) => return Condition::MachineError(why.clone()),
        MachineState::Stopped => return Condition::MachineStopped,
        MachineState::Pending => return Condition::Starting,
        // A member being rebooted or migrated is not a new node: its own grace.
        MachineState::Busy(why) if ever_joined => return Condition::MachineBusy(why.clone()),
        MachineState::Busy(_) => return Condition::Starting,
        MachineState::Running => {}
    }
    match probe {
        Some(Probe::Vouched(_)) => Condition::Healthy,
        Some(Probe::Unknown(why)) if ever_joined => Condition::Unknown(why.clone()),
        Some(Probe::Reached(p)) if p.joined => match member {
            Some(m) if !m.ready => Condition::OrchestratorDown(m.status.clone()),
            _ => Condition::Healthy,
        },
        Some(Probe::Unreachable(why)) if ever_joined => Condition::SshUnreachable(why.clone()),
        // Reached but not a member (or never reached): still on its way in,
        // which the startup timeout bounds.
        _ if !ever_joined => Condition::Starting,
        Some(Probe::Reached(_)) => Condition::OrchestratorDown("not a member".into()),
        _ => Condition::SshUnreachable("not probed".into()),
    }
}

/// Seconds a condition must last before the node is remediated.
pub fn grace(policy: &HealthPolicy, condition: &Condition) -> Option<u64> {
    match condition {
        Condition::Healthy | Condition::Unknown(_) => None,
        Condition::MachineGone | Condition::MachineStopped | Condition::MachineError(_) => {
            Some(policy.lost_timeout.as_secs())
        }
        Condition::MachineBusy(_) => Some(policy.busy_timeout.as_secs()),
        Condition::SshUnreachable(_) => Some(policy.ssh_timeout.as_secs()),
        Condition::OrchestratorDown(_) => Some(policy.not_ready_timeout.as_secs()),
        Condition::Starting => Some(policy.startup_timeout.as_secs()),
    }
}

/// True when the node's recorded condition has lasted past its grace period.
/// A starting node's clock runs from its machine's creation; any other from
/// the first observation of its kind of trouble, so the condition was seen
/// at least twice, a grace apart (a kind first seen now is not due unless
/// its grace is zero). A machine that failed before its node ever joined
/// (Nova ERROR at build) is due at once: no member is lost by replacing it.
pub fn is_due(policy: &HealthPolicy, record: &NodeRecord, condition: &Condition, now: i64) -> bool {
    due_at(policy, record, condition, now).is_some_and(|at| at <= now)
}

/// When the node's condition passes its grace (unix seconds; see
/// [`is_due`]), or `None` when it has none (healthy, unknown) or its clock
/// has not started.
pub fn due_at(
    policy: &HealthPolicy,
    record: &NodeRecord,
    condition: &Condition,
    now: i64,
) -> Option<i64> {
    let grace = grace(policy, condition)?;
    if condition.kind() == Some(UnhealthyKind::Lost) && record.member_id.is_none() {
        return Some(now);
    }
    let since = match condition {
        Condition::Starting => record.machine_created_at,
        _ if record.unhealthy_kind == condition.kind() => record.unhealthy_since.or(Some(now)),
        _ => Some(now),
    };
    since.map(|t| t.saturating_add(grace as i64))
}

/// How long a node waits after its `failures`-th failed attempt in a row
/// before the next: `remediation_backoff`, doubling, at most 10 minutes.
pub fn backoff(policy: &HealthPolicy, failures: u32) -> Duration {
    let base = policy.remediation_backoff.as_secs().max(1);
    let doublings = failures.saturating_sub(1).min(10);
    Duration::from_secs(base.saturating_mul(1 << doublings).min(MAX_BACKOFF_SECONDS))
}

/// The longest wait between attempts at a failing node.
const MAX_BACKOFF_SECONDS: u64 = 600;

/// How many of `total` nodes may be unhealthy while remediation goes on.
pub fn max_unhealthy(policy: &HealthPolicy, total: usize) -> usize {
    match policy.max_unhealthy {
        MaxUnhealthy::Count(n) => n as usize,
        // At least one, so small clusters can still heal a single failure.
        MaxUnhealthy::Percent(p) => ((total * p as usize) / 100).max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reported::NodeProbe;
    use provision_provider::Role;

    fn rec(joined: bool) -> NodeRecord {
        let mut r = NodeRecord::new("web", "web-worker-1", Role::Worker, 1);
        r.machine_id = Some("m".into());
        r.member_id = joined.then(|| "w1".to_string());
        r
    }

    fn machine(state: MachineState) -> Machine {
        Machine {
            id: "m".into(),
            node: "web-worker-1".into(),
            role: Role::Worker,
            state,
            addresses: Some(provision_provider::Addresses::private_only("10.0.0.3")),
            zone: None,
        }
    }

    fn reached(joined: bool) -> Probe {
        Probe::Reached(NodeProbe {
            engine_running: true,
            joined,
            member_id: joined.then(|| "w1".to_string()),
            control: false,
            config_stale: false,
            certificates: Default::default(),
        })
    }

    fn member(ready: bool) -> Member {
        Member {
            id: "w1".into(),
            hostname: "web-worker-1".into(),
            role: Role::Worker,
            ready,
            status: if ready {
                "Ready Active".into()
            } else {
                "Down Active".into()
            },
        }
    }

    #[test]
    fn conditions() {
        let running = machine(MachineState::Running);
        assert_eq!(
            assess(
                &rec(true),
                Some(&running),
                Some(&reached(true)),
                Some(&member(true))
            ),
            Condition::Healthy
        );
        assert_eq!(assess(&rec(true), None, None, None), Condition::MachineGone);
        assert_eq!(
            assess(
                &rec(true),
                Some(&machine(MachineState::Stopped)),
                None,
                None
            ),
            Condition::MachineStopped
        );
        assert_eq!(
            assess(
                &rec(true),
                Some(&machine(MachineState::Error("boom".into()))),
                None,
                None
            ),
            Condition::MachineError("boom".into())
        );
        assert_eq!(
            assess(
                &rec(true),
                Some(&running),
                Some(&Probe::Unreachable("timeout".into())),
                None
            ),
            Condition::SshUnreachable("timeout".into())
        );
        assert_eq!(
            assess(
                &rec(true),
                Some(&running),
                Some(&reached(true)),
                Some(&member(false))
            ),
            Condition::OrchestratorDown("Down Active".into())
        );
        // Never joined: starting, whatever SSH says.
        assert_eq!(
            assess(
                &rec(false),
                Some(&running),
                Some(&Probe::Unreachable("x".into())),
                None
            ),
            Condition::Starting
        );
        assert_eq!(
            assess(&rec(false), Some(&running), Some(&reached(false)), None),
            Condition::Starting
        );
        let mut fresh = rec(false);
        fresh.machine_id = None;
        assert_eq!(assess(&fresh, None, None, None), Condition::Starting);
    }

    #[test]
    fn a_vouched_member_is_healthy_and_an_unknown_one_is_never_due() {
        let running = machine(MachineState::Running);
        let listed = Probe::vouched("w1");
        assert_eq!(
            assess(
                &rec(true),
                Some(&running),
                Some(&listed),
                Some(&member(true))
            ),
            Condition::Healthy
        );
        let unknown = Probe::Unknown("all 256 SSH connection slots stayed busy".into());
        let c = assess(&rec(true), Some(&running), Some(&unknown), None);
        assert!(matches!(c, Condition::Unknown(_)), "{c:?}");
        assert!(!c.is_healthy());
        assert_eq!(c.kind(), None);
        let mut r = rec(true);
        r.unhealthy_since = Some(0);
        r.unhealthy_kind = Some(UnhealthyKind::Unresponsive);
        assert!(!is_due(&HealthPolicy::default(), &r, &c, i64::MAX));
        // The cloud's word still counts: a stopped machine is stopped.
        assert_eq!(
            assess(
                &rec(true),
                Some(&machine(MachineState::Stopped)),
                Some(&unknown),
                None
            ),
            Condition::MachineStopped
        );
        // A node that never joined is still starting; its startup clock runs.
        assert_eq!(
            assess(&rec(false), Some(&running), Some(&unknown), None),
            Condition::Starting
        );
    }

    #[test]
    fn backoff_doubles_from_the_policy_to_ten_minutes() {
        let mut policy = HealthPolicy {
            remediation_backoff: Duration::from_secs(5),
            ..HealthPolicy::default()
        };
        let secs = |p: &HealthPolicy, n| backoff(p, n).as_secs();
        assert_eq!([1, 2, 3, 4].map(|n| secs(&policy, n)), [5, 10, 20, 40]);
        assert_eq!(secs(&policy, 8), 600);
        assert_eq!(secs(&policy, u32::MAX), 600);
        // Zero still waits a second between attempts.
        policy.remediation_backoff = Duration::ZERO;
        assert_eq!(secs(&policy, 1), 1);
    }

    #[test]
    fn due_after_the_grace_of_each_condition() {
        let policy = HealthPolicy::default();
        let mut r = rec(true);
        r.unhealthy_since = Some(1000);
        r.unhealthy_kind = Some(UnhealthyKind::Unresponsive);
        r.machine_created_at = Some(500);
        let ssh = Condition::SshUnreachable("x".into());
        let t = policy.ssh_timeout.as_secs() as i64;
        assert!(!is_due(&policy, &r, &ssh, 1000 + t - 1));
        assert!(is_due(&policy, &r, &ssh, 1000 + t));
        let s = policy.startup_timeout.as_secs() as i64;
        assert!(!is_due(&policy, &r, &Condition::Starting, 500 + s - 1));
        assert!(is_due(&policy, &r, &Condition::Starting, 500 + s));
        assert!(!is_due(&policy, &r, &Condition::Healthy, i64::MAX));
    }

    #[test]
    fn a_lost_machine_is_due_only_on_a_second_observation_a_grace_later() {
        let policy = HealthPolicy::default();
        let lost = policy.lost_timeout.as_secs() as i64;
        let mut r = rec(true);
        // First seen gone now: not due, whatever came before.
        assert!(!is_due(&policy, &r, &Condition::MachineGone, 5000));
        r.unhealthy_since = Some(1000);
        r.unhealthy_kind = Some(UnhealthyKind::Unresponsive);
        assert!(
            !is_due(&policy, &r, &Condition::MachineGone, 5000),
            "SSH failing since long ago does not make a first 'gone' listing due"
        );
        r.unhealthy_kind = Some(UnhealthyKind::Lost);
        r.unhealthy_since = Some(5000);
        assert!(!is_due(
            &policy,
            &r,
            &Condition::MachineGone,
            5000 + lost - 1
        ));
        assert!(is_due(&policy, &r, &Condition::MachineGone, 5000 + lost));
        assert!(is_due(&policy, &r, &Condition::MachineStopped, 5000 + lost));
        assert!(is_due(
            &policy,
            &r,
            &Condition::MachineError("x".into()),
            5000 + lost
        ));
    }

    #[test]
    fn a_machine_that_failed_before_its_node_joined_is_due_at_once() {
        let policy = HealthPolicy::default();
        let never = rec(false);
        for lost in [
            Condition::MachineError("No valid host was found".into()),
            Condition::MachineGone,
            Condition::MachineStopped,
        ] {
            assert!(is_due(&policy, &never, &lost, 5000), "{lost:?}");
            assert!(!is_due(&policy, &rec(true), &lost, 5000), "{lost:?}");
        }
    }

    #[test]
    fn a_rebooting_member_has_its_own_longer_grace() {
        let policy = HealthPolicy::default();
        let busy = machine(MachineState::Busy("Nova reports REBOOT".into()));
        let condition = assess(&rec(true), Some(&busy), None, None);
        assert_eq!(
            condition,
            Condition::MachineBusy("Nova reports REBOOT".into())
        );
        // A node that never joined is still starting, on its startup clock.
        assert_eq!(
            assess(&rec(false), Some(&busy), None, None),
            Condition::Starting
        );
        let mut r = rec(true);
        r.machine_created_at = Some(0);
        r.unhealthy_kind = condition.kind();
        r.unhealthy_since = Some(1000);
        let grace = policy.busy_timeout.as_secs() as i64;
        assert!(grace > policy.startup_timeout.as_secs() as i64);
        assert!(!is_due(&policy, &r, &condition, 1000 + grace - 1));
        assert!(is_due(&policy, &r, &condition, 1000 + grace));
    }

    #[test]
    fn max_unhealthy_by_count_and_percent() {
        let mut policy = HealthPolicy {
            max_unhealthy: MaxUnhealthy::Count(1),
            ..Default::default()
        };
        assert_eq!(max_unhealthy(&policy, 10), 1);
        policy.max_unhealthy = MaxUnhealthy::Percent(40);
        assert_eq!(max_unhealthy(&policy, 10), 4);
        assert_eq!(max_unhealthy(&policy, 3), 1);
        assert_eq!(max_unhealthy(&policy, 1), 1);
    }
}
