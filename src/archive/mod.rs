//! A backup's files, below the controller: where they are kept (a
//! directory or S3, [`BackupStore`]), the manifest beside each archive (what
//! it is, its size and SHA-256), the seal (the archive encrypted with the
//! cluster's backup key, [`seal`]), and opening an archive for a restore,
//! checked against its manifest, with memory bounded. Taking a backup
//! through a manager is [`crate::backup`]'s.

mod entries;
#[cfg(feature = "ec2")]
mod s3;
pub mod seal;
mod store;

use serde::{Deserialize, Serialize};

use crate::spec::RestoreRequest;

pub use entries::entries;
#[cfg(feature = "ec2")]
pub use s3::S3Store;
pub use store::{BackupError, BackupStore, DirStore, Location};

/// What a backup is, written beside its archive as `….json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub cluster: String,
    pub cluster_id: String,
    pub coe: String,
    /// RFC 3339, UTC.
    pub taken_at: String,
    /// The manager it was taken on.
    pub node: String,
    /// That manager's private address: a restore gives it to the new
    /// manager (Swarm's raft state names the manager by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_address: Option<String>,
    /// Bytes of the archive as stored.
    pub size: u64,
    pub orchestrator_version: String,
    /// The archive's file name, in the manifest's directory.
    pub archive: String,
    /// SHA-256 of the archive as stored, lowercase hex; absent in a backup
    /// taken before provision checked them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// How the archive is sealed ([`seal::FORMAT`], for cluster
    /// `cluster_id`); absent: in clear, as provision kept them before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

impl Manifest {
    /// When it was taken, unix seconds.
    pub fn taken_at_unix(&self) -> Option<i64> {
        let t = humantime::parse_rfc3339(&self.taken_at).ok()?;
        t.duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs() as i64)
    }

    /// The manifest's own file name, beside its archive.
    pub fn manifest_name(&self) -> String {
        let stem = self
            .archive
            .strip_suffix(".tar.gz")
            .unwrap_or(&self.archive);
        format!("{stem}.json")
    }
}

/// The files of `location`.
pub async fn open(location: &Location) -> Result<Box<dyn BackupStore>, BackupError> {
    match location {
        Location::Dir(dir) => Ok(Box::new(DirStore { dir: dir.clone() })),
        #[cfg(feature = "ec2")]
        Location::S3 { bucket, prefix } => Ok(Box::new(S3Store::connect(bucket, prefix).await?)),
        #[cfg(not(feature = "ec2"))]
        Location::S3 { .. } => Err(BackupError::NotBuiltIn {
            location: location.to_string(),
            feature: "ec2",
        }),
    }
}

/// A backup's archive, checked and opened whole, in a private temporary
/// file (0600, deleted when dropped): what a restore sends to a node, or
/// what `backup verify` lists. It holds the cluster's keys.
pub struct OpenedArchive {
    file: tempfile::NamedTempFile,
}

impl OpenedArchive {
    pub fn path(&self) -> &std::path::Path {
        self.file.path()
    }
}

/// The archive a restore names, downloaded a part at a time, checked
/// against its manifest's size and SHA-256 and opened with the cluster's
/// backup `key`, in base64 (one line, for a node's standard input); refused
/// whole before anything is restored from it. Memory stays bounded: the
/// archive passes through temporary files, never held whole.
pub async fn read_archive(
    request: &RestoreRequest,
    key: Option<&[u8]>,
) -> Result<OpenedArchive, BackupError> {
    read_archive_as(request, key, true).await
}

/// [`read_archive`], the gzip'd tar itself (what `backup verify` lists).
pub async fn read_archive_plain(
    request: &RestoreRequest,
    key: Option<&[u8]>,
) -> Result<OpenedArchive, BackupError> {
    read_archive_as(request, key, false).await
}

