//! Instances: launch, list by tag, terminate.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, IamInstanceProfileSpecification, Instance,
    InstanceNetworkInterfaceSpecification, InstanceStateName, Placement, ResourceType, VolumeType,
};
use base64::Engine as _;
use provision_provider::{
    Addresses, ClusterRef, Machine, MachineSpec, MachineState, ProviderError, Role,
};
use tracing::info;

use crate::errors::{call_error, has_code};
use crate::prerequisites::Prerequisites;
use crate::provider::Ec2Provider;
use crate::tags::{self, cluster_filter, filter, node_tags};
use crate::SshAddress;

/// Error codes of a terminate that found nothing left to terminate.
const GONE: &[&str] = &[
    "InvalidInstanceID.NotFound",
    "InvalidNetworkInterfaceID.NotFound",
];

/// How long `destroy` waits for its instances to terminate.
const TERMINATE_WAIT: Duration = Duration::from_secs(600);

impl Ec2Provider {
    /// Every instance carrying the cluster's tag, terminated ones included,
    /// in one paginated DescribeInstances.
    pub(crate) async fn describe_cluster(
        &self,
        cluster: &ClusterRef,
        node: Option<&str>,
    ) -> Result<Vec<Instance>, ProviderError> {
        let mut instances = Vec::new();
        let mut token = None;
        loop {
            let mut call = self
                .client
                .describe_instances()
                .filters(cluster_filter(cluster))
                .set_next_token(token.take());
            if let Some(node) = node {
                call = call.filters(filter(&format!("tag:{}", tags::NODE), node));
            }
            self.count("DescribeInstances");
            let out = call
                .send()
                .await
                .map_err(|e| call_error("DescribeInstances", e))?;
            for reservation in out.reservations() {
                instances.extend(reservation.instances().iter().cloned());
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(instances),
            }
        }
    }

    /// The node's live instance, or a new one. The ClientToken makes a
    /// retried RunInstances return the first launch instead of a second.
    pub(crate) async fn launch(
        &self,
        cluster: &ClusterRef,
        spec: &MachineSpec,
        prereqs: &Prerequisites,
    ) -> Result<Machine, ProviderError> {
        let instances = self.describe_cluster(cluster, Some(&spec.node)).await?;
        if let Some(machine) = instances.iter().filter_map(|i| self.machine(i)).next() {
            return Ok(machine);
        }
        // One token per launch of a node record (never per node name: AWS
        // remembers a token ≥ 24 h after its instance is terminated).
        let token = client_token(&cluster.id, &spec.launch_token);
        let settings = &self.options.settings;
        // A pool's own image, instance type and zone, else the cluster's.
        let (image_id, root_device) = match &spec.image {
            Some(image) => self.image(Some(image)).await?,
            None => (prereqs.image_id.clone(), prereqs.root_device.clone()),
        };
        let subnet_id = match &spec.zone {
            Some(zone) => self.zone_subnet(zone).await?,
            None => prereqs.subnet_id.clone(),
        };
        let instance_type = spec.flavor.as_deref().unwrap_or(self.instance_type());
        let mut call = self
            .client
            .run_instances()
            .image_id(&image_id)
            .instance_type(instance_type.into())
            .min_count(1)
            .max_count(1)
            .key_name(&prereqs.key_name)
            .client_token(token)
            .tag_specifications(node_tags(
                cluster,
                &spec.node,
                spec.role,
                ResourceType::Instance,
            ))
            .tag_specifications(node_tags(
                cluster,
                &spec.node,
                spec.role,
                ResourceType::Volume,
            ));
        call = match settings.ssh_address {
            // A public address must be asked for on the interface.
            SshAddress::Public => call.network_interfaces(
                InstanceNetworkInterfaceSpecification::builder()
                    .device_index(0)
                    .subnet_id(&subnet_id)
                    .groups(&prereqs.group_id)
                    .associate_public_ip_address(true)
                    .delete_on_termination(true)
                    .set_private_ip_address(spec.private_address.clone())
                    .build(),
            ),
            SshAddress::Private => call
                .subnet_id(&subnet_id)
                .security_group_ids(&prereqs.group_id)
                .set_private_ip_address(spec.private_address.clone()),
        };
        // The root volume goes with its instance whatever the AMI says (an
        // AMI may set DeleteOnTermination to false); destroy sweeps tagged
        // volumes for an AMI whose root volume cannot be described here.
        if let Some(root) = &root_device {
            let ebs = EbsBlockDevice::builder().delete_on_termination(true);
            let ebs = match settings.root_volume_gb {
                Some(size) => Some(ebs.volume_size(size as i32).volume_type(VolumeType::Gp3)),
                None if root.snapshot.is_some() || root.size_gb.is_some() => Some(
                    ebs.set_snapshot_id(root.snapshot.clone())
                        .set_volume_size(root.size_gb),
                ),
                None => None,
            };
            if let Some(ebs) = ebs {
                call = call.block_device_mappings(
                    BlockDeviceMapping::builder()
                        .device_name(&root.name)
                        .ebs(ebs.build())
                        .build(),
                );
            }
        }
        if let Some(data) = &settings.user_data {
            call = call.user_data(base64::engine::general_purpose::STANDARD.encode(data));
        }
        if let Some(profile) = &settings.instance_profile {
            call = call.iam_instance_profile(
                IamInstanceProfileSpecification::builder()
                    .name(profile)
                    .build(),
            );
        }
        if let (Role::Manager, Some(group)) = (spec.role, &prereqs.placement_group) {
            call = call.placement(Placement::builder().group_name(group).build());
        }
        self.count("RunInstances");
        let out = call
            .send()
            .await
            .map_err(|e| call_error("RunInstances", e))?;
        let instance = out.instances().first().ok_or_else(|| ProviderError::Call {
            cloud: crate::errors::CLOUD,
            call: "RunInstances".into(),
            message: "the reply holds no instance".into(),
            retryable: true,
        })?;
        info!(node = %spec.node, instance = ?instance.instance_id(), "launched instance");
        self.machine(instance)
            .ok_or_else(|| ProviderError::MachineFailed {
                node: spec.node.clone(),
                message: format!(
                    "instance {} ended at launch: {}",
                    instance.instance_id().unwrap_or("?"),
                    instance
                        .state_reason()
                        .and_then(|r| r.message())
                        .unwrap_or("no reason given")
                ),
            })
    }

