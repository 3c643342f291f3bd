//! Observe: what the cloud and the orchestrator say right now.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::future::join_all;
use provision_provider::{Addresses, Apply, Machine, MachineState, Role};
use tracing::{debug, warn};

use super::connections::Connections;
use super::context::{ClusterContext, Controller, ControllerError};
use super::health::{assess, Condition};
use super::plan::{plan, Observed, Probe};
use crate::bootstrap::scripts::script_context;
use crate::bootstrap::{NodeShell, SshTarget};
use crate::orchestrator::reported::{refuse_member, refuse_probe};
use crate::orchestrator::{Member, NodeProbe};
use crate::state::{Health, NodePhase, NodeRecord};

/// How long a probe of one node may take in all; a frozen node never stalls a pass.
const PROBE_DEADLINE: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a probe over a connection kept from an earlier pass may take
/// before the connection is given up for a new one: a busy node answers
/// well within it, a vanished one never does.
const KEPT_PROBE_DEADLINE: Duration = Duration::from_secs(5);

/// Whether an observation records the host key of a node met for the first
/// time (trust on first use). A dry run records nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstContact {
    Record,
    Forget,
}

/// Which nodes an observation probes over SSH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probing {
    /// Those the orchestrator's membership does not vouch for (the
    /// daemon's passes: one connection for a converged cluster).
    MembershipFirst,
    /// Every running node (`status`, and commands a person runs: each
    /// node's own report, its host key checked, at once, whatever the
    /// orchestrator's failure detector has noticed yet). Once per run: a
    /// later pass takes the membership's word for a node whose own report,
    /// read earlier in the run over the connection it still holds, was a
    /// running member's.
    EveryNode,
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
        let session = self
            .connector
            .connect(&target, ctx.key.private(), recorded, wait, CONNECT_TIMEOUT)
            .await?;
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

    /// Asks a node for its own report, over the connection an earlier
    /// pass of this run kept when it still works, otherwise over a new one
    /// (kept in `connections` either way). Connecting is timed on its own
    /// (waiting for one of this process's SSH slots is not the node's
    /// fault); the report has [`PROBE_DEADLINE`].
    async fn probe_node(
        &self,
        ctx: &ClusterContext,
        record: &NodeRecord,
        addresses: &Addresses,
        first_contact: FirstContact,
        connections: &Connections,
    ) -> Probe {
        if let Some(kept) = connections.open_to(&record.name, addresses) {
            if let Some(report) = self.probe_kept(&kept).await {
                connections.note_report(&record.name, &report);
                return Probe::Reached(report);
            }
        }
        // A kept connection that closed, leads elsewhere or did not answer
        // is not used again (nothing to drop when none was kept).
        connections.forget(&record.name);
        let shell = match first_contact {
            FirstContact::Record => self.open_shell(ctx, record, addresses, None).await,
            FirstContact::Forget => self.connect_shell(ctx, record, addresses, None).await,
        };
        let shell = match shell {
            Ok(shell) => shell,
            Err(ControllerError::Ssh(e)) if e.is_local() => {
                warn!(node = %record.name, error = %e, "not probed");
                return Probe::Unknown(e.to_string());
            }
            Err(e) => {
                debug!(node = %record.name, error = %e, "probe failed");
                return Probe::Unreachable(e.to_string());
            }
        };
        match tokio::time::timeout(PROBE_DEADLINE, self.orchestrator.probe(&shell)).await {
            Ok(Ok(report)) => {
                connections.keep(shell);
                connections.note_report(&record.name, &report);
                Probe::Reached(report)
            }
            Ok(Err(e)) => {
                debug!(node = %record.name, error = %e, "probe failed");
                connections.keep(shell);
                Probe::Unreachable(e.to_string())
            }
            Err(_) => Probe::Unreachable(format!("no answer within {}s", PROBE_DEADLINE.as_secs())),
        }
    }

    /// The member list over a connection kept from an earlier pass, if it
    /// answers within [`KEPT_PROBE_DEADLINE`].
    async fn members_over_kept(&self, kept: &NodeShell) -> Option<Vec<Member>> {
        match tokio::time::timeout(KEPT_PROBE_DEADLINE, self.orchestrator.members(kept)).await {
            Ok(Ok(listed)) => Some(listed),
            Ok(Err(e)) => {
                debug!(node = %kept.node(), error = %e, "membership query over the kept connection failed");
                None
            }
            Err(_) => None,
        }
    }

    /// The report over a connection kept from an earlier pass (one
    /// [`Connections::open_to`] let through), or `None` when that connection
    /// should be dropped: the probe failed or did not answer within
    /// [`KEPT_PROBE_DEADLINE`] (a machine gone without a word leaves its
    /// connection looking open).
    async fn probe_kept(&self, kept: &NodeShell) -> Option<NodeProbe> {
        match tokio::time::timeout(KEPT_PROBE_DEADLINE, self.orchestrator.probe(kept)).await {
            Ok(Ok(report)) => Some(report),
            Ok(Err(e)) => {
                debug!(node = %kept.node(), error = %e, "probe over the kept connection failed; connecting again");
                None
            }
            Err(_) => {
                debug!(node = %kept.node(), "probe over the kept connection did not answer; connecting again");
                None
            }
        }
    }

    /// One observation: a single provider list call, a probe of each running
    /// machine the membership does not vouch for, and membership through one
    /// manager. Records the addresses and health it saw, and returns the
    /// node records as they now are, so the planner works from what was just
    /// observed; the connections it used stay in `connections` for the
    /// actions (and the next observation) to reuse.
    pub async fn observe(
        &self,
        ctx: &ClusterContext,
        probing: Probing,
        connections: &Connections,
    ) -> Result<(Vec<NodeRecord>, Observed), ControllerError> {
        let records = self.store.nodes(ctx.name())?;
        let observed = self
            .look(ctx, &records, FirstContact::Record, probing, connections)
            .await?;
        let mut observed = observed;
        observed.gone_for = self.watch_gone(ctx, &records, &observed.machines);
        let records = self.record_observation(ctx, &observed)?;
        Ok((records, observed))
    }

    /// The observation alone, written nowhere but (with
    /// [`FirstContact::Record`]) the host keys of nodes met for the first
    /// time. Membership first: one manager is asked for the members, and a
    /// node listed as a ready member in its role is not probed; the rest
    /// (new, down, unlisted, a manager whose own view is asked for, a node
    /// whose configuration follows managers that changed) are. The shells
    /// it opened stay in `connections`.
    pub async fn look(
        &self,
        ctx: &ClusterContext,
        records: &[NodeRecord],
        first_contact: FirstContact,
        probing: Probing,
        connections: &Connections,
    ) -> Result<Observed, ControllerError> {
        let listed = self.provider.list_machines(&ctx.cluster).await?;
        let (machines, duplicates) = one_machine_per_node(records, listed);
        let reachable: BTreeMap<&str, Addresses> = machines
            .iter()
            .filter(|m| m.state == MachineState::Running)
            .filter_map(|m| Some((m.node.as_str(), m.addresses.clone()?)))
            .collect();
        let mut probes = BTreeMap::new();
        let mut refused = Vec::new();

        // Membership through one manager with control: the healthy first,
        // so one connection usually does it.
        let mut managers: Vec<&NodeRecord> = records
            .iter()
            .filter(|r| r.role == Role::Manager && reachable.contains_key(r.name.as_str()))
            .collect();
        managers.sort_by_key(|r| (r.health != Health::Healthy, r.retiring, r.index));
        let mut members = None;
        for r in managers {
            let addresses = &reachable[r.name.as_str()];
            // Over a connection an earlier pass kept, the member list is
            // asked for first (below: alone, or beside the probe), not after
            // the probe; it is used only if the manager shows control.
            let kept = connections.open_to(&r.name, addresses);
            let own_id = r
                .member_id
                .as_deref()
                .filter(|_| connections.reported_member(&r.name))
                .filter(|_| !self.orchestrator.profile().config_follows_managers);
            let (probe, early) = match (&kept, own_id) {
                // A manager that gave its own report earlier in this run is
                // asked for the list alone: only a manager with control can
                // list the members, and the list says whether it is still
                // that member, Ready. Its own probe, the heavier call on a
                // loaded manager (0.84 s against 0.61 s after a 1+16
                // formed), only if the list does not say so.
                (Some(kept), Some(own_id)) => {
                    let listed = self.members_over_kept(kept).await;
                    match listed.as_deref().and_then(|l| own_report(l, own_id)) {
                        Some(report) => {
                            connections.note_report(&r.name, &report);
                            (Probe::Reached(report), listed)
                        }
                        None => (
                            self.probe_node(ctx, r, addresses, first_contact, connections)
                                .await,
                            listed,
                        ),
                    }
                }
                (Some(kept), None) => tokio::join!(
                    self.probe_node(ctx, r, addresses, first_contact, connections),
                    self.members_over_kept(kept),
                ),
                (None, _) => (
                    self.probe_node(ctx, r, addresses, first_contact, connections)
                        .await,
                    None,
                ),
            };
            let probe = vetted(&r.name, probe, &mut refused);
            let control = probe.has_control();
            probes.insert(r.name.clone(), probe);
            let Some(shell) = connections.get(&r.name) else {
                continue;
            };
            if !control {
                continue;
            }
            let listed = match early {
                Some(listed) => Ok(Ok(listed)),
                None => {
                    tokio::time::timeout(PROBE_DEADLINE, self.orchestrator.members(&shell)).await
                }
            };
            match listed {
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
        let managers_view = members.as_deref().map(managers_view);

        // Every other running node: vouched for by the membership, or probed.
        let follows_managers = self.orchestrator.profile().config_follows_managers;
        let mut to_probe = Vec::new();
        for r in records {
            let Some(addresses) = reachable.get(r.name.as_str()) else {
                continue;
            };
            if probes.contains_key(&r.name) {
                continue;
            }
            let listed = listed_ready(r, members.as_deref());
            let view_current = !follows_managers || r.managers_seen == managers_view;
            // A later pass of a run that asked every node already has
            // this one's own word, if it is a member: no second probe.
            let may_vouch =
                probing == Probing::MembershipFirst || connections.reported_member(&r.name);
            match listed {
                Some(id) if view_current && may_vouch => {
                    probes.insert(r.name.clone(), Probe::vouched(id));
                }
                _ => to_probe.push((r, addresses)),
            }
        }
        let probed = join_all(to_probe.into_iter().map(|(r, addresses)| async move {
            let probe = self
                .probe_node(ctx, r, addresses, first_contact, connections)
                .await;
            (r, probe)
        }))
        .await;
        for (r, probe) in probed {
            probes.insert(r.name.clone(), vetted(&r.name, probe, &mut refused));
        }
        // A connection kept from an earlier pass to a node this one did not
        // ask (gone, or vouched for with no report of its own this run) is
        // not known to work: the actions open a new one if they need it.
        let usable: BTreeSet<&str> = probes
            .iter()
            .filter(|(node, p)| {
                !matches!(p, Probe::Vouched(_)) || connections.reported_member(node)
            })
            .map(|(node, _)| node.as_str())
            .collect();
        connections.retain(|node| usable.contains(node));

        Ok(Observed {
            machines,
            duplicates,
            probes,
            members,
            managers_view,
            refused,
            gone_for: BTreeMap::new(),
            zones_down: self.zones_down(ctx).await,
        })
    }

    /// The zones of the spec the cloud says are down, for the planner to
    /// place nothing there. Asked only of a cluster with zones; a failed
    /// call is no evidence either way (the planner still sees its nodes).
    async fn zones_down(&self, ctx: &ClusterContext) -> std::collections::BTreeSet<String> {
        if ctx.record.spec.all_zones().is_empty() {
            return Default::default();
        }
        match self.provider.unavailable_zones(&ctx.cluster).await {
            Ok(zones) => zones.into_iter().collect(),
            Err(e) => {
                tracing::warn!(
                    cluster = ctx.name(),
                    "could not list the cloud's zones: {e}"
                );
                Default::default()
            }
        }
    }

    /// How long this process has seen each recorded machine gone from the
    /// listing `machines`, in consecutive listings (quorum recovery's
    /// evidence, by this process's own clock: [`super::GoneWatch`]).
    fn watch_gone(
        &self,
        ctx: &ClusterContext,
        records: &[NodeRecord],
        machines: &[Machine],
    ) -> BTreeMap<String, Duration> {
        let gone_for = records
            .iter()
            .filter_map(|r| {
                let gone = r.machine_id.is_some() && !machines.iter().any(|m| m.node == r.name);
                self.gone
                    .observe(ctx.name(), &r.name, gone)
                    .map(|d| (r.name.clone(), d))
            })
            .collect();
        let names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
        self.gone.retain(ctx.name(), &names);
        gone_for
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
            if let Some(trouble) = apply_observation(rec, observed, now) {
                self.event(ctx, Some(&rec.name), &trouble);
            }
            if *rec != before {
                self.store.put_node(rec)?;
            }
        }
        Ok(records)
    }

    /// One observation that records nothing (no host key met for the first
    /// time, no state), over connections of its own, closed after it.
    pub(crate) async fn look_unrecorded(
        &self,
        ctx: &ClusterContext,
        records: &[NodeRecord],
    ) -> Result<Observed, ControllerError> {
        let connections = Connections::default();
        let observed = self
            .look(
                ctx,
                records,
                FirstContact::Forget,
                self.probing,
                &connections,
            )
            .await;
        connections.close_all().await;
        observed
    }

    /// Whether the cluster is settled as it stands, found without a write
    /// or a lock: its firewall as the template says, every node healthy
    /// and recorded as observed, and nothing for the planner to do or say.
    /// The daemon asks this before it takes the cluster's lock (in etcd a
    /// write: the key put, then deleted), so a converged pass writes
    /// nothing. A verdict reached while another actor changes the cluster
    /// is safe either way: "settled" leads to no action, anything else to
    /// the ordinary pass under the lock.
    pub async fn settled(&self, ctx: &ClusterContext) -> Result<bool, ControllerError> {
        if ctx.record.phase != "ready" || ctx.record.spec.restore.is_some() {
            return Ok(false);
        }
        let firewall = self
            .provider
            .reconcile_firewall(&ctx.cluster, Apply::DryRun)
            .await?;
        if !firewall.is_empty() {
            return Ok(false);
        }
        let records = self.store.nodes(ctx.name())?;
        let observed = self.look_unrecorded(ctx, &records).await?;
        // The gone-watch counts consecutive listings: this one counts too
        // (in memory; nothing is written), or a machine missing, back, then
        // missing again would look missing all along.
        self.watch_gone(ctx, &records, &observed.machines);
        if !observed.refused.is_empty() || !observed.duplicates.is_empty() {
            return Ok(false);
        }
        let now = unix_now();
        for rec in &records {
            let mut seen = rec.clone();
            let trouble = apply_observation(&mut seen, &observed, now);
            if trouble.is_some()
                || seen != *rec
                || seen.health != Health::Healthy
                || seen.retiring
                || seen.phase != NodePhase::Ready
            {
                return Ok(false);
            }
        }
        let plan = plan(&ctx.record.spec, &records, &observed, now);
        Ok(plan.is_empty() && plan.notes.is_empty())
    }
}

