//! The `ec2:` section of a cluster template, declared once: the spec and
//! templates hold it, and its command-line flags are made from [`Ec2Settings`]'s
//! `FLAGS`. Its own crate, so the pure core takes it without the AWS SDK.

use provision_provider::{CloudSettings, SettingFlag};
use serde::{Deserialize, Serialize};

/// Which of an instance's addresses the controller uses for SSH.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SshAddress {
    /// The public IPv4 address (instances get one at launch).
    #[default]
    Public,
    /// The private address: the controller runs inside the VPC (or a VPN).
    Private,
}

/// The `ec2:` section of a cluster template: where and how instances run.
/// Stored with the cluster, so `scale`, `heal` and the daemon use the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2Settings {
    /// Named profile of `~/.aws/config` (default: `AWS_PROFILE`, else `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Region (default: `AWS_REGION`, else the profile's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Subnet id for every instance; its VPC holds the security group.
    /// Default: the default VPC's default subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Owner of the image when it is given by name (an account id, or
    /// `amazon`, `self`). Default for the built-in image name: Canonical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_owner: Option<String>,
    /// Root volume size in GiB (default: the image's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_volume_gb: Option<u32>,
    /// User data passed to every instance (cloud-init reads it at first boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// IAM instance profile name given to every instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile: Option<String>,
    /// Put managers in a spread placement group (distinct racks).
    #[serde(default)]
    pub spread_managers: bool,
    /// Which address SSH uses.
    #[serde(default)]
    pub ssh_address: SshAddress,
}

impl CloudSettings for Ec2Settings {
    const CLOUD: &'static str = "ec2";
    const FLAGS: &'static [SettingFlag<Self>] = &[
        SettingFlag {
            long: "profile",
            value_name: "NAME",
            help: "named profile of ~/.aws/config (default: AWS_PROFILE, else `default`)",
            field: |s| &mut s.profile,
        },
        SettingFlag {
            long: "region",
            value_name: "REGION",
            help: "region (default: AWS_REGION, else the profile's)",
            field: |s| &mut s.region,
        },
        SettingFlag {
            long: "subnet",
            value_name: "ID",
            help: "subnet id for the instances (default: the default VPC's)",
            field: |s| &mut s.subnet,
        },
    ];
}
