//! `provision backup NAME [--to DIR|s3://BUCKET/PREFIX] [--force]`,
//! `provision backup list NAME [--from …]` and `provision backup verify
//! NAME [--from …]`.

use anyhow::{Context, Result};

use super::session;
use super::Global;
use crate::archive::{self, Location};
use crate::backup;

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
    let store = archive::open(&location).await?;
    let found = archive::list(&*store, name, None).await?;
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

/// Reads a backup as a restore would (the cluster's newest, or the one
/// `from` names), checks its size, SHA-256 and seal, and lists what the
/// archive holds; changes nothing.
pub async fn verify(
    global: &Global,
    name: &str,
    from: Option<&str>,
    cluster_id: Option<&str>,
) -> Result<()> {
    let session = session::open(global)?;
    let record = session.cluster(name)?;
    let flags = super::restore::Flags {
        cluster_id: cluster_id.map(str::to_string),
        unverified: true,
        ..Default::default()
    };
    let wanted = cluster_id.unwrap_or(&record.id);
    let (location, manifest) = super::restore::find_backup(&session, name, wanted, from).await?;
    super::restore::check_backup(&record, &manifest, &flags)?;
    let request = backup::restore_request(&location, &manifest, false);
    let key = session.store.file(name, archive::seal::KEY_FILE)?;
    let archive = archive::read_archive_plain(&request, key.as_deref()).await?;
    let file = std::fs::File::open(archive.path())
        .with_context(|| format!("reading {} as opened", request.archive))?;
    let entries = archive::entries(std::io::BufReader::new(file))
        .with_context(|| format!("{} opened, but is not a gzip'd tar", request.archive))?;
    let checked = match (&manifest.sha256, &manifest.sealed) {
        (Some(_), Some(seal)) => format!(
            "size and SHA-256 as its manifest says, sealed ({seal}) for cluster id {}",
            manifest.cluster_id
        ),
        (Some(_), None) => "size and SHA-256 as its manifest says, in clear".to_string(),
        (None, _) => "taken before provision recorded sizes and SHA-256: not checked".to_string(),
    };
    println!("{}: {checked}; {} entries:", request.archive, entries.len());
    for entry in entries {
        println!("  {entry}");
    }
    Ok(())
}
