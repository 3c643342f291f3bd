//! The desired state of a cluster: what the user asked for, validated.
//!
//! A spec is made from a cluster template (`cluster-templates/*.yaml`, or the
//! user's own file) with command-line flags on top, then stored before any
//! cloud call, so every later step works from the same record.

mod backup_location;
mod cloud_settings;
mod names;
mod pools;
mod rollout;
mod template;

use std::fmt;
use std::time::Duration;

use provision_provider::{is_cidr, Firewall};

use provision_ec2_settings::Ec2Settings;
use provision_openstack_settings::OpenStackSettings;
use serde::{Deserialize, Serialize};

pub use crate::profile::kubernetes::{check_kubernetes_upgrade, Cni, KubernetesSettings};
pub use crate::profile::mesos::MesosSettings;
pub use crate::profile::Coe;
use crate::profile::{SettingError, Settings};
pub use backup_location::{Location, LocationError};
pub use cloud_settings::{cloud_flags, CloudFlag};
pub use names::{node_name, validate_cluster_name};
pub use pools::{group_label, Group, Pool, MAX_POOL_NAME};
pub use rollout::{
    fill_machine, only_version_differs, same_machine, Change, Machines, RolloutPolicy,
    MANAGERS_ROLLOUT,
};
pub use template::{builtin_templates, ClusterTemplate, TemplateError};

/// Where the machines come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    /// Containers on the local Docker engine.
    Local,
    /// Amazon EC2 instances (aws-config's credential chain).
    Ec2,
    /// OpenStack Nova servers (clouds.yaml or the OS_* variables).
    #[cfg_attr(feature = "clap", value(name = "openstack"))]
    #[serde(rename = "openstack")]
    OpenStack,
}

impl Cloud {
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Local => "local",
            Cloud::Ec2 => "ec2",
            Cloud::OpenStack => "openstack",
        }
    }

    /// The user the cloud's usual images let in: root on the local node
    /// image, `ubuntu` on the default (Ubuntu) EC2 image, `debian` on the
    /// default OpenStack image (Debian's cloud image).
    pub fn default_ssh_user(self) -> &'static str {
        match self {
            Cloud::Local => "root",
            Cloud::Ec2 => "ubuntu",
            Cloud::OpenStack => "debian",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Time limits; every wait has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    #[serde(with = "duration_text")]
    pub ssh: Duration,
    #[serde(with = "duration_text")]
    pub script: Duration,
    #[serde(with = "duration_text")]
    pub converge: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            ssh: Duration::from_secs(300),
            script: Duration::from_secs(600),
            converge: Duration::from_secs(1800),
        }
    }
}

/// How many nodes may be unhealthy while remediation goes on: a count, or a
/// percentage of the cluster's nodes (written `40%`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxUnhealthy {
    Count(u32),
    Percent(u32),
}

impl Serialize for MaxUnhealthy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MaxUnhealthy::Count(n) => s.serialize_u32(*n),
            MaxUnhealthy::Percent(p) => s.serialize_str(&format!("{p}%")),
        }
    }
}

impl<'de> Deserialize<'de> for MaxUnhealthy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u32),
            Text(String),
        }
        let bad = |t: &str| {
            serde::de::Error::custom(format!(
                "invalid max_unhealthy {t:?}: write a node count (2) or a percentage (40%)"
            ))
        };
        match Raw::deserialize(d)? {
            Raw::Count(n) => Ok(MaxUnhealthy::Count(n)),
            Raw::Text(t) => match t.trim().strip_suffix('%') {
                Some(p) => match p.trim().parse::<u32>() {
                    Ok(p) if p <= 100 => Ok(MaxUnhealthy::Percent(p)),
                    _ => Err(bad(&t)),
                },
                None => t
                    .trim()
                    .parse()
                    .map(MaxUnhealthy::Count)
                    .map_err(|_| bad(&t)),
            },
        }
    }
}

