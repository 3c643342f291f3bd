//! In-memory doubles of what the controller talks to, so `observe`, `act`
//! and `reconcile` run in-process under `tokio::test(start_paused = true)`,
//! as Cluster API tests its controllers against an in-memory provider:
//!
//! - [`Cloud`]: a [`Provider`](provision_provider::Provider) whose machines
//!   are entries in a map; a test stops them, and counts the calls.
//! - [`Nodes`]: a [`Connector`](crate::bootstrap::Connector) that reaches
//!   the cloud's running machines (and counts connections per node).
//! - [`Swarmish`]: an [`Orchestrator`](crate::orchestrator::Orchestrator)
//!   with Swarm's shape (init once, join through a manager, members listed
//!   by a manager), whose installs a test can fail or hold.

mod cloud;
mod nodes;
mod orchestrator;

pub use cloud::Cloud;
pub use nodes::Nodes;
pub use orchestrator::Swarmish;
