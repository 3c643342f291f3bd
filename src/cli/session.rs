//! The session as the command line opens it (`--state`, `--scripts-dir`),
//! and what commands do with it: a reconcile a person asked for, a dry run.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use provision_provider::Provider;

use super::Global;
use crate::controller::{clear_node_backoff, ClusterContext, ConvergeReport, DryRun};
use crate::progress::{LogReporter, Reporter};
use crate::state::{ClusterRecord, NodeRecord, StatePaths};

pub use crate::session::{connect_provider, refuse_if_destroying, Session};

/// The session of `--state` and `--scripts-dir`, the store created when missing.
pub fn open(global: &Global) -> Result<Session> {
    Session::open(&global.location()?, global.scripts_dir.as_deref())
}

/// The session if its state store exists (`None` when there is none yet).
pub fn open_existing(global: &Global) -> Result<Option<Session>> {
    Session::open_existing(&global.location()?, global.scripts_dir.as_deref())
}

/// [`open`] for a command that changes nothing on `--dry-run`: then a
/// missing state store is an error, not created.
pub fn open_unless_dry(global: &Global, dry_run: bool) -> Result<Session> {
    if !dry_run {
        return open(global);
    }
    open_existing(global)?.ok_or_else(|| {
        anyhow!(
            "there is no state store at {} yet, so no cluster to plan for: create one first, or give --state",
            global.state.clone().unwrap_or_else(|| StatePaths::resolve(None)
                .map(|p| p.db().display().to_string())
                .unwrap_or_default())
        )
    })
}

impl Session {
    /// Reconciles the cluster as a person asked for it now (no backoff),
    /// then rewrites its ssh_config whatever the outcome. Errors say where
    /// the node logs are and that running the command again continues.
    pub async fn reconcile(
        &self,
        record: &ClusterRecord,
        provider: Arc<dyn Provider>,
        reporter: Arc<dyn Reporter>,
    ) -> Result<(ConvergeReport, Vec<NodeRecord>)> {
        let name = &record.spec.name;
        let ctx = ClusterContext::new(&*self.store, record.clone())?;
        let controller = self.controller(provider, &record.spec, reporter.clone());
        controller.clear_backoff(&ctx)?;
        let result = tokio::select! {
            result = controller.converge(&ctx) => result,
            () = self.lock_lost(name) => {
                reporter.finish();
                bail!(
                    "lost cluster {name}'s lock in {} while reconciling it (this process was stopped, or etcd was out of reach, for longer than the lock's TTL): stopped, writing and running nothing more, as another command or daemon may hold the cluster now; run the same command again to continue",
                    self.store.location()
                );
            }
        };
        reporter.finish();
        let nodes = self.store.nodes(name)?;
        self.write_client_files(record, &nodes)?;
        let report = result.with_context(|| {
            format!(
                "cluster {name} did not converge; node logs are in {}; run the same command again to continue",
                self.paths.cluster_dir(name).join("logs").display()
            )
        })?;
        Ok((report, nodes))
    }
}

impl Session {
    /// Prints what the next run would do to `record` (the cluster as the
    /// command would leave it, `leaving` its nodes the command removes) and
    /// changes nothing: the records are changed in memory only, as a
    /// person's command changes them (backoff cleared).
    pub async fn print_dry_run(
        &self,
        record: &ClusterRecord,
        provider: Arc<dyn Provider>,
        leaving: &[String],
    ) -> Result<()> {
        let dry = self.dry_run(record, provider, leaving).await?;
        super::dry_run::print(&record.spec.name, &dry);
        Ok(())
    }

    /// The plan [`print_dry_run`](Self::print_dry_run) prints.
    pub async fn dry_run(
        &self,
        record: &ClusterRecord,
        provider: Arc<dyn Provider>,
        leaving: &[String],
    ) -> Result<DryRun> {
        let name = &record.spec.name;
        let ctx = ClusterContext::new(&*self.store, record.clone())?;
        let mut records = self.store.nodes(name)?;
        for n in &mut records {
            clear_node_backoff(n);
            if leaving.contains(&n.name) {
                n.retiring = true;
            }
        }
        let controller = self.controller(provider, &record.spec, Arc::new(LogReporter));
        controller
            .dry_run(&ctx, &records)
            .await
            .with_context(|| format!("planning cluster {name} (dry run)"))
    }
}
