//! `provision heal`: one reconcile run with the health policy, for one
//! cluster or all; `--dry-run` prints the plan and changes nothing.

use anyhow::{bail, Result};

use super::session::{self, connect_provider};
use super::Global;
use crate::progress;
use crate::state::LockError;

pub async fn run(global: &Global, name: Option<&str>, all: bool, dry_run: bool) -> Result<()> {
    let session = session::open_unless_dry(global, dry_run)?;
    let names: Vec<String> = match (name, all) {
        (Some(n), false) => vec![n.to_string()],
        (None, true) => session
            .store
            .clusters()?
            .into_iter()
            .map(|c| c.spec.name)
            .collect(),
        _ => bail!("give a cluster name or --all"),
    };
    let mut failed = Vec::new();
    for name in &names {
        let _lock = match session.lock_unless_dry(name, dry_run) {
            Ok(l) => l,
            Err(e @ LockError::Busy { .. }) => {
                eprintln!("skipped: {e}");
                failed.push(name.clone());
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let record = session.cluster(name)?;
        if let Err(e) = super::session::refuse_if_destroying(&record) {
            eprintln!("skipped: {e:#}");
            failed.push(name.clone());
            continue;
        }
        let provider = connect_provider(&record.spec, None).await?;
        if dry_run {
            super::session::print_dry_run(&session, &record, provider, &[]).await?;
            continue;
        }
        let reporter = progress::for_stderr();
        if let Err(e) = super::scale::converge_and_show(&session, record, provider, reporter).await
        {
            eprintln!("error: {e:#}");
            failed.push(name.clone());
        }
    }
    if !failed.is_empty() {
        bail!("not healed: {}", failed.join(", "));
    }
    Ok(())
}
