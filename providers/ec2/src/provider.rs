//! [`Provider`] on Amazon EC2.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_ec2::types::InstanceStateName;
use aws_sdk_ec2::Client;
use provision_provider::{
    Apply, ClusterRef, LogRecorder, Machine, MachineSpec, PerCluster, Provider, ProviderError,
    Recorder,
};
use tracing::debug;

use crate::client;
use crate::errors::CLOUD;
use crate::prerequisites::{Inputs, Prerequisites, Resolved};
use crate::Ec2Settings;

/// Instance type when none is given: 2 vCPU, 2 GiB.
pub const DEFAULT_INSTANCE_TYPE: &str = "t3.small";

/// What the driver is told: the template's `ec2:` section, and the image
/// and instance type of the cluster's nodes.
#[derive(Debug, Clone, Default)]
pub struct Ec2Options {
    pub settings: Ec2Settings,
    /// AMI id (`ami-…`) or name (wildcards allowed, newest wins).
    pub image: Option<String>,
    pub instance_type: Option<String>,
}

pub struct Ec2Provider {
    pub(crate) client: Client,
    pub(crate) options: Ec2Options,
    /// Subnet and image ids, resolved once.
    pub(crate) inputs: Mutex<Option<Inputs>>,
    /// Pools' own images and zones' subnets, looked up once each.
    pub(crate) resolved: Mutex<Resolved>,
    /// Found or made once per process, per cluster id.
    prereqs: PerCluster<Prerequisites>,
    calls: AtomicU64,
}

impl Ec2Provider {
    /// A driver on the standard credential chain; no call is made yet.
    pub async fn connect(options: Ec2Options) -> Result<Self, ProviderError> {
        let client = client::connect(&options.settings).await?;
        Ok(Ec2Provider {
            client,
            options,
            inputs: Mutex::new(None),
            resolved: Mutex::default(),
            prereqs: PerCluster::default(),
            calls: AtomicU64::new(0),
        })
    }

    /// EC2 API calls this driver has made (each counted once, whatever the
    /// SDK's retries).
    pub fn api_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub(crate) fn count(&self, call: &'static str) {
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        debug!(call, n, "ec2 api call");
    }

    pub(crate) fn instance_type(&self) -> &str {
        self.options
            .instance_type
            .as_deref()
            .unwrap_or(DEFAULT_INSTANCE_TYPE)
    }

    async fn prerequisites(
        &self,
        cluster: &ClusterRef,
        recorder: &dyn Recorder,
    ) -> Result<Prerequisites, ProviderError> {
        self.prereqs
            .get_or_make(&cluster.id, || self.make_prerequisites(cluster, recorder))
            .await
    }
}

#[async_trait]
impl Provider for Ec2Provider {
    fn cloud(&self) -> &'static str {
        CLOUD
    }

    async fn preflight(&self, cluster: &ClusterRef) -> Result<(), ProviderError> {
        self.inputs().await?;
        if cluster.kinds.is_empty() {
            let (vcpus, memory_mib) = self.instance_type_size(self.instance_type()).await?;
            if let Some(minimum) = &cluster.minimum_size {
                let name = format!("instance type {}", self.instance_type());
                minimum.check(&name, vcpus, memory_mib)?;
            }
        }
        // Each group's instance type, image and zones' subnets, so a
        // pool's typo fails before the first resource exists.
        for kind in &cluster.kinds {
            let of_group = |e| match cluster.names_groups() {
                true => provision_provider::in_group(e, &kind.group),
                false => e,
            };
            let instance_type = kind.flavor.as_deref().unwrap_or(self.instance_type());
            let (vcpus, memory_mib) = self
                .instance_type_size(instance_type)
                .await
                .map_err(of_group)?;
            if let Some(minimum) = &cluster.minimum_size {
                let name = format!("instance type {instance_type}");
                minimum.check(&name, vcpus, memory_mib).map_err(of_group)?;
            }
            self.image(kind.image.as_deref()).await.map_err(of_group)?;
            for zone in &kind.zones {
                self.zone_subnet(zone).await.map_err(of_group)?;
            }
        }
        Ok(())
    }

    fn prerequisite_kinds(&self) -> &'static [&'static str] {
        &[
            "key-pair",
            "security-group (with its rules)",
            "placement-group",
        ]
    }

    async fn ensure_prerequisites(
        &self,
        cluster: &ClusterRef,
        recorder: &dyn Recorder,
    ) -> Result<(), ProviderError> {
        self.prerequisites(cluster, recorder).await.map(|_| ())
    }

    async fn reconcile_firewall(
        &self,
        cluster: &ClusterRef,
        apply: Apply,
    ) -> Result<Vec<String>, ProviderError> {
        self.reconcile_security_group(cluster, apply).await
    }

    async fn create_machine(
        &self,
        cluster: &ClusterRef,
        spec: &MachineSpec,
    ) -> Result<Machine, ProviderError> {
        let prereqs = self.prerequisites(cluster, &LogRecorder).await?;
        let launched = self.launch(cluster, spec, &prereqs).await;
        if launched.is_err() {
            // A group or key deleted behind our back must not stay cached
            // in a long-running daemon: look again next time.
            self.prereqs.forget(&cluster.id);
        }
        launched
    }

    async fn unavailable_zones(&self, _: &ClusterRef) -> Result<Vec<String>, ProviderError> {
        self.count("DescribeAvailabilityZones");
        let out = self
            .client
            .describe_availability_zones()
            .send()
            .await
            .map_err(|e| crate::errors::call_error("DescribeAvailabilityZones", e))?;
        Ok(out
            .availability_zones()
            .iter()
            .filter(|z| z.state() != Some(&aws_sdk_ec2::types::AvailabilityZoneState::Available))
            .filter_map(|z| z.zone_name().map(str::to_string))
            .collect())
    }

    async fn list_machines(&self, cluster: &ClusterRef) -> Result<Vec<Machine>, ProviderError> {
        Ok(self
            .describe_cluster(cluster, None)
            .await?
            .iter()
            .filter_map(|i| self.machine(i))
            .collect())
    }

    async fn delete_machine(
        &self,
        _cluster: &ClusterRef,
        machine_id: &str,
    ) -> Result<(), ProviderError> {
        self.terminate(&[machine_id.to_string()]).await
    }

    async fn destroy_cluster(&self, cluster: &ClusterRef) -> Result<(), ProviderError> {
        let live: Vec<String> = self
            .describe_cluster(cluster, None)
            .await?
            .iter()
            .filter(|i| i.state().and_then(|s| s.name()) != Some(&InstanceStateName::Terminated))
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        self.terminate(&live).await?;
        if !live.is_empty() {
            self.wait_terminated(cluster).await?;
        }
        self.delete_cluster_volumes(cluster).await?;
        self.delete_prerequisites(cluster).await?;
        self.prereqs.forget(&cluster.id);
        Ok(())
    }
}
