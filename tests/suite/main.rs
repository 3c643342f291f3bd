//! The integration tests, one binary: each module drives the real
//! `provision` binary (or a provider crate) against what this machine runs
//! (dockerd and node containers, sshd, etcd, the OpenStack and EC2 test
//! clouds), named by what it proves; `common` holds what they share.
//!
//! `cargo test --test suite` runs them all; `cargo test --test suite
//! local_swarm::` one module. Tests that need Docker say so when it is not
//! running (`common::require_docker`); without it, `cargo test --lib` runs
//! the unit and in-process controller tests.

mod common;

mod backup_swarm;
mod bad_input;
mod certificates;
mod cloud_firewalls;
mod crash_safety;
mod doc_commands;
mod ec2_cloud;
mod ec2_contract;
mod etcd_daemons;
mod etcd_state;
mod examples;
mod fault_matrix;
mod heal_daemon;
mod kubernetes_standins;
mod local_swarm;
mod mesos_standins;
mod openstack_cloud;
mod openstack_contract;
mod quorum_recovery;
mod state_store;
