//! The host's limit on inotify instances, which node containers share.
//!
//! Every node runs systemd, logind, dbus and containerd, which hold about
//! [`PER_NODE`] inotify instances between them, all counted against one
//! per-user limit of the host kernel (`fs.inotify.max_user_instances`, 128
//! on Debian and Ubuntu) shared by every container running as root. A node
//! started past it boots with units that never start: seen here with 17
//! nodes and a few other containers, a node's journal said "Failed to
//! create inotify object: Too many open files" and its sshd never ran, so
//! the node could only time out. kind's known-issues page ("Pod errors due
//! to too many open files") gives the same cause and the same fix. So a
//! node that would go past the limit is refused before it is created, with
//! that fix in the error.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use provision_provider::ProviderError;

use crate::engine::CLOUD;

/// Instances a booted node holds (measured: systemd 5, systemd-logind 1,
/// dbus-daemon 1, containerd 1).
pub const PER_NODE: u64 = 8;

const LIMIT_FILE: &str = "/proc/sys/fs/inotify/max_user_instances";

/// What is left of the limit, measured once, then drawn on by each node.
#[derive(Debug)]
pub struct Budget {
    limit: u64,
    in_use: u64,
    granted: AtomicU64,
}

impl Budget {
    /// The limit and the instances root's processes hold now, when the
    /// engine runs on this host and both can be read; otherwise `None`
    /// (nothing is checked).
    pub fn measure() -> Option<Budget> {
        if !engine_is_local() {
            return None;
        }
        let limit = std::fs::read_to_string(LIMIT_FILE)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Some(Budget::new(limit, instances_in_use(Path::new("/proc"), 0)?))
    }

    fn new(limit: u64, in_use: u64) -> Budget {
        Budget {
            limit,
            in_use,
            granted: AtomicU64::new(0),
        }
    }

    /// Takes one node's share, or says why the node would not boot.
    pub fn reserve(&self, node: &str) -> Result<(), ProviderError> {
        let granted = self.granted.fetch_add(PER_NODE, Ordering::Relaxed) + PER_NODE;
        if self.in_use + granted <= self.limit {
            return Ok(());
        }
        self.granted.fetch_sub(PER_NODE, Ordering::Relaxed);
        Err(ProviderError::Unavailable {
            cloud: CLOUD,
            message: format!(
                "node {node} would not boot: this host allows {} inotify instances per user \
                 (fs.inotify.max_user_instances), {} are taken (by running processes and the \
                 nodes started before it) and every node takes about {PER_NODE} (its systemd \
                 would fail with \"Too many open files\" and never start sshd)",
                self.limit,
                self.in_use + granted - PER_NODE,
            ),
            hint: "raise the limit, as kind's known issues advise: \
                   `sysctl -w fs.inotify.max_user_instances=512` (keep it in /etc/sysctl.d/; \
                   scripts/host-setup.sh does both), then run the command again"
                .into(),
        })
    }
}

/// Whether the engine is this host's (its socket), not one DOCKER_HOST
/// names elsewhere, whose kernel's limits this host cannot see.
fn engine_is_local() -> bool {
    match std::env::var("DOCKER_HOST") {
        Ok(host) => host.is_empty() || host.starts_with("unix://"),
        Err(_) => true,
    }
}

/// inotify instances held by processes of `uid`, under a procfs at `proc`.
fn instances_in_use(proc: &Path, uid: u32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut count = 0;
    for entry in std::fs::read_dir(proc).ok()?.flatten() {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid || entry.metadata().map(|m| m.uid()).ok() != Some(uid) {
            continue;
        }
        // A process that ended meanwhile has no fds left to count.
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == "anon_inode:inotify") {
                count += 1;
            }
        }
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_refused_once_the_limit_would_be_passed() {
        // Debian's default, with 100 held by other containers: three nodes fit.
        let budget = Budget::new(128, 100);
        for node in ["a", "b", "c"] {
            budget.reserve(node).unwrap();
        }
        let err = budget.reserve("web-worker-4").unwrap_err().to_string();
        assert!(
            err.contains("web-worker-4")
                && err.contains("fs.inotify.max_user_instances")
                && err.contains("sysctl -w fs.inotify.max_user_instances=512"),
            "{err}"
        );
        // A refusal takes nothing: the next node is refused the same way.
        assert!(budget.reserve("web-worker-5").is_err());
    }

    #[test]
    fn instances_are_counted_per_process_of_the_user() {
        use std::os::unix::fs::{symlink, MetadataExt};
        let proc = tempfile::tempdir().unwrap();
        let uid = std::fs::metadata(proc.path()).unwrap().uid();
        let fds = |pid: &str, links: &[&str]| {
            let dir = proc.path().join(pid).join("fd");
            std::fs::create_dir_all(&dir).unwrap();
            for (i, target) in links.iter().enumerate() {
                symlink(target, dir.join(i.to_string())).unwrap();
            }
        };
        fds(
            "1",
            &["anon_inode:inotify", "anon_inode:inotify", "/dev/null"],
        );
        fds("42", &["anon_inode:inotify", "socket:[1234]"]);
        // Not a process: ignored.
        fds("self", &["anon_inode:inotify"]);
        assert_eq!(instances_in_use(proc.path(), uid), Some(3));
        assert_eq!(instances_in_use(proc.path(), uid + 1), Some(0));
    }
}
