//! Kubernetes with kubeadm (stacked etcd): its facts, and its `kubernetes:`
//! settings section.

use provision_provider::{is_cidr, PortRule, Protocol};
use serde::{Deserialize, Serialize};

use super::{any_growth, Certificates, Coe, MinimumMachine, Profile, SettingError, Settings};

pub const PROFILE: Profile = Profile {
    name: "kubernetes",
    aliases: &["k8s"],
    summary: "Kubernetes with kubeadm",
    create_about:
        "Create a Kubernetes cluster with kubeadm, or finish one an earlier run left half-done",
    // API server, etcd, kubelet, controller-manager, scheduler, NodePorts,
    // flannel VXLAN, calico BGP and VXLAN.
    member_ports: &[
        PortRule::new(Protocol::Tcp, 6443),
        PortRule::range(Protocol::Tcp, 2379, 2380),
        PortRule::new(Protocol::Tcp, 10250),
        PortRule::new(Protocol::Tcp, 10257),
        PortRule::new(Protocol::Tcp, 10259),
        PortRule::range(Protocol::Tcp, 30000, 32767),
        PortRule::new(Protocol::Udp, 8472),
        PortRule::new(Protocol::Tcp, 179),
        PortRule::new(Protocol::Udp, 4789),
    ],
    // The kubeconfig's API server.
    client_ports: &[PortRule::new(Protocol::Tcp, 6443)],
    // kubeadm's preflight refuses a control-plane node with fewer ("[ERROR
    // NumCPU]: the number of available CPUs 1 is less than the required 2",
    // "[ERROR Mem]: … less than the minimum 1700 MB"); every node of a
    // cluster gets the same flavor.
    minimum_machine: Some(MinimumMachine {
        vcpus: 2,
        memory_mib: 1700,
        needed_by: "Kubernetes control-plane nodes (kubeadm's NumCPU and Mem preflight checks)",
    }),
    recovers_quorum: false,
    backs_up: true,
    // An etcd snapshot, taken while etcd serves.
    backs_up_online: true,
    seeds_joining_managers: false,
    config_follows_managers: false,
    // `kubeadm reset` on a node that leaves.
    needs_leave: true,
    manager_growth: any_growth,
    client_env_keys: &["KUBECONFIG"],
    client_hint: "kubectl get nodes",
    certificates: Certificates::RenewControlPlane,
};

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

/// Whether kubeadm takes a cluster at minor `from` to minor `to`: one
/// minor at a time up, and down (kubeadm's upgrade policy,
/// `cmd/kubeadm/app/phases/upgrade/policy.go`: "kubeadm can upgrade only 1
/// minor version at a time", "can downgrade only 1 minor version at a
/// time"); the version skew policy allows control planes one minor apart
/// while they are replaced. A version that is no minor is left to
/// [`Settings::validate`].
pub fn check_kubernetes_upgrade(from: &str, to: &str) -> Result<(), SettingError> {
    let minor = |v: &str| {
        KubernetesSettings {
            version: v.to_string(),
            ..KubernetesSettings::default()
        }
        .minor()
    };
    let (Some(f), Some(t)) = (minor(from), minor(to)) else {
        return Ok(());
    };
    if f.0 != t.0 {
        return Err(SettingError {
            field: "version",
            message: format!("{from} to {to} changes the major version, which kubeadm does not do"),
        });
    }
    if t.1 > f.1 + 1 {
        return Err(SettingError {
            field: "version",
            message: format!(
                "{from} to {to} skips {}.{}: kubeadm upgrades one minor version at a time \
                 (its upgrade policy; the version skew policy keeps control planes within one \
                 minor). Nothing was changed: move to {}.{} first, then to {to}",
                f.0,
                f.1 + 1,
                f.0,
                f.1 + 1
            ),
        });
    }
    if t.1 + 1 < f.1 {
        return Err(SettingError {
            field: "version",
            message: format!(
                "{from} to {to} goes down more than one minor: kubeadm downgrades one minor \
                 version at a time. Nothing was changed: move to {}.{} first",
                f.0,
                f.1 - 1
            ),
        });
    }
    Ok(())
}

impl Settings for KubernetesSettings {
    const COE: Coe = Coe::Kubernetes;

    fn validate(&self, managers: u32) -> Result<(), SettingError> {
        match self.minor() {
            None => {
                return Err(SettingError {
                    field: "version",
                    message: format!(
                        "{:?} is not a minor version: write it like 1.31",
                        self.version
                    ),
                })
            }
            Some(minor) if minor < OLDEST_KUBERNETES => {
                let (a, b) = OLDEST_KUBERNETES;
                return Err(SettingError {
                    field: "version",
                    message: format!(
                        "{} is older than {a}.{b}, the oldest release pkgs.k8s.io packages: \
                         write {a}.{b} or later",
                        self.version
                    ),
                });
            }
            Some(_) => {}
        }
        if managers > 1 && self.control_plane_endpoint.is_none() {
            // kubeadm writes the endpoint into every kubeconfig and kubelet:
            // without a stable one all of them would reach manager 1 only.
            return Err(SettingError {
                field: "control_plane_endpoint",
                message: format!(
                    "{managers} control-plane nodes need a stable endpoint in front of them: a \
                     load balancer or DNS name that reaches port 6443 on every control-plane \
                     node (without one, every kubelet would depend on the first). Set it in \
                     the template, or use --managers 1"
                ),
            });
        }
        if !is_cidr(&self.pod_cidr) {
            return Err(SettingError {
                field: "pod_cidr",
                message: format!(
                    "{:?} is not an address range: write it like 10.244.0.0/16",
                    self.pod_cidr
                ),
            });
        }
        Ok(())
    }

    fn member_ports(&self) -> Vec<PortRule> {
        // Calico's default encapsulation is IP-in-IP between nodes (IP
        // protocol 4, no ports): without it pods on different nodes cannot talk.
        match self.cni {
            Cni::Calico => vec![PortRule::protocol(Protocol::Ipip)],
            Cni::Flannel => Vec::new(),
        }
    }

    fn script_values(&self) -> serde_json::Value {
        let mut values = serde_json::to_value(self).expect("settings serialize");
        values["kubeadm_api_version"] = self.kubeadm_api_version().into();
        values
    }
}

#[cfg(test)]
mod tests {
    use super::check_kubernetes_upgrade;

    #[test]
    fn upgrades_go_one_minor_at_a_time() {
        assert!(check_kubernetes_upgrade("1.30", "1.31").is_ok());
        assert!(check_kubernetes_upgrade("1.31", "1.31").is_ok());
        // Back one minor (an undo) is kubeadm's downgrade limit.
        assert!(check_kubernetes_upgrade("1.31", "1.30").is_ok());
        let skip = check_kubernetes_upgrade("1.29", "1.31").unwrap_err();
        assert_eq!(skip.field, "version");
        assert!(skip.message.contains("skips 1.30"), "{}", skip.message);
        assert!(
            skip.message.contains("move to 1.30 first"),
            "{}",
            skip.message
        );
        let down = check_kubernetes_upgrade("1.31", "1.29").unwrap_err();
        assert!(
            down.message.contains("move to 1.30 first"),
            "{}",
            down.message
        );
        assert!(check_kubernetes_upgrade("1.31", "2.0").is_err());
        // Not a minor: validation names it.
        assert!(check_kubernetes_upgrade("1.31", "latest").is_ok());
    }
}
