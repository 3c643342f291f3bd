//! [`Provider`] on the local Docker engine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use async_trait::async_trait;
use bollard::models::{
    ContainerCreateBody, ContainerSummary, ContainerSummaryStateEnum, EndpointIpamConfig,
    EndpointSettings, HostConfig, HostConfigCgroupnsModeEnum, Ipam, IpamConfig,
    NetworkCreateRequest, NetworkingConfig, SystemInfoCgroupVersionEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use provision_provider::{
    Addresses, ClusterRef, Machine, MachineSpec, MachineState, Provider, ProviderError, Recorder,
    Role,
};
use tracing::{debug, info};

use crate::container_mode;
use crate::engine::{self, call_error, is_not_found, CLOUD};
use crate::image::ensure_image;
use crate::inotify;
use crate::labels::{self, cluster_filter};
use crate::subnet;

/// Settings of the local cloud.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Node image; built when missing.
    pub image: String,
    /// Debian suite the node image is built from.
    pub suite: String,
    /// Where the engine's container mode is remembered between runs
    /// (see [`crate::container_mode`]); `None` finds it out every run.
    pub mode_cache: Option<PathBuf>,
    /// A cgroup2 mount on a cgroup v1 host under which each node gets a
    /// directory of its own as its `/sys/fs/cgroup`: nodes that boot on the
    /// unified hierarchy as a current cloud image does (without
    /// controllers), to exercise what differs there (Mesos's launcher).
    pub cgroup2_root: Option<PathBuf>,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            image: "provision/node:bookworm".into(),
            suite: "bookworm".into(),
            mode_cache: container_mode::cache_dir(),
            cgroup2_root: None,
        }
    }
}

pub struct LocalProvider {
    docker: Docker,
    options: LocalOptions,
    cgroup_v2: bool,
    /// The engine's ID, under which its container mode is remembered.
    engine_id: String,
    /// Remembered from an earlier run, or learnt from the first node
    /// started, then used for every other one.
    mode: AtomicU8,
    /// Held while the first node finds out which mode works.
    learn_mode: tokio::sync::Mutex<()>,
    /// The host's inotify instances left for nodes, measured at the first
    /// create (`None` inside: not measurable here).
    inotify: std::sync::OnceLock<Option<inotify::Budget>>,
}

impl LocalProvider {
    /// Connects to the engine; fails with a clear hint when it is not running.
    pub async fn connect(options: LocalOptions) -> Result<Self, ProviderError> {
        let docker = engine::connect().await?;
        let info = docker
            .info()
            .await
            .map_err(|e| call_error("engine info", e))?;
        let cgroup_v2 = matches!(info.cgroup_version, Some(SystemInfoCgroupVersionEnum::_2));
        let engine_id = info.id.unwrap_or_default();
        let mode = match &options.mode_cache {
            Some(dir) => container_mode::remembered(dir, &engine_id),
            None => container_mode::UNKNOWN,
        };
        Ok(LocalProvider {
            docker,
            options,
            cgroup_v2,
            engine_id,
            mode: AtomicU8::new(mode),
            learn_mode: tokio::sync::Mutex::new(()),
            inotify: std::sync::OnceLock::new(),
        })
    }

    fn network_name(cluster: &ClusterRef) -> String {
        format!("provision-{}", cluster.name)
    }

    fn volume_name(spec_node: &str) -> String {
        format!("provision-{spec_node}-docker")
    }

    fn labels(cluster: &ClusterRef, node: Option<(&str, Role)>) -> HashMap<String, String> {
        let mut l = HashMap::from([
            (labels::CLUSTER_ID.to_string(), cluster.id.clone()),
            (labels::CLUSTER_NAME.to_string(), cluster.name.clone()),
        ]);
        if let Some((name, role)) = node {
            l.insert(labels::NODE.to_string(), name.to_string());
            l.insert(labels::ROLE.to_string(), role.as_str().to_string());
        }
        l
    }