async fn read_archive_as(
    request: &RestoreRequest,
    key: Option<&[u8]>,
    base64: bool,
) -> Result<OpenedArchive, BackupError> {
    use std::io::{Seek, SeekFrom};
    let (location, name) = Location::of_file(&request.archive)?;
    let io = |what: &str| {
        let what = what.to_string();
        move |source: std::io::Error| BackupError::Io {
            path: std::path::PathBuf::from(format!("(a temporary file for {what})")),
            source,
        }
    };
    // The manifest's size when it has one (the sealed archive's); else
    // what a node's backup stream may be.
    let limit = request
        .size
        .unwrap_or(crate::bootstrap::Output::Archive.limit() as u64);
    // The sealed bytes (no secret without the key) land on the disk first.
    let mut sealed = tempfile::tempfile().map_err(io("the download"))?;
    {
        let mut writer = std::io::BufWriter::new(&mut sealed);
        let got = open(&location)
            .await?
            .get_to(&name, &mut writer, limit)
            .await;
        match (got, request.size) {
            (Err(BackupError::TooLarge { .. }), Some(expected)) => {
                return Err(BackupError::Archive {
                    archive: request.archive.clone(),
                    source: seal::SealError::Larger { expected },
                })
            }
            (got, _) => got?,
        };
        std::io::Write::flush(&mut writer).map_err(io("the download"))?;
    }
    sealed
        .seek(SeekFrom::Start(0))
        .map_err(io("the download"))?;
    let out = tempfile::NamedTempFile::new().map_err(io("the opened archive"))?;
    let mut target = std::io::BufWriter::new(
        out.as_file()
            .try_clone()
            .map_err(io("the opened archive"))?,
    );
    let sealed = std::io::BufReader::new(sealed);
    let checked = if base64 {
        let mut encoder = base64::write::EncoderWriter::new(
            &mut target,
            &base64::engine::general_purpose::STANDARD,
        );
        let checked = check_and_open(sealed, request, key, &mut encoder);
        encoder.finish().map_err(io("the opened archive"))?;
        checked
    } else {
        check_and_open(sealed, request, key, &mut target)
    };
    checked.map_err(|source| BackupError::Archive {
        archive: request.archive.clone(),
        source,
    })?;
    target
        .into_inner()
        .map_err(|e| io("the opened archive")(e.into_error()))?;
    Ok(OpenedArchive { file: out })
}

/// [`read_archive`]'s checks, in one pass over the sealed bytes: opened
/// (or copied, in clear) into `plain` while their size and SHA-256 are
/// counted, then compared with the manifest. A mismatch is told first,
/// even when a chunk did not open: a damaged download says so rather than
/// blaming the key.
fn check_and_open(
    sealed: impl std::io::Read,
    request: &RestoreRequest,
    key: Option<&[u8]>,
    plain: &mut dyn std::io::Write,
) -> Result<(), seal::SealError> {
    let mut reading = seal::Digesting::new(sealed);
    let opened = match &request.sealed_for {
        Some(cluster_id) => match key {
            Some(key) => seal::open_stream(key, cluster_id, &mut reading, &mut *plain).map(|_| ()),
            None => Err(seal::SealError::NoKey),
        },
        None => std::io::copy(&mut reading, plain)
            .map(|_| ())
            .map_err(seal::SealError::Io),
    };
    // The rest of the bytes, for the digest of the whole.
    std::io::copy(&mut reading, &mut std::io::sink()).map_err(seal::SealError::Io)?;
    let (_, sha256, size) = reading.finish();
    if let (Some(expected), Some(expected_sha256)) = (request.size, &request.sha256) {
        seal::matches(size, &sha256, expected, expected_sha256)?;
    }
    opened
}

/// The backups of `cluster` in `store`, oldest first: of the cluster with
/// id `cluster_id` only when one is given (a shared location may hold an
/// earlier or another store's cluster of the same name). A manifest that
/// cannot be read, or that names an archive anywhere but beside it, is
/// skipped with a warning: anyone who can write the location can write
/// one, and one bad file must not hide every backup.
pub async fn list(
    store: &dyn BackupStore,
    cluster: &str,
    cluster_id: Option<&str>,
) -> Result<Vec<Manifest>, BackupError> {
    let mut found = Vec::new();
    for name in store.names().await? {
        if !name.ends_with(".json") {
            continue;
        }
        let manifest = match read_manifest(store, &name).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(manifest = %name, error = %e, "skipped a backup manifest");
                continue;
            }
        };
        if manifest.cluster == cluster && cluster_id.is_none_or(|id| manifest.cluster_id == id) {
            found.push(manifest);
        }
    }
    found.sort_by(|a, b| a.taken_at.cmp(&b.taken_at));
    Ok(found)
}

/// The most of a manifest read: one this tool writes is under 1 KiB.
const MANIFEST_LIMIT: u64 = 64 * 1024;

/// The manifest `name` of `store`, refused when its archive is not a plain
/// file name beside it (`/etc/shadow`, `../x`).
async fn read_manifest(store: &dyn BackupStore, name: &str) -> Result<Manifest, BackupError> {
    let text = store.get(name, MANIFEST_LIMIT).await?;
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|source| BackupError::BadManifest {
            location: name.to_string(),
            source,
        })?;
    store::check_name(&manifest.archive)?;
    Ok(manifest)
}

