//! Reconcile: observe → plan → act, until nothing is left to do.

use std::time::Instant;

use provision_provider::{Apply, Provider, Recorder};
use tracing::{info, warn};

use super::connections::Connections;
use super::context::{ClusterContext, Controller, ControllerError};
use super::observe::unix_now;
use super::plan::{plan, Observed, Plan};
use crate::state::{Health, NodePhase, NodeRecord, Reason};

/// Passes after which a plan that keeps coming back is reported, not
/// retried: a few, and two for each node wanted, since some changes go one
/// node a pass (Mesos restarts every node for a new master list; a restore
/// forgets the old managers one by one). A rollout replaces every node, a
/// few passes each, and where the nodes' configuration follows the
/// managers (Mesos) every manager that joins or leaves restarts each node,
/// one a pass.
fn max_passes(spec: &crate::spec::ClusterSpec) -> usize {
    let nodes = (spec.managers + spec.count(provision_provider::Role::Worker)) as usize;
    let mut passes = 8 + 2 * nodes;
    if spec.change.is_some() {
        let per_node = if spec.coe.profile().config_follows_managers {
            2 + 2 * (nodes + 1)
        } else {
            2
        };
        passes += per_node * nodes;
    }
    passes
}

/// What `--dry-run` shows: the same planner's plan for the next pass, from
/// an observation that wrote nothing.
#[derive(Debug, Clone, Default)]
pub struct DryRun {
    /// Firewall rules the run would add or revoke, in words.
    pub firewall: Vec<String>,
    /// Kinds of cloud resource made first when missing (the plan creates machines).
    pub prerequisites: &'static [&'static str],
    pub plan: Plan,
}

impl DryRun {
    /// The dry run of `plan`, naming `provider`'s prerequisites when the
    /// plan creates machines (they are made first, when missing).
    pub fn new(plan: Plan, firewall: Vec<String>, provider: &dyn Provider) -> DryRun {
        let prerequisites = if plan.creates_machines() {
            provider.prerequisite_kinds()
        } else {
            &[]
        };
        DryRun {
            firewall,
            prerequisites,
            plan,
        }
    }
}

/// What a converge run did.
#[derive(Debug, Default, Clone)]
pub struct ConvergeReport {
    /// Nodes replaced because they were unhealthy.
    pub remediations: Vec<String>,
    /// Every node is healthy and none is leaving or failed.
    pub healthy: bool,
    /// Nodes that never joined and are not replaced again (the budget of
    /// attempts is spent): an operator must look.
    pub stalled: Vec<String>,
    /// When the last pass's planner wants to look again (unix seconds; see
    /// `Plan::next_look`).
    pub next_look: Option<i64>,
}

impl Controller {
    /// Lets every node be tried again now, and gives nodes that never
    /// joined a fresh budget of attempts: for commands a person runs, who
    /// should not wait out the backoff meant for the daemon's retries, and
    /// who is the one `max_start_attempts` stops the daemon for.
    pub fn clear_backoff(&self, ctx: &ClusterContext) -> Result<(), ControllerError> {
        for mut n in self.store.nodes(ctx.name())? {
            if clear_node_backoff(&mut n) {
                self.store.put_node(&n)?;
            }
        }
        Ok(())
    }

    /// Brings the cloud's firewall to the spec's (an admin's removal, a
    /// changed `ssh_from`), recording each change as an event.
    async fn reconcile_firewall(&self, ctx: &ClusterContext) -> Result<(), ControllerError> {
        for change in self
            .provider
            .reconcile_firewall(&ctx.cluster, Apply::Changes)
            .await?
        {
            info!(cluster = %ctx.name(), "{change}");
            self.reporter.note(&change);
            self.event(ctx, None, &change);
        }
        Ok(())
    }

    /// What the next run would do, changing nothing: no state write, no
    /// host key recorded, no cloud call but lists (for `--dry-run`).
    /// `ctx.record` and `records` are the cluster as the command would
    /// leave them (a scale's new counts, its leaving nodes marked retiring).
    pub async fn dry_run(
        &self,
        ctx: &ClusterContext,
        records: &[NodeRecord],
    ) -> Result<DryRun, ControllerError> {
        let firewall = self
            .provider
            .reconcile_firewall(&ctx.cluster, Apply::DryRun)
            .await?;
        let observed = self.look_unrecorded(ctx, records).await?;
        let plan = plan(&ctx.record.spec, records, &observed, unix_now());
        Ok(DryRun::new(plan, firewall, self.provider.as_ref()))
    }

