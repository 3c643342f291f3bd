//! How the driver marks what it creates. Nova servers carry metadata,
//! everything else carries the cluster id in its name (keypairs, server
//! groups, security groups) or description (floating IPs), so the driver
//! finds all of a cluster's resources again from the cluster id alone.

/// Server metadata: the cluster id.
pub const CLUSTER: &str = "provision-cluster";
/// Server metadata: the cluster's name, for people reading the cloud.
pub const CLUSTER_NAME: &str = "provision-cluster-name";
/// Server metadata: the node name.
pub const NODE: &str = "provision-node";
/// Server metadata: `manager` or `worker`.
pub const ROLE: &str = "provision-role";

/// Name of the cluster's keypair, server group and security group.
pub fn resource_name(cluster_id: &str) -> String {
    format!("provision-{cluster_id}")
}

/// Description of a floating IP the driver allocated (never one it found).
pub fn floating_ip_description(cluster_id: &str) -> String {
    format!("provision-cluster={cluster_id}")
}
