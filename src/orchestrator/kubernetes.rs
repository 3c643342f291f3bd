//! Kubernetes with kubeadm: `kubeadm init` on the first control-plane node
//! (then the CNI), workers join with a bootstrap token and the CA
//! certificate hash, further control-plane nodes also with the certificate
//! key. Membership and health come from `kubectl get nodes -o json`.

use std::path::Path;

use async_trait::async_trait;
use minijinja::Value;
use provision_provider::Role;
use serde::Deserialize;

use super::reported::CertificateExpiry;
use super::{field, JoinSecrets, Member, NodeProbe, Orchestrator, DRAIN_WAIT_SECONDS};
use crate::bootstrap::{ArchiveInfo, NodeShell, Output, ShellError};
use crate::secret::Secret;
use crate::spec::{Coe, KubernetesSettings};
use crate::state::CLIENT_CONFIG_FILE;

/// The label kubeadm puts on control-plane nodes.
const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

pub struct Kubernetes {
    pub settings: KubernetesSettings,
}

#[derive(Debug, Deserialize)]
struct NodeList {
    items: Vec<KubeNode>,
}

#[derive(Debug, Deserialize)]
struct KubeNode {
    metadata: Metadata,
    #[serde(default)]
    spec: NodeSpec,
    #[serde(default)]
    status: NodeStatus,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    name: String,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct NodeSpec {
    #[serde(default)]
    unschedulable: bool,
}

#[derive(Debug, Default, Deserialize)]
struct NodeStatus {
    #[serde(default)]
    conditions: Vec<Condition>,
}

#[derive(Debug, Deserialize)]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
}

/// Members from `kubectl get nodes -o json`: ready when the Ready condition
/// is "True"; control-plane nodes by kubeadm's label.
pub(crate) fn parse_members(text: &str) -> Result<Vec<Member>, String> {
    let list: NodeList = serde_json::from_str(text)
        .map_err(|e| format!("unreadable `kubectl get nodes -o json`: {e}"))?;
    Ok(list
        .items
        .into_iter()
        .map(|n| {
            let ready = n
                .status
                .conditions
                .iter()
                .find(|c| c.kind == "Ready")
                .map(|c| c.status.as_str());
            let mut status = match ready {
                Some("True") => "Ready".to_string(),
                Some("False") => "NotReady".to_string(),
                _ => "Unknown".to_string(),
            };
            if n.spec.unschedulable {
                status.push_str(",SchedulingDisabled");
            }
            Member {
                role: if n.metadata.labels.contains_key(CONTROL_PLANE_LABEL) {
                    Role::Manager
                } else {
                    Role::Worker
                },
                ready: ready == Some("True"),
                status,
                id: n.metadata.name.clone(),
                hostname: n.metadata.name,
            }
        })
        .collect())
}

/// Parses the probe script's `key=value` lines.
pub(crate) fn parse_probe(text: &str) -> NodeProbe {
    let joined = field(text, "joined") == Some("true");
    NodeProbe {
        engine_running: field(text, "engine") == Some("running"),
        joined,
        member_id: field(text, "node_name")
            .filter(|_| joined)
            .map(str::to_string),
        control: joined && field(text, "control") == Some("true"),
        config_stale: false,
        certificates: CertificateExpiry {
            leaf: CertificateExpiry::parse_time(field(text, "cert_expires")),
            ca: CertificateExpiry::parse_time(field(text, "ca_expires")),
        },
    }
}

/// Join credentials printed by join-tokens.sh: `token=`, `ca_hash=`,
/// `certificate_key=` and `certificate_key_expires=`. Workers get `token
/// ca_hash`, control-plane nodes also the certificate key, one line each,
/// for the join script's stdin; the key and its expiry are kept for the
/// next call, whichever control-plane node answers it.
fn parse_join(node: &str, text: &str) -> Result<JoinSecrets, ShellError> {
    let get = |key| field(text, key);
    let unreadable =
        |message: String| ShellError::unreadable(node, "kubernetes/join-tokens.sh", message);
    let (Some(token), Some(hash), Some(key)) =
        (get("token"), get("ca_hash"), get("certificate_key"))
    else {
        return Err(unreadable(
            "the control plane printed no complete join credentials".into(),
        ));
    };
    // What a node prints is untrusted, and these go on a command line of
    // every joining node: only kubeadm's own forms pass (named, never shown).
    for (name, value, form, what) in [
        (
            "token",
            &token,
            &*BOOTSTRAP_TOKEN,
            "a bootstrap token [a-z0-9]{6}.[a-z0-9]{16}",
        ),
        (
            "ca_hash",
            &hash,
            &*CA_CERT_HASH,
            "sha256: and 64 hex digits",
        ),
        (
            "certificate_key",
            &key,
            &*CERTIFICATE_KEY,
            "64 hex digits (32 bytes)",
        ),
    ] {
        if !form.is_match(value) {
            return Err(unreadable(format!(
                "the control plane's {name} is not of kubeadm's form ({what})"
            )));
        }
    }
    let expires = get("certificate_key_expires");
    if let Some(e) = &expires {
        if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
            return Err(unreadable(
                "the control plane's certificate_key_expires is not a unix time".into(),
            ));
        }
    }
    Ok(JoinSecrets {
        worker: Secret::new(format!("{token} {hash}")),
        manager: Secret::new(format!("{token} {hash} {key}")),
        keep: expires.map(|expires| Secret::new(format!("{key} {expires}"))),
    })
}

