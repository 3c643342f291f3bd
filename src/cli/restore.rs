//! `provision restore NAME [--from BACKUP|DIR|S3-URL] [--force]
//! [--cluster-id ID] [--unverified] [--dry-run]`: the cluster's desired
//! state is to be re-formed from a backup; the same reconcile as every
//! other command then carries it out (a new manager restored, the other
//! managers joined, the workers rejoined). The archive is read and checked
//! (size, SHA-256, its seal) before anything is changed.

use anyhow::{bail, Context, Result};

use super::session::{self, connect_provider};
use super::Global;
use crate::archive::{self, Location, Manifest};
use crate::backup;
use crate::state::ClusterRecord;

/// The command's switches.
#[derive(Debug, Default)]
pub struct Flags {
    /// A manager's machine still there is dead: delete it.
    pub force: bool,
    /// Use a backup of the cluster with this id (not this one's).
    pub cluster_id: Option<String>,
    /// Accept a backup with no size and SHA-256 to check.
    pub unverified: bool,
    pub dry_run: bool,
}

pub async fn run(global: &Global, name: &str, from: Option<&str>, flags: &Flags) -> Result<()> {
    let (force, dry_run) = (flags.force, flags.dry_run);
    let session = session::open_unless_dry(global, dry_run)?;
    let _lock = session.lock_unless_dry(name, dry_run)?;
    let mut record = session.cluster_to_change(name)?;
    if !record.spec.coe.profile().backs_up {
        bail!(
            "cluster {name} runs {}: restores of such clusters from a backup are not implemented",
            record.spec.coe
        );
    }
    let wanted_id = flags.cluster_id.as_deref().unwrap_or(&record.id);
    let (location, manifest) = find_backup(&session, name, wanted_id, from).await?;
    check_backup(&record, &manifest, flags)?;
    let archive = location.file(&manifest.archive);
    // A restore already under way (a run cut short) is carried on.
    let under_way = record.spec.restore.is_some();
    let request = backup::restore_request(&location, &manifest, force);
    // Read and checked now, before anything changes: a flipped byte, a
    // wrong size or the wrong key is refused with the cluster untouched.
    let key = session.store.file(name, archive::seal::KEY_FILE)?;
    archive::read_archive(&request, key.as_deref())
        .await
        .with_context(|| format!("cluster {name} is not restored, and nothing was changed"))?;
    record.spec.restore = Some(request);
    let provider = connect_provider(&record.spec, None).await?;
    let dry = session.dry_run(&record, provider.clone(), &[]).await?;
    if !under_way && !dry.plan.restoring {
        let why = if dry.plan.notes.is_empty() {
            "a manager answers with the cluster's state, so there is nothing to restore (a \
             majority of managers lost is re-formed from a survivor by `provision heal` and the \
             daemon)"
                .to_string()
        } else {
            let notes: Vec<String> = dry.plan.notes.iter().map(ToString::to_string).collect();
            notes.join("; ")
        };
        bail!("cluster {name} is not restored: {why}");
    }
    if dry_run {
        println!(
            "Backup: {archive} (taken {} on {}, {} bytes, {} {})",
            manifest.taken_at,
            manifest.node,
            manifest.size,
            manifest.coe,
            manifest.orchestrator_version
        );
        super::dry_run::print(name, &dry);
        return Ok(());
    }
    // Desired state first: a crash from here on is finished by the next
    // run (or the daemon), which restores on the same new manager.
    session.store.put_cluster(&record)?;
    session.store.add_event(
        name,
        None,
        &format!(
            "restore requested from the backup of {} ({archive})",
            manifest.taken_at
        ),
    )?;
    let reporter = crate::progress::for_stderr();
    super::scale::converge_and_show(&session, record, provider, reporter).await
}

/// The backup `from` names: an archive or manifest file, or a location
/// whose newest backup of the cluster is taken.
pub(super) async fn find_backup(
    session: &crate::session::Session,
    name: &str,
    cluster_id: &str,
    from: Option<&str>,
) -> Result<(Location, Manifest)> {
    let names_file = from.is_some_and(|f| f.ends_with(".tar.gz") || f.ends_with(".json"));
    let (location, file) = match from {
        Some(f) if names_file => {
            let (location, file) = Location::of_file(f)?;
            (location, Some(file))
        }
        Some(f) => (f.parse()?, None),
        None => (backup::default_location(session, name), None),
    };
    let store = archive::open(&location).await?;
    let all = archive::list(&*store, name, None)
        .await
        .with_context(|| format!("reading the backups in {location}"))?;
    let manifest = match file {
        Some(file) => {
            let stem = file
                .strip_suffix(".tar.gz")
                .or_else(|| file.strip_suffix(".json"))
                .expect("checked above");
            all.into_iter()
                .find(|m| m.manifest_name() == format!("{stem}.json"))
                .with_context(|| {
                    format!(
                        "{} is no backup of cluster {name} (no manifest of it in {location}; `provision backup list {name} --from {location}` lists them)",
                        location.file(&file)
                    )
                })?
        }
        // The newest of this cluster (by id): never another cluster's of
        // the same name in a shared location.
        None => all
            .into_iter()
            .rfind(|m| m.cluster_id == cluster_id)
            .with_context(|| {
                format!(
                    "no backup of cluster {name} (id {cluster_id}) in {location}: give one with \
                     --from, or another cluster's id with --cluster-id (`provision backup list \
                     {name} --from {location}` lists them)"
                )
            })?,
    };
    Ok((location, manifest))
}

/// A backup restores only into the cluster it was taken of (or the one a
/// person names by id), and only when it can be checked.
pub(super) fn check_backup(record: &ClusterRecord, m: &Manifest, flags: &Flags) -> Result<()> {
    let name = &record.spec.name;
    if m.coe != record.spec.coe.to_string() {
        bail!(
            "the backup {} is of a {} cluster; cluster {name} runs {}",
            m.archive,
            m.coe,
            record.spec.coe
        );
    }
    // Read from the backup location, and handed to the cloud as the new
    // manager's address: an address, or nothing.
    if let Some(address) = &m.private_address {
        if address.parse::<std::net::IpAddr>().is_err() {
            bail!(
                "the backup {} names {address:?} as its manager's private address, which is not \
                 an IP address: its manifest was changed by hand or is damaged",
                m.archive
            );
        }
    }
    let wanted = flags.cluster_id.as_deref().unwrap_or(&record.id);
    if m.cluster_id != wanted {
        bail!(
            "the backup {} is of another cluster named {name} (id {}; this one is {}): add \
             --cluster-id {} to restore it into this one",
            m.archive,
            m.cluster_id,
            record.id,
            m.cluster_id
        );
    }
    if m.sha256.is_none() && !flags.unverified {
        bail!(
            "the backup {} has no SHA-256 in its manifest (taken before provision recorded \
             them), so it cannot be checked: add --unverified to restore it anyway",
            m.archive
        );
    }
    Ok(())
}
