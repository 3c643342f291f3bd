//! The `openstack:` section of a cluster template, declared once: the spec
//! and templates hold it, and its command-line flags are made from
//! [`OpenStackSettings`]'s `FLAGS`. Its own crate, so the pure core takes it
//! without the OpenStack client.

use std::collections::BTreeMap;

use provision_provider::{CloudSettings, SettingFlag};
use serde::{Deserialize, Serialize};

/// Prefix of the driver's own server metadata keys (`provision-cluster`…),
/// which a template's `metadata` may not use.
pub const METADATA_PREFIX: &str = "provision-";

/// Which of a server's addresses the controller uses for SSH.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SshAddress {
    /// The fixed address on the server's network: the controller runs on
    /// that network (or reaches it through a VPN or router).
    #[default]
    Fixed,
    /// The floating IP allocated from `floating_ip_pool`.
    Floating,
}

/// How the managers' server group places them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerGroupPolicy {
    /// On different hosts when the scheduler can; on the same host rather
    /// than not at all.
    #[default]
    SoftAntiAffinity,
    /// On different hosts or not at all (a create fails with "No valid host").
    AntiAffinity,
    /// No server group.
    None,
}

impl ServerGroupPolicy {
    /// Nova's name for the policy (`None` has none).
    pub fn nova_name(self) -> Option<&'static str> {
        match self {
            ServerGroupPolicy::SoftAntiAffinity => Some("soft-anti-affinity"),
            ServerGroupPolicy::AntiAffinity => Some("anti-affinity"),
            ServerGroupPolicy::None => None,
        }
    }
}

/// The `openstack:` section of a cluster template: which cloud and where
/// servers run. Stored with the cluster, so `scale`, `heal` and the daemon
/// use the same; credentials are not in it (they stay in clouds.yaml or
/// the `OS_*` variables).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenStackSettings {
    /// Cloud name in clouds.yaml (default: `OS_CLOUD`; with neither, the
    /// `OS_*` variables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    /// Region (default: the cloud's `region_name`, else `OS_REGION_NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Network the servers attach to, by name or id. Default: the only
    /// network the project can use that is not external.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Availability zone of every server (default: the cloud's choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// External network to allocate a floating IP from for each server.
    /// None: servers get no floating IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floating_ip_pool: Option<String>,
    /// Which address SSH uses (`floating` needs `floating_ip_pool`).
    #[serde(default)]
    pub ssh_address: SshAddress,
    /// Placement of the managers.
    #[serde(default)]
    pub server_group_policy: ServerGroupPolicy,
    /// Extra metadata on every server.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// User data for every server (cloud-init reads it at first boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
}

impl CloudSettings for OpenStackSettings {
    const CLOUD: &'static str = "openstack";
    const FLAGS: &'static [SettingFlag<Self>] = &[
        SettingFlag {
            long: "os-cloud",
            value_name: "NAME",
            help: "cloud of clouds.yaml (default: the template's, else OS_CLOUD, else the OS_* variables)",
            field: |s| &mut s.cloud,
        },
        SettingFlag {
            long: "region",
            value_name: "REGION",
            help: "region (default: the cloud's region_name)",
            field: |s| &mut s.region,
        },
        SettingFlag {
            long: "network",
            value_name: "NAME|ID",
            help: "network for the servers, by name or id (default: the project's only non-external one)",
            field: |s| &mut s.network,
        },
    ];

    /// Checks what needs no cloud call.
    fn validate(&self) -> Result<(), String> {
        if self.ssh_address == SshAddress::Floating && self.floating_ip_pool.is_none() {
            return Err(
                "openstack.ssh_address is floating but openstack.floating_ip_pool is \
                        not set: name the external network to allocate from"
                    .into(),
            );
        }
        for key in self.metadata.keys() {
            if key.starts_with(METADATA_PREFIX) {
                return Err(format!(
                    "openstack.metadata.{key}: keys starting with {} are provision's own",
                    METADATA_PREFIX
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floating_ssh_needs_a_pool() {
        let s = OpenStackSettings {
            ssh_address: SshAddress::Floating,
            ..Default::default()
        };
        assert!(s.validate().unwrap_err().contains("floating_ip_pool"));
        let s = OpenStackSettings {
            floating_ip_pool: Some("public".into()),
            ..s
        };
        assert!(s.validate().is_ok());
    }

    #[test]
    fn own_metadata_keys_are_refused() {
        let mut s = OpenStackSettings::default();
        s.metadata.insert("provision-cluster".into(), "x".into());
        assert!(s.validate().unwrap_err().contains("openstack.metadata"));
    }

    #[test]
    fn parses_a_template_section() {
        let s: OpenStackSettings = serde_yaml_ng::from_str(
            "cloud: mycloud\nnetwork: private\nfloating_ip_pool: public\n\
             ssh_address: floating\nserver_group_policy: anti-affinity\n\
             metadata: {team: infra}\n",
        )
        .unwrap();
        assert_eq!(s.server_group_policy.nova_name(), Some("anti-affinity"));
        assert_eq!(s.ssh_address, SshAddress::Floating);
        assert!(serde_yaml_ng::from_str::<OpenStackSettings>("netwrok: x").is_err());
    }
}