/// kubeadm's forms (k8s.io/cluster-bootstrap's BootstrapTokenPattern; a
/// `--discovery-token-ca-cert-hash` pin; `--certificate-key`, 32 bytes hex).
static BOOTSTRAP_TOKEN: std::sync::LazyLock<regex_lite::Regex> =
    std::sync::LazyLock::new(|| regex_lite::Regex::new(r"^[a-z0-9]{6}\.[a-z0-9]{16}$").unwrap());
static CA_CERT_HASH: std::sync::LazyLock<regex_lite::Regex> =
    std::sync::LazyLock::new(|| regex_lite::Regex::new(r"^sha256:[a-f0-9]{64}$").unwrap());
static CERTIFICATE_KEY: std::sync::LazyLock<regex_lite::Regex> =
    std::sync::LazyLock::new(|| regex_lite::Regex::new(r"^[a-f0-9]{64}$").unwrap());

fn member_vars(member: &Member) -> Vec<(&'static str, Value)> {
    vec![
        ("member_name", Value::from(member.hostname.as_str())),
        (
            "member_control_plane",
            Value::from(member.role == Role::Manager),
        ),
    ]
}

impl Kubernetes {
    /// Where the API server is reached: the configured load balancer, else
    /// the first control-plane node.
    fn endpoint(&self, first_control_plane: &str) -> String {
        self.settings
            .control_plane_endpoint
            .clone()
            .unwrap_or_else(|| first_control_plane.to_string())
    }
}

impl Kubernetes {
    /// What `init.sh` (and `restore.sh`, which includes it) is told.
    fn init_vars(&self, node: &NodeShell, restoring: bool) -> Vec<(&'static str, Value)> {
        vec![
            (
                "endpoint",
                Value::from(self.endpoint(node.private_address())),
            ),
            ("cni_manifest", Value::from(self.settings.cni.manifest())),
            ("restoring", Value::from(restoring)),
        ]
    }

    /// The admin kubeconfig as the user's clients use it: without a load
    /// balancer, they reach the API server where provision reaches the node
    /// (its public address when SSH uses that; the certificate carries it,
    /// see `init.sh`), not at the private address kubeadm wrote.
    fn for_clients(&self, kubeconfig: &str, private: &str, ssh: &str) -> String {
        if self.settings.control_plane_endpoint.is_some() || ssh == private {
            return kubeconfig.to_string();
        }
        kubeconfig.replace(
            &format!("server: https://{private}:6443"),
            &format!("server: https://{ssh}:6443"),
        )
    }
}

#[async_trait]
impl Orchestrator for Kubernetes {
    fn coe(&self) -> Coe {
        Coe::Kubernetes
    }

    async fn install(&self, node: &NodeShell) -> Result<(), ShellError> {
        node.run_logged("kubernetes/install.sh", &[]).await
    }

    async fn renew_certificates(&self, node: &NodeShell) -> Result<(), ShellError> {
        node.run_logged("kubernetes/renew-certs.sh", &[]).await
    }

    async fn upgrade(&self, node: &NodeShell) -> Result<(), ShellError> {
        node.run_logged("kubernetes/upgrade.sh", &[]).await
    }

    async fn probe(&self, node: &NodeShell) -> Result<NodeProbe, ShellError> {
        let out = node.query("kubernetes/probe.sh").await?;
        Ok(parse_probe(&out))
    }

    async fn init(&self, node: &NodeShell) -> Result<(), ShellError> {
        node.run_logged("kubernetes/init.sh", &self.init_vars(node, false))
            .await
    }