    /// Records the plan's reasons, each told (log, progress, event) only
    /// when it is new, so the daemon does not repeat one every pass. A
    /// reason about a node is kept on that node as its conditions, compared
    /// by value with the last pass's; one about the cluster is new unless
    /// it is among the cluster's latest events.
    fn record_reasons(
        &self,
        ctx: &ClusterContext,
        records: &[NodeRecord],
        reasons: &[Reason],
    ) -> Result<(), ControllerError> {
        for record in records {
            let now: Vec<Reason> = reasons
                .iter()
                .filter(|r| r.node() == Some(record.name.as_str()))
                .cloned()
                .collect();
            if now == record.conditions {
                continue;
            }
            for reason in now.iter().filter(|r| !record.conditions.contains(r)) {
                self.tell(ctx, Some(&record.name), reason);
            }
            // Re-read: a concurrent writer of other fields is not undone.
            if let Some(mut latest) = self.store.node(ctx.name(), &record.name)? {
                latest.conditions = now;
                self.store.put_node(&latest)?;
            }
        }
        let about_cluster: Vec<&Reason> = reasons
            .iter()
            .filter(|r| {
                r.node()
                    .is_none_or(|n| !records.iter().any(|rec| rec.name == n))
            })
            .collect();
        if about_cluster.is_empty() {
            return Ok(());
        }
        let last: Vec<String> = self
            .store
            .events(ctx.name(), 20)
            .map(|e| e.into_iter().map(|e| e.message).collect())
            .unwrap_or_default();
        for reason in about_cluster {
            if !last.contains(&reason.to_string()) {
                self.tell(ctx, reason.node(), reason);
            }
        }
        Ok(())
    }

    /// Logs a reason, shows it to the person watching, and records it as an event.
    fn tell(&self, ctx: &ClusterContext, node: Option<&str>, reason: &Reason) {
        let text = reason.to_string();
        warn!(cluster = %ctx.name(), node, "{text}");
        self.reporter.note(&text);
        self.event(ctx, node, &text);
    }

    /// Works until the cluster matches its spec, the converge timeout passes,
    /// or a step fails. Each pass starts from a fresh observation, so a run
    /// interrupted at any point is finished by the next.
    pub async fn converge(&self, ctx: &ClusterContext) -> Result<ConvergeReport, ControllerError> {
        let mut report = ConvergeReport::default();
        self.converge_into(ctx, &mut report).await?;
        Ok(report)
    }

    /// [`Controller::converge`], filling `report` as it goes, so what it did
    /// (remediations started) is known when it fails too.
    pub async fn converge_into(
        &self,
        ctx: &ClusterContext,
        report: &mut ConvergeReport,
    ) -> Result<(), ControllerError> {
        // One set of connections for every pass: the last pass, which only
        // confirms, needs no new handshakes.
        let connections = Connections::default();
        let result = self.converge_passes(ctx, report, &connections).await;
        connections.close_all().await;
        result
    }

    async fn converge_passes(
        &self,
        ctx: &ClusterContext,
        report: &mut ConvergeReport,
        connections: &Connections,
    ) -> Result<(), ControllerError> {
        let started = Instant::now();
        let limit = ctx.record.spec.timeouts.converge;
        let mut last: Vec<String> = Vec::new();
        self.reconcile_firewall(ctx).await?;
        let max_passes = max_passes(&ctx.record.spec);
        let mut pass = 1;
        while pass <= max_passes {
            // A holder that lost its lock probes nothing more either.
            self.may_go_on(ctx.name())?;
            let (records, observed) = self.observe(ctx, self.probing, connections).await?;
            let result = self
                .plan_and_act(ctx, report, pass, &records, &observed, connections, started)
                .await;
            match result? {
                Pass::Converged => return Ok(()),
                Pass::More(remaining) => last = remaining,
                Pass::OutOfTime(remaining) => {
                    last = remaining;
                    break;
                }
                // Not a pass that acted: only the converge timeout bounds
                // these.
                Pass::Waiting => {
                    if started.elapsed() >= limit {
                        break;
                    }
                    tokio::time::sleep(ROLLOUT_LOOK).await;
                    continue;
                }
            }
            pass += 1;
        }
        self.store.set_cluster_phase(ctx.name(), "failed")?;
        if started.elapsed() >= limit {
            Err(ControllerError::Timeout {
                cluster: ctx.name().to_string(),
                after: limit,
                remaining: last,
            })
        } else {
            Err(ControllerError::NotConverging {
                cluster: ctx.name().to_string(),
                passes: max_passes,
                remaining: last,
            })
        }
    }
}

/// How often a converge looks again while a rollout waits for a new node
/// to become healthy.
const ROLLOUT_LOOK: std::time::Duration = std::time::Duration::from_secs(2);