    async fn ensure_network(
        &self,
        cluster: &ClusterRef,
        recorder: &dyn Recorder,
    ) -> Result<(), ProviderError> {
        let name = Self::network_name(cluster);
        match self.docker.inspect_network(&name, None).await {
            Ok(net) => {
                let owner = net
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(labels::CLUSTER_ID))
                    .cloned();
                if owner.as_deref() == Some(cluster.id.as_str()) {
                    return Ok(());
                }
                return Err(ProviderError::Conflict {
                    what: format!("Docker network {name}"),
                    cluster: cluster.name.clone(),
                    hint: "remove it or choose another cluster name".into(),
                });
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(call_error(format!("inspect network {name}"), e)),
        }
        // A subnet of our choosing, so a machine can be given an address
        // (see `subnet`); another network made meanwhile may take it first,
        // then the next free one is tried.
        let mut last = None;
        for attempt in 0..5u64 {
            if attempt > 0 {
                // The other network may not be listed yet: give it a moment.
                tokio::time::sleep(std::time::Duration::from_millis(300 * attempt)).await;
            }
            let subnet = self.free_subnet(subnet::start_for(&cluster.id)).await?;
            let request = NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                labels: Some(Self::labels(cluster, None)),
                ipam: Some(Ipam {
                    config: Some(vec![IpamConfig {
                        subnet: Some(subnet.to_string()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            };
            match self.docker.create_network(request).await {
                Ok(_) => {
                    info!(network = %name, %subnet, "created network");
                    recorder.created("network", &name);
                    return Ok(());
                }
                // Made by a concurrent or crashed run a moment ago: fine.
                Err(e) if engine::status_of(&e) == Some(409) => return Ok(()),
                Err(e) if e.to_string().contains("overlaps") => last = Some(e),
                Err(e) => return Err(call_error(format!("create network {name}"), e)),
            }
        }
        Err(call_error(
            format!("create network {name}"),
            last.expect("tried at least once"),
        ))
    }

    /// A /24 no Docker network and no route of this host uses.
    async fn free_subnet(&self, start: u32) -> Result<subnet::Net, ProviderError> {
        let networks = self
            .docker
            .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
            .await
            .map_err(|e| call_error("list networks", e))?;
        let mut used = subnet::host_routes();
        used.extend(
            networks
                .iter()
                .filter_map(|n| n.ipam.as_ref()?.config.as_ref())
                .flatten()
                .filter_map(|c| subnet::Net::parse(c.subnet.as_deref()?)),
        );
        subnet::pick(&used, start).ok_or_else(|| ProviderError::Unavailable {
            cloud: CLOUD,
            message: "no free /24 is left in 172.18.0.0-172.31.255.0 for a cluster network".into(),
            hint: "remove Docker networks that are no longer used (`docker network prune`)".into(),
        })
    }

    fn host_config(&self, volume: &str, privileged: bool, cgroup: Option<&Path>) -> HostConfig {
        let mut binds = vec![format!("{volume}:/var/lib/docker")];
        let tmpfs = HashMap::from([
            ("/run".to_string(), String::new()),
            ("/run/lock".to_string(), String::new()),
        ]);
        let mut config = HostConfig {
            tmpfs: Some(tmpfs),
            security_opt: Some(vec![
                "seccomp=unconfined".into(),
                "apparmor=unconfined".into(),
            ]),
            ..Default::default()
        };
        if let Some(dir) = cgroup {
            binds.push(format!("{}:/sys/fs/cgroup:rw", dir.display()));
        } else if self.cgroup_v2 {
            // As kind does: a private cgroup namespace lets systemd own its subtree.
            config.cgroupns_mode = Some(HostConfigCgroupnsModeEnum::PRIVATE);
        } else {
            binds.push("/sys/fs/cgroup:/sys/fs/cgroup:rw".into());
        }
        if privileged {
            config.privileged = Some(true);
        } else {
            // Engines whose bounding set lacks CAP_SYS_RESOURCE refuse --privileged
            // ("unable to apply caps"); everything else systemd and dockerd need.
            config.cap_add = Some(vec!["ALL".into()]);
            config.cap_drop = Some(vec!["SYS_RESOURCE".into()]);
            // What `--security-opt systempaths=unconfined` means on the API:
            // nothing under /proc or /sys masked or read-only.
            config.masked_paths = Some(Vec::new());
            config.readonly_paths = Some(Vec::new());
        }
        config.binds = Some(binds);
        config
    }

    async fn find_container(
        &self,
        cluster: &ClusterRef,
        name: &str,
    ) -> Result<Option<(String, bool)>, ProviderError> {
        match self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => {
                let owner = c
                    .config
                    .as_ref()
                    .and_then(|cfg| cfg.labels.as_ref())
                    .and_then(|l| l.get(labels::CLUSTER_ID))
                    .cloned();
                if owner.as_deref() != Some(cluster.id.as_str()) {
                    return Err(ProviderError::Conflict {
                        what: format!("container {name}"),
                        cluster: cluster.name.clone(),
                        hint: "remove it or choose another cluster name".into(),
                    });
                }
                let running = c.state.as_ref().and_then(|s| s.running).unwrap_or(false);
                Ok(Some((c.id.unwrap_or_default(), running)))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(call_error(format!("inspect container {name}"), e)),
        }
    }

    async fn create_container(
        &self,
        cluster: &ClusterRef,
        spec: &MachineSpec,
        privileged: bool,
    ) -> Result<String, ProviderError> {
        let volume = Self::volume_name(&spec.node);
        let mut labels = Self::labels(cluster, Some((&spec.node, spec.role)));
        labels.extend(spec.labels.clone());
        // No container of this node exists, so a volume of its name is left
        // by a machine deleted outside provision (`docker rm -f`). Reused, it
        // would hand the new machine the old one's engine state, swarm
        // identity included (seen here: a replacement manager rejoined its
        // dead predecessor's Raft). A new cloud server starts on a new disk.
        self.remove_volume(&volume).await?;
        // A named, labelled volume (not an anonymous one) so destroy can find it.
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(volume.clone()),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await
            .map_err(|e| call_error(format!("create volume {volume}"), e))?;
        let network = Self::network_name(cluster);
        let cgroup = match &self.options.cgroup2_root {
            Some(root) if !self.cgroup_v2 => {
                let dir = root.join(&volume);
                std::fs::create_dir_all(&dir).map_err(|e| ProviderError::Unavailable {
                    cloud: CLOUD,
                    message: format!("cannot make the node's cgroup {}: {e}", dir.display()),
                    hint: "PROVISION_LOCAL_CGROUP2 must name a cgroup2 mount (mount -t cgroup2 none DIR)".into(),
                })?;
                Some(dir)
            }
            _ => None,
        };
        let body = ContainerCreateBody {
            image: Some(
                spec.image
                    .clone()
                    .unwrap_or_else(|| self.options.image.clone()),
            ),
            hostname: Some(spec.node.clone()),
            labels: Some(labels),
            env: Some(vec!["container=docker".into()]),
            stop_signal: Some("SIGRTMIN+3".into()),
            host_config: Some(HostConfig {
                network_mode: Some(network.clone()),
                ..self.host_config(&volume, privileged, cgroup.as_deref())
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network,
                    EndpointSettings {
                        ipam_config: spec.private_address.as_ref().map(|a| EndpointIpamConfig {
                            ipv4_address: Some(a.clone()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.node)
            .build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| match &spec.private_address {
                Some(address) if refuses_address(&e) => ProviderError::Invalid {
                    field: format!("{}'s private address {address}", spec.node),
                    message: format!(
                        "the cluster network {} cannot give it: {e} (a network made before \
                         provision chose its subnets cannot give any; an address in use \
                         cannot be given twice)",
                        Self::network_name(cluster)
                    ),
                },
                _ => call_error(format!("create container {}", spec.node), e),
            })?;
        self.install_authorized_key(&created.id, &cluster.ssh_public_key)
            .await?;
        Ok(created.id)
    }

    /// Puts the cluster's public key in root's authorized_keys before boot,
    /// as cloud-init does on a cloud.
    async fn install_authorized_key(
        &self,
        id: &str,
        public_key: &str,
    ) -> Result<(), ProviderError> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o700);
        dir.set_size(0);
        dir.set_cksum();
        let line = format!("{}\n", public_key.trim());
        let mut file = tar::Header::new_gnu();
        file.set_mode(0o600);
        file.set_size(line.len() as u64);
        file.set_cksum();
        let archive = builder
            .append_data(&mut dir, "root/.ssh", std::io::empty())
            .and_then(|_| {
                builder.append_data(&mut file, "root/.ssh/authorized_keys", line.as_bytes())
            })
            .and_then(|_| builder.into_inner())
            .map_err(|e| ProviderError::Call {
                cloud: CLOUD,
                call: "pack authorized_keys".into(),
                message: e.to_string(),
                retryable: false,
            })?;
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        self.docker
            .upload_to_container(id, Some(options), bollard::body_full(archive.into()))
            .await
            .map_err(|e| call_error("copy authorized_keys into container", e))
    }

    async fn remove_container(&self, id: &str) -> Result<(), ProviderError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // Already being removed by another call.
            Err(e)
                if engine::status_of(&e) == Some(409) && e.to_string().contains("in progress") =>
            {
                Ok(())
            }
            Err(e) => Err(call_error(format!("remove container {id}"), e)),
        }
    }

    async fn remove_volume(&self, name: &str) -> Result<(), ProviderError> {
        let options = RemoveVolumeOptionsBuilder::default().force(true).build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(call_error(format!("remove volume {name}"), e)),
        }
    }

    fn to_machine(&self, cluster: &ClusterRef, c: &ContainerSummary) -> Option<Machine> {
        let labels = c.labels.as_ref()?;
        let node = labels.get(labels::NODE)?.clone();
        let role = Role::parse(labels.get(labels::ROLE)?)?;
        let state = match c.state {
            Some(ContainerSummaryStateEnum::RUNNING) => MachineState::Running,
            Some(ContainerSummaryStateEnum::CREATED) => MachineState::Pending,
            // Docker restarts it under its restart policy: it comes back.
            Some(ContainerSummaryStateEnum::RESTARTING) => {
                MachineState::Busy("Docker reports restarting".into())
            }
            Some(ContainerSummaryStateEnum::DEAD) => {
                MachineState::Error(c.status.clone().unwrap_or_else(|| "dead".into()))
            }
            _ => MachineState::Stopped,
        };
        let network = Self::network_name(cluster);
        let address = c
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref())
            .and_then(|n| n.get(&network))
            .and_then(|e| e.ip_address.clone())
            .filter(|ip| !ip.is_empty());
        Some(Machine {
            id: c.id.clone()?,
            node,
            role,
            state,
            addresses: address.as_deref().map(Addresses::private_only),
            zone: None,
        })
    }
}

#[async_trait]
impl Provider for LocalProvider {
    fn cloud(&self) -> &'static str {
        CLOUD
    }

    fn prerequisite_kinds(&self) -> &'static [&'static str] {
        &["node image", "network"]
    }

    /// Every node of a cluster at once: the engine queues the work itself
    /// and no account is throttled, so the last node is not held back.
    fn create_concurrency(&self) -> usize {
        64
    }

    async fn ensure_prerequisites(
        &self,
        cluster: &ClusterRef,
        recorder: &dyn Recorder,
    ) -> Result<(), ProviderError> {
        ensure_image(
            &self.docker,
            &self.options.image,
            &self.options.suite,
            &|msg: &str| recorder.note(msg),
        )
        .await?;
        self.ensure_network(cluster, recorder).await
    }

    async fn create_machine(
        &self,
        cluster: &ClusterRef,
        spec: &MachineSpec,
    ) -> Result<Machine, ProviderError> {
        // Until one node has shown whether the engine allows --privileged,
        // the others wait, so only one of them tries and falls back.
        let learning = match self.mode.load(Ordering::Relaxed) {
            container_mode::UNKNOWN => Some(self.learn_mode.lock().await),
            _ => None,
        };
        let id = match self.find_container(cluster, &spec.node).await? {
            Some((id, true)) => id,
            Some((id, false)) => {
                // Left by a crashed run between create and start, or stopped:
                // the key may not be in yet (copying it is idempotent), then start.
                debug!(node = %spec.node, "starting existing container");
                self.install_authorized_key(&id, &cluster.ssh_public_key)
                    .await?;
                self.start_with_fallback(cluster, spec, id).await?
            }
            None => {
                if let Some(budget) = self.inotify.get_or_init(inotify::Budget::measure) {
                    budget.reserve(&spec.node)?;
                }
                let privileged = self.mode.load(Ordering::Relaxed) != container_mode::CAPS;
                let id = match self.create_container(cluster, spec, privileged).await {
                    Ok(id) => id,
                    // Made a moment ago by a concurrent run: use that one.
                    Err(ProviderError::Call { message, .. })
                        if message.contains("already in use") =>
                    {
                        match self.find_container(cluster, &spec.node).await? {
                            Some((id, _)) => id,
                            None => {
                                return Err(ProviderError::Call {
                                    cloud: CLOUD,
                                    call: format!("create container {}", spec.node),
                                    message,
                                    retryable: true,
                                })
                            }
                        }
                    }
                    Err(e) => return Err(e),
                };
                self.start_with_fallback(cluster, spec, id).await?
            }
        };
        drop(learning);
        // The address is known as soon as the container runs: saves the
        // caller a polling round.
        let address = match self
            .docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => c
                .network_settings
                .and_then(|n| n.networks)
                .and_then(|n| n.get(&Self::network_name(cluster)).cloned())
                .and_then(|e| e.ip_address)
                .filter(|ip| !ip.is_empty()),
            Err(e) => return Err(call_error(format!("inspect container {}", spec.node), e)),
        };
        Ok(Machine {
            id,
            node: spec.node.clone(),
            role: spec.role,
            state: MachineState::Running,
            addresses: address.as_deref().map(Addresses::private_only),
            zone: None,
        })
    }

    async fn list_machines(&self, cluster: &ClusterRef) -> Result<Vec<Machine>, ProviderError> {
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&cluster_filter(&cluster.id))
            .build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| call_error("list containers", e))?;
        Ok(containers
            .iter()
            .filter_map(|c| self.to_machine(cluster, c))
            .collect())
    }

    async fn delete_machine(
        &self,
        _cluster: &ClusterRef,
        machine_id: &str,
    ) -> Result<(), ProviderError> {
        let node = match self
            .docker
            .inspect_container(machine_id, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => c
                .config
                .and_then(|cfg| cfg.labels)
                .and_then(|l| l.get(labels::NODE).cloned()),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(call_error(format!("inspect container {machine_id}"), e)),
        };
        self.remove_container(machine_id).await?;
        if let Some(node) = node {
            self.remove_volume(&Self::volume_name(&node)).await?;
        }
        Ok(())
    }

    async fn destroy_cluster(&self, cluster: &ClusterRef) -> Result<(), ProviderError> {
        let filter = cluster_filter(&cluster.id);
        let containers = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filter)
                    .build(),
            ))
            .await
            .map_err(|e| call_error("list containers", e))?;
        for c in containers {
            if let Some(id) = c.id {
                self.remove_container(&id).await?;
            }
        }
        let volumes = self
            .docker
            .list_volumes(Some(
                ListVolumesOptionsBuilder::default()
                    .filters(&filter)
                    .build(),
            ))
            .await
            .map_err(|e| call_error("list volumes", e))?;
        for v in volumes.volumes.unwrap_or_default() {
            self.remove_volume(&v.name).await?;
        }
        let networks = self
            .docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::default()
                    .filters(&filter)
                    .build(),
            ))
            .await
            .map_err(|e| call_error("list networks", e))?;
        for n in networks {
            let Some(name) = n.name else { continue };
            match self.docker.remove_network(&name).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(call_error(format!("remove network {name}"), e)),
            }
        }
        Ok(())
    }
}

