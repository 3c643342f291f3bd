//! The controller: one reconcile path for creating, scaling and healing.
//!
//! - [`observe`]: one provider list call, the orchestrator's membership
//!   through one manager, and an SSH probe of each node it does not vouch for.
//! - [`plan`](mod@plan): a pure function from desired and observed state to actions.
//! - [`act`]: runs the actions, each node pipelined on its own, through the
//!   connections the observation opened ([`connections`]).
//! - [`reconcile`]: observe → plan → act until nothing is left to do.

mod act;
mod connections;
mod context;
mod gone_watch;
#[cfg(test)]
mod in_memory;
#[cfg(test)]
mod in_process_tests;
mod observe;
mod reconcile;

// The planner and its rules are the pure core's (crate provision-core).
use provision_core::health;
pub use provision_core::{plan, quorum};
mod stop;

pub use connections::Connections;
pub use context::{cluster_ref, ClusterContext, Controller, ControllerError};
pub use gone_watch::GoneWatch;
pub(crate) use observe::unix_now;
pub use observe::Probing;
pub use plan::{plan, Action, Observed, Plan, Probe};
pub use reconcile::{clear_node_backoff, ConvergeReport, DryRun};
pub use stop::Stop;
