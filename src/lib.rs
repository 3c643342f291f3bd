//! `provision` builds container-orchestration clusters on clouds, keeps them
//! healthy and scales them.
//!
//! The crate is layered as Cluster API splits the job:
//!
//! | module | job |
//! |---|---|
//! | [`profile`], [`spec`] | the pure core's (crate `provision-core`, `core/`): each orchestrator's facts as data; cluster templates + flags → a validated spec (desired state) |
//! | [`state`] | the store (SQLite, or etcd shared by a team and several daemons), per-cluster locks, file locations; the records are the core's |
//! | [`controller`] | observe → plan → act, the one reconcile path; the plan, health and quorum rules are the core's |
//! | [`bootstrap`] | SSH, script templates, running scripts on nodes |
//! | [`orchestrator`] | Swarm, Kubernetes (kubeadm) and Mesos behind one trait |
//! | `providers/*` | one crate per cloud behind `provision_provider::Provider` |
//! | `session` | the store, scripts and a controller on a cluster's cloud, for `cli` and `daemon` |
//! | `archive` | a backup's files: locations (a directory, S3), manifests, the seal, opening one for a restore |
//! | `backup` | backups of a cluster's orchestrator state, taken through a manager |
//! | `daemon` | reconcile every cluster on its own timer, metrics |
//! | [`cli`] | the command line |
//!
//! Cargo features (all on by default): `ec2` (the ec2 cloud and S3 backup
//! locations), `openstack`, `etcd` (shared state). Without one, the part is
//! refused by name when asked for.

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
