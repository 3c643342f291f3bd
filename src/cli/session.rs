//! The session as the command line opens it (`--state`, `--scripts-dir`),
//! and a dry run printed.

use std::sync::Arc;

use anyhow::{anyhow, Result};
use provision_provider::Provider;

use super::Global;
use crate::state::{ClusterRecord, StatePaths};

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

/// Prints what the next run would do to `record` (the cluster as the
/// command would leave it, `leaving` its nodes the command removes) and
/// changes nothing (see [`Session::dry_run`]).
pub async fn print_dry_run(
    session: &Session,
    record: &ClusterRecord,
    provider: Arc<dyn Provider>,
    leaving: &[String],
) -> Result<()> {
    let dry = session.dry_run(record, provider, leaving).await?;
    super::dry_run::print(&record.spec.name, &dry);
    // A change of machines: the order its rollout replaces the nodes in.
    let nodes = session.store.nodes(&record.spec.name)?;
    let groups = crate::controller::plan::rollout::pending(&record.spec, &nodes);
    if !groups.is_empty() {
        println!("The rollout would replace, a group at a time:");
        for line in super::rollout::order_lines(&groups) {
            println!("{line}");
        }
    }
    Ok(())
}
