//! The `ec2` cloud: nodes are Amazon EC2 instances.
//!
//! Credentials, profile, region and endpoint come from aws-config's standard
//! chain (environment, `~/.aws/config` and `credentials`, SSO, instance
//! roles), so whatever the `aws` CLI uses works here too — including an
//! endpoint override (`AWS_ENDPOINT_URL`, or `endpoint_url` in the profile)
//! for a private endpoint or a test cloud such as moto.
//!
//! Everything the driver creates is tagged `provision:cluster=<cluster id>`
//! and found again by that tag alone: one `DescribeInstances` per cluster
//! lists its machines, and `destroy` deletes only what carries the tag.

mod client;
mod errors;
mod instances;
mod prerequisites;
mod provider;
pub mod s3;
mod tags;
mod volumes;

pub use provider::{Ec2Options, Ec2Provider};
pub use provision_ec2_settings::{Ec2Settings, SshAddress};