/// When a node counts as unhealthy, and how remediation is paced. Modelled on
/// Cluster API's MachineHealthCheck, with a guard against mass remediation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthPolicy {
    /// SSH failing for longer than this makes a member node unhealthy.
    #[serde(with = "duration_text", default = "default_ssh_timeout")]
    pub ssh_timeout: Duration,
    /// The orchestrator reporting the node Down / NotReady for longer than this.
    #[serde(with = "duration_text", default = "default_not_ready_timeout")]
    pub not_ready_timeout: Duration,
    /// A new node that has not joined within this after its machine was created.
    #[serde(with = "duration_text", default = "default_startup_timeout")]
    pub startup_timeout: Duration,
    /// Above this many unhealthy nodes nothing is remediated (an event says why).
    #[serde(default = "default_max_unhealthy")]
    pub max_unhealthy: MaxUnhealthy,
    /// Wait after a failed remediation; doubles with each further failure (at most 10m).
    #[serde(with = "duration_text", default = "default_backoff")]
    pub remediation_backoff: Duration,
    /// A member whose machine the cloud lists as gone, stopped or failed is
    /// replaced only when a second observation, at least this much later,
    /// still says so (a listing can miss a server whose cell is down).
    #[serde(with = "duration_text", default = "default_lost_timeout")]
    pub lost_timeout: Duration,
    /// A member whose machine the cloud is rebooting, resizing, migrating or
    /// rebuilding (or cannot tell the state of) is replaced after this.
    #[serde(with = "duration_text", default = "default_busy_timeout")]
    pub busy_timeout: Duration,
    /// Nodes in a row that never join before the cluster stops replacing
    /// them (bad image, mirror down): the last one is kept for inspection
    /// and an event says what to do; `provision heal` tries again.
    #[serde(default = "default_max_start_attempts")]
    pub max_start_attempts: u32,
    /// Certificates are renewed this long before they expire (Kubernetes:
    /// the control plane's, by `kubeadm certs renew`; Swarm: its CA, by a
    /// rotation).
    #[serde(with = "duration_text", default = "default_renew_certificates_before")]
    pub renew_certificates_before: Duration,
}

fn default_ssh_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_not_ready_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_startup_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_max_unhealthy() -> MaxUnhealthy {
    MaxUnhealthy::Percent(40)
}
fn default_backoff() -> Duration {
    Duration::from_secs(30)
}
fn default_lost_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_busy_timeout() -> Duration {
    Duration::from_secs(1800)
}
fn default_max_start_attempts() -> u32 {
    3
}
fn default_renew_certificates_before() -> Duration {
    Duration::from_secs(30 * 86_400)
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            ssh_timeout: default_ssh_timeout(),
            not_ready_timeout: default_not_ready_timeout(),
            startup_timeout: default_startup_timeout(),
            max_unhealthy: default_max_unhealthy(),
            remediation_backoff: default_backoff(),
            lost_timeout: default_lost_timeout(),
            busy_timeout: default_busy_timeout(),
            max_start_attempts: default_max_start_attempts(),
            renew_certificates_before: default_renew_certificates_before(),
        }
    }
}

/// A validated cluster spec: the desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSpec {
    pub name: String,
    pub coe: Coe,
    pub cloud: Cloud,
    pub managers: u32,
    pub workers: u32,
    pub image: Option<String>,
    pub flavor: Option<String>,
    /// The Docker engine's package version every node installs (template
    /// `node.engine_version`, an apt version or pattern like `20.10.*`);
    /// `None`: the one the image has, else the distribution's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// Availability zones the managers and the default workers spread
    /// over (template `node.zones`), and a pool's when it names none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// Named pools of workers beside the default ones (`workers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<Pool>,
    /// How the workers' nodes are replaced when their machines change.
    #[serde(default)]
    pub rollout: RolloutPolicy,
    /// A change of machines under way (cluster command, `provision
    /// rollout`); never from a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    pub ssh_user: String,
    pub timeouts: Timeouts,
    #[serde(default)]
    pub health: HealthPolicy,
    /// The template's firewall; the orchestrator's member ports when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<Firewall>,
    /// Settings of the `ec2` cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec2: Option<Ec2Settings>,
    /// Settings of the `openstack` cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openstack: Option<OpenStackSettings>,
    /// Settings of a Kubernetes cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesSettings>,
    /// Settings of a Mesos cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesos: Option<MesosSettings>,
    /// Scheduled backups by the daemon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupPolicy>,
    /// The cluster is to be re-formed from a backup (`provision restore`):
    /// set by that command, never by a template, and cleared once the
    /// cluster has converged from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreRequest>,
}

