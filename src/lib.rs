//! `provision` builds container-orchestration clusters on clouds, keeps them
//! healthy and scales them.
//!
//! The crate is layered as Cluster API splits the job:
//!
//! | module | job |
//! |---|---|
//! | [`profile`] | each orchestrator's facts as data: ports, minimum machine, what it recovers and backs up |
//! | [`spec`] | cluster templates + flags → a validated spec (desired state) |
//! | [`state`] | the store (SQLite, or etcd shared by a team and several daemons), per-cluster locks, file locations |
//! | [`controller`] | observe → plan → act, the one reconcile path |
//! | [`bootstrap`] | SSH, script templates, running scripts on nodes |
//! | [`orchestrator`] | Swarm, Kubernetes (kubeadm) and Mesos behind one trait |
//! | `providers/*` | one crate per cloud behind `provision_provider::Provider` |
//! | `session` | the store, scripts and a controller on a cluster's cloud, for `cli` and `daemon` |
//! | `archive` | a backup's files: locations (a directory, S3), manifests, the seal, opening one for a restore |
//! | `backup` | backups of a cluster's orchestrator state, taken through a manager |
//! | `daemon` | reconcile every cluster on its own timer, metrics |
//! | [`cli`] | the command line |

// What the binary, the tests, the benches and the examples use.
pub mod bootstrap;
pub mod cli;
pub mod controller;
pub mod orchestrator;
pub mod secret;
pub mod state;

// The pure core (`core/`, crate provision-core), at the paths it had here.
pub use provision_core::{profile, spec};

// Reached only through the command line and the daemon.
mod archive;
mod backup;
mod daemon;
mod progress;
mod session;