/// Moves what `observed` says of a node into its record: its machine and
/// addresses, its member id, its health and since when it has been in
/// trouble. Returns the event to record when the node has newly come into
/// (another kind of) trouble.
fn apply_observation(rec: &mut NodeRecord, observed: &Observed, now: i64) -> Option<String> {
    // While any node runs with an older view of the managers, nobody's
    // view counts as settled: a node found current against managers that
    // are themselves about to restart must be asked again after.
    let reconfiguring = observed
        .probes
        .values()
        .any(|p| matches!(p, Probe::Reached(n) if n.config_stale));
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
        // A node that runs with the current managers need not be asked
        // again until they change.
        rec.managers_seen = if p.joined && !reconfiguring {
            observed.managers_view.clone()
        } else {
            None
        };
        // What it read of its certificates is kept: later passes may not
        // ask it again (a renewal is followed by a probe of its own).
        if p.certificates.leaf.is_some() {
            rec.cert_expires = p.certificates.leaf;
        }
        if p.certificates.ca.is_some() {
            rec.ca_expires = p.certificates.ca;
        }
    }
    let member = observed.members.as_ref().and_then(|ms| {
        rec.member_id
            .as_ref()
            .and_then(|id| ms.iter().find(|m| &m.id == id))
    });
    let condition = assess(rec, machine, probe, member);
    let mut trouble = None;
    match condition {
        Condition::Healthy => {
            rec.health = Health::Healthy;
            rec.reason = None;
            rec.unhealthy_since = None;
            rec.unhealthy_kind = None;
        }
        // No evidence either way: the record stays as it was.
        Condition::Unknown(_) => {}
        Condition::Starting => {
            rec.health = Health::Unknown;
            rec.reason = Some(condition.reason());
            rec.unhealthy_since = None;
            rec.unhealthy_kind = None;
        }
        _ => {
            if rec.health != Health::Unhealthy || rec.unhealthy_kind != condition.kind() {
                trouble = Some(format!("unhealthy: {}", condition.reason()));
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
    trouble
}

/// What a node says of itself is untrusted: a report in a form no
/// orchestrator makes is not used (the node counts as unreachable), and
/// why becomes an event.
fn vetted(node: &str, probe: Probe, refused: &mut Vec<String>) -> Probe {
    let why = match &probe {
        Probe::Reached(p) => refuse_probe(node, p),
        _ => None,
    };
    match why {
        Some(why) => {
            warn!(node, "{why}");
            refused.push(why.clone());
            Probe::Unreachable(why)
        }
        None => probe,
    }
}

/// The member id under which the membership lists `record` as ready in its
/// own role, if it does.
fn listed_ready<'m>(record: &NodeRecord, members: Option<&'m [Member]>) -> Option<&'m str> {
    let id = record.member_id.as_deref()?;
    members?
        .iter()
        .find(|m| m.id == id && m.ready && m.role == record.role)
        .map(|m| m.id.as_str())
}

