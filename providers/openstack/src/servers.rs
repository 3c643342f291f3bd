//! Nova servers: one listing per cluster, create with the cluster's
//! keypair, security group, server group and metadata, delete.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use provision_provider::{
    Addresses, ClusterRef, Machine, MachineSpec, MachineState, ProviderError, Role,
};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::info;

use crate::api::Request;
use crate::inputs::Inputs;
use crate::metadata;
use crate::prerequisites::{parse, Prerequisites};
use crate::provider::OpenStackProvider;
use crate::SshAddress;

/// How long `destroy` waits for Nova to finish deleting servers.
const DELETE_DEADLINE: Duration = Duration::from_secs(300);

/// A server as Nova's `servers/detail` shows it; only what the driver reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ServerView {
    pub id: String,
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    #[serde(default)]
    pub addresses: HashMap<String, Vec<Address>>,
    /// `deleting` once a delete is under way.
    #[serde(rename = "OS-EXT-STS:task_state", default)]
    pub task_state: Option<String>,
    /// Set by Nova when the server is in ERROR.
    #[serde(default)]
    pub fault: Option<Fault>,
    /// The zone Nova placed it in (`OS-EXT-AZ` extension; empty while
    /// it is being scheduled).
    #[serde(rename = "OS-EXT-AZ:availability_zone", default)]
    pub zone: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Address {
    pub addr: String,
    #[serde(default)]
    pub version: Option<u8>,
    #[serde(rename = "OS-EXT-IPS:type", default)]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Fault {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: Option<u16>,
}

/// Nova's status → the controller's view. `None`: deleted, not a machine.
pub(crate) fn state_of(server: &ServerView) -> Option<MachineState> {
    if server.task_state.as_deref() == Some("deleting") {
        return None;
    }
    Some(match server.status.as_str() {
        "ACTIVE" => MachineState::Running,
        "BUILD" => MachineState::Pending,
        // Nova's transitional states of a server that exists and comes back
        // (api-ref "Server status"), and UNKNOWN (microversion 2.69+: the
        // server's cell does not answer): an operator's reboot, resize,
        // live migration or host evacuation, not a failure.
        "REBUILD" | "REBOOT" | "HARD_REBOOT" | "MIGRATING" | "RESIZE" | "VERIFY_RESIZE"
        | "REVERT_RESIZE" | "PASSWORD" | "UNKNOWN" => MachineState::Busy(format!(
            "Nova reports {}{}",
            server.status,
            server
                .task_state
                .as_deref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default()
        )),
        "SHUTOFF" | "PAUSED" | "SUSPENDED" | "SHELVED" | "SHELVED_OFFLOADED" | "STOPPED"
        | "RESCUE" => MachineState::Stopped,
        "DELETED" | "SOFT_DELETED" => return None,
        "ERROR" => MachineState::Error(match &server.fault {
            Some(f) if !f.message.is_empty() => format!(
                "Nova: {}{}",
                f.message,
                f.code.map(|c| format!(" (code {c})")).unwrap_or_default()
            ),
            _ => "Nova reports ERROR without a fault message".into(),
        }),
        other => MachineState::Error(format!("Nova reports status {other}")),
    })
}

/// The server's addresses on the cluster's network (IPv4 first): the
/// fixed one is on its port and is what the cluster uses; a floating IP is
/// NAT by the Neutron router, on no interface of the server.
pub(crate) fn addresses(server: &ServerView, network: &str, ssh: SshAddress) -> Option<Addresses> {
    let pick = |addrs: &Vec<Address>, wanted: &str| {
        let mut matching: Vec<&Address> = addrs
            .iter()
            .filter(|a| a.kind.as_deref().unwrap_or("fixed") == wanted)
            .collect();
        matching.sort_by_key(|a| a.version.unwrap_or(4) != 4);
        matching.first().map(|a| a.addr.clone())
    };
    let find = |wanted: &str| {
        server
            .addresses
            .get(network)
            .and_then(|a| pick(a, wanted))
            .or_else(|| server.addresses.values().find_map(|a| pick(a, wanted)))
    };
    let (fixed, floating) = (find("fixed"), find("floating"));
    Addresses::with_ssh(
        fixed.as_deref(),
        floating.as_deref(),
        ssh == SshAddress::Floating,
    )
}