    /// The machine an instance is, or `None` once it is terminating.
    pub(crate) fn machine(&self, instance: &Instance) -> Option<Machine> {
        let state = match instance.state().and_then(|s| s.name()) {
            Some(InstanceStateName::Pending) => MachineState::Pending,
            Some(InstanceStateName::Running) => MachineState::Running,
            Some(InstanceStateName::Stopping | InstanceStateName::Stopped) => MachineState::Stopped,
            _ => return None,
        };
        let tags = instance.tags();
        // A public IPv4 is NAT at the VPC's edge, on no interface of the
        // instance: the cluster uses the private one, SSH the one chosen.
        let addresses = Addresses::with_ssh(
            instance.private_ip_address(),
            instance.public_ip_address(),
            self.options.settings.ssh_address == SshAddress::Public,
        );
        Some(Machine {
            id: instance.instance_id()?.to_string(),
            node: tags::value(tags, tags::NODE)?.to_string(),
            role: Role::parse(tags::value(tags, tags::ROLE)?)?,
            state,
            addresses,
            zone: instance
                .placement()
                .and_then(|p| p.availability_zone())
                .map(str::to_string),
        })
    }

    /// Terminates instances; ones already gone are fine.
    pub(crate) async fn terminate(&self, ids: &[String]) -> Result<(), ProviderError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.count("TerminateInstances");
        match self
            .client
            .terminate_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Gone already. (moto answers a second terminate of an instance
            // whose interface was deleted with the interface's NotFound.)
            Err(e) if has_code(&e, GONE) && ids.len() == 1 => Ok(()),
            // One unknown id fails the whole batch: go one by one.
            Err(e) if has_code(&e, GONE) => {
                for id in ids {
                    Box::pin(self.terminate(std::slice::from_ref(id))).await?;
                }
                Ok(())
            }
            Err(e) => Err(call_error("TerminateInstances", e)),
        }
    }

    /// Waits until none of the cluster's instances is left but terminated ones.
    pub(crate) async fn wait_terminated(&self, cluster: &ClusterRef) -> Result<(), ProviderError> {
        let deadline = Instant::now() + TERMINATE_WAIT;
        loop {
            let left: Vec<String> = self
                .describe_cluster(cluster, None)
                .await?
                .iter()
                .filter(|i| {
                    i.state().and_then(|s| s.name()) != Some(&InstanceStateName::Terminated)
                })
                .filter_map(|i| i.instance_id().map(str::to_string))
                .collect();
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::Call {
                    cloud: crate::errors::CLOUD,
                    call: "TerminateInstances".into(),
                    message: format!(
                        "{} still not terminated after {}s: run destroy again later",
                        left.join(", "),
                        TERMINATE_WAIT.as_secs()
                    ),
                    retryable: true,
                });
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }
}

/// Idempotency token of one launch of a node: the same for a retried call,
/// new after the node's earlier instance was terminated (EC2 allows 64 chars).
pub fn client_token(cluster_id: &str, launch_token: &str) -> String {
    // ClientToken: at most 64 ASCII characters.
    let mut token = format!("{cluster_id}-{launch_token}");
    token.truncate(64);
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_tokens_are_the_launchs_and_fit() {
        let launch = format!("{:032x}", u128::MAX);
        let a = client_token("0123456789abcdef", &launch);
        assert_eq!(a, client_token("0123456789abcdef", &launch));
        assert_ne!(a, client_token("0123456789abcdef", &"0".repeat(32)));
        assert_ne!(a, client_token("fedcba9876543210", &launch));
        assert!(a.len() <= 64 && a.is_ascii(), "{a}");
    }
}
