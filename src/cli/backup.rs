//! `provision backup NAME [--to DIR] [--force]` and `provision backup list
//! NAME [--from DIR]`.

use std::path::Path;

use anyhow::Result;

use super::session;
use super::Global;
use crate::backup;

pub async fn take(global: &Global, name: &str, to: Option<&Path>, force: bool) -> Result<()> {
    let session = session::open(global)?;
    let _lock = session.lock(name)?;
    let record = session.cluster_to_change(name)?;
    let dir = to
        .map(Path::to_path_buf)
        .unwrap_or_else(|| backup::default_dir(&session, name));
    let m = backup::take(&session, &record, &dir, force).await?;
    println!(
        "Backup of cluster {name} taken on {} ({} bytes, {} {}): {}",
        m.node,
        m.size,
        m.coe,
        m.orchestrator_version,
        dir.join(&m.archive).display()
    );
    println!("It holds the cluster's keys: keep it as private as the state store.");
    Ok(())
}

pub fn list(global: &Global, name: &str, from: Option<&Path>) -> Result<()> {
    let session = session::open(global)?;
    let dir = from
        .map(Path::to_path_buf)
        .unwrap_or_else(|| backup::default_dir(&session, name));
    let found = backup::list(&dir, name)?;
    if found.is_empty() {
        println!("no backups of cluster {name} in {}", dir.display());
        return Ok(());
    }
    println!(
        "{:<22} {:<24} {:>10}  {:<16} FILE",
        "TAKEN", "NODE", "BYTES", "VERSION"
    );
    for m in found {
        println!(
            "{:<22} {:<24} {:>10}  {:<16} {}",
            m.taken_at,
            m.node,
            m.size,
            format!("{} {}", m.coe, m.orchestrator_version),
            dir.join(&m.archive).display()
        );
    }
    Ok(())
}
