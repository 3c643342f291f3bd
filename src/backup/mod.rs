//! Backups of a cluster's orchestrator state: taken through one manager as
//! the COE documents it (Swarm: `/var/lib/docker/swarm` with the engine
//! stopped, on a manager that is not the leader, while the others keep
//! quorum; Kubernetes: an etcd snapshot and the PKI, online; Mesos:
//! ZooKeeper's data and the replicated log, with mesos-master stopped),
//! sealed with the cluster's backup key and kept in a location
//! ([`crate::archive`]: the files, manifests and seal, below the
//! controller, which opens an archive for a restore).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use provision_provider::Role;

use crate::archive::{open, seal, Location, Manifest};
use crate::controller::ClusterContext;
use crate::orchestrator::{reported, Member};
use crate::progress::LogReporter;
use crate::session::Session;
use crate::spec::{BackupPolicy, RestoreRequest};
use crate::state::{ClusterRecord, NodeRecord, Store, StoreError, LAST_BACKUP_FILE};

/// Where a cluster's backups go when no `--to` is given: beside the state,
/// outside the cluster's own directory (which `destroy` removes).
pub fn default_location(session: &Session, cluster: &str) -> Location {
    Location::Dir(session.paths.root().join("backups").join(cluster))
}

/// What a restore from backup `m` in `location` asks for: the archive, and
/// what it is checked against (its manifest's size, SHA-256 and seal).
pub fn restore_request(location: &Location, m: &Manifest, force: bool) -> RestoreRequest {
    RestoreRequest {
        archive: location.file(&m.archive),
        taken_at: m.taken_at.clone(),
        private_address: m.private_address.clone(),
        force,
        size: m.sha256.as_ref().map(|_| m.size),
        sha256: m.sha256.clone(),
        sealed_for: m.sealed.as_ref().map(|_| m.cluster_id.clone()),
    }
}

/// The cluster's backup key from the state store, made and kept there
/// first when it has none (by the lock holder: the write is fenced).
pub fn backup_key(store: &dyn crate::state::Store, cluster: &str) -> Result<Vec<u8>> {
    if let Some(key) = store.file(cluster, seal::KEY_FILE)? {
        if !key.is_empty() {
            return Ok(key);
        }
    }
    let key = seal::new_key()?;
    store.put_file(cluster, seal::KEY_FILE, &key)?;
    Ok(key)
}

/// How old a backup taken at `at` is at `now` (both unix seconds, `at`
/// written by whichever host took it). A time ahead of this host's clock
/// counts as just taken: counted from it, scheduled backups would stop,
/// silently, until this clock reached the other host's.
pub fn age(at: i64, now: i64) -> Duration {
    Duration::from_secs(now.saturating_sub(at).max(0) as u64)
}

/// Whether a scheduled backup is due when the newest is `age` old (`None`:
/// there is none, or its time cannot be read: a backup is taken rather
/// than skipped).
pub fn due(policy: &BackupPolicy, age: Option<Duration>) -> bool {
    age.is_none_or(|age| age >= policy.interval)
}

/// The location a cluster's scheduled backups go to.
pub fn policy_location(
    session: &Session,
    cluster: &str,
    policy: &BackupPolicy,
) -> Result<Location, crate::spec::LocationError> {
    match &policy.to {
        Some(to) => to.parse(),
        None => Ok(default_location(session, cluster)),
    }
}

/// How a backup treats the manager it is taken on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taking {
    /// The manager serves on (an etcd snapshot): any Ready one will do.
    Online,
    /// The manager stops for the copy (Swarm's raft directory); `force`
    /// allows it when the others would not keep quorum meanwhile.
    Stopping { force: bool },
}