/// How one pass of [`Controller::converge_into`] ended.
enum Pass {
    Converged,
    /// Nothing to do now, but a rollout goes on once a node is healthy.
    Waiting,
    /// Acted; these were the plan's steps.
    More(Vec<String>),
    /// The converge timeout ran out with these steps left.
    OutOfTime(Vec<String>),
}

impl Controller {
    /// Plans from one observation and carries the plan out, through the
    /// observation's open connections.
    #[allow(clippy::too_many_arguments)]
    async fn plan_and_act(
        &self,
        ctx: &ClusterContext,
        report: &mut ConvergeReport,
        pass: usize,
        records: &[NodeRecord],
        observed: &Observed,
        connections: &Connections,
        started: Instant,
    ) -> Result<Pass, ControllerError> {
        let plan = plan(&ctx.record.spec, records, observed, unix_now());
        self.record_reasons(ctx, records, &plan.notes)?;
        report.stalled = plan.stalled.clone();
        report.next_look = plan.next_look;
        if plan.is_empty() && plan.rolling {
            return Ok(Pass::Waiting);
        }
        if plan.is_empty() {
            report.healthy = records.iter().all(|n| {
                n.health == Health::Healthy && !n.retiring && n.phase != NodePhase::Failed
            });
            let phase = if report.healthy { "ready" } else { "degraded" };
            self.store.set_cluster_phase(ctx.name(), phase)?;
            // Nothing left to do with the restored cluster answering: the
            // restore is done (an empty plan while it waits is not).
            if ctx.record.spec.restore.is_some() && observed.members.is_some() {
                self.finish_restore(ctx)?;
            }
            info!(cluster = %ctx.name(), pass, phase, "converged");
            return Ok(Pass::Converged);
        }
        let steps = plan.describe();
        info!(cluster = %ctx.name(), pass, actions = ?steps, "plan");
        for node in &plan.remediations {
            self.reporter
                .note(&format!("replacing unhealthy node {node}"));
        }
        report
            .remediations
            .extend(plan.remediations.iter().cloned());
        let remaining = ctx
            .record
            .spec
            .timeouts
            .converge
            .saturating_sub(started.elapsed());
        if remaining.is_zero() {
            return Ok(Pass::OutOfTime(steps));
        }
        if plan.creates_machines() {
            let recorder = StateRecorder { ctl: self, ctx };
            self.provider
                .ensure_prerequisites(&ctx.cluster, &recorder)
                .await?;
        }
        match tokio::time::timeout(remaining, self.act(ctx, &plan, observed, connections)).await {
            Ok(Ok(())) => Ok(Pass::More(steps)),
            Ok(Err(e)) => {
                self.store.set_cluster_phase(ctx.name(), "failed")?;
                Err(e)
            }
            Err(_) => Ok(Pass::OutOfTime(steps)),
        }
    }
}

impl Controller {
    /// Takes the finished restore out of the cluster's desired state.
    fn finish_restore(&self, ctx: &ClusterContext) -> Result<(), ControllerError> {
        let Some(mut record) = self.store.cluster(ctx.name())? else {
            return Ok(());
        };
        if let Some(request) = record.spec.restore.take() {
            self.store.put_cluster(&record)?;
            info!(cluster = %ctx.name(), backup = %request.archive, "restore finished");
            self.event(
                ctx,
                None,
                &format!(
                    "restore finished: the cluster was re-formed from the backup of {} and every node is back",
                    request.taken_at
                ),
            );
        }
        Ok(())
    }
}

/// [`Controller::clear_backoff`] for one record, in memory; whether it
/// changed anything (a dry run applies it to its copy of the records).
pub fn clear_node_backoff(n: &mut NodeRecord) -> bool {
    let changed = n.retry_at.is_some() || n.start_attempt > 1;
    n.retry_at = None;
    n.start_attempt = 1;
    changed
}

/// Puts what a provider makes into state the moment it exists, and its
/// progress in front of the user.
struct StateRecorder<'a> {
    ctl: &'a Controller,
    ctx: &'a ClusterContext,
}

impl Recorder for StateRecorder<'_> {
    fn note(&self, message: &str) {
        self.ctl.reporter.note(message);
    }

    fn created(&self, kind: &str, id: &str) {
        // A failed write is logged, not fatal: the resource carries the
        // cluster id, so destroy finds it by tag either way.
        if let Err(e) = self.ctl.store.put_resource(self.ctx.name(), kind, id) {
            warn!(cluster = %self.ctx.name(), kind, id, error = %e, "could not record resource");
        }
        self.ctl
            .event(self.ctx, None, &format!("created {kind} {id}"));
    }
}
