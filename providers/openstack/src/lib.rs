//! The `openstack` cloud: nodes are Nova servers.
//!
//! Credentials come the way OpenStack users keep them — a cloud of
//! clouds.yaml (`--os-cloud`, the template's `openstack.cloud`, or
//! `OS_CLOUD`), or the `OS_*` variables of an openrc file — with password or
//! application-credential auth, project and domain scoping, region,
//! interface, and a CA file or `verify: false`.
//!
//! Per cluster the driver makes a keypair, a security group and a server
//! group named `provision-<cluster id>`, servers carrying the cluster id in
//! their metadata, and (when a pool is set) floating IPs whose description
//! carries it. One `servers/detail` request lists a cluster's machines;
//! `destroy` deletes only what carries the id.

mod api;
mod client;
mod config;
mod errors;
mod floating_ips;
mod inputs;
mod metadata;
mod prerequisites;
mod provider;
mod servers;

pub use inputs::{DEFAULT_FLAVOR, DEFAULT_IMAGE};
pub use provider::{OpenStackOptions, OpenStackProvider};
pub use provision_openstack_settings::{OpenStackSettings, ServerGroupPolicy, SshAddress};