impl OpenStackProvider {
    /// The cluster's servers, in one request (Nova pages at 1000 by
    /// default; a larger cluster follows the `next` links).
    pub(crate) async fn cluster_servers(
        &self,
        cluster: &ClusterRef,
        name: Option<&str>,
    ) -> Result<Vec<ServerView>, ProviderError> {
        let pattern = match name {
            Some(node) => format!("^{node}$"),
            None => format!("^{}-", cluster.name),
        };
        let mut marker: Option<String> = None;
        let mut found = Vec::new();
        loop {
            let mut query = vec![("name", pattern.as_str())];
            if let Some(m) = &marker {
                query.push(("marker", m.as_str()));
            }
            let answer = self
                .api
                .compute(
                    "ListServers",
                    Method::GET,
                    &["servers", "detail"],
                    Request::query(&query),
                )
                .await?;
            let page: Vec<ServerView> = parse(&answer, "servers")?;
            let has_next = answer
                .get("servers_links")
                .and_then(Value::as_array)
                .is_some_and(|links| links.iter().any(|l| l["rel"] == "next"));
            marker = page.last().map(|s| s.id.clone());
            found.extend(page);
            if !has_next || marker.is_none() {
                break;
            }
        }
        found.retain(|s| s.metadata.get(metadata::CLUSTER) == Some(&cluster.id));
        Ok(found)
    }

    pub(crate) fn machine(&self, server: &ServerView, network: &str) -> Option<Machine> {
        Some(Machine {
            id: server.id.clone(),
            node: server.metadata.get(metadata::NODE)?.clone(),
            role: Role::parse(server.metadata.get(metadata::ROLE)?)?,
            state: state_of(server)?,
            addresses: addresses(server, network, self.options.settings.ssh_address),
            zone: server.zone.clone().filter(|z| !z.is_empty()),
        })
    }

    /// Creates the node's server unless one exists, and its floating IP
    /// when the cluster has a pool.
    pub(crate) async fn launch(
        &self,
        cluster: &ClusterRef,
        spec: &MachineSpec,
        prereqs: &Prerequisites,
        inputs: &Inputs,
    ) -> Result<Machine, ProviderError> {
        let existing = self.cluster_servers(cluster, Some(&spec.node)).await?;
        let server_id = match existing.iter().find(|s| state_of(s).is_some()) {
            Some(s) => s.id.clone(),
            None => self.create_server(cluster, spec, prereqs, inputs).await?,
        };
        if let Some(pool) = &inputs.floating_network_id {
            self.attach_floating_ip(cluster, &spec.node, &server_id, pool)
                .await?;
        }
        Ok(Machine {
            id: server_id,
            node: spec.node.clone(),
            role: spec.role,
            state: MachineState::Pending,
            addresses: None,
            zone: None,
        })
    }

    async fn create_server(
        &self,
        cluster: &ClusterRef,
        spec: &MachineSpec,
        prereqs: &Prerequisites,
        inputs: &Inputs,
    ) -> Result<String, ProviderError> {
        let settings = &self.options.settings;
        let mut meta: serde_json::Map<String, Value> = settings
            .metadata
            .iter()
            .chain(spec.labels.iter())
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        meta.insert(metadata::CLUSTER.into(), json!(cluster.id));
        meta.insert(metadata::CLUSTER_NAME.into(), json!(cluster.name));
        meta.insert(metadata::NODE.into(), json!(spec.node));
        meta.insert(metadata::ROLE.into(), json!(spec.role.as_str()));
        // A fixed IP when the spec asks for one (a restored manager keeps
        // the backed-up one's): Nova refuses one in use (400).
        let network = match &spec.private_address {
            Some(ip) => json!({"uuid": inputs.network_id, "fixed_ip": ip}),
            None => json!({"uuid": inputs.network_id}),
        };
        // A pool's own flavor and image, else the cluster's.
        let flavor_id = match &spec.flavor {
            Some(flavor) => self.flavor(Some(flavor)).await?.0,
            None => inputs.flavor_id.clone(),
        };
        let image_id = match &spec.image {
            Some(image) => self.image_id(Some(image)).await?,
            None => inputs.image_id.clone(),
        };
        let mut server = json!({
            "name": spec.node,
            "flavorRef": flavor_id,
            "imageRef": image_id,
            "key_name": prereqs.keypair,
            "networks": [network],
            "security_groups": [{"name": prereqs.security_group}],
            "metadata": meta,
        });
        if let Some(az) = spec.zone.as_ref().or(settings.availability_zone.as_ref()) {
            server["availability_zone"] = json!(az);
        }
        if let Some(data) = &settings.user_data {
            server["user_data"] = json!(base64::engine::general_purpose::STANDARD.encode(data));
        }
        let mut body = json!({ "server": server });
        if let (Role::Manager, Some(group)) = (spec.role, &prereqs.server_group_id) {
            body["os:scheduler_hints"] = json!({ "group": group });
        }
        // A create that got through before its answer was lost is found by
        // the node's name and the cluster id in its metadata.
        let existing = || async {
            Ok(self
                .cluster_servers(cluster, Some(&spec.node))
                .await?
                .into_iter()
                .find(|s| state_of(s).is_some())
                .map(|s| json!({"server": {"id": s.id}})))
        };
        let answer = self
            .api
            .compute_create("CreateServer", &["servers"], Request::body(&body), existing)
            .await?;
        let id = answer["server"]["id"].as_str().map(str::to_string);
        let id = id.ok_or_else(|| ProviderError::Call {
            cloud: crate::errors::CLOUD,
            call: "CreateServer".into(),
            message: "the answer has no server id".into(),
            retryable: false,
        })?;
        info!(node = spec.node, server = id, "server created");
        Ok(id)
    }

