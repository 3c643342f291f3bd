//! One process at a time per cluster.
//!
//! Beside a SQLite file: an advisory `flock` on a per-cluster file; the
//! kernel drops it when the holder exits, even by `kill -9`, so a crash
//! never leaves a stale lock. In etcd: a key held by a lease the holder
//! keeps alive ([`super::etcd::EtcdLock`]); a killed holder's lease ends
//! after its TTL. Either way the holder leaves its host, pid and start time
//! so the next command can say who holds it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::paths::create_private_dir;

/// Held for as long as the value lives.
pub struct ClusterLock {
    held: Held,
}

enum Held {
    File {
        _file: File,
    },
    // Boxed: the etcd client it carries is large.
    #[cfg(feature = "etcd")]
    Etcd(Box<super::etcd::EtcdLock>),
}

/// Who holds a cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: String,
    pub since: String,
}

impl Holder {
    /// This process, now.
    pub fn me() -> Holder {
        Holder {
            host: hostname(),
            pid: std::process::id().to_string(),
            since: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }
}

/// This machine's name, as `hostname` prints it.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".to_string();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cluster {cluster} is busy (pid {}, since {}, on host {}): wait for that command to finish, or stop it", holder.pid, holder.since, holder.host)]
    Busy { cluster: String, holder: Holder },
    #[error("cannot lock cluster {cluster}: {source}")]
    Store {
        cluster: String,
        source: super::StoreError,
    },
    #[error("cannot lock cluster {cluster} ({}): {source}", path.display())]
    Io {
        cluster: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ClusterLock {
    /// Takes the lock or says who holds it; never waits.
    pub fn acquire(cluster: &str, path: &Path) -> Result<ClusterLock, LockError> {
        let io = |source| LockError::Io {
            cluster: cluster.to_string(),
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            create_private_dir(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let mut parts = holder.split_whitespace();
                let mut part = || parts.next().unwrap_or("unknown").to_string();
                return Err(LockError::Busy {
                    cluster: cluster.to_string(),
                    holder: Holder {
                        pid: part(),
                        since: part(),
                        host: part(),
                    },
                });
            }
            return Err(io(err));
        }
        let me = Holder::me();
        let stamp = format!("{} {} {}\n", me.pid, me.since, me.host);
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(stamp.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(ClusterLock {
            held: Held::File { _file: file },
        })
    }

    /// Takes the cluster's lock in etcd or says who holds it; never waits.
    #[cfg(feature = "etcd")]
    pub fn acquire_etcd(store: &super::EtcdStore, cluster: &str) -> Result<ClusterLock, LockError> {
        super::etcd::EtcdLock::acquire(store, cluster).map(|l| ClusterLock {
            held: Held::Etcd(Box::new(l)),
        })
    }

    /// Resolves when the lock can no longer be vouched for (its lease could
    /// not be renewed in time): the holder must stop changing the cluster,
    /// someone else may hold it soon. A file lock is never lost.
    pub async fn lost(&self) {
        match &self.held {
            Held::File { .. } => std::future::pending().await,
            #[cfg(feature = "etcd")]
            Held::Etcd(l) => l.lost().await,
        }
    }
}

impl std::fmt::Debug for ClusterLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.held {
            Held::File { .. } => "ClusterLock(file)",
            #[cfg(feature = "etcd")]
            Held::Etcd(_) => "ClusterLock(etcd)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_told_who_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks/web.lock");
        let first = ClusterLock::acquire("web", &path).unwrap();
        // flock locks belong to the open file description, so a second open
        // in the same process contends just like another process would.
        let err = ClusterLock::acquire("web", &path).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "cluster web is busy (pid {}, since ",
                std::process::id()
            )) && text.contains(&format!("on host {}", hostname())),
            "{text}"
        );
        drop(first);
        ClusterLock::acquire("web", &path).unwrap();
    }
}