/// Scheduled backups (the template's `backup:`), taken by the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupPolicy {
    /// A backup is taken when the newest one is this old.
    #[serde(with = "duration_text")]
    pub interval: Duration,
    /// Backups kept; older ones are deleted after a new one is taken.
    #[serde(default = "default_backup_keep")]
    pub keep: u32,
    /// A directory or `s3://BUCKET/PREFIX`; beside the state when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

fn default_backup_keep() -> u32 {
    7
}

/// The shortest backup interval: each backup stops a manager's engine for
/// seconds.
pub const MIN_BACKUP_INTERVAL: Duration = Duration::from_secs(60);

/// A restore the cluster's desired state asks for: the cluster re-formed on
/// a new first manager from the archive, then the rest joined to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRequest {
    /// Where the archive is (a local path, or an `s3://` URL).
    pub archive: String,
    /// When the backup was taken (RFC 3339), for messages.
    pub taken_at: String,
    /// The private address of the manager the backup was taken on: the
    /// restored manager must have it (Swarm keeps it as its raft address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_address: Option<String>,
    /// Restore although a manager's machine is still there and does not
    /// answer (it is retired and deleted): the person says it is dead, not
    /// cut off.
    #[serde(default)]
    pub force: bool,
    /// The archive's size and SHA-256 as its manifest says: checked before
    /// anything is restored from it. Absent only for a backup taken before
    /// provision recorded them, restored as `--unverified` asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The cluster id the archive is sealed for (with the cluster's backup
    /// key); absent for an archive kept in clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_for: Option<String>,
}

#[cfg(any(test, feature = "test-support"))]
impl ClusterSpec {
    /// A local Swarm spec with default policies, for tests (the binary's
    /// too, through the `test-support` feature).
    pub fn example(name: &str, managers: u32, workers: u32) -> ClusterSpec {
        ClusterSpec {
            name: name.into(),
            coe: Coe::Swarm,
            cloud: Cloud::Local,
            managers,
            workers,
            image: None,
            flavor: None,
            engine_version: None,
            zones: Vec::new(),
            pools: Vec::new(),
            rollout: RolloutPolicy::default(),
            change: None,
            ssh_user: "root".into(),
            timeouts: Timeouts::default(),
            health: HealthPolicy::default(),
            firewall: None,
            ec2: None,
            openstack: None,
            kubernetes: None,
            mesos: None,
            backup: None,
            restore: None,
        }
    }
}

/// SSH reachable from anywhere unless the template narrows it, as
/// docker-machine and most cloud consoles do; members-only for the rest.
pub const DEFAULT_SSH_FROM: &str = "0.0.0.0/0";

impl ClusterSpec {
    /// What the cloud's firewall lets in: the template's rules (else the
    /// orchestrator's), the orchestrator's client ports, plus what the
    /// chosen pod network needs.
    pub fn firewall(&self) -> Firewall {
        let mut firewall = self.firewall.clone().unwrap_or_else(|| Firewall {
            ssh_from: DEFAULT_SSH_FROM.into(),
            members: self.coe.profile().member_ports.to_vec(),
            ..Firewall::default()
        });
        for &port in self.coe.profile().client_ports {
            if !firewall.clients.contains(&port) {
                firewall.clients.push(port);
            }
        }
        let from_settings = [
            self.kubernetes.as_ref().map(Settings::member_ports),
            self.mesos.as_ref().map(Settings::member_ports),
        ];
        for port in from_settings.into_iter().flatten().flatten() {
            if !firewall.members.contains(&port) {
                firewall.members.push(port);
            }
        }
        firewall
    }

