//! One process at a time per cluster.
//!
//! An advisory `flock` on a per-cluster file: the kernel drops it when the
//! holder exits, even by `kill -9`, so a crash never leaves a stale lock.
//! The holder writes its pid and start time into the file so the next
//! command can say who holds it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::paths::create_private_dir;

/// Held for as long as the value lives.
#[derive(Debug)]
pub struct ClusterLock {
    _file: File,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cluster {cluster} is busy (pid {pid}, since {since}): wait for that command to finish, or stop it")]
    Busy {
        cluster: String,
        pid: String,
        since: String,
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
                return Err(LockError::Busy {
                    cluster: cluster.to_string(),
                    pid: parts.next().unwrap_or("unknown").to_string(),
                    since: parts.next().unwrap_or("unknown").to_string(),
                });
            }
            return Err(io(err));
        }
        let stamp = format!(
            "{} {}\n",
            std::process::id(),
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        );
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(stamp.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(ClusterLock {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
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
            )),
            "{text}"
        );
        drop(first);
        ClusterLock::acquire("web", &path).unwrap();
    }
}
