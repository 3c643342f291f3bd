//! The tags that tie EC2 resources to a cluster.

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use provision_provider::{ClusterRef, Role};

/// The cluster id: the one tag every lookup and every delete filters on.
pub const CLUSTER: &str = "provision:cluster";
pub const CLUSTER_NAME: &str = "provision:cluster-name";
pub const NODE: &str = "provision:node";
pub const ROLE: &str = "provision:role";

/// Name of the cluster's key pair, security group and placement group.
pub fn resource_name(cluster: &ClusterRef) -> String {
    format!("provision-{}-{}", cluster.name, cluster.id)
}

pub fn cluster_filter(cluster: &ClusterRef) -> Filter {
    filter(&format!("tag:{CLUSTER}"), &cluster.id)
}

pub fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// Tags of a cluster-wide resource.
pub fn cluster_tags(cluster: &ClusterRef, kind: ResourceType) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .tags(tag(CLUSTER, &cluster.id))
        .tags(tag(CLUSTER_NAME, &cluster.name))
        .tags(tag("Name", &resource_name(cluster)))
        .build()
}

/// Tags of a node's instance and its volumes.
pub fn node_tags(
    cluster: &ClusterRef,
    node: &str,
    role: Role,
    kind: ResourceType,
) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .tags(tag(CLUSTER, &cluster.id))
        .tags(tag(CLUSTER_NAME, &cluster.name))
        .tags(tag(NODE, node))
        .tags(tag(ROLE, role.as_str()))
        .tags(tag("Name", node))
        .build()
}

/// The value of `key` among `tags`.
pub fn value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}
