//! What is recorded of a cluster and its nodes: the records the planner
//! reads and the reasons it gives. The stores that keep them (SQLite, etcd)
//! are the binary's `state` module.

mod reason;
mod records;

pub use reason::{Attempt, Reason};
pub use records::{ClusterRecord, Event, Health, NodePhase, NodeRecord, Resource, UnhealthyKind};

/// A Unix time as RFC 3339 in UTC, to the second (a time before 1970 as
/// the epoch).
pub fn rfc3339(unix: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}