    /// What scripts see of the orchestrators' settings sections, each under
    /// its section's name (`cluster.kubernetes.version`): the cluster's own,
    /// and null for the others.
    pub fn settings_for_scripts(&self) -> serde_json::Map<String, serde_json::Value> {
        fn entry<T: Settings>(
            values: &mut serde_json::Map<String, serde_json::Value>,
            section: &Option<T>,
        ) {
            let value = section.as_ref().map(Settings::script_values);
            values.insert(T::COE.as_str().into(), value.unwrap_or_default());
        }
        let mut values = serde_json::Map::new();
        entry(&mut values, &self.kubernetes);
        entry(&mut values, &self.mesos);
        values
    }

    /// The smallest machine the orchestrator's nodes run on (every node
    /// of a cluster gets the same flavor, so it is the control plane's).
    pub fn minimum_machine(&self) -> Option<provision_provider::MinimumSize> {
        self.coe.profile().minimum_size()
    }

    /// Counts per role: the workers of every pool together.
    pub fn count(&self, role: provision_provider::Role) -> u32 {
        match role {
            provision_provider::Role::Manager => self.managers,
            provision_provider::Role::Worker => {
                self.workers + self.pools.iter().map(|p| p.count).sum::<u32>()
            }
        }
    }
}

/// A spec value the user must change.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("invalid cluster name {name:?}: {reason}")]
    Name { name: String, reason: String },
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// Checks the values no cloud call can fix; returns warnings to show.
/// Most managers taken without `--force`: Docker recommends at most seven
/// (each one takes part in every Raft write); nine leaves room for an odd
/// count above that on purpose.
pub const MAX_MANAGERS: u32 = 9;
/// Most workers taken without `--force`: a count this large is more often a
/// typo (`--workers 1000` for 100) than a plan, and each one is a machine.
pub const MAX_WORKERS: u32 = 500;

/// Refuses counts beyond [`MAX_MANAGERS`] / [`MAX_WORKERS`] unless `force`.
/// Checked where a person sets counts (create, scale, nodes add), not on a
/// stored spec, so a cluster made with `--force` stays valid.
pub fn check_counts(spec: &ClusterSpec, force: bool) -> Result<(), SpecError> {
    if force {
        return Ok(());
    }
    if spec.managers > MAX_MANAGERS {
        return Err(SpecError::Field {
            field: "managers".into(),
            message: format!(
                "{} managers make Raft slow (Docker recommends at most seven): use 3, 5 or 7 and \
                 add workers instead, or add --force to have more than {MAX_MANAGERS}",
                spec.managers
            ),
        });
    }
    let workers = spec.count(provision_provider::Role::Worker);
    if workers > MAX_WORKERS {
        return Err(SpecError::Field {
            field: "workers".into(),
            message: format!(
                "{workers} workers (all pools together) is more than {MAX_WORKERS}, each one a \
                 machine: check the number, and add --force if it is meant"
            ),
        });
    }
    Ok(())
}

/// Durations below this are refused: a zero or sub-second wait means "never
/// wait" (a converge that gives up at once, a lost node replaced on one look).
pub const MIN_DURATION: Duration = Duration::from_secs(1);

