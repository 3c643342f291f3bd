//! Reconcile: observe → plan → act, until nothing is left to do.

use std::time::Instant;

use provision_provider::Recorder;
use tracing::{info, warn};

use super::context::{ClusterContext, Controller, ControllerError};
use super::observe::unix_now;
use super::plan::{plan, Action, Plan};
use crate::state::{Health, NodePhase};

/// Passes after which a plan that keeps coming back is reported, not retried.
const MAX_PASSES: usize = 8;

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
}

impl Controller {
    /// Lets every node be tried again now, and gives nodes that never
    /// joined a fresh budget of attempts: for commands a person runs, who
    /// should not wait out the backoff meant for the daemon's retries, and
    /// who is the one `max_start_attempts` stops the daemon for.
    pub fn clear_backoff(&self, ctx: &ClusterContext) -> Result<(), ControllerError> {
        for mut n in self.store.nodes(ctx.name())? {
            if n.retry_at.is_some() || n.start_attempt > 1 {
                n.retry_at = None;
                n.start_attempt = 1;
                self.store.put_node(&n)?;
            }
        }
        Ok(())
    }

    /// Brings the cloud's firewall to the spec's (an admin's removal, a
    /// changed `ssh_from`), recording each change as an event.
    async fn reconcile_firewall(&self, ctx: &ClusterContext) -> Result<(), ControllerError> {
        for change in self.provider.reconcile_firewall(&ctx.cluster).await? {
            info!(cluster = %ctx.name(), "{change}");
            self.reporter.note(&change);
            self.event(ctx, None, &change);
        }
        Ok(())
    }

    /// Observes and plans once, changing nothing (for `--dry-run`).
    pub async fn plan_once(&self, ctx: &ClusterContext) -> Result<Plan, ControllerError> {
        let records = self.store.nodes(ctx.name())?;
        let observed = self.look(ctx, &records).await?;
        Ok(plan(&ctx.record.spec, &records, &observed, unix_now()))
    }

    /// Records each note as an event, unless it is the cluster's latest one
    /// already (the daemon would otherwise repeat it every pass).
    fn note_events(&self, ctx: &ClusterContext, notes: &[String]) {
        let last: Vec<String> = self
            .store
            .events(ctx.name(), 20)
            .map(|e| e.into_iter().map(|e| e.message).collect())
            .unwrap_or_default();
        for note in notes {
            if !last.contains(note) {
                warn!(cluster = %ctx.name(), "{note}");
                self.reporter.note(note);
                self.event(ctx, None, note);
            }
        }
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
        let started = Instant::now();
        let limit = ctx.record.spec.timeouts.converge;
        let mut last: Vec<String> = Vec::new();
        self.reconcile_firewall(ctx).await?;
        for pass in 1..=MAX_PASSES {
            let (records, observed) = self.observe(ctx).await?;
            let plan = plan(&ctx.record.spec, &records, &observed, unix_now());
            self.note_events(ctx, &plan.notes);
            report.stalled = plan.stalled.clone();
            if plan.is_empty() {
                report.healthy = records.iter().all(|n| {
                    n.health == Health::Healthy && !n.retiring && n.phase != NodePhase::Failed
                });
                let phase = if report.healthy { "ready" } else { "degraded" };
                self.store.set_cluster_phase(ctx.name(), phase)?;
                info!(cluster = %ctx.name(), pass, phase, "converged");
                return Ok(());
            }
            last = plan.describe();
            info!(cluster = %ctx.name(), pass, actions = ?last, "plan");
            for node in &plan.remediations {
                self.reporter
                    .note(&format!("replacing unhealthy node {node}"));
            }
            report
                .remediations
                .extend(plan.remediations.iter().cloned());
            let remaining = limit.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                break;
            }
            if plan
                .actions
                .iter()
                .any(|a| matches!(a, Action::CreateMachine { .. }))
            {
                let recorder = StateRecorder { ctl: self, ctx };
                self.provider
                    .ensure_prerequisites(&ctx.cluster, &recorder)
                    .await?;
            }
            match tokio::time::timeout(remaining, self.act(ctx, &plan, &observed)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    self.store.set_cluster_phase(ctx.name(), "failed")?;
                    return Err(e);
                }
                Err(_) => break,
            }
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
                passes: MAX_PASSES,
                remaining: last,
            })
        }
    }
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
