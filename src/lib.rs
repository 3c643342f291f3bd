//! `provision` builds container-orchestration clusters on clouds, keeps them
//! healthy and scales them.
//!
//! The crate is layered as Cluster API splits the job:
//!
//! | module | job |
//! |---|---|
//! | [`spec`] | cluster templates + flags → a validated spec (desired state) |
//! | [`state`] | the store (SQLite, or etcd shared by a team and several daemons), per-cluster locks, file locations |
//! | [`controller`] | observe → plan → act, the one reconcile path |
//! | [`bootstrap`] | SSH, script templates, running scripts on nodes |
//! | [`orchestrator`] | Swarm, Kubernetes (kubeadm) and Mesos behind one trait |
//! | `providers/*` | one crate per cloud behind `provision_provider::Provider` |
//! | [`session`] | the store, scripts and a controller on a cluster's cloud, for `cli` and `daemon` |
//! | [`archive`] | a backup's files: locations (a directory, S3), manifests, the seal, opening one for a restore |
//! | [`backup`] | backups of a cluster's orchestrator state, taken through a manager |
//! | [`daemon`] | reconcile every cluster on its own timer, metrics |
//! | [`cli`] | the command line |

pub mod archive;
pub mod backup;
pub mod bootstrap;
pub mod cli;
pub mod controller;
pub mod daemon;
pub mod orchestrator;
pub mod progress;
pub mod secret;
pub mod session;
pub mod spec;
pub mod state;
