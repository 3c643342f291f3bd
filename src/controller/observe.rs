//! Observe: what the cloud and the orchestrator say right now.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use provision_provider::{Addresses, Machine, MachineState, Role};
use tracing::{debug, warn};

use super::context::{ClusterContext, Controller, ControllerError};
use super::health::{assess, Condition};
use super::plan::{Observed, Probe};
use crate::bootstrap::scripts::script_context;
use crate::bootstrap::{NodeShell, SshSession, SshTarget};
use crate::orchestrator::reported::{refuse_member, refuse_probe};
use crate::state::{Health, NodeRecord};

/// How long a probe of one node may take in all; a frozen node never stalls a pass.
const PROBE_DEADLINE: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether an observation records the host key of a node met for the first
/// time (trust on first use). A dry run records nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstContact {
    Record,
    Forget,
}

impl Controller {
    /// Opens a shell on a node: waits up to `wait` for SSH when given,
    /// otherwise tries once. Records the host key on first contact.
    pub(crate) async fn open_shell(
        &self,
        ctx: &ClusterContext,
        record: &NodeRecord,
        addresses: &Addresses,
        wait: Option<Duration>,
    ) -> Result<NodeShell, ControllerError> {
        let shell = self.connect_shell(ctx, record, addresses, wait).await?;
        if record.host_key.is_none() && !shell.host_key().is_empty() {
            // Trust on first use: re-read the row so a concurrent writer of
            // other columns is not overwritten with stale values.
            let mut latest = self
                .store
                .node(ctx.name(), &record.name)?
                .unwrap_or_else(|| record.clone());
            latest.host_key = Some(shell.host_key().to_string());
            self.store.put_node(&latest)?;
        }
        Ok(shell)
    }

    /// [`Controller::open_shell`] without recording a host key met for the
    /// first time.
    async fn connect_shell(
        &self,
        ctx: &ClusterContext,
        record: &NodeRecord,
        addresses: &Addresses,
        wait: Option<Duration>,
    ) -> Result<NodeShell, ControllerError> {
        let target = SshTarget {
            node: record.name.clone(),
            address: addresses.ssh.clone(),
            port: 22,
            user: ctx.record.spec.ssh_user.clone(),
        };
        let recorded = record.host_key.as_deref();
        let session = match wait {
            Some(deadline) => {
                SshSession::wait_for(&target, ctx.key.private(), recorded, deadline).await?
            }
            None => {
                SshSession::connect(&target, ctx.key.private(), recorded, CONNECT_TIMEOUT).await?
            }
        };
        let context = script_context(&ctx.record, record, addresses);
        Ok(NodeShell::new(
            session,
            self.scripts.clone(),
            context,
            addresses.clone(),
            self.paths.node_log(ctx.name(), &record.name),
            ctx.record.spec.timeouts.script,
        ))
    }

    async fn probe_node(
        &self,
        ctx: &ClusterContext,
        record: &NodeRecord,
        addresses: &Addresses,
        first_contact: FirstContact,
    ) -> (Probe, Option<NodeShell>) {
        let attempt = async {
            let shell = match first_contact {
                FirstContact::Record => self.open_shell(ctx, record, addresses, None).await?,
                FirstContact::Forget => self.connect_shell(ctx, record, addresses, None).await?,
            };
            let probe = self.orchestrator.probe(&shell).await?;
            Ok::<_, ControllerError>((probe, shell))
        };
        match tokio::time::timeout(PROBE_DEADLINE, attempt).await {
            Ok(Ok((probe, shell))) => (Probe::Reached(probe), Some(shell)),
            Ok(Err(e)) => {
                debug!(node = %record.name, error = %e, "probe failed");
                (Probe::Unreachable(e.to_string()), None)
            }
            Err(_) => (
                Probe::Unreachable(format!("no answer within {}s", PROBE_DEADLINE.as_secs())),
                None,
            ),
        }
    }

