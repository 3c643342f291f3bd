//! EBS volumes that outlive their instances: a root volume whose AMI sets
//! DeleteOnTermination to false (when no `root_volume_gb` overrides the
//! mapping), or one attached later by hand. RunInstances tags every volume
//! it makes with the cluster's tag, so destroy finds and deletes them once
//! their instances are gone.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::VolumeState;
use provision_provider::{ClusterRef, ProviderError};
use tracing::info;

use crate::errors::{call_error, has_code};
use crate::provider::Ec2Provider;
use crate::tags::cluster_filter;

/// How long destroy waits for a volume to be detached from a terminated instance.
const DETACH_WAIT: Duration = Duration::from_secs(300);

impl Ec2Provider {
    /// Deletes the cluster's volumes, waiting for attached ones to be
    /// released by their (terminated) instances.
    pub(crate) async fn delete_cluster_volumes(
        &self,
        cluster: &ClusterRef,
    ) -> Result<(), ProviderError> {
        let deadline = Instant::now() + DETACH_WAIT;
        loop {
            self.count("DescribeVolumes");
            let out = self
                .client
                .describe_volumes()
                .filters(cluster_filter(cluster))
                .send()
                .await
                .map_err(|e| call_error("DescribeVolumes", e))?;
            let mut attached = Vec::new();
            for volume in out.volumes() {
                let Some(id) = volume.volume_id() else {
                    continue;
                };
                match volume.state() {
                    Some(VolumeState::Available) => {
                        self.count("DeleteVolume");
                        match self.client.delete_volume().volume_id(id).send().await {
                            Ok(_) => info!(volume = id, "deleted volume"),
                            Err(e) if has_code(&e, &["InvalidVolume.NotFound"]) => {}
                            // Still being detached: looked at again below.
                            Err(e) if has_code(&e, &["VolumeInUse"]) => attached.push(id),
                            Err(e) => return Err(call_error("DeleteVolume", e)),
                        }
                    }
                    Some(VolumeState::Deleting | VolumeState::Deleted) => {}
                    _ => attached.push(id),
                }
            }
            if attached.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::Call {
                    cloud: crate::errors::CLOUD,
                    call: "DeleteVolume".into(),
                    message: format!(
                        "volumes {} are still attached after {}s: run destroy again later",
                        attached.join(", "),
                        DETACH_WAIT.as_secs()
                    ),
                    retryable: true,
                });
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }
}