fn check_backup_policy(spec: &ClusterSpec) -> Result<(), SpecError> {
    let Some(policy) = &spec.backup else {
        return Ok(());
    };
    let field = |name: &str, message: String| SpecError::Field {
        field: format!("backup.{name}"),
        message,
    };
    if policy.interval < MIN_BACKUP_INTERVAL {
        return Err(field(
            "interval",
            format!(
                "{} is below the minimum of 1m (each backup stops a manager's engine for seconds): write e.g. 6h or 1d",
                humantime::format_duration(policy.interval)
            ),
        ));
    }
    if policy.keep == 0 {
        return Err(field(
            "keep",
            "0 would delete every backup it takes: write 1 or more (the default is 7)".into(),
        ));
    }
    if let Some(to) = &policy.to {
        to.parse::<Location>()
            .map_err(|e| field("to", e.to_string()))?;
    }
    if !spec.coe.profile().backs_up {
        return Err(SpecError::Field {
            field: "backup".into(),
            message: format!(
                "backups of {} clusters are not implemented: remove the backup section",
                spec.coe
            ),
        });
    }
    Ok(())
}

fn check_durations(spec: &ClusterSpec) -> Result<(), SpecError> {
    if spec.health.max_start_attempts == 0 {
        return Err(SpecError::Field {
            field: "health.max_start_attempts".into(),
            message: "0 would never start a node: write 1 or more (the default is 3)".into(),
        });
    }
    let h = &spec.health;
    if let Some(lasts) = spec.coe.profile().certificates.renewed_for() {
        if h.renew_certificates_before >= lasts {
            return Err(SpecError::Field {
                field: "health.renew_certificates_before".into(),
                message: format!(
                    "{} is not shorter than the {} a renewal gives {} certificates, so they \
                     would be renewed again at once: write less (the default is 30d)",
                    humantime::format_duration(h.renew_certificates_before),
                    humantime::format_duration(lasts),
                    spec.coe
                ),
            });
        }
    }
    let t = &spec.timeouts;
    let all = [
        ("timeouts.ssh", t.ssh),
        ("timeouts.script", t.script),
        ("timeouts.converge", t.converge),
        ("health.ssh_timeout", h.ssh_timeout),
        ("health.not_ready_timeout", h.not_ready_timeout),
        ("health.startup_timeout", h.startup_timeout),
        ("health.remediation_backoff", h.remediation_backoff),
        ("health.lost_timeout", h.lost_timeout),
        ("health.busy_timeout", h.busy_timeout),
        (
            "health.renew_certificates_before",
            h.renew_certificates_before,
        ),
    ];
    match all.iter().find(|(_, d)| *d < MIN_DURATION) {
        Some((field, d)) => Err(SpecError::Field {
            field: (*field).into(),
            message: format!(
                "{} is below the minimum of 1s: write a duration like 30s or 5m",
                humantime::format_duration(*d)
            ),
        }),
        None => Ok(()),
    }
}

pub fn validate(spec: &ClusterSpec) -> Result<Vec<String>, SpecError> {
    validate_cluster_name(&spec.name)?;
    let mut warnings = Vec::new();
    if spec.managers == 0 {
        return Err(SpecError::Field {
            field: "managers".into(),
            message:
                "a cluster needs at least one manager: use --managers 1 (or 3 for fault tolerance)"
                    .into(),
        });
    }
    if spec.managers > 7 {
        warnings.push(format!(
            "{} managers: every manager takes part in each Raft write, so more than 7 slow the \
             cluster down (Docker recommends at most seven); add workers instead",
            spec.managers
        ));
    }
    check_durations(spec)?;
    check_backup_policy(spec)?;
    warnings.extend(pools::validate(spec)?);
    rollout::validate(spec)?;
    if spec.managers % 2 == 0 {
        warnings.push(format!(
            "{} managers tolerate no more failures than {}: an odd count is better for quorum",
            spec.managers,
            spec.managers - 1
        ));
    }
    let ssh_from = spec.firewall().ssh_from;
    if ssh_from == DEFAULT_SSH_FROM && spec.cloud != Cloud::Local {
        warnings.push(format!(
            "firewall.ssh_from is {DEFAULT_SSH_FROM}: SSH to every node is open to the whole internet; \
             give your address range with --ssh-from (it can be changed later the same way)"
        ));
    }
    if !is_cidr(&ssh_from) {
        return Err(SpecError::Field {
            field: "firewall.ssh_from".into(),
            message: format!(
                "{ssh_from:?} is not an address range: write it like 203.0.113.0/24 (or 0.0.0.0/0 for anywhere)"
            ),
        });
    }
    if let Some(clients_from) = &spec.firewall().clients_from {
        if !is_cidr(clients_from) {
            return Err(SpecError::Field {
                field: "firewall.clients_from".into(),
                message: format!(
                    "{clients_from:?} is not an address range: write it like 203.0.113.0/24 \
                     (or leave it out to use firewall.ssh_from's)"
                ),
            });
        }
    }
    if let Some(problem) = spec.firewall().members.iter().find_map(|r| r.problem()) {
        return Err(SpecError::Field {
            field: "firewall.members".into(),
            message: problem,
        });
    }
    cloud_settings::validate(spec)?;
    orchestrator_settings(spec, &spec.kubernetes)?;
    orchestrator_settings(spec, &spec.mesos)?;
    if spec.ssh_user.is_empty() {
        return Err(SpecError::Field {
            field: "node.ssh_user".into(),
            message: "must not be empty".into(),
        });
    }
    Ok(warnings)
}