/// The managers as the membership lists them, in one comparable line.
fn managers_view(members: &[Member]) -> String {
    let mut ids: Vec<&str> = members
        .iter()
        .filter(|m| m.role == Role::Manager)
        .map(|m| m.id.as_str())
        .collect();
    ids.sort_unstable();
    ids.join(",")
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

/// What a manager's own member list says of it, as its report: listed
/// under the id it reported earlier, a Ready manager. The list came over
/// its own connection, and only a manager with control answers one.
fn own_report(listed: &[Member], own_id: &str) -> Option<NodeProbe> {
    listed
        .iter()
        .find(|m| m.id == own_id && m.role == Role::Manager && m.ready)
        .map(|m| NodeProbe {
            engine_running: true,
            joined: true,
            member_id: Some(m.id.clone()),
            control: true,
            config_stale: false,
            certificates: Default::default(),
        })
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
            zone: None,
        }
    }

    #[test]
    fn a_managers_own_list_vouches_for_it_only_as_a_ready_manager_under_its_id() {
        let listed = [
            member("m1", Role::Manager, true),
            member("m2", Role::Manager, false),
            member("w1", Role::Worker, true),
        ];
        let report = own_report(&listed, "m1").expect("listed ready as a manager");
        assert!(report.joined && report.control && report.engine_running);
        assert_eq!(report.member_id.as_deref(), Some("m1"));
        assert_eq!(own_report(&listed, "m2"), None, "not ready");
        assert_eq!(own_report(&listed, "w1"), None, "a worker");
        assert_eq!(own_report(&listed, "m9"), None, "not listed");
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

    fn member(id: &str, role: Role, ready: bool) -> Member {
        Member {
            id: id.into(),
            hostname: id.into(),
            role,
            ready,
            status: if ready { "Ready" } else { "Down" }.into(),
        }
    }

    #[test]
    fn only_a_ready_member_in_its_own_role_is_vouched_for() {
        let mut rec = NodeRecord::new("web", "web-worker-1", Role::Worker, 1);
        let members = vec![
            member("w1", Role::Worker, true),
            member("w2", Role::Worker, false),
            member("m1", Role::Manager, true),
        ];
        // Never joined: probed.
        assert_eq!(listed_ready(&rec, Some(&members)), None);
        rec.member_id = Some("w1".into());
        assert_eq!(listed_ready(&rec, Some(&members)), Some("w1"));
        // No listing: nobody is vouched for.
        assert_eq!(listed_ready(&rec, None), None);
        rec.member_id = Some("w2".into());
        assert_eq!(listed_ready(&rec, Some(&members)), None, "listed Down");
        rec.member_id = Some("w9".into());
        assert_eq!(listed_ready(&rec, Some(&members)), None, "not listed");
        // A worker record whose id the listing gives a manager.
        rec.member_id = Some("m1".into());
        assert_eq!(listed_ready(&rec, Some(&members)), None, "another role");
    }

    #[test]
    fn the_managers_view_changes_with_the_managers_only() {
        let a = vec![
            member("10.0.0.3", Role::Manager, true),
            member("10.0.0.2", Role::Manager, false),
            member("10.0.0.9", Role::Worker, true),
        ];
        assert_eq!(managers_view(&a), "10.0.0.2,10.0.0.3");
        let mut b = a.clone();
        b.push(member("10.0.0.10", Role::Worker, true));
        assert_eq!(managers_view(&a), managers_view(&b));
        b.push(member("10.0.0.4", Role::Manager, true));
        assert_ne!(managers_view(&a), managers_view(&b));
    }

    #[test]
    fn a_probe_in_no_orchestrators_form_is_refused_and_said() {
        let mut refused = Vec::new();
        let forged = Probe::Reached(crate::orchestrator::NodeProbe {
            engine_running: true,
            joined: true,
            member_id: Some("x; rm -rf /".into()),
            control: false,
            config_stale: false,
            certificates: Default::default(),
        });
        assert!(matches!(
            vetted("web-worker-1", forged, &mut refused),
            Probe::Unreachable(_)
        ));
        assert_eq!(refused.len(), 1);
        let unknown = Probe::Unknown("no slot".into());
        assert_eq!(
            vetted("web-worker-1", unknown.clone(), &mut refused),
            unknown
        );
        assert_eq!(refused.len(), 1);
    }
}
