//! Cluster templates: YAML files with a cluster's defaults, like Magnum's
//! ClusterTemplate. Built-in ones ship inside the binary; a user's own file
//! is given with `--template FILE`.

use std::path::{Path, PathBuf};

use crate::profile;
use provision_ec2_settings::Ec2Settings;
use provision_openstack_settings::OpenStackSettings;
use provision_provider::Firewall;
use serde::{Deserialize, Serialize};

use super::{
    BackupPolicy, Cloud, ClusterSpec, Coe, HealthPolicy, KubernetesSettings, MesosSettings, Pool,
    RolloutPolicy, Timeouts,
};

/// The templates in `cluster-templates/`, by file name (build.rs).
const BUILTIN: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/builtin_templates.rs"));

/// Names and sources of the templates shipped in the binary.
pub fn builtin_templates() -> &'static [(&'static str, &'static str)] {
    BUILTIN
}

/// A parsed template. Unknown keys are errors, so a typo is never ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterTemplate {
    pub coe: Coe,
    #[serde(default = "one")]
    pub managers: u32,
    #[serde(default)]
    pub workers: u32,
    #[serde(default)]
    pub node: NodeTemplate,
    /// Named pools of workers beside the default ones (`workers`).
    #[serde(default)]
    pub pools: Vec<Pool>,
    /// How the workers' nodes are replaced when their machines change.
    #[serde(default)]
    pub rollout: RolloutPolicy,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub health: HealthPolicy,
    /// Who may reach the nodes: SSH from a range, member ports between nodes.
    #[serde(default)]
    pub firewall: Option<Firewall>,
    /// Settings used when the cluster is on `--cloud ec2`.
    #[serde(default)]
    pub ec2: Option<Ec2Settings>,
    /// Settings used when the cluster is on `--cloud openstack`.
    #[serde(default)]
    pub openstack: Option<OpenStackSettings>,
    /// Settings of a Kubernetes cluster (`coe: kubernetes`).
    #[serde(default)]
    pub kubernetes: Option<KubernetesSettings>,
    /// Settings of a Mesos cluster (`coe: mesos`).
    #[serde(default)]
    pub mesos: Option<MesosSettings>,
    /// Scheduled backups, taken by the daemon.
    #[serde(default)]
    pub backup: Option<BackupPolicy>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeTemplate {
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub flavor: Option<String>,
    /// The Docker engine's package version (apt's, or a pattern like
    /// `20.10.*`); the image's or the distribution's when absent.
    #[serde(default)]
    pub engine_version: Option<String>,
    /// The cloud's usual user when absent (root locally, ubuntu on EC2).
    #[serde(default)]
    pub ssh_user: Option<String>,
    /// Availability zones the managers and the default workers spread over.
    #[serde(default)]
    pub zones: Vec<String>,
}

/// A template that cannot be read or used, with where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cluster template {0:?} not found: give a built-in name (`provision templates list`) or a path to a YAML file")]
    NotFound(String),
    #[error("cannot read cluster template {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cluster template {file}{}: {message}", location(*.line, *.column))]
    Parse {
        file: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    #[error("cluster template {file} is for {found}, not {wanted}: use a {wanted} template")]
    WrongCoe {
        file: String,
        found: Coe,
        wanted: Coe,
    },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(", line {l}, column {c}"),
        (Some(l), None) => format!(", line {l}"),
        _ => String::new(),
    }
}