    /// One observation: a single provider list call, a probe of each running
    /// machine, and membership through one manager. Records the addresses
    /// and health it saw, and returns the node records as they now are, so
    /// the planner works from what was just observed.
    pub async fn observe(
        &self,
        ctx: &ClusterContext,
    ) -> Result<(Vec<NodeRecord>, Observed), ControllerError> {
        let records = self.store.nodes(ctx.name())?;
        let observed = self.look(ctx, &records, FirstContact::Record).await?;
        let records = self.record_observation(ctx, &observed)?;
        Ok((records, observed))
    }

    /// The observation alone, written nowhere but (with
    /// [`FirstContact::Record`]) the host keys of nodes met for the first time.
    pub async fn look(
        &self,
        ctx: &ClusterContext,
        records: &[NodeRecord],
        first_contact: FirstContact,
    ) -> Result<Observed, ControllerError> {
        let listed = self.provider.list_machines(&ctx.cluster).await?;
        let (machines, duplicates) = one_machine_per_node(records, listed);
        let by_node: BTreeMap<&str, &Machine> =
            machines.iter().map(|m| (m.node.as_str(), m)).collect();

        let probes = join_all(records.iter().filter_map(|r| {
            let m = by_node.get(r.name.as_str())?;
            let addresses = m.addresses.clone()?;
            if m.state != MachineState::Running {
                return None;
            }
            Some(async move {
                let (probe, shell) = self.probe_node(ctx, r, &addresses, first_contact).await;
                (r.name.clone(), probe, shell)
            })
        }))
        .await;

        let mut shells = BTreeMap::new();
        let mut probe_map = BTreeMap::new();
        let mut refused = Vec::new();
        for (name, probe, shell) in probes {
            // What a node says of itself is untrusted: a report in a form
            // no orchestrator makes is not used (the node counts as unreachable).
            let probe = match &probe {
                Probe::Reached(p) => match refuse_probe(&name, p) {
                    Some(why) => {
                        warn!(node = %name, "{why}");
                        refused.push(why.clone());
                        Probe::Unreachable(why)
                    }
                    None => probe,
                },
                Probe::Unreachable(_) => probe,
            };
            if let Some(s) = shell {
                shells.insert(name.clone(), s);
            }
            probe_map.insert(name, probe);
        }

        // Membership through the first manager that has control.
        let mut members = None;
        for r in records.iter().filter(|r| r.role == Role::Manager) {
            let control = matches!(probe_map.get(&r.name), Some(Probe::Reached(p)) if p.control);
            if let (true, Some(shell)) = (control, shells.get(&r.name)) {
                match tokio::time::timeout(PROBE_DEADLINE, self.orchestrator.members(shell)).await {
                    Ok(Ok(listed)) => {
                        let mut usable = Vec::with_capacity(listed.len());
                        for m in listed {
                            match refuse_member(&m) {
                                Some(why) => {
                                    warn!(via = %r.name, "{why}");
                                    refused.push(why);
                                }
                                None => usable.push(m),
                            }
                        }
                        members = Some(usable);
                        break;
                    }
                    Ok(Err(e)) => debug!(node = %r.name, error = %e, "membership query failed"),
                    Err(_) => debug!(node = %r.name, "membership query timed out"),
                }
            }
        }
        for (_, shell) in shells {
            shell.close().await;
        }

        Ok(Observed {
            machines,
            duplicates,
            probes: probe_map,
            members,
            refused,
        })
    }