    async fn join_secrets(
        &self,
        manager: &NodeShell,
        kept: Option<&Secret>,
    ) -> Result<JoinSecrets, ShellError> {
        let none = Secret::new(String::new());
        let out = manager
            .run(
                "kubernetes/join-tokens.sh",
                &[],
                Some(kept.unwrap_or(&none)),
                Output::Secret,
            )
            .await?;
        parse_join(manager.node(), &out)
    }

    async fn join(
        &self,
        node: &NodeShell,
        role: Role,
        manager_address: &str,
        secrets: &JoinSecrets,
    ) -> Result<Option<NodeProbe>, ShellError> {
        node.run(
            "kubernetes/join.sh",
            &[("endpoint", Value::from(self.endpoint(manager_address)))],
            Some(secrets.for_role(role)),
            Output::Log,
        )
        .await
        .map(|_| None)
    }

    async fn members(&self, manager: &NodeShell) -> Result<Vec<Member>, ShellError> {
        let out = manager.query("kubernetes/members.sh").await?;
        parse_members(&out).map_err(|message| {
            ShellError::unreadable(manager.node(), "kubernetes/members.sh", message)
        })
    }

    async fn drain(&self, manager: &NodeShell, member: &Member) -> Result<(), ShellError> {
        let mut vars = member_vars(member);
        vars.push(("wait_seconds", Value::from(DRAIN_WAIT_SECONDS)));
        manager.run_logged("kubernetes/drain.sh", &vars).await
    }

    async fn remove_member(&self, manager: &NodeShell, member: &Member) -> Result<(), ShellError> {
        manager
            .run_logged("kubernetes/remove-member.sh", &member_vars(member))
            .await
    }

    async fn leave(&self, node: &NodeShell) -> Result<(), ShellError> {
        node.run_logged("kubernetes/leave.sh", &[]).await
    }

    async fn client_config(&self, manager: &NodeShell) -> Result<Option<Secret>, ShellError> {
        let out = manager
            .run("kubernetes/kubeconfig.sh", &[], None, Output::Secret)
            .await?;
        Ok(Some(Secret::new(self.for_clients(
            &out,
            manager.private_address(),
            manager.ssh_address(),
        ))))
    }

    async fn restore(&self, node: &NodeShell, archive: &Path) -> Result<(), ShellError> {
        node.run_with_file(
            "kubernetes/restore.sh",
            &self.init_vars(node, true),
            archive,
            Output::Log,
        )
        .await
        .map(|_| ())
    }

    /// `kubeadm reset`: the node's kubelet forgets the cluster it was in,
    /// so `kubeadm join` can run again.
    async fn leave_old_cluster(&self, node: &NodeShell) -> Result<(), ShellError> {
        node.run_logged("kubernetes/leave.sh", &[]).await
    }

    async fn backup_blocker(&self, _manager: &NodeShell) -> Result<Option<String>, ShellError> {
        Ok(None)
    }

    async fn backup(
        &self,
        manager: &NodeShell,
        to: &mut (dyn std::io::Write + Send),
    ) -> Result<ArchiveInfo, ShellError> {
        manager.run_archive("kubernetes/backup.sh", to).await
    }

