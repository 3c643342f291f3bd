//! provision's pure core: what a cluster should be and what to do about
//! what it is. Nothing here reads the clock (the time is an argument) or
//! talks to a cloud, a node or a store, and the crate has no I/O
//! dependency, so each rule is a unit test and `cargo test -p
//! provision-core` rebuilds in seconds. Its one read is of a template file
//! the user names (`ClusterTemplate::load`).
//!
//! | module | job |
//! |---|---|
//! | [`profile`] | each orchestrator's facts as data: ports, minimum machine, what it recovers and backs up, its settings section |
//! | [`spec`] | cluster templates + flags → a validated spec (desired state) |
//! | [`state`] | what is recorded of a cluster and its nodes, and the planner's reasons |
//! | [`reported`] | what nodes and memberships report, and the checks that untrusted input passes |
//! | [`health`] | which conditions make a node unhealthy, and when it is remediated |
//! | [`quorum`] | whether a change of managers keeps a majority |
//! | [`plan`] | desired + observed state → actions, one file per phase |
//!
//! The binary (`provision`) observes the clouds and nodes, hands this crate
//! what it saw, and carries out the plan.

pub mod health;
pub mod plan;
pub mod profile;
pub mod quorum;
pub mod reported;
pub mod spec;
pub mod state;