    /// Writes addresses, member ids and health seen in `observed` back to
    /// the records, so the planner and `status` see the same conditions.
    fn record_observation(
        &self,
        ctx: &ClusterContext,
        observed: &Observed,
    ) -> Result<Vec<NodeRecord>, ControllerError> {
        let now = unix_now();
        // Re-read: probes may have recorded host keys on first contact.
        let mut records = self.store.nodes(ctx.name())?;
        for rec in &mut records {
            let before = rec.clone();
            let machine = observed.machines.iter().find(|m| m.node == rec.name);
            let probe = observed.probes.get(&rec.name);
            if let Some(m) = machine {
                rec.machine_id = Some(m.id.clone());
                if m.addresses.is_some() {
                    rec.addresses = m.addresses.clone();
                }
            }
            if let Some(Probe::Reached(p)) = probe {
                if p.member_id.is_some() {
                    rec.member_id = p.member_id.clone();
                }
            }
            let member = observed.members.as_ref().and_then(|ms| {
                rec.member_id
                    .as_ref()
                    .and_then(|id| ms.iter().find(|m| &m.id == id))
            });
            let condition = assess(rec, machine, probe, member);
            match condition {
                Condition::Healthy => {
                    rec.health = Health::Healthy;
                    rec.reason = None;
                    rec.unhealthy_since = None;
                    rec.unhealthy_kind = None;
                }
                Condition::Starting => {
                    rec.health = Health::Unknown;
                    rec.reason = Some(condition.reason());
                    rec.unhealthy_since = None;
                    rec.unhealthy_kind = None;
                }
                _ => {
                    if rec.health != Health::Unhealthy || rec.unhealthy_kind != condition.kind() {
                        self.event(
                            ctx,
                            Some(&rec.name),
                            &format!("unhealthy: {}", condition.reason()),
                        );
                    }
                    rec.health = Health::Unhealthy;
                    rec.reason = Some(condition.reason());
                    // A new kind of trouble starts its own clock.
                    if rec.unhealthy_kind != condition.kind() {
                        rec.unhealthy_since = Some(now);
                    }
                    rec.unhealthy_since = rec.unhealthy_since.or(Some(now));
                    rec.unhealthy_kind = condition.kind();
                }
            }
            if *rec != before {
                self.store.put_node(rec)?;
            }
        }
        Ok(records)
    }
}

/// Splits a listing into one machine a node and the rest. A node keeps the
/// machine its record names, else a running one, else the first listed;
/// a node nobody recorded keeps one too (the planner deletes it as unknown).
fn one_machine_per_node(
    records: &[NodeRecord],
    listed: Vec<Machine>,
) -> (Vec<Machine>, Vec<Machine>) {
    let mut by_node: BTreeMap<String, Vec<Machine>> = BTreeMap::new();
    for m in listed {
        by_node.entry(m.node.clone()).or_default().push(m);
    }
    let mut kept = Vec::new();
    let mut extra = Vec::new();
    for (node, mut ms) in by_node {
        let recorded = records
            .iter()
            .find(|r| r.name == node)
            .and_then(|r| r.machine_id.as_deref());
        let keep = ms
            .iter()
            .position(|m| Some(m.id.as_str()) == recorded)
            .or_else(|| ms.iter().position(|m| m.state == MachineState::Running))
            .unwrap_or(0);
        kept.push(ms.remove(keep));
        extra.extend(ms);
    }
    (kept, extra)
}

/// Seconds since the Unix epoch: the planner's clock.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(node: &str, id: &str, state: MachineState) -> Machine {
        Machine {
            id: id.into(),
            node: node.into(),
            role: Role::Worker,
            state,
            addresses: None,
        }
    }

    #[test]
    fn a_node_keeps_its_recorded_machine_else_a_running_one() {
        let mut rec = NodeRecord::new("web", "web-worker-1", Role::Worker, 1);
        rec.machine_id = Some("b".into());
        let listed = vec![
            machine("web-worker-1", "a", MachineState::Running),
            machine("web-worker-1", "b", MachineState::Pending),
            machine("web-worker-2", "c", MachineState::Pending),
            machine("web-worker-2", "d", MachineState::Running),
            machine("web-worker-3", "e", MachineState::Running),
        ];
        let (kept, extra) = one_machine_per_node(&[rec], listed);
        let ids = |ms: &[Machine]| ms.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&kept), ["b", "d", "e"]);
        assert_eq!(ids(&extra), ["a", "c"]);
    }
}
