//! Reconcile: observe → plan → act, until nothing is left to do.

use std::time::Instant;

use tracing::info;

use super::context::{ClusterContext, Controller, ControllerError};
use super::plan::{plan, Action, Plan};

/// Passes after which a plan that keeps coming back is reported, not retried.
const MAX_PASSES: usize = 8;

impl Controller {
    /// Observes and plans once, changing nothing (for `--dry-run`).
    pub async fn plan_once(&self, ctx: &ClusterContext) -> Result<Plan, ControllerError> {
        let records = self.store.nodes(ctx.name())?;
        let observed = self.observe(ctx, &records).await?;
        Ok(plan(&ctx.record.spec, &records, &observed))
    }

    /// Works until the cluster matches its spec, the converge timeout passes,
    /// or a step fails. Each pass starts from a fresh observation, so a run
    /// interrupted at any point is finished by the next.
    pub async fn converge(&self, ctx: &ClusterContext) -> Result<(), ControllerError> {
        let started = Instant::now();
        let limit = ctx.record.spec.timeouts.converge;
        let mut last: Vec<String> = Vec::new();
        for pass in 1..=MAX_PASSES {
            let records = self.store.nodes(ctx.name())?;
            let observed = self.observe(ctx, &records).await?;
            let plan = plan(&ctx.record.spec, &records, &observed);
            if plan.is_empty() {
                self.store.set_cluster_phase(ctx.name(), "ready")?;
                info!(cluster = %ctx.name(), pass, "converged");
                return Ok(());
            }
            last = plan.describe();
            info!(cluster = %ctx.name(), pass, actions = ?last, "plan");
            let remaining = limit.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                break;
            }
            if plan
                .actions
                .iter()
                .any(|a| matches!(a, Action::CreateMachine { .. }))
            {
                let reporter = self.reporter.clone();
                let progress = move |msg: &str| reporter.note(msg);
                self.provider
                    .ensure_prerequisites(&ctx.cluster, &progress)
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