/// The manager to take a backup on, from the orchestrator's members and
/// the node records. Online: the Ready one of lowest index. Stopping: one
/// that is Ready and not the leader while at least three managers are
/// Ready (stopping it leaves a majority); with fewer, only with `force`
/// (the swarm accepts no change for the seconds the copy takes; running
/// services go on).
pub fn choose_manager<'a>(
    members: &[Member],
    records: &'a [NodeRecord],
    taking: Taking,
) -> Result<&'a NodeRecord, String> {
    let ready: Vec<(&Member, &NodeRecord)> = members
        .iter()
        .filter(|m| m.role == Role::Manager && m.ready && reported::refuse_member(m).is_none())
        .filter_map(|m| {
            records
                .iter()
                // By member id: a node's hostname is the cloud's to choose
                // (EC2 names instances ip-10-0-0-5), and its own to change.
                .find(|r| {
                    r.member_id.as_deref() == Some(m.id.as_str())
                        && r.role == Role::Manager
                        && r.addresses.is_some()
                })
                .map(|r| (m, r))
        })
        .collect();
    if ready.is_empty() {
        return Err("no manager is Ready in the orchestrator's membership".into());
    }
    let force = match taking {
        Taking::Online => {
            let first = ready.iter().map(|(_, r)| *r).min_by_key(|r| r.index);
            return Ok(first.expect("not empty"));
        }
        Taking::Stopping { force } => force,
    };
    let not_leader = ready
        .iter()
        .filter(|(m, _)| !m.status.contains("Leader"))
        .min_by_key(|(_, r)| r.index)
        .map(|(_, r)| *r);
    if ready.len() >= 3 {
        return not_leader.ok_or_else(|| "every Ready manager is the leader?".to_string());
    }
    if !force {
        return Err(format!(
            "the cluster has {} Ready manager(s): stopping one for the copy leaves the managers \
             without quorum for its few seconds (running services go on, no change is accepted). \
             Add --force to take it anyway, or scale to 3 managers first",
            ready.len()
        ));
    }
    Ok(not_leader.unwrap_or_else(|| {
        ready
            .iter()
            .map(|(_, r)| *r)
            .min_by_key(|r| r.index)
            .expect("not empty")
    }))
}

/// The newest backup as the state store records it: where, and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Recorded {
    pub location: String,
    pub taken_at: String,
}

impl Recorded {
    /// Writes it for `cluster`: any actor's next due time counts from it.
    pub fn write(&self, store: &dyn Store, cluster: &str) -> Result<(), StoreError> {
        let json = serde_json::to_vec(self).expect("a record always serialises");
        store.put_file(cluster, LAST_BACKUP_FILE, &json)
    }

    /// When the newest backup into `location` was taken (unix seconds), as
    /// the store records it; `None` when none is, it was taken elsewhere, or
    /// the record cannot be read (the location's listing decides then).
    pub fn taken_at_unix(
        store: &dyn Store,
        cluster: &str,
        location: &str,
    ) -> Result<Option<i64>, StoreError> {
        let Some(bytes) = store.file(cluster, LAST_BACKUP_FILE)? else {
            return Ok(None);
        };
        let Ok(recorded) = serde_json::from_slice::<Recorded>(&bytes) else {
            tracing::warn!(cluster, "the recorded last backup is not readable: ignored");
            return Ok(None);
        };
        if recorded.location != location {
            return Ok(None);
        }
        Ok(humantime::parse_rfc3339(&recorded.taken_at)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64))
    }
}