impl LocalProvider {
    /// Uses `mode` from now on, and remembers it for the engine.
    fn learnt(&self, mode: u8) {
        self.mode.store(mode, Ordering::Relaxed);
        if let Some(dir) = &self.options.mode_cache {
            container_mode::remember(dir, &self.engine_id, mode);
        }
    }

    /// Starts the container; if the engine refuses privileged mode, recreates
    /// it with the explicit capability set and remembers that for the rest.
    async fn start_with_fallback(
        &self,
        cluster: &ClusterRef,
        spec: &MachineSpec,
        id: String,
    ) -> Result<String, ProviderError> {
        match self.docker.start_container(&id, None).await {
            Ok(()) => {
                if self.mode.load(Ordering::Relaxed) == container_mode::UNKNOWN {
                    self.learnt(container_mode::PRIVILEGED);
                }
                Ok(id)
            }
            Err(e) if e.to_string().contains("caps") => {
                info!(
                    node = %spec.node,
                    "engine refuses privileged containers; using an explicit capability set"
                );
                self.learnt(container_mode::CAPS);
                self.remove_container(&id).await?;
                let id = self.create_container(cluster, spec, false).await?;
                self.docker
                    .start_container(&id, None)
                    .await
                    .map_err(|e| call_error(format!("start container {}", spec.node), e))?;
                Ok(id)
            }
            Err(e) => Err(call_error(format!("start container {}", spec.node), e)),
        }
    }
}

/// The engine's refusal of a container's chosen address: taken, outside
/// the subnet, or a network whose subnet nobody chose.
fn refuses_address(e: &bollard::errors::Error) -> bool {
    let text = e.to_string();
    [
        "user specified IP address",
        "Address already in use",
        "no configured subnet",
        "not in",
    ]
    .iter()
    .any(|part| text.contains(part))
}
