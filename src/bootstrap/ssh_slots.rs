//! The process-wide cap on open SSH connections.
//!
//! A daemon watching many clusters would otherwise open as many connections
//! as it has suspect nodes at once, and run out of file descriptors (each
//! connection is a socket) or starve itself of CPU for handshakes. Every
//! [`super::SshSession`] holds a slot for its lifetime. Waiting for a slot
//! is bounded: a probe that cannot get one is "not observed" (our limit,
//! not the node's fault), never evidence against the node.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections open at once when nothing else is set: well under the
/// 1024 descriptors a process gets by default, with room for the store,
/// the cloud clients and the metrics listener.
pub const DEFAULT_LIMIT: usize = 256;

/// How long a connection waits for a slot before it gives up.
const WAIT: Duration = Duration::from_secs(20);

static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
static LIMIT: OnceLock<usize> = OnceLock::new();
static OPENED: AtomicU64 = AtomicU64::new(0);

/// Sets the cap; only before the first connection (later calls return false).
pub fn set_limit(limit: usize) -> bool {
    LIMIT.set(limit.max(1)).is_ok() && SLOTS.get().is_none()
}

/// The cap in force.
pub fn limit() -> usize {
    *LIMIT.get_or_init(|| DEFAULT_LIMIT)
}

fn slots() -> &'static Arc<Semaphore> {
    SLOTS.get_or_init(|| Arc::new(Semaphore::new(limit())))
}

/// Connections open now.
pub fn in_use() -> usize {
    limit() - slots().available_permits()
}

/// Connections opened since the process started (successful handshakes).
pub fn opened() -> u64 {
    OPENED.load(Ordering::Relaxed)
}

pub(crate) fn count_opened() {
    OPENED.fetch_add(1, Ordering::Relaxed);
}

/// A slot for one connection, or `None` when none came free within the wait.
pub(crate) async fn take() -> Option<OwnedSemaphorePermit> {
    tokio::time::timeout(WAIT, slots().clone().acquire_owned())
        .await
        .ok()
        .map(|p| p.expect("the semaphore is never closed"))
}

/// Whether an I/O error is this machine running short (descriptors, ports,
/// buffers), which says nothing about the node at the other end.
pub(crate) fn is_local_shortage(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_descriptors_is_a_local_shortage_and_refusal_is_not() {
        assert!(is_local_shortage(&std::io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(is_local_shortage(&std::io::Error::from_raw_os_error(
            libc::EADDRNOTAVAIL
        )));
        assert!(!is_local_shortage(&std::io::Error::from_raw_os_error(
            libc::ECONNREFUSED
        )));
        assert!(!is_local_shortage(&std::io::Error::from_raw_os_error(
            libc::EHOSTUNREACH
        )));
    }
}
