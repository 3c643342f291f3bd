//! Where state files live: the database, and per cluster its key, logs and
//! SSH files. Everything is private to the user (dirs 0700, files 0600).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Paths under one state root (the directory holding the database).
#[derive(Debug, Clone)]
pub struct StatePaths {
    db: PathBuf,
    root: PathBuf,
}

impl StatePaths {
    /// `explicit` (from `--state` or `PROVISION_STATE`), else
    /// `$XDG_DATA_HOME/provision/state.db`, else `~/.local/share/provision/state.db`.
    pub fn resolve(explicit: Option<PathBuf>) -> std::io::Result<StatePaths> {
        let db = match explicit {
            Some(p) => p,
            None => {
                let data = std::env::var_os("XDG_DATA_HOME")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| {
                        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share"))
                    })
                    .ok_or_else(|| {
                        std::io::Error::other(
                            "neither XDG_DATA_HOME nor HOME is set: give --state PATH",
                        )
                    })?;
                data.join("provision").join("state.db")
            }
        };
        let root = db
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(StatePaths { db, root })
    }

    /// The local files of the state at `location`.
    pub fn for_location(location: &super::StateLocation) -> std::io::Result<StatePaths> {
        match location {
            super::StateLocation::Sqlite(path) => Self::resolve(path.clone()),
            super::StateLocation::Etcd(target) => Self::cache_for(&target.cache_name()),
        }
    }

    /// The local directory of a shared (etcd) state's files: node logs and
    /// the copies OpenSSH and the clients read. `$XDG_DATA_HOME/provision/etcd/NAME`.
    pub fn cache_for(name: &str) -> std::io::Result<StatePaths> {
        let default = Self::resolve(None)?;
        let root = default.root.join("etcd").join(name);
        Ok(StatePaths {
            db: root.join("no-database-here"),
            root,
        })
    }

    /// The SQLite file (for an etcd state, a path that is never opened).
    pub fn db(&self) -> &Path {
        &self.db
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn cluster_dir(&self, cluster: &str) -> PathBuf {
        self.root.join("clusters").join(cluster)
    }

    pub fn private_key(&self, cluster: &str) -> PathBuf {
        self.cluster_dir(cluster).join("id_ed25519")
    }

    pub fn ssh_config(&self, cluster: &str) -> PathBuf {
        self.cluster_dir(cluster).join("ssh_config")
    }

    pub fn known_hosts(&self, cluster: &str) -> PathBuf {
        self.cluster_dir(cluster).join("known_hosts")
    }

    /// The directory `provision env` puts first on PATH: it holds the
    /// cluster's `ssh` wrapper, which the docker CLI runs for `ssh://`.
    pub fn client_bin(&self, cluster: &str) -> PathBuf {
        self.cluster_dir(cluster).join("bin")
    }

    /// Whether `dir` is some cluster's [`StatePaths::client_bin`] here.
    pub fn is_client_bin(&self, dir: &Path) -> bool {
        dir.parent()
            .and_then(Path::parent)
            .is_some_and(|clusters| clusters == self.root.join("clusters"))
            && dir.file_name().is_some_and(|n| n == "bin")
    }

    pub fn node_log(&self, cluster: &str, node: &str) -> PathBuf {
        self.cluster_dir(cluster)
            .join("logs")
            .join(format!("{node}.log"))
    }

    pub fn lock(&self, cluster: &str) -> PathBuf {
        self.root.join("locks").join(format!("{cluster}.lock"))
    }
}

/// Creates `dir` and its parents, private to the user.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes a file only the user can read, replacing it atomically.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_private_file_with(path, |f| f.write_all(contents))
}

/// [`write_private_file`] with what `write` writes into it.
pub fn write_private_file_with(
    path: &Path,
    write: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    // A temporary name no one can guess, made new (O_EXCL, O_NOFOLLOW): a
    // link planted in the directory is never written through. The rename
    // replaces whatever is at `path` itself, a link included.
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        write(&mut f)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_file_replaces_a_planted_link_and_writes_nothing_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"theirs").unwrap();
        let path = dir.path().join("id_ed25519");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        write_private_file(&path, b"ours").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"theirs");
        assert!(!std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&path).unwrap(), b"ours");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temporary left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn explicit_path_roots_everything_beside_it() {
        let p = StatePaths::resolve(Some(PathBuf::from("/tmp/x/state.db"))).unwrap();
        assert_eq!(p.root(), Path::new("/tmp/x"));
        assert_eq!(
            p.private_key("web"),
            Path::new("/tmp/x/clusters/web/id_ed25519")
        );
        assert_eq!(p.lock("web"), Path::new("/tmp/x/locks/web.lock"));
    }

    #[test]
    fn private_files_are_0600() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a/b/key");
        write_private_file(&f, b"secret").unwrap();
        let mode = fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(dir.path().join("a/b"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
    }
}
