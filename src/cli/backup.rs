//! `provision backup NAME [--to DIR|s3://BUCKET/PREFIX] [--force]` and
//! `provision backup list NAME [--from …]`.

use anyhow::Result;

use super::session;
use super::Global;
use crate::backup::{self, Location};

/// The location a person gave, or the cluster's default one.
fn location_or_default(
    session: &crate::session::Session,
    name: &str,
    given: Option<&str>,
) -> Result<Location> {
    Ok(match given {
        Some(s) => s.parse()?,
        None => backup::default_location(session, name),
    })
}

pub async fn take(global: &Global, name: &str, to: Option<&str>, force: bool) -> Result<()> {
    let session = session::open(global)?;
    let _lock = session.lock(name)?;
    let record = session.cluster_to_change(name)?;
    let location = location_or_default(&session, name, to)?;
    let m = backup::take(&session, &record, &location, force).await?;
    println!(
        "Backup of cluster {name} taken on {} ({} bytes, {} {}): {}",
        m.node,
        m.size,
        m.coe,
        m.orchestrator_version,
        location.file(&m.archive)
    );
    println!("It holds the cluster's keys: keep it as private as the state store.");
    Ok(())
}

pub async fn list(global: &Global, name: &str, from: Option<&str>) -> Result<()> {
    let session = session::open(global)?;
    let location = location_or_default(&session, name, from)?;
    let store = backup::open(&location).await?;
    let found = backup::list(&*store, name).await?;
    if found.is_empty() {
        println!("no backups of cluster {name} in {location}");
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
            location.file(&m.archive)
        );
    }
    Ok(())
}
