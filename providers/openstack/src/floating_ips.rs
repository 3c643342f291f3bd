//! Floating IPs the driver allocates. Each carries the description
//! `provision-cluster=<id> server=<server id>`: that is how `destroy` and
//! scale-in tell them from floating IPs that existed before, which they
//! never touch.

use std::time::{Duration, Instant};

use provision_provider::{ClusterRef, MachineState, ProviderError};
use reqwest::Method;
use serde::Deserialize;
use tracing::info;

use crate::api::Request;
use crate::metadata::floating_ip_description;
use crate::prerequisites::parse;
use crate::provider::OpenStackProvider;
use crate::servers::state_of;

/// How long to wait for Nova to give a new server its port.
const PORT_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug, Deserialize)]
struct PortView {
    id: String,
}

fn description(cluster: &ClusterRef, server_id: &str) -> String {
    format!(
        "{} server={server_id}",
        floating_ip_description(&cluster.id)
    )
}

impl OpenStackProvider {
    /// Allocates a floating IP from `pool` onto the server's port, unless
    /// the server has one of ours already.
    pub(crate) async fn attach_floating_ip(
        &self,
        cluster: &ClusterRef,
        node: &str,
        server_id: &str,
        pool: &str,
    ) -> Result<(), ProviderError> {
        let cloud = &self.api.cloud;
        let wanted = description(cluster, server_id);
        let existing = self
            .api
            .call("ListFloatingIps", || {
                cloud
                    .find_floating_ips()
                    .with_description(wanted.clone())
                    .all()
            })
            .await?;
        if !existing.is_empty() {
            return Ok(());
        }
        let Some(port) = self.server_port(cluster, node, server_id).await? else {
            info!(
                node,
                server = server_id,
                "server failed before it had a port: no floating IP"
            );
            return Ok(());
        };
        let created = self
            .api
            .call("CreateFloatingIp", || {
                cloud
                    .new_floating_ip(pool.to_string())
                    .with_port(port.clone())
                    .with_description(wanted.clone())
                    .create()
            })
            .await?;
        info!(server = server_id, address = %created.floating_ip_address(), "floating IP allocated");
        Ok(())
    }

    /// The server's first port, once Nova has made it; `None` when the
    /// server went to ERROR first (the health policy replaces it).
    async fn server_port(
        &self,
        cluster: &ClusterRef,
        node: &str,
        server_id: &str,
    ) -> Result<Option<String>, ProviderError> {
        let started = Instant::now();
        loop {
            let answer = self
                .api
                .network(
                    "ListPorts",
                    Method::GET,
                    &["ports"],
                    Request::query(&[("device_id", server_id)]),
                )
                .await?;
            let ports: Vec<PortView> = parse(&answer, "ports")?;
            if let Some(p) = ports.into_iter().next() {
                return Ok(Some(p.id));
            }
            let servers = self.cluster_servers(cluster, Some(node)).await?;
            let failed = servers
                .iter()
                .filter(|s| s.id == server_id)
                .any(|s| matches!(state_of(s), Some(MachineState::Error(_)) | None));
            if failed {
                return Ok(None);
            }
            if started.elapsed() > PORT_DEADLINE {
                return Err(ProviderError::Call {
                    cloud: crate::errors::CLOUD,
                    call: "ListPorts".into(),
                    message: format!(
                        "server {server_id} has no port after {} s, so no floating IP could be attached",
                        PORT_DEADLINE.as_secs()
                    ),
                    retryable: true,
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Releases the floating IPs allocated for one server, or (`None`) for
    /// the whole cluster.
    pub(crate) async fn release_floating_ips(
        &self,
        cluster: &ClusterRef,
        server_id: Option<&str>,
    ) -> Result<(), ProviderError> {
        let cloud = &self.api.cloud;
        let ours = match server_id {
            Some(id) => {
                let wanted = description(cluster, id);
                self.api
                    .call("ListFloatingIps", || {
                        cloud
                            .find_floating_ips()
                            .with_description(wanted.clone())
                            .all()
                    })
                    .await?
            }
            None => {
                let prefix = format!("{} ", floating_ip_description(&cluster.id));
                let all = self
                    .api
                    .call("ListFloatingIps", || cloud.list_floating_ips())
                    .await?;
                all.into_iter()
                    .filter(|f| {
                        f.description()
                            .as_deref()
                            .is_some_and(|d| d.starts_with(&prefix))
                    })
                    .collect()
            }
        };
        for fip in ours {
            let id = fip.id().clone();
            self.api
                .network(
                    "DeleteFloatingIp",
                    Method::DELETE,
                    &["floatingips", &id],
                    Request::absent_ok(),
                )
                .await?;
            info!(id, address = %fip.floating_ip_address(), "floating IP released");
        }
        Ok(())
    }
}