    fn client_env(
        &self,
        _manager_alias: &str,
        _manager_address: &str,
        cluster_dir: &Path,
    ) -> Vec<(String, String)> {
        vec![(
            "KUBECONFIG".into(),
            cluster_dir.join(CLIENT_CONFIG_FILE).display().to_string(),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const KEY: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    #[test]
    fn join_credentials_keep_the_certificate_key_and_its_expiry() {
        let j = parse_join(
            "k-manager-2",
            &format!("token=abcdef.0123456789abcdef\nca_hash={HASH}\ncertificate_key={KEY}\ncertificate_key_expires=1700\n"),
        )
        .unwrap();
        assert_eq!(j.worker.expose(), format!("abcdef.0123456789abcdef {HASH}"));
        assert_eq!(
            j.manager.expose(),
            format!("abcdef.0123456789abcdef {HASH} {KEY}")
        );
        assert_eq!(j.keep.unwrap().expose(), format!("{KEY} 1700"));
        assert!(parse_join("k-manager-1", "token=abc.def\n").is_err());
    }

    const NODES: &str = r#"{"apiVersion":"v1","kind":"List","items":[
      {"metadata":{"name":"k-manager-1","labels":{"node-role.kubernetes.io/control-plane":""}},
       "spec":{},"status":{"conditions":[{"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"True"}]}},
      {"metadata":{"name":"k-worker-1","labels":{}},"spec":{"unschedulable":true},
       "status":{"conditions":[{"type":"Ready","status":"False"}]}},
      {"metadata":{"name":"k-worker-2"},"status":{"conditions":[{"type":"Ready","status":"Unknown"}]}}
    ]}"#;

    /// Credentials not of kubeadm's form are refused, named, never shown.
    #[test]
    fn join_credentials_of_another_form_are_refused() {
        let good = [
            ("token", "abcdef.0123456789abcdef"),
            ("ca_hash", HASH),
            ("certificate_key", KEY),
            ("certificate_key_expires", "1700"),
        ];
        for (field, bad) in [
            ("token", "abc.def"),
            (
                "token",
                "abcdef.0123456789abcdef --ignore-preflight-errors=all",
            ),
            ("ca_hash", "sha256:00"),
            ("ca_hash", "md5:0123456789abcdef0123456789abcdef"),
            ("certificate_key", "k3y; rm -rf /"),
            ("certificate_key_expires", "soon"),
        ] {
            let text: String = good
                .iter()
                .map(|(k, v)| format!("{k}={}\n", if *k == field { bad } else { v }))
                .collect();
            let err = parse_join("k-manager-1", &text).unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
            assert!(!err.contains(bad), "{field}: the value shown: {err}");
        }
    }

    #[test]
    fn members_come_from_the_ready_condition_and_the_control_plane_label() {
        let m = parse_members(NODES).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(
            (m[0].role, m[0].ready, m[0].id.as_str()),
            (Role::Manager, true, "k-manager-1")
        );
        assert_eq!((m[1].role, m[1].ready), (Role::Worker, false));
        assert_eq!(m[1].status, "NotReady,SchedulingDisabled");
        assert_eq!((m[2].ready, m[2].status.as_str()), (false, "Unknown"));
        assert!(parse_members("No resources found").is_err());
    }

    #[test]
    fn clients_reach_the_api_server_where_ssh_reaches_the_node() {
        let config = "clusters:\n- cluster:\n    server: https://10.0.0.5:6443\n";
        let k = Kubernetes {
            settings: KubernetesSettings::default(),
        };
        assert_eq!(
            k.for_clients(config, "10.0.0.5", "198.51.100.5"),
            "clusters:\n- cluster:\n    server: https://198.51.100.5:6443\n"
        );
        assert_eq!(k.for_clients(config, "10.0.0.5", "10.0.0.5"), config);
        let behind_lb = Kubernetes {
            settings: KubernetesSettings {
                control_plane_endpoint: Some("k8s.example.org".into()),
                ..KubernetesSettings::default()
            },
        };
        assert_eq!(
            behind_lb.for_clients(config, "10.0.0.5", "198.51.100.5"),
            config
        );
    }

    #[test]
    fn probe_reads_membership_and_control() {
        let p = parse_probe("engine=running\njoined=true\nnode_name=k-worker-1\ncontrol=false\n");
        assert_eq!(
            p,
            NodeProbe {
                engine_running: true,
                joined: true,
                member_id: Some("k-worker-1".into()),
                control: false,
                config_stale: false,
                certificates: Default::default(),
            }
        );
        let p = parse_probe("engine=missing\n");
        assert!(!p.engine_running && !p.joined && p.member_id.is_none());
        let p = parse_probe(
            "engine=running\njoined=true\ncert_expires=1900000000\nca_expires=99999999999999\n",
        );
        assert_eq!(p.certificates.leaf, Some(1_900_000_000));
        assert_eq!(
            p.certificates.ca, None,
            "past year 2500: not a certificate's"
        );
    }

    #[test]
    fn join_credentials_stay_secret_and_differ_by_role() {
        let s = parse_join(
            "m",
            &format!("token=abcdef.0123456789abcdef\nca_hash={HASH}\ncertificate_key={KEY}\n"),
        )
        .unwrap();
        assert_eq!(s.worker.expose(), format!("abcdef.0123456789abcdef {HASH}"));
        assert_eq!(
            s.manager.expose(),
            format!("abcdef.0123456789abcdef {HASH} {KEY}")
        );
        assert!(!format!("{s:?}").contains("abcdef"));
        assert!(parse_join("m", "token=abcdef.0123456789abcdef\n").is_err());
    }

    #[test]
    fn endpoint_is_the_load_balancer_when_given() {
        let mut k = Kubernetes {
            settings: KubernetesSettings::default(),
        };
        assert_eq!(k.endpoint("10.0.0.2"), "10.0.0.2");
        k.settings.control_plane_endpoint = Some("lb.example.com".into());
        assert_eq!(k.endpoint("10.0.0.2"), "lb.example.com");
    }
}
