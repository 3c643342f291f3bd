//! Where backups are kept: a directory, or an S3 bucket under a prefix.
//! Both hold the same files: `CLUSTER-TIME.tar.gz` and its manifest
//! `CLUSTER-TIME.json`, written archive first, so a manifest always names an
//! archive that is there.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

pub use crate::spec::{Location, LocationError};

/// What went wrong with a backup's files, naming where.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: {message}")]
    S3 { location: String, message: String },
    #[error(
        "{location}: this provision binary was built without S3 backup locations (Cargo \
         feature `{feature}`; scripts/local-cluster.sh builds the local cloud alone, to be \
         quick): build the whole binary with scripts/build.sh, or keep backups in a directory"
    )]
    NotBuiltIn {
        location: String,
        feature: &'static str,
    },
    #[error(transparent)]
    BadLocation(#[from] LocationError),
    #[error("{location} is not a backup manifest: {source}")]
    BadManifest {
        location: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("no backup at {location}")]
    NotFound { location: String },
    #[error("backup {archive}: {source}")]
    Archive {
        archive: String,
        #[source]
        source: super::seal::SealError,
    },
    #[error("{location} is larger than the {limit} bytes read here: not one this tool wrote")]
    TooLarge { location: String, limit: u64 },
    #[error("{name:?} is not a backup's file name (a manifest may name only a file beside it)")]
    BadName { name: String },
}

/// A name a store may be asked for: one file beside the others. Names come
/// from manifests too, which anyone who can write the location can write:
/// `../x` or `a/b` would reach outside it (a directory store runs as root).
pub(crate) fn check_name(name: &str) -> Result<&str, BackupError> {
    let plain =
        !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    plain.then_some(name).ok_or_else(|| BackupError::BadName {
        name: name.to_string(),
    })
}

/// The files of one location.
#[async_trait]
pub trait BackupStore: Send + Sync {
    /// Writes `name` (mode 0600 where files have modes).
    async fn put(&self, name: &str, bytes: &[u8]) -> Result<(), BackupError>;
    /// Reads `name`, refused when it is larger than `limit` bytes.
    async fn get(&self, name: &str, limit: u64) -> Result<Vec<u8>, BackupError> {
        let mut bytes = Vec::new();
        self.get_to(name, &mut bytes, limit).await?;
        Ok(bytes)
    }
    /// Stores the file at `path` as `name` (an archive, spooled to disk as
    /// it was sealed), read a part at a time.
    async fn put_file(&self, name: &str, path: &Path) -> Result<(), BackupError>;
    /// Reads `name` into `to` a part at a time, refused beyond `limit`
    /// bytes; returns its size.
    async fn get_to(
        &self,
        name: &str,
        to: &mut (dyn std::io::Write + Send),
        limit: u64,
    ) -> Result<u64, BackupError>;
    /// The names of the files there.
    async fn names(&self) -> Result<Vec<String>, BackupError>;
    /// Removes `name`; one that is not there is success.
    async fn delete(&self, name: &str) -> Result<(), BackupError>;
}

/// A directory on this machine.
pub struct DirStore {
    pub dir: PathBuf,
}

#[async_trait]
impl BackupStore for DirStore {
    async fn put(&self, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
        let path = self.dir.join(check_name(name)?);
        crate::state::write_private_file(&path, bytes).map_err(|source| BackupError::Io {
            path: path.clone(),
            source,
        })
    }

    async fn put_file(&self, name: &str, path: &Path) -> Result<(), BackupError> {
        let to = self.dir.join(check_name(name)?);
        let mut from = std::fs::File::open(path).map_err(|source| BackupError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        crate::state::write_private_file_with(&to, |f| std::io::copy(&mut from, f).map(|_| ()))
            .map_err(|source| BackupError::Io { path: to, source })
    }

    async fn get_to(
        &self,
        name: &str,
        to: &mut (dyn std::io::Write + Send),
        limit: u64,
    ) -> Result<u64, BackupError> {
        use std::io::Read;
        let path = self.dir.join(check_name(name)?);
        let io = |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::NotFound => BackupError::NotFound {
                location: path.display().to_string(),
            },
            _ => BackupError::Io {
                path: path.clone(),
                source,
            },
        };
        let file = std::fs::File::open(&path).map_err(io)?;
        let size = std::io::copy(&mut file.take(limit.saturating_add(1)), to).map_err(io)?;
        if size > limit {
            return Err(BackupError::TooLarge {
                location: path.display().to_string(),
                limit,
            });
        }
        Ok(size)
    }

    async fn names(&self) -> Result<Vec<String>, BackupError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(BackupError::Io {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| BackupError::Io {
                path: self.dir.clone(),
                source,
            })?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    async fn delete(&self, name: &str) -> Result<(), BackupError> {
        let path = self.dir.join(check_name(name)?);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(BackupError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_directory_keeps_private_files_and_lists_them() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore {
            dir: dir.path().join("web"),
        };
        assert!(store.names().await.unwrap().is_empty());
        store.put("a.tar.gz", b"data").await.unwrap();
        assert_eq!(store.get("a.tar.gz", 4).await.unwrap(), b"data");
        assert!(matches!(
            store.get("a.tar.gz", 3).await,
            Err(BackupError::TooLarge { limit: 3, .. })
        ));
        let mode = std::fs::metadata(dir.path().join("web/a.tar.gz"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(store.names().await.unwrap(), vec!["a.tar.gz".to_string()]);
        store.delete("a.tar.gz").await.unwrap();
        store.delete("a.tar.gz").await.unwrap();
        assert!(matches!(
            store.get("a.tar.gz", 4).await,
            Err(BackupError::NotFound { .. })
        ));
        // A name from a manifest never reaches outside the directory.
        std::fs::write(dir.path().join("outside"), b"keep").unwrap();
        for bad in ["../outside", "a/b", "..", ""] {
            assert!(
                matches!(store.delete(bad).await, Err(BackupError::BadName { .. })),
                "{bad}"
            );
            assert!(matches!(
                store.get(bad, 4).await,
                Err(BackupError::BadName { .. })
            ));
        }
        assert!(dir.path().join("outside").exists());
    }
}