impl ClusterTemplate {
    /// Loads a built-in template by name, or a file by path.
    pub fn load(name_or_path: &str) -> Result<(String, ClusterTemplate), TemplateError> {
        if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Ok((
                name.to_string(),
                Self::parse(&format!("<built-in {name}>"), text)?,
            ));
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(TemplateError::NotFound(name_or_path.to_string()));
        }
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok((
            path.display().to_string(),
            Self::parse(&path.display().to_string(), &text)?,
        ))
    }

    /// Parses template text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<ClusterTemplate, TemplateError> {
        serde_yaml_ng::from_str(text).map_err(|e| {
            let loc = e.location();
            TemplateError::Parse {
                file: file.to_string(),
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
                message: strip_location(&e.to_string()),
            }
        })
    }

    /// The spec this template gives for a cluster, before flags.
    pub fn to_spec(&self, name: &str, cloud: Cloud) -> ClusterSpec {
        ClusterSpec {
            name: name.to_string(),
            coe: self.coe,
            cloud,
            managers: self.managers,
            workers: self.workers,
            image: self.node.image.clone(),
            flavor: self.node.flavor.clone(),
            engine_version: self.node.engine_version.clone(),
            zones: self.node.zones.clone(),
            pools: self.pools.clone(),
            rollout: self.rollout,
            change: None,
            ssh_user: self
                .node
                .ssh_user
                .clone()
                .unwrap_or_else(|| cloud.default_ssh_user().to_string()),
            timeouts: self.timeouts,
            health: self.health,
            firewall: self.firewall.clone(),
            ec2: super::cloud_settings::section(cloud, &self.ec2),
            openstack: super::cloud_settings::section(cloud, &self.openstack),
            kubernetes: profile::section(self.coe, &self.kubernetes),
            mesos: profile::section(self.coe, &self.mesos),
            backup: self.backup.clone(),
            restore: None,
        }
    }
}

// serde_yaml_ng appends " at line L column C"; we print the location ourselves.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A create command with no `--template` loads the one named after its
    /// orchestrator.
    #[test]
    fn every_orchestrator_has_a_builtin_template_of_its_name() {
        for coe in Coe::ALL {
            let (_, t) = ClusterTemplate::load(coe.as_str()).unwrap();
            assert_eq!(t.coe, coe);
        }
    }

    #[test]
    fn builtin_swarm_template_parses() {
        let (_, t) = ClusterTemplate::load("swarm").unwrap();
        assert_eq!(t.coe, Coe::Swarm);
        assert_eq!((t.managers, t.workers), (1, 2));
        assert_eq!(t.node.ssh_user, None);
        assert_eq!(t.to_spec("a", Cloud::Local).ssh_user, "root");
        assert_eq!(t.to_spec("a", Cloud::Ec2).ssh_user, "ubuntu");
    }

    #[test]
    fn yaml_error_names_file_line_and_column() {
        let err = ClusterTemplate::parse("t.yaml", "coe: swarm\nmanagers: [\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("cluster template t.yaml, line"), "{text}");
        assert!(matches!(
            err,
            TemplateError::Parse {
                line: Some(_),
                column: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn type_error_names_line_and_field() {
        let err = ClusterTemplate::parse("t.yaml", "coe: swarm\nmanagers: three\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 2"), "{text}");
        assert!(text.contains("managers"), "{text}");
    }

    #[test]
    fn unknown_coe_is_an_error() {
        let err = ClusterTemplate::parse("t.yaml", "coe: nomad\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("nomad") && err.contains("swarm"), "{err}");
    }

    #[test]
    fn unknown_key_is_an_error() {
        let err = ClusterTemplate::parse("t.yaml", "coe: swarm\nworkerz: 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("workerz"), "{err}");
    }

    #[test]
    fn durations_are_text() {
        let t = ClusterTemplate::parse(
            "t.yaml",
            "coe: swarm\ntimeouts: {ssh: 90s, script: 2m, converge: 1h}\n",
        )
        .unwrap();
        assert_eq!(t.timeouts.ssh.as_secs(), 90);
        assert_eq!(t.timeouts.converge.as_secs(), 3600);
        let err = ClusterTemplate::parse(
            "t.yaml",
            "coe: swarm\ntimeouts: {ssh: soon, script: 2m, converge: 1h}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("soon"), "{err}");
    }

    #[test]
    fn missing_file_says_what_to_give() {
        let err = ClusterTemplate::load("/nonexistent/x.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("templates list"), "{err}");
    }
}
