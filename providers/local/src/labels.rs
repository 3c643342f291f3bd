//! Label keys stamped on everything this provider creates.

use std::collections::HashMap;

pub const CLUSTER_ID: &str = "provision.cluster-id";
pub const CLUSTER_NAME: &str = "provision.cluster";
pub const NODE: &str = "provision.node";
pub const ROLE: &str = "provision.role";

/// Docker API filter selecting the cluster's resources by its id label.
pub fn cluster_filter(cluster_id: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![format!("{CLUSTER_ID}={cluster_id}")],
    )])
}