/// Takes a backup of `record`'s cluster into `location`; the caller holds
/// the cluster's lock.
pub async fn take(
    session: &Session,
    record: &ClusterRecord,
    location: &Location,
    force: bool,
) -> Result<Manifest> {
    let store = open(location).await?;
    let name = &record.spec.name;
    let provider = crate::session::connect_provider(&record.spec, None).await?;
    let ctx = ClusterContext::new(&*session.store, record.clone())?;
    let controller = session.controller(provider, &record.spec, Arc::new(LogReporter));
    let records = session.store.nodes(name)?;
    let mut members = None;
    let mut tried = Vec::new();
    // The membership, from the first manager that answers.
    for r in records.iter().filter(|r| r.role == Role::Manager) {
        let Some(addresses) = &r.addresses else {
            continue;
        };
        match controller.open_shell(&ctx, r, addresses, None).await {
            Ok(shell) => match controller.orchestrator.members(&shell).await {
                Ok(m) => {
                    // Kept: the backup may be taken on this manager too.
                    members = Some((m, r.name.clone(), shell));
                    break;
                }
                Err(e) => tried.push(format!("{}: {e}", r.name)),
            },
            Err(e) => tried.push(format!("{}: {e}", r.name)),
        }
    }
    let members = members.ok_or_else(|| {
        anyhow!(
            "no manager of cluster {name} listed the members, so no backup was taken:\n  {}",
            tried.join("\n  ")
        )
    })?;
    let (members, lister, lister_shell) = members;
    let taking = if controller.orchestrator.profile().backs_up_online {
        Taking::Online
    } else {
        Taking::Stopping { force }
    };
    let chosen = choose_manager(&members, &records, taking)
        .map_err(|why| anyhow!("no backup of cluster {name} taken: {why}"))?;
    let shell = if chosen.name == lister {
        lister_shell
    } else {
        let addresses = chosen.addresses.as_ref().expect("chosen with an address");
        controller.open_shell(&ctx, chosen, addresses, None).await?
    };
    if let Some(why) = controller.orchestrator.backup_blocker(&shell).await? {
        bail!(
            "no backup of cluster {name} taken on {}: {why}",
            chosen.name
        );
    }
    // The copy stops a manager's engine: not by a holder that lost the lock.
    session.store.still_held(name)?;
    let key = backup_key(&*session.store, name)?;
    // Sealed as it arrives, into a temporary file (0600, deleted when
    // dropped), hashed on the way: the archive is never held whole.
    let spool =
        tempfile::NamedTempFile::new().context("creating a temporary file for the archive")?;
    let file = spool
        .as_file()
        .try_clone()
        .context("opening the archive's temporary file")?;
    let mut digesting = seal::Digesting::new(std::io::BufWriter::new(file));
    let mut sealer = seal::Sealer::new(&key, &record.id, &mut digesting)?;
    let archive = controller
        .orchestrator
        .backup(&shell, &mut sealer)
        .await
        .with_context(|| format!("backing up cluster {name} on {}", chosen.name))?;
    sealer.finish().context("sealing the archive")?;
    let (writer, sha256, size) = digesting.finish();
    writer
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .context("writing the archive's temporary file")?;
    let now = std::time::SystemTime::now();
    let stamp = humantime::format_rfc3339_seconds(now).to_string();
    let file_stamp: String = stamp.chars().filter(|c| *c != ':' && *c != '-').collect();
    let archive_name = format!("{name}-{file_stamp}.tar.gz");
    let manifest = Manifest {
        cluster: name.clone(),
        cluster_id: record.id.clone(),
        coe: record.spec.coe.to_string(),
        taken_at: stamp,
        node: chosen.name.clone(),
        private_address: chosen.addresses.as_ref().map(|a| a.private.clone()),
        size,
        orchestrator_version: archive.orchestrator_version,
        archive: archive_name.clone(),
        sha256: Some(sha256),
        sealed: Some(seal::FORMAT.to_string()),
    };
    // The archive first: a manifest always names an archive that is there;
    // and one whose manifest could not be written is deleted again, so no
    // archive is left that no listing (and no prune) finds.
    session.store.still_held(name)?;
    store.put_file(&archive_name, spool.path()).await?;
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest always serialises");
    if let Err(e) = store.put(&manifest.manifest_name(), &json).await {
        if let Err(cleanup) = store.delete(&archive_name).await {
            tracing::warn!(archive = %location.file(&archive_name), error = %cleanup, "could not delete the archive whose manifest failed");
        }
        return Err(e.into());
    }
    let recorded = Recorded {
        location: location.to_string(),
        taken_at: manifest.taken_at.clone(),
    };
    if let Err(e) = recorded.write(&*session.store, name) {
        // The location's listing still finds it: the due time is read from both.
        tracing::warn!(cluster = %name, error = %e, "could not record the backup in the state store");
    }
    session.store.add_event(
        name,
        Some(&chosen.name),
        &format!(
            "backup taken: {} ({} bytes, {} {})",
            location.file(&archive_name),
            manifest.size,
            manifest.coe,
            manifest.orchestrator_version
        ),
    )?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use provision_provider::Addresses;

    fn manager(name: &str, index: u32) -> NodeRecord {
        let mut r = NodeRecord::new("web", name, Role::Manager, index);
        r.member_id = Some(format!("id-{name}"));
        r.addresses = Some(Addresses {
            private: format!("10.0.0.{index}"),
            public: None,
            ssh: format!("10.0.0.{index}"),
        });
        r
    }

    fn member(name: &str, status: &str) -> Member {
        Member {
            id: format!("id-{name}"),
            hostname: format!("ip-{}", name.len()),
            role: Role::Manager,
            ready: true,
            status: format!("Ready Active {status}"),
        }
    }

    const STOP: Taking = Taking::Stopping { force: false };
    const FORCE: Taking = Taking::Stopping { force: true };

    #[test]
    fn an_online_backup_is_taken_on_the_first_ready_manager_however_many_there_are() {
        let records = [manager("web-manager-1", 1), manager("web-manager-2", 2)];
        let mut members = [
            member("web-manager-1", "Leader"),
            member("web-manager-2", "Reachable"),
        ];
        assert_eq!(
            choose_manager(&members, &records, Taking::Online)
                .unwrap()
                .name,
            "web-manager-1"
        );
        members[0].ready = false;
        assert_eq!(
            choose_manager(&members, &records[..], Taking::Online)
                .unwrap()
                .name,
            "web-manager-2"
        );
        members[1].ready = false;
        assert!(choose_manager(&members, &records, Taking::Online).is_err());
    }

    #[test]
    fn a_backup_is_taken_on_a_follower_while_the_others_keep_quorum() {
        let records = [
            manager("web-manager-1", 1),
            manager("web-manager-2", 2),
            manager("web-manager-3", 3),
        ];
        let members = [
            member("web-manager-1", "Leader"),
            member("web-manager-2", "Reachable"),
            member("web-manager-3", "Reachable"),
        ];
        assert_eq!(
            choose_manager(&members, &records, STOP).unwrap().name,
            "web-manager-2"
        );
        // Two Ready of three: stopping one would lose quorum.
        let mut down = members.clone();
        down[1].ready = false;
        let err = choose_manager(&down, &records, STOP).unwrap_err();
        assert!(err.contains("--force"), "{err}");
        assert_eq!(
            choose_manager(&down, &records, FORCE).unwrap().name,
            "web-manager-3"
        );
        // One manager: only with force, and then it is the leader itself.
        let one = [member("web-manager-1", "Leader")];
        assert!(choose_manager(&one, &records[..1], STOP).is_err());
        assert_eq!(
            choose_manager(&one, &records[..1], FORCE).unwrap().name,
            "web-manager-1"
        );
        // A member that is no node of ours, or whose hostname no host can
        // have (what a node says of itself), is never chosen.
        let mut lying = member("web-manager-2", "Reachable");
        lying.hostname = "x\nrm -rf /".into();
        let strange = [
            member("web-manager-1", "Leader"),
            lying,
            member("other", "Reachable"),
        ];
        let err = choose_manager(&strange, &records, STOP).unwrap_err();
        assert!(err.contains("1 Ready manager"), "{err}");
    }

    #[test]
    fn a_scheduled_backup_is_due_when_the_newest_is_an_interval_old() {
        let policy = BackupPolicy {
            interval: Duration::from_secs(3600),
            keep: 7,
            to: None,
        };
        let at = 1_796_083_200; // 2026-12-01T00:00:00Z
        assert!(due(&policy, None));
        assert!(!due(&policy, Some(age(at, at + 3599))));
        assert!(due(&policy, Some(age(at, at + 3600))));
    }

    #[test]
    fn a_backup_stamped_ahead_of_this_clock_counts_as_just_taken() {
        // Another host's clock a day ahead: not "due in a day and an hour".
        assert_eq!(age(1_000_000 + 86_400, 1_000_000), Duration::ZERO);
        assert_eq!(age(1_000_000, 1_000_060), Duration::from_secs(60));
        assert_eq!(
            age(i64::MIN, i64::MAX),
            Duration::from_secs(i64::MAX as u64)
        );
    }

    #[test]
    fn the_recorded_last_backup_counts_only_for_its_location_and_when_readable() {
        use crate::state::{SqliteStore, StatePaths};
        let dir = tempfile::tempdir().unwrap();
        let paths = StatePaths::resolve(Some(dir.path().join("state.db"))).unwrap();
        let store = SqliteStore::open(paths.db()).unwrap();
        let at = |location: &str| Recorded::taken_at_unix(&store, "web", location).unwrap();
        assert_eq!(at("/backups"), None);
        Recorded {
            location: "/backups".into(),
            taken_at: "2026-12-06T20:00:00Z".into(),
        }
        .write(&store, "web")
        .unwrap();
        assert_eq!(at("/backups"), Some(1_796_587_200));
        assert_eq!(at("s3://bucket/prefix"), None);
        store
            .put_file("web", LAST_BACKUP_FILE, b"{not json")
            .unwrap();
        assert_eq!(at("/backups"), None);
    }
}
