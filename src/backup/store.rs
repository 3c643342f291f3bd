//! Where backups are kept: a directory, or an S3 bucket under a prefix.
//! Both hold the same files: `CLUSTER-TIME.tar.gz` and its manifest
//! `CLUSTER-TIME.json`, written archive first, so a manifest always names an
//! archive that is there.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use async_trait::async_trait;

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
        "{location} is not a backup location: {why} (give a directory, or s3://BUCKET/PREFIX)"
    )]
    BadLocation { location: String, why: String },
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

/// A backup location as a person writes it: a directory, or `s3://BUCKET/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Dir(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl FromStr for Location {
    type Err = BackupError;

    fn from_str(s: &str) -> Result<Location, BackupError> {
        let bad = |why: &str| BackupError::BadLocation {
            location: s.to_string(),
            why: why.to_string(),
        };
        match s.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                // S3's bucket naming rules: 3-63 of a-z, 0-9, '.', '-'.
                let bucket_ok = (3..=63).contains(&bucket.len())
                    && bucket.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b)
                    })
                    && bucket.as_bytes()[0].is_ascii_alphanumeric();
                if !bucket_ok {
                    return Err(bad(
                        "the bucket name must be 3-63 lowercase letters, digits, '.' or '-'",
                    ));
                }
                Ok(Location::S3 {
                    bucket: bucket.to_string(),
                    prefix: prefix.trim_matches('/').to_string(),
                })
            }
            None if s.contains("://") => Err(bad("only s3:// URLs are supported")),
            None if s.is_empty() => Err(bad("empty")),
            None => Ok(Location::Dir(PathBuf::from(s))),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Dir(dir) => write!(f, "{}", dir.display()),
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

impl Location {
    /// Where the file `name` of this location is, as a person writes it.
    pub fn file(&self, name: &str) -> String {
        match self {
            Location::Dir(dir) => dir.join(name).display().to_string(),
            Location::S3 { .. } => format!("{}/{name}", self.to_string().trim_end_matches('/')),
        }
    }

    /// The location of a file written as [`Location::file`] gives it, and
    /// its name there.
    pub fn of_file(file: &str) -> Result<(Location, String), BackupError> {
        let bad = || BackupError::BadLocation {
            location: file.to_string(),
            why: "it names no file".into(),
        };
        match file.parse::<Location>()? {
            Location::Dir(path) => {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(bad)?
                    .to_string();
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                Ok((Location::Dir(dir), name))
            }
            Location::S3 { bucket, prefix } => {
                let (dir, name) = prefix.rsplit_once('/').unwrap_or(("", &prefix));
                if name.is_empty() {
                    return Err(bad());
                }
                Ok((
                    Location::S3 {
                        bucket,
                        prefix: dir.to_string(),
                    },
                    name.to_string(),
                ))
            }
        }
    }
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

/// A bucket and prefix on S3 (or a service that speaks its API).
pub struct S3Store {
    objects: provision_provider_ec2::s3::S3Objects,
    location: Location,
}

impl S3Store {
    pub async fn connect(bucket: &str, prefix: &str) -> Result<S3Store, BackupError> {
        let location = Location::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        };
        let objects = provision_provider_ec2::s3::S3Objects::connect(bucket, prefix)
            .await
            .map_err(|e| BackupError::S3 {
                location: location.to_string(),
                message: e.to_string(),
            })?;
        Ok(S3Store { objects, location })
    }

    fn error(&self, e: provision_provider_ec2::s3::S3Error) -> BackupError {
        if e.not_found && e.operation == "GetObject" {
            return BackupError::NotFound {
                location: format!("s3://{}/{}", e.bucket, e.key),
            };
        }
        BackupError::S3 {
            location: self.location.to_string(),
            message: e.to_string(),
        }
    }
}

#[async_trait]
impl BackupStore for S3Store {
    async fn put(&self, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
        self.objects
            .put(check_name(name)?, bytes)
            .await
            .map_err(|e| self.error(e))
    }

    async fn put_file(&self, name: &str, path: &Path) -> Result<(), BackupError> {
        self.objects
            .put_file(check_name(name)?, path)
            .await
            .map_err(|e| self.error(e))
    }

    async fn get_to(
        &self,
        name: &str,
        to: &mut (dyn std::io::Write + Send),
        limit: u64,
    ) -> Result<u64, BackupError> {
        self.objects
            .get_to(check_name(name)?, to, limit)
            .await
            .map_err(|e| self.error(e))
    }

    async fn names(&self) -> Result<Vec<String>, BackupError> {
        self.objects.names().await.map_err(|e| self.error(e))
    }

    async fn delete(&self, name: &str) -> Result<(), BackupError> {
        self.objects
            .delete(check_name(name)?)
            .await
            .map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_name_their_files() {
        assert_eq!(
            "/var/backups/web".parse::<Location>().unwrap(),
            Location::Dir("/var/backups/web".into())
        );
        let s3: Location = "s3://team-backups/provision/web/".parse().unwrap();
        assert_eq!(
            s3,
            Location::S3 {
                bucket: "team-backups".into(),
                prefix: "provision/web".into()
            }
        );
        assert_eq!(
            s3.file("web-1.tar.gz"),
            "s3://team-backups/provision/web/web-1.tar.gz"
        );
        let bare: Location = "s3://team-backups".parse().unwrap();
        assert_eq!(bare.file("a.json"), "s3://team-backups/a.json");
        assert_eq!(
            Location::of_file("s3://team-backups/provision/web/web-1.tar.gz").unwrap(),
            (s3.clone(), "web-1.tar.gz".to_string())
        );
        assert_eq!(
            Location::of_file("/b/web-1.tar.gz").unwrap(),
            (Location::Dir("/b".into()), "web-1.tar.gz".to_string())
        );
        for bad in ["s3://Bad_Bucket/x", "s3://ab", "gs://bucket/x", ""] {
            let err = bad.parse::<Location>().unwrap_err().to_string();
            assert!(err.contains("not a backup location"), "{bad}: {err}");
        }
    }

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