/// Checks an orchestrator's settings section, naming the field in full
/// (`kubernetes.version`).
fn orchestrator_settings<T: Settings>(
    spec: &ClusterSpec,
    section: &Option<T>,
) -> Result<(), SpecError> {
    let Some(settings) = section else {
        return Ok(());
    };
    settings
        .validate(spec.managers)
        .map_err(|SettingError { field, message }| SpecError::Field {
            field: format!("{}.{field}", T::COE.as_str()),
            message,
        })
}

/// Durations written as text (`90s`, `5m`, `1h 30m`) in templates and state.
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({e}); write e.g. 90s or 5m"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use provision_provider::{PortRule, Protocol};

    fn spec(managers: u32) -> ClusterSpec {
        ClusterSpec::example("web", managers, 2)
    }

    #[test]
    fn max_unhealthy_reads_counts_and_percentages() {
        let p: HealthPolicy = serde_yaml_ng::from_str("max_unhealthy: 1").unwrap();
        assert_eq!(p.max_unhealthy, MaxUnhealthy::Count(1));
        let p: HealthPolicy = serde_yaml_ng::from_str("max_unhealthy: 40%").unwrap();
        assert_eq!(p.max_unhealthy, MaxUnhealthy::Percent(40));
        assert!(serde_yaml_ng::from_str::<HealthPolicy>("max_unhealthy: lots").is_err());
        assert!(serde_yaml_ng::from_str::<HealthPolicy>("max_unhealthy: 140%").is_err());
        assert_eq!(p.ssh_timeout, Duration::from_secs(60));
    }

    #[test]
    fn zero_managers_is_refused_with_the_field_named() {
        let err = validate(&spec(0)).unwrap_err().to_string();
        assert!(err.starts_with("managers:"), "{err}");
    }

    #[test]
    fn counts_above_the_maximums_need_force() {
        let mut s = spec(MAX_MANAGERS);
        assert!(check_counts(&s, false).is_ok());
        s.managers = MAX_MANAGERS + 2;
        let err = check_counts(&s, false).unwrap_err().to_string();
        assert!(
            err.starts_with("managers:") && err.contains("--force"),
            "{err}"
        );
        assert!(check_counts(&s, true).is_ok());
        // Still valid once stored: the daemon must not refuse a forced spec.
        assert!(validate(&s).unwrap()[0].contains("at most seven"));
        let mut s = spec(3);
        s.workers = MAX_WORKERS + 1;
        let err = check_counts(&s, false).unwrap_err().to_string();
        assert!(
            err.starts_with("workers:") && err.contains("--force"),
            "{err}"
        );
    }

    #[test]
    fn durations_below_one_second_are_refused_with_the_field_named() {
        let mut s = spec(1);
        s.health.lost_timeout = Duration::ZERO;
        let err = validate(&s).unwrap_err().to_string();
        assert!(err.starts_with("health.lost_timeout:"), "{err}");
        let mut s = spec(1);
        s.timeouts.converge = Duration::from_millis(500);
        let err = validate(&s).unwrap_err().to_string();
        assert!(err.starts_with("timeouts.converge:"), "{err}");
        let mut s = spec(1);
        s.health.max_start_attempts = 0;
        let err = validate(&s).unwrap_err().to_string();
        assert!(err.starts_with("health.max_start_attempts:"), "{err}");
    }

    #[test]
    fn a_backup_policy_is_checked_field_by_field() {
        let with = |interval: u64, keep: u32, to: Option<&str>, coe: Coe| {
            let mut s = spec(3);
            s.coe = coe;
            s.backup = Some(BackupPolicy {
                interval: Duration::from_secs(interval),
                keep,
                to: to.map(str::to_string),
            });
            validate(&s).map(|_| ()).map_err(|e| e.to_string())
        };
        assert_eq!(with(3600, 7, Some("/var/backups/web"), Coe::Swarm), Ok(()));
        assert_eq!(
            with(3600, 7, Some("s3://team-backups/web"), Coe::Swarm),
            Ok(())
        );
        let err = with(30, 7, None, Coe::Swarm).unwrap_err();
        assert!(
            err.starts_with("backup.interval:") && err.contains("1m"),
            "{err}"
        );
        let err = with(3600, 0, None, Coe::Swarm).unwrap_err();
        assert!(err.starts_with("backup.keep:"), "{err}");
        let err = with(3600, 7, Some("gs://x/y"), Coe::Swarm).unwrap_err();
        assert!(err.starts_with("backup.to:"), "{err}");
        assert_eq!(with(3600, 7, None, Coe::Mesos), Ok(()));
    }

    #[test]
    fn even_managers_warn_about_quorum() {
        let warnings = validate(&spec(2)).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("quorum"));
        assert!(validate(&spec(3)).unwrap().is_empty());
    }

    #[test]
    fn ssh_range_must_be_a_cidr() {
        let mut s = spec(1);
        assert_eq!(s.firewall().ssh_from, "0.0.0.0/0");
        for bad in ["10.0.0.0", "10.0.0.0/33", "anywhere", "::/129"] {
            let mut f = s.firewall();
            f.ssh_from = bad.into();
            s.firewall = Some(f);
            let err = validate(&s).unwrap_err().to_string();
            assert!(err.starts_with("firewall.ssh_from:"), "{bad}: {err}");
        }
        let mut f = s.firewall();
        f.ssh_from = "2001:db8::/32".into();
        s.firewall = Some(f);
        assert!(validate(&s).is_ok());
    }

    #[test]
    fn client_ports_are_opened_from_a_range_the_user_may_name() {
        let mut s = spec(1);
        assert!(s.firewall().clients.is_empty(), "Swarm's client uses SSH");
        s.coe = Coe::Kubernetes;
        assert_eq!(s.firewall().clients, [PortRule::new(Protocol::Tcp, 6443)]);
        assert_eq!(s.firewall().clients_from(), "0.0.0.0/0", "ssh_from's");
        s.coe = Coe::Mesos;
        let mut f = s.firewall();
        assert_eq!(f.clients.len(), 2);
        f.clients_from = Some("anywhere".into());
        s.firewall = Some(f.clone());
        let err = validate(&s).unwrap_err().to_string();
        assert!(err.starts_with("firewall.clients_from:"), "{err}");
        f.clients_from = Some("192.0.2.0/24".into());
        s.firewall = Some(f);
        assert_eq!(s.firewall().clients_from(), "192.0.2.0/24");
        assert_eq!(s.firewall().clients.len(), 2, "not listed twice");
    }

    #[test]
    fn kubeadm_gets_the_configuration_api_its_release_reads_and_old_releases_are_refused() {
        let k = |v: &str| KubernetesSettings {
            version: v.into(),
            ..KubernetesSettings::default()
        };
        assert_eq!(k("1.24").kubeadm_api_version(), "kubeadm.k8s.io/v1beta3");
        assert_eq!(k("1.30").kubeadm_api_version(), "kubeadm.k8s.io/v1beta3");
        assert_eq!(k("1.31").kubeadm_api_version(), "kubeadm.k8s.io/v1beta4");
        assert_eq!(k("1.34").kubeadm_api_version(), "kubeadm.k8s.io/v1beta4");
        let mut s = spec(1);
        s.coe = Coe::Kubernetes;
        s.kubernetes = Some(k("1.23"));
        let err = validate(&s).unwrap_err().to_string();
        assert!(
            err.starts_with("kubernetes.version:") && err.contains("1.24"),
            "{err}"
        );
        s.kubernetes = Some(k("1.24"));
        assert!(validate(&s).is_ok());
    }

    #[test]
    fn kubernetes_with_several_control_planes_needs_an_endpoint() {
        let mut s = spec(3);
        s.coe = Coe::Kubernetes;
        s.kubernetes = Some(KubernetesSettings::default());
        let err = validate(&s).unwrap_err().to_string();
        assert!(
            err.starts_with("kubernetes.control_plane_endpoint:") && err.contains("--managers 1"),
            "{err}"
        );
        s.managers = 1;
        assert!(validate(&s).is_ok());
        s.managers = 3;
        s.kubernetes.as_mut().unwrap().control_plane_endpoint = Some("k8s.example.org".into());
        assert!(validate(&s).is_ok());
    }

    #[test]
    fn only_kubernetes_asks_for_a_minimum_machine() {
        let mut s = spec(1);
        assert_eq!(s.minimum_machine(), None);
        s.coe = Coe::Kubernetes;
        let min = s.minimum_machine().unwrap();
        assert_eq!((min.vcpus, min.memory_mib), (2, 1700));
        let err = min
            .check("flavor m1.small", 1, 2048)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("flavor: flavor m1.small has 1 vCPU(s) and 2048 MiB")
                && err.contains("--flavor"),
            "{err}"
        );
        assert!(min.check("flavor m1.medium", 2, 4096).is_ok());
        assert!(min.check("instance type t3.micro", 2, 1024).is_err());
    }

    #[test]
    fn calico_opens_ip_in_ip_between_members() {
        let mut s = spec(1);
        s.coe = Coe::Kubernetes;
        s.kubernetes = Some(KubernetesSettings::default());
        let ipip = PortRule::protocol(Protocol::Ipip);
        assert!(!s.firewall().members.contains(&ipip), "flannel needs none");
        s.kubernetes.as_mut().unwrap().cni = Cni::Calico;
        let members = s.firewall().members;
        assert_eq!(members.iter().filter(|r| **r == ipip).count(), 1);
        assert!(validate(&s).is_ok());
    }

    #[test]
    fn firewall_rules_must_match_their_protocol() {
        let mut s = spec(1);
        for (rule, says) in [
            ("{protocol: tcp}", "a tcp rule needs a port"),
            ("{protocol: ipip, port: 4}", "ipip has no ports"),
            ("{protocol: udp, port: 9, to: 1}", "runs backwards"),
        ] {
            s.firewall = Some(
                serde_yaml_ng::from_str(&format!("ssh_from: 0.0.0.0/0\nmembers: [{rule}]"))
                    .unwrap(),
            );
            let err = validate(&s).unwrap_err().to_string();
            assert!(
                err.starts_with("firewall.members:") && err.contains(says),
                "{rule}: {err}"
            );
        }
        s.firewall = Some(
            serde_yaml_ng::from_str("ssh_from: 0.0.0.0/0\nmembers: [{protocol: ipip}]").unwrap(),
        );
        assert!(validate(&s).is_ok());
    }

    #[test]
    fn bad_name_is_refused() {
        let mut s = spec(1);
        s.name = "Web_1".into();
        assert!(matches!(validate(&s), Err(SpecError::Name { .. })));
    }
}
