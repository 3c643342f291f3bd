//! Docker Swarm: `swarm init` on the first manager, further managers join one
//! at a time (the controller serialises them), workers in parallel.

use std::path::Path;

use async_trait::async_trait;
use minijinja::Value;
use provision_provider::Role;
use serde::Deserialize;

use super::reported::CertificateExpiry;
use super::{field, JoinSecrets, Member, NodeProbe, Orchestrator, DRAIN_WAIT_SECONDS};
use crate::bootstrap::{ArchiveInfo, NodeShell, Output, ShellError};
use crate::secret::Secret;
use crate::spec::Coe;

pub struct Swarm;

/// The fields of the engine's `/info` (Docker Engine API, SystemInfo) a
/// probe reads; the rest is ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EngineInfo {
    #[serde(default)]
    swarm: SwarmInfo,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SwarmInfo {
    #[serde(rename = "NodeID", default)]
    node_id: String,
    #[serde(default)]
    local_node_state: String,
    #[serde(default)]
    control_available: bool,
}

/// One node of the engine's `/nodes` (Docker Engine API, Node), as
/// `docker node ls` reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiNode {
    #[serde(rename = "ID")]
    id: String,
    #[serde(default)]
    description: NodeDescription,
    #[serde(default)]
    spec: NodeSpec,
    #[serde(default)]
    status: NodeStatus,
    /// Present on managers only.
    manager_status: Option<ManagerStatus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeDescription {
    #[serde(default)]
    hostname: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeSpec {
    #[serde(default)]
    availability: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeStatus {
    #[serde(default)]
    state: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManagerStatus {
    #[serde(default)]
    leader: bool,
    #[serde(default)]
    reachability: String,
}

/// Parses the probe script's report: `engine=` and, with the engine
/// running, `info=` its `/info` as JSON.
pub(crate) fn parse_probe(text: &str) -> Result<NodeProbe, String> {
    let engine_running = field(text, "engine") == Some("running");
    let info: EngineInfo = match field(text, "info") {
        Some(json) => serde_json::from_str(json)
            .map_err(|e| format!("unreadable engine info in the probe's report: {e}"))?,
        None if engine_running => {
            return Err("the probe's report has no engine info (`info=`)".into())
        }
        None => EngineInfo::default(),
    };
    let joined = engine_running && info.swarm.local_node_state == "active";
    Ok(NodeProbe {
        engine_running,
        joined,
        member_id: Some(info.swarm.node_id).filter(|id| joined && !id.is_empty()),
        control: joined && info.swarm.control_available,
        config_stale: false,
        certificates: CertificateExpiry {
            leaf: CertificateExpiry::parse_time(field(text, "cert_expires")),
            ca: CertificateExpiry::parse_time(field(text, "ca_expires")),
        },
    })
}

/// Parses the member list: the engine's `/nodes`, a JSON array.
pub(crate) fn parse_members(text: &str) -> Result<Vec<Member>, String> {
    let nodes: Vec<ApiNode> = serde_json::from_str(text.trim())
        .map_err(|e| format!("unreadable node list (the engine's /nodes): {e}"))?;
    Ok(nodes.into_iter().map(member_of).collect())
}

/// A node as `docker node ls` shows it: a manager is one with a manager
/// status, its words capitalised as the CLI prints them.
fn member_of(n: ApiNode) -> Member {
    let status = capitalised(&n.status.state);
    let availability = capitalised(&n.spec.availability);
    let (role, status) = match &n.manager_status {
        Some(m) => {
            let standing = if m.leader {
                "Leader".to_string()
            } else {
                capitalised(&m.reachability)
            };
            (Role::Manager, format!("{status} {availability} {standing}"))
        }
        None => (Role::Worker, format!("{status} {availability}")),
    };
    Member {
        role,
        ready: n.status.state == "ready",
        status,
        id: n.id,
        hostname: n.description.hostname,
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Why a manager cannot give a backup, from `swarm/backup-check.sh`.
pub(crate) fn backup_blocker(text: &str) -> Option<String> {
    if field(text, "swarm_state") != Some("active") || field(text, "manager") != Some("true") {
        return Some("it is not an active swarm manager".into());
    }
    match field(text, "autolock") {
        Some("false") => None,
        Some("true") => Some(
            "the swarm has autolock on: a backup of it restores only with the unlock key, which \
             provision does not keep. Keep the key (`docker swarm unlock-key -q`) somewhere safe, \
             then turn autolock off (`docker swarm update --autolock=false`) to back up with provision"
                .into(),
        ),
        _ => Some("it cannot say whether autolock is on (is it a manager with quorum?)".into()),
    }
}

/// What the scripts that act on another member are told about it.
fn member_vars(member: &Member) -> Vec<(&'static str, Value)> {
    vec![
        ("member_id", Value::from(member.id.as_str())),
        ("member_name", Value::from(member.hostname.as_str())),
    ]
}

fn parse_tokens(node: &str, text: &str) -> Result<JoinSecrets, ShellError> {
    let unreadable =
        |message: &str| ShellError::unreadable(node, "swarm/join-tokens.sh", message.to_string());
    let get = |key| -> Result<Secret, ShellError> {
        let token =
            field(text, key).ok_or_else(|| unreadable("the manager printed no join tokens"))?;
        // The message says which token, never what it was.
        if !is_swarm_token(token) {
            return Err(unreadable(&format!(
                "the manager's {key} join token is not of Swarm's form SWMTKN-1-<digest>-<secret>"
            )));
        }
        Ok(Secret::new(token))
    };
    Ok(JoinSecrets {
        worker: get("worker")?,
        manager: get("manager")?,
        keep: None,
    })
}

/// Swarm's join token form, `SWMTKN-<version>-<root CA digest>-<secret>`
/// (lower-case base 36): what a manager printed is passed on to a join's
/// JSON, so nothing else is.
fn is_swarm_token(token: &str) -> bool {
    let part = |p: &str, ok: fn(&u8) -> bool| !p.is_empty() && p.bytes().all(|b| ok(&b));
    let lower_alnum = |b: &u8| b.is_ascii_digit() || b.is_ascii_lowercase();
    match token.split('-').collect::<Vec<_>>()[..] {
        ["SWMTKN", version, digest, secret] => {
            part(version, u8::is_ascii_digit)
                && part(digest, lower_alnum)
                && part(secret, lower_alnum)
        }
        _ => false,
    }
}

#[async_trait]
impl Orchestrator for Swarm {
    fn coe(&self) -> Coe {
        Coe::Swarm
    }

    async fn install(&self, node: &NodeShell) -> Result<(), ShellError> {
        node.run_logged("swarm/install.sh", &[]).await
    }

    async fn probe(&self, node: &NodeShell) -> Result<NodeProbe, ShellError> {
        let script = "swarm/probe.sh";
        let out = node.query(script).await?;
        parse_probe(&out).map_err(|message| ShellError::unreadable(node.node(), script, message))
    }

    async fn init(&self, node: &NodeShell) -> Result<(), ShellError> {
        node.run_logged("swarm/init.sh", &[]).await
    }

    async fn join_secrets(
        &self,
        manager: &NodeShell,
        _kept: Option<&Secret>,
    ) -> Result<JoinSecrets, ShellError> {
        let out = manager
            .run("swarm/join-tokens.sh", &[], None, Output::Secret)
            .await?;
        parse_tokens(manager.node(), &out)
    }

    async fn join(
        &self,
        node: &NodeShell,
        role: Role,
        manager_address: &str,
        secrets: &JoinSecrets,
    ) -> Result<Option<NodeProbe>, ShellError> {
        let out = node
            .run(
                "swarm/join.sh",
                &[("manager_address", Value::from(manager_address))],
                Some(secrets.for_role(role)),
                Output::Log,
            )
            .await?;
        // The script ends with probe.sh's report.
        parse_probe(&out)
            .map(Some)
            .map_err(|message| ShellError::unreadable(node.node(), "swarm/join.sh", message))
    }

    async fn label_member(
        &self,
        manager: &NodeShell,
        member_id: &str,
        labels: &[String],
    ) -> Result<(), ShellError> {
        let labels: Vec<Value> = labels.iter().map(|l| Value::from(l.as_str())).collect();
        manager
            .run_logged(
                "swarm/labels.sh",
                &[
                    ("member_id", Value::from(member_id)),
                    ("labels", Value::from(labels)),
                ],
            )
            .await
    }

    async fn members(&self, manager: &NodeShell) -> Result<Vec<Member>, ShellError> {
        let out = manager.query("swarm/members.sh").await?;
        parse_members(&out)
            .map_err(|message| ShellError::unreadable(manager.node(), "swarm/members.sh", message))
    }

    async fn drain(&self, manager: &NodeShell, member: &Member) -> Result<(), ShellError> {
        let mut vars = member_vars(member);
        vars.push(("wait_seconds", Value::from(DRAIN_WAIT_SECONDS)));
        manager.run_logged("swarm/drain.sh", &vars).await
    }

    async fn remove_member(&self, manager: &NodeShell, member: &Member) -> Result<(), ShellError> {
        manager
            .run_logged("swarm/remove-member.sh", &member_vars(member))
            .await
    }

    fn client_env(
        &self,
        manager_alias: &str,
        _manager_address: &str,
        _cluster_dir: &Path,
    ) -> Vec<(String, String)> {
        vec![("DOCKER_HOST".into(), format!("ssh://{manager_alias}"))]
    }

    async fn recover_quorum(&self, survivor: &NodeShell) -> Result<(), ShellError> {
        survivor.run_logged("swarm/force-new-cluster.sh", &[]).await
    }

    async fn restore(&self, node: &NodeShell, archive: &Path) -> Result<(), ShellError> {
        node.run_with_file("swarm/restore.sh", &[], archive, Output::Log)
            .await
            .map(|_| ())
    }

    async fn rotate_ca(&self, manager: &NodeShell) -> Result<(), ShellError> {
        manager.run_logged("swarm/ca-rotate.sh", &[]).await
    }

    async fn leave_old_cluster(&self, node: &NodeShell) -> Result<(), ShellError> {
        node.run_logged("swarm/leave.sh", &[]).await
    }

    async fn backup_blocker(&self, manager: &NodeShell) -> Result<Option<String>, ShellError> {
        let out = manager.query("swarm/backup-check.sh").await?;
        Ok(backup_blocker(&out))
    }

    async fn backup(
        &self,
        manager: &NodeShell,
        to: &mut (dyn std::io::Write + Send),
    ) -> Result<ArchiveInfo, ShellError> {
        manager.run_archive("swarm/backup.sh", to).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_needs_a_manager_and_autolock_off() {
        assert_eq!(
            backup_blocker("swarm_state=active\nmanager=true\nautolock=false\n"),
            None
        );
        let locked = backup_blocker("swarm_state=active\nmanager=true\nautolock=true\n").unwrap();
        assert!(
            locked.contains("autolock") && locked.contains("unlock-key"),
            "{locked}"
        );
        assert!(backup_blocker("swarm_state=active\nmanager=false\nautolock=unknown\n").is_some());
        assert!(backup_blocker("swarm_state=inactive\nmanager=false\n").is_some());
        // A manager without quorum cannot read the cluster spec.
        assert!(
            backup_blocker("swarm_state=active\nmanager=true\nautolock=<no value>\n").is_some()
        );
    }

    /// `/info` as an engine answers it, cut to a few of its fields.
    fn info(state: &str, id: &str, control: bool) -> String {
        format!(
            "engine=running\ninfo={}\n",
            serde_json::json!({
                "ID": "engine-1", "Containers": 0, "ServerVersion": "20.10.24",
                "Swarm": {
                    "NodeID": id, "NodeAddr": "10.0.0.2", "LocalNodeState": state,
                    "ControlAvailable": control, "Error": "",
                    "RemoteManagers": [{"NodeID": "other", "Addr": "10.0.0.3:2377"}],
                },
            })
        )
    }

    #[test]
    fn probe_of_a_member_manager() {
        let p = parse_probe(&info("active", "abc123", true)).unwrap();
        assert_eq!(
            p,
            NodeProbe {
                engine_running: true,
                joined: true,
                member_id: Some("abc123".into()),
                control: true,
                config_stale: false,
                certificates: Default::default(),
            }
        );
    }

    #[test]
    fn probe_reads_certificate_expiry_within_bounds() {
        let text = format!(
            "{}cert_expires=1900000000\nca_expires=2500000000\n",
            info("active", "abc123", true)
        );
        let p = parse_probe(&text).unwrap();
        assert_eq!(p.certificates.leaf, Some(1_900_000_000));
        assert_eq!(p.certificates.ca, Some(2_500_000_000));
        assert_eq!(p.certificates.nearest(), Some(1_900_000_000));
        // A time no certificate has, or no number, is not used.
        let text = format!(
            "{}cert_expires=99\nca_expires=soon\n",
            info("active", "abc123", true)
        );
        let p = parse_probe(&text).unwrap();
        assert_eq!(p.certificates, Default::default());
    }

    #[test]
    fn probe_of_a_fresh_node() {
        let p = parse_probe(&info("inactive", "", false)).unwrap();
        assert!(p.engine_running && !p.joined && p.member_id.is_none() && !p.control);
        // An id and control mean nothing while the node is not active.
        let p = parse_probe(&info("pending", "abc123", true)).unwrap();
        assert!(!p.joined && p.member_id.is_none() && !p.control);
        let p = parse_probe("engine=missing\n").unwrap();
        assert!(!p.engine_running && !p.joined);
        let p = parse_probe("engine=stopped\n").unwrap();
        assert!(!p.engine_running && !p.joined);
    }

    #[test]
    fn a_probe_report_that_cannot_be_read_is_an_error() {
        let err = parse_probe("engine=running\ninfo={\"Swarm\":\n").unwrap_err();
        assert!(err.contains("unreadable engine info"), "{err}");
        let err = parse_probe("engine=running\n").unwrap_err();
        assert!(err.contains("no engine info"), "{err}");
        // A field of the wrong type is not taken for a default.
        assert!(
            parse_probe("engine=running\ninfo={\"Swarm\":{\"ControlAvailable\":\"yes\"}}\n")
                .is_err()
        );
    }

    #[test]
    fn members_from_the_engine_api() {
        let text = serde_json::json!([
            {"ID": "m1", "Description": {"Hostname": "web-manager-1"},
             "Spec": {"Role": "manager", "Availability": "active"},
             "Status": {"State": "ready", "Addr": "10.0.0.2"},
             "ManagerStatus": {"Leader": true, "Reachability": "reachable", "Addr": "10.0.0.2:2377"}},
            {"ID": "m2", "Description": {"Hostname": "web-manager-2"},
             "Spec": {"Role": "manager", "Availability": "drain"},
             "Status": {"State": "ready"},
             "ManagerStatus": {"Reachability": "unreachable"}},
            {"ID": "w1", "Description": {"Hostname": "web-worker-1"},
             "Spec": {"Role": "worker", "Availability": "active"},
             "Status": {"State": "down"}},
        ])
        .to_string();
        let m = parse_members(&text).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(
            (
                m[0].role,
                m[0].ready,
                m[0].status.as_str(),
                m[0].hostname.as_str()
            ),
            (Role::Manager, true, "Ready Active Leader", "web-manager-1")
        );
        assert_eq!(
            (m[1].role, m[1].status.as_str()),
            (Role::Manager, "Ready Drain Unreachable")
        );
        assert_eq!(
            (
                m[2].role,
                m[2].ready,
                m[2].id.as_str(),
                m[2].status.as_str()
            ),
            (Role::Worker, false, "w1", "Down Active")
        );
        assert!(parse_members("[]").unwrap().is_empty());
        assert!(parse_members("not json").is_err());
        // Lines of `docker node ls`, not the API's array: refused.
        assert!(parse_members("{\"ID\":\"m1\"}\n{\"ID\":\"w1\"}\n").is_err());
    }

    #[test]
    fn tokens_parse_and_stay_secret() {
        let s = parse_tokens(
            "m",
            "worker=SWMTKN-1-3pu6h-1awxw\nmanager=SWMTKN-1-3pu6h-9zk2q\n",
        )
        .unwrap();
        assert_eq!(s.worker.expose(), "SWMTKN-1-3pu6h-1awxw");
        assert_eq!(s.manager.expose(), "SWMTKN-1-3pu6h-9zk2q");
        assert!(!format!("{s:?}").contains("SWMTKN"));
        assert!(parse_tokens("m", "").is_err());
    }

    /// A manager's word is not taken on trust: a token goes into the join's
    /// JSON, so only Swarm's form is passed on, and the error does not
    /// repeat what was printed.
    #[test]
    fn tokens_not_of_swarms_form_are_refused() {
        for bad in [
            "SWMTKN-1-w",
            "SWMTKN-1-3pu6h-1awxw\",\"RemoteAddrs\":[\"203.0.113.9",
            "SWMTKN-1-3PU6H-1awxw",
            "SWMTKN-x-3pu6h-1awxw",
            "SWMTKN-1-3pu6h-1awxw-extra",
            "token",
        ] {
            let text = format!("worker={bad}\nmanager=SWMTKN-1-3pu6h-9zk2q\n");
            let err = parse_tokens("m", &text)
                .err()
                .unwrap_or_else(|| panic!("{bad} taken"));
            let message = err.to_string();
            assert!(
                message.contains("worker join token is not of Swarm's form"),
                "{message}"
            );
            assert!(!message.contains("3pu6h"), "{message}");
        }
    }
}
