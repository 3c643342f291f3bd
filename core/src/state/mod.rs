//! What is recorded of a cluster and its nodes: the records the planner
//! reads and the reasons it gives. The stores that keep them (SQLite, etcd)
//! are the binary's `state` module.

mod reason;
mod records;

pub use reason::{Attempt, Reason};
pub use records::{ClusterRecord, Event, Health, NodePhase, NodeRecord, Resource, UnhealthyKind};
