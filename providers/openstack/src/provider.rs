//! [`Provider`] on OpenStack.

use std::sync::Mutex;

use async_trait::async_trait;
use provision_provider::{
    Apply, CloudSettings, ClusterRef, LogRecorder, Machine, MachineSpec, PerCluster, Provider,
    ProviderError, Recorder,
};
use tracing::info;

use crate::api::Api;
use crate::errors::CLOUD;
use crate::inputs::{Inputs, Resolved};
use crate::prerequisites::Prerequisites;
use crate::servers::state_of;
use crate::OpenStackSettings;
use crate::{client, config};

/// What the driver is told: the template's `openstack:` section, and the
/// image and flavor of the cluster's nodes.
#[derive(Debug, Clone, Default)]
pub struct OpenStackOptions {
    pub settings: OpenStackSettings,
    /// Image name or id (default [`crate::DEFAULT_IMAGE`]).
    pub image: Option<String>,
    /// Flavor name or id (default [`crate::DEFAULT_FLAVOR`]).
    pub flavor: Option<String>,
}

pub struct OpenStackProvider {
    pub(crate) api: Api,
    pub(crate) options: OpenStackOptions,
    pub(crate) inputs: Mutex<Option<Inputs>>,
    /// Pools' own flavors and images, looked up once each.
    pub(crate) resolved: Mutex<Resolved>,
    prereqs: PerCluster<Prerequisites>,
}

impl OpenStackProvider {
    /// Reads the cloud's configuration and authenticates (one Keystone
    /// request): wrong credentials fail here, before anything is created.
    pub async fn connect(options: OpenStackOptions) -> Result<Self, ProviderError> {
        options
            .settings
            .validate()
            .map_err(|message| ProviderError::Invalid {
                field: "openstack".into(),
                message,
            })?;
        let env = |k: &str| std::env::var(k).ok();
        let (config, source) =
            config::load(options.settings.cloud.as_deref(), &env).map_err(|e| {
                ProviderError::Unavailable {
                    cloud: CLOUD,
                    message: e.to_string(),
                    hint: "see examples/clouds.yaml".into(),
                }
            })?;
        let session = client::connect(&config, &source, options.settings.region.as_deref()).await?;
        info!(source, "authenticated to OpenStack");
        Ok(OpenStackProvider {
            api: Api::new(session),
            options,
            inputs: Mutex::new(None),
            resolved: Mutex::default(),
            prereqs: PerCluster::default(),
        })
    }

    /// Requests sent to the cloud's services so far (retries included;
    /// Keystone's token request not included).
    pub fn api_calls(&self) -> u64 {
        self.api.calls()
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
impl Provider for OpenStackProvider {
    fn cloud(&self) -> &'static str {
        CLOUD
    }

    async fn preflight(&self, cluster: &ClusterRef) -> Result<(), ProviderError> {
        let inputs = self.inputs().await?;
        if cluster.kinds.is_empty() {
            if let Some(minimum) = &cluster.minimum_size {
                let (name, vcpus, ram) = &inputs.flavor;
                minimum.check(&format!("flavor {name}"), *vcpus, *ram)?;
            }
        }
        // Each group's flavor, image and zones, so a pool's typo fails
        // before the first resource exists.
        for kind in &cluster.kinds {
            let of_group = |e| match cluster.names_groups() {
                true => provision_provider::in_group(e, &kind.group),
                false => e,
            };
            let (_, (name, vcpus, ram)) = self
                .flavor(kind.flavor.as_deref())
                .await
                .map_err(of_group)?;
            if let Some(minimum) = &cluster.minimum_size {
                minimum
                    .check(&format!("flavor {name}"), vcpus, ram)
                    .map_err(of_group)?;
            }
            self.image_id(kind.image.as_deref())
                .await
                .map_err(of_group)?;
            self.check_zones(&kind.zones, "zones")
                .await
                .map_err(of_group)?;
        }
        Ok(())
    }

    fn prerequisite_kinds(&self) -> &'static [&'static str] {
        &["keypair", "security-group (with its rules)", "server-group"]
    }

    async fn ensure_prerequisites(
        &self,
        cluster: &ClusterRef,
        recorder: &dyn Recorder,
    ) -> Result<(), ProviderError> {
        self.inputs().await?;
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
        let inputs = self.inputs().await?;
        let prereqs = self.prerequisites(cluster, &LogRecorder).await?;
        let launched = self.launch(cluster, spec, &prereqs, &inputs).await;
        if launched.is_err() {
            // A group or keypair deleted behind our back must not stay
            // cached in a long-running daemon: look again next time.
            self.prereqs.forget(&cluster.id);
        }
        launched
    }

    async fn unavailable_zones(&self, _: &ClusterRef) -> Result<Vec<String>, ProviderError> {
        Ok(self
            .zones()
            .await?
            .into_iter()
            .filter(|(_, up)| !up)
            .map(|(zone, _)| zone)
            .collect())
    }

    async fn list_machines(&self, cluster: &ClusterRef) -> Result<Vec<Machine>, ProviderError> {
        let network = match self.inputs.lock().expect("not poisoned").as_ref() {
            Some(i) => i.network_name.clone(),
            None => self.options.settings.network.clone().unwrap_or_default(),
        };
        Ok(self
            .cluster_servers(cluster, None)
            .await?
            .iter()
            .filter_map(|s| self.machine(s, &network))
            .collect())
    }

    async fn delete_machine(
        &self,
        cluster: &ClusterRef,
        machine_id: &str,
    ) -> Result<(), ProviderError> {
        self.delete_server(cluster, machine_id).await
    }

    async fn destroy_cluster(&self, cluster: &ClusterRef) -> Result<(), ProviderError> {
        let servers = self.cluster_servers(cluster, None).await?;
        for s in servers.iter().filter(|s| state_of(s).is_some()) {
            self.api
                .compute(
                    "DeleteServer",
                    reqwest::Method::DELETE,
                    &["servers", &s.id],
                    crate::api::Request::absent_ok(),
                )
                .await?;
        }
        self.release_floating_ips(cluster, None).await?;
        if !servers.is_empty() {
            self.wait_servers_gone(cluster).await?;
        }
        self.delete_prerequisites(cluster).await?;
        self.prereqs.forget(&cluster.id);
        Ok(())
    }
}
