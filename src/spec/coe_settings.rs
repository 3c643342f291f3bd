//! Per-orchestrator settings of a cluster template (`kubernetes:`, `mesos:`).

use serde::{Deserialize, Serialize};

/// The pod network add-on applied after `kubeadm init`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cni {
    #[default]
    Flannel,
    Calico,
}

impl Cni {
    /// The manifest applied with `kubectl apply -f`.
    pub fn manifest(self) -> &'static str {
        match self {
            Cni::Flannel => {
                "https://github.com/flannel-io/flannel/releases/download/v0.26.1/kube-flannel.yml"
            }
            Cni::Calico => {
                "https://raw.githubusercontent.com/projectcalico/calico/v3.29.1/manifests/calico.yaml"
            }
        }
    }
}

/// The `kubernetes:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSettings {
    /// Minor version: the pkgs.k8s.io repository, and kubeadm, kubelet and
    /// kubectl pinned to it and held.
    #[serde(default = "default_version")]
    pub version: String,
    /// Pod network CIDR (`kubeadm init --pod-network-cidr`); flannel's
    /// manifest expects 10.244.0.0/16.
    #[serde(default = "default_pod_cidr")]
    pub pod_cidr: String,
    /// Pod network add-on.
    #[serde(default)]
    pub cni: Cni,
    /// Address (host or IP) of a load balancer in front of the API servers.
    /// Empty: the first control-plane node's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_endpoint: Option<String>,
}

fn default_version() -> String {
    "1.31".into()
}

fn default_pod_cidr() -> String {
    "10.244.0.0/16".into()
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        KubernetesSettings {
            version: default_version(),
            pod_cidr: default_pod_cidr(),
            cni: Cni::default(),
            control_plane_endpoint: None,
        }
    }
}

/// The oldest minor release provision installs: pkgs.k8s.io, where the
/// packages come from, has none older (its repositories start at v1.24).
pub const OLDEST_KUBERNETES: (u8, u8) = (1, 24);

impl KubernetesSettings {
    /// The minor version as numbers, when it is a number pair like `1.31`.
    pub fn minor(&self) -> Option<(u8, u8)> {
        let mut parts = self.version.split('.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), None) => Some((a.parse().ok()?, b.parse().ok()?)),
            _ => None,
        }
    }

    /// The kubeadm configuration API this release reads: v1beta4 from 1.31
    /// (where it was introduced), v1beta3 before (introduced in 1.22,
    /// still read by 1.31). kubeadm refuses a file of an API it does not
    /// know ("no kind \"InitConfiguration\" is registered for version
    /// \"kubeadm.k8s.io/v1beta4\"").
    pub fn kubeadm_api_version(&self) -> &'static str {
        match self.minor() {
            Some(minor) if minor < (1, 31) => "kubeadm.k8s.io/v1beta3",
            _ => "kubeadm.k8s.io/v1beta4",
        }
    }
}

/// The `mesos:` section: the images of the four containers a Mesos node
/// runs (host networking, restart always), pulled by the install script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MesosSettings {
    /// ZooKeeper 3.5 or later (dynamic reconfiguration adds and removes
    /// masters one at a time), on every master.
    #[serde(default = "default_zookeeper_image")]
    pub zookeeper_image: String,
    /// mesos-master, on every master.
    #[serde(default = "default_master_image")]
    pub master_image: String,
    /// mesos-agent (docker containerizer), on every worker.
    #[serde(default = "default_agent_image")]
    pub agent_image: String,
    /// Marathon, on every master (it elects its own leader through ZooKeeper).
    #[serde(default = "default_marathon_image")]
    pub marathon_image: String,
}

fn default_zookeeper_image() -> String {
    "zookeeper:3.9".into()
}

fn default_master_image() -> String {
    "mesosphere/mesos-master:1.7.1".into()
}

fn default_agent_image() -> String {
    "mesosphere/mesos-slave:1.7.1".into()
}

fn default_marathon_image() -> String {
    "mesosphere/marathon:v1.6.322".into()
}

impl Default for MesosSettings {
    fn default() -> Self {
        MesosSettings {
            zookeeper_image: default_zookeeper_image(),
            master_image: default_master_image(),
            agent_image: default_agent_image(),
            marathon_image: default_marathon_image(),
        }
    }
}