/// Deletes all but the newest `keep` backups of the cluster with id
/// `cluster_id` in `store` (archive first: a failure between leaves a
/// manifest the next prune finds, never an archive none does); returns the
/// archives deleted.
pub async fn prune(
    store: &dyn BackupStore,
    cluster: &str,
    cluster_id: &str,
    keep: usize,
) -> Result<Vec<String>, BackupError> {
    let all = list(store, cluster, Some(cluster_id)).await?;
    let surplus = all.len().saturating_sub(keep);
    let mut deleted = Vec::new();
    for m in &all[..surplus] {
        store.delete(&m.archive).await?;
        store.delete(&m.manifest_name()).await?;
        deleted.push(m.archive.clone());
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(cluster: &str, at: &str) -> Manifest {
        Manifest {
            cluster: cluster.into(),
            cluster_id: "id".into(),
            coe: "swarm".into(),
            taken_at: at.into(),
            node: format!("{cluster}-manager-2"),
            private_address: Some("10.0.0.2".into()),
            size: 4,
            orchestrator_version: "20.10".into(),
            archive: format!("{cluster}-{at}.tar.gz"),
            sha256: None,
            sealed: None,
        }
    }

    async fn put(store: &DirStore, m: &Manifest) {
        store.put(&m.archive, b"data").await.unwrap();
        store
            .put(&m.manifest_name(), &serde_json::to_vec(m).unwrap())
            .await
            .unwrap();
    }

    #[test]
    fn a_manifest_tells_when_it_was_taken() {
        assert_eq!(
            manifest("web", "2026-12-01T00:00:00Z").taken_at_unix(),
            Some(1_796_083_200)
        );
        assert_eq!(manifest("web", "yesterday").taken_at_unix(), None);
    }

    #[tokio::test]
    async fn backups_are_listed_oldest_first_for_their_cluster_only_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore {
            dir: dir.path().to_path_buf(),
        };
        for (cluster, at) in [
            ("web", "20260102T000000Z"),
            ("web", "20260101T000000Z"),
            ("web", "20260103T000000Z"),
            ("api", "20260103T000000Z"),
        ] {
            put(&store, &manifest(cluster, at)).await;
        }
        let web = list(&store, "web", None).await.unwrap();
        assert_eq!(
            web.iter().map(|m| m.taken_at.as_str()).collect::<Vec<_>>(),
            ["20260101T000000Z", "20260102T000000Z", "20260103T000000Z"]
        );
        let deleted = prune(&store, "web", "id", 2).await.unwrap();
        assert_eq!(deleted, vec!["web-20260101T000000Z.tar.gz".to_string()]);
        let mut names = store.names().await.unwrap();
        names.sort();
        assert_eq!(
            names,
            [
                "api-20260103T000000Z.json",
                "api-20260103T000000Z.tar.gz",
                "web-20260102T000000Z.json",
                "web-20260102T000000Z.tar.gz",
                "web-20260103T000000Z.json",
                "web-20260103T000000Z.tar.gz",
            ]
        );
        assert!(prune(&store, "web", "id", 5).await.unwrap().is_empty());
        let none = DirStore {
            dir: dir.path().join("none"),
        };
        assert!(list(&none, "web", None).await.unwrap().is_empty());
    }

    /// A shared location holds another cluster named web (another id), a
    /// manifest that does not parse, and one whose archive is a path: the
    /// listing skips the two bad ones, and prune deletes only this
    /// cluster's backups.
    #[tokio::test]
    async fn another_cluster_s_backups_and_bad_manifests_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore {
            dir: dir.path().to_path_buf(),
        };
        for at in ["20260101T000000Z", "20260102T000000Z"] {
            put(&store, &manifest("web", at)).await;
        }
        let mut other = manifest("web", "20260103T000000Z");
        other.cluster_id = "other-id".into();
        put(&store, &other).await;
        store.put("web-broken.json", b"{not json").await.unwrap();
        // Manifests naming an archive anywhere but beside them.
        for (file, archive) in [
            ("web-shadow.json", "/etc/shadow"),
            ("web-up.json", "../web-x.tar.gz"),
        ] {
            let mut bad = manifest("web", "20260104T000000Z");
            bad.archive = archive.into();
            store
                .put(file, &serde_json::to_vec(&bad).unwrap())
                .await
                .unwrap();
        }

        let all = list(&store, "web", None).await.unwrap();
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(all.iter().all(|m| !m.archive.contains('/')));
        let mine = list(&store, "web", Some("id")).await.unwrap();
        assert_eq!(mine.len(), 2);
        assert!(mine.iter().all(|m| m.cluster_id == "id"));

        let deleted = prune(&store, "web", "id", 0).await.unwrap();
        assert_eq!(deleted.len(), 2);
        let left = list(&store, "web", None).await.unwrap();
        assert_eq!(left, vec![other]);
    }
}