    /// Releases the server's floating IPs, then deletes it; gone is success.
    pub(crate) async fn delete_server(
        &self,
        cluster: &ClusterRef,
        server_id: &str,
    ) -> Result<(), ProviderError> {
        self.release_floating_ips(cluster, Some(server_id)).await?;
        self.api
            .compute(
                "DeleteServer",
                Method::DELETE,
                &["servers", server_id],
                Request::absent_ok(),
            )
            .await?;
        Ok(())
    }

    /// Waits until Nova lists none of the cluster's servers.
    pub(crate) async fn wait_servers_gone(
        &self,
        cluster: &ClusterRef,
    ) -> Result<(), ProviderError> {
        let started = Instant::now();
        loop {
            let left = self.cluster_servers(cluster, None).await?;
            let left: Vec<_> = left.iter().filter(|s| state_of(s).is_some()).collect();
            if left.is_empty() {
                return Ok(());
            }
            if started.elapsed() > DELETE_DEADLINE {
                return Err(ProviderError::Call {
                    cloud: crate::errors::CLOUD,
                    call: "DeleteServer".into(),
                    message: format!(
                        "{} servers still exist after {} s ({}); run destroy again",
                        left.len(),
                        DELETE_DEADLINE.as_secs(),
                        left.iter()
                            .map(|s| format!("{} {}", s.name, s.status))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    retryable: true,
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status: &str, fault: Option<&str>) -> ServerView {
        serde_json::from_value(json!({
            "id": "s1", "name": "c-worker-1", "status": status,
            "metadata": {"provision-node": "c-worker-1", "provision-role": "worker"},
            "addresses": {"private": [
                {"addr": "fd00::5", "version": 6, "OS-EXT-IPS:type": "fixed"},
                {"addr": "10.0.0.5", "version": 4, "OS-EXT-IPS:type": "fixed"},
                {"addr": "172.24.4.9", "version": 4, "OS-EXT-IPS:type": "floating"}
            ]},
            "fault": fault.map(|m| json!({"code": 500, "message": m, "created": "2026-01-01T00:00:00Z"})),
        }))
        .unwrap()
    }

    #[test]
    fn error_carries_novas_fault() {
        let s = server(
            "ERROR",
            Some("No valid host was found. There are not enough hosts available."),
        );
        assert_eq!(
            state_of(&s),
            Some(MachineState::Error(
                "Nova: No valid host was found. There are not enough hosts available. (code 500)"
                    .into()
            ))
        );
        assert!(
            matches!(state_of(&server("ERROR", None)), Some(MachineState::Error(m)) if m.contains("without a fault"))
        );
    }

    #[test]
    fn statuses_map_to_states() {
        assert_eq!(
            state_of(&server("ACTIVE", None)),
            Some(MachineState::Running)
        );
        assert_eq!(
            state_of(&server("BUILD", None)),
            Some(MachineState::Pending)
        );
        assert_eq!(
            state_of(&server("SHUTOFF", None)),
            Some(MachineState::Stopped)
        );
        assert_eq!(state_of(&server("DELETED", None)), None);
        for transitional in ["REBOOT", "HARD_REBOOT", "MIGRATING", "RESIZE", "UNKNOWN"] {
            assert!(
                matches!(state_of(&server(transitional, None)), Some(MachineState::Busy(why)) if why.contains(transitional)),
                "{transitional}"
            );
        }
        let mut deleting = server("ACTIVE", None);
        deleting.task_state = Some("deleting".into());
        assert_eq!(state_of(&deleting), None);
    }

    #[test]
    fn the_cluster_uses_the_fixed_address_and_ssh_the_one_chosen() {
        let s = server("ACTIVE", None);
        let fixed = addresses(&s, "private", SshAddress::Fixed).unwrap();
        assert_eq!(fixed.private, "10.0.0.5");
        assert_eq!(fixed.public.as_deref(), Some("172.24.4.9"));
        assert_eq!(fixed.ssh, "10.0.0.5");
        let floating = addresses(&s, "private", SshAddress::Floating).unwrap();
        assert_eq!(floating.private, "10.0.0.5");
        assert_eq!(floating.ssh, "172.24.4.9");
        assert_eq!(
            addresses(&s, "other", SshAddress::Fixed).map(|a| a.private),
            Some("10.0.0.5".into())
        );
    }

    #[test]
    fn no_addresses_while_the_floating_ip_ssh_needs_is_missing() {
        let mut s = server("ACTIVE", None);
        for list in s.addresses.values_mut() {
            list.retain(|a| a.kind.as_deref() != Some("floating"));
        }
        assert_eq!(addresses(&s, "private", SshAddress::Floating), None);
        assert_eq!(
            addresses(&s, "private", SshAddress::Fixed).map(|a| a.ssh),
            Some("10.0.0.5".into())
        );
    }
}
