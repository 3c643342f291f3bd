//! Docker Swarm: `swarm init` on the first manager, further managers join one
//! at a time (the controller serialises them), workers in parallel.

use std::path::Path;

use async_trait::async_trait;
use minijinja::Value;
use provision_provider::Role;
use serde::Deserialize;

use super::{
    field, parse_archive, JoinSecrets, Member, NodeProbe, Orchestrator, StateArchive,
    DRAIN_WAIT_SECONDS,
};
use crate::bootstrap::{NodeShell, Output, ShellError};
use crate::secret::Secret;
use crate::spec::Coe;

pub struct Swarm;

/// One line of `docker node ls --format '{{json .}}'`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeLine {
    #[serde(rename = "ID")]
    id: String,
    hostname: String,
    status: String,
    #[serde(default)]
    availability: String,
    #[serde(default)]
    manager_status: String,
}

/// Parses the probe script's `key=value` lines.
pub(crate) fn parse_probe(text: &str) -> NodeProbe {
    let joined = field(text, "swarm_state") == Some("active");
    NodeProbe {
        engine_running: field(text, "engine") == Some("running"),
        joined,
        member_id: field(text, "node_id")
            .filter(|_| joined)
            .map(str::to_string),
        control: joined && field(text, "control") == Some("true"),
        config_stale: false,
    }
}

pub(crate) fn parse_members(text: &str) -> Result<Vec<Member>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let n: NodeLine = serde_json::from_str(line)
                .map_err(|e| format!("unreadable `docker node ls` line: {e}"))?;
            Ok(Member {
                role: if n.manager_status.is_empty() {
                    Role::Worker
                } else {
                    Role::Manager
                },
                ready: n.status == "Ready",
                status: if n.manager_status.is_empty() {
                    format!("{} {}", n.status, n.availability)
                } else {
                    format!("{} {} {}", n.status, n.availability, n.manager_status)
                },
                id: n.id,
                hostname: n.hostname,
            })
        })
        .collect()
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
    let get = |key| field(text, key).map(Secret::new);
    match (get("worker"), get("manager")) {
        (Some(worker), Some(manager)) => Ok(JoinSecrets {
            worker,
            manager,
            keep: None,
        }),
        _ => Err(ShellError::unreadable(
            node,
            "swarm/join-tokens.sh",
            "the manager printed no join tokens".into(),
        )),
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
        let out = node.query("swarm/probe.sh").await?;
        Ok(parse_probe(&out))
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
        Ok(Some(parse_probe(&out)))
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

    fn recovers_quorum(&self) -> bool {
        true
    }

    async fn recover_quorum(&self, survivor: &NodeShell) -> Result<(), ShellError> {
        survivor.run_logged("swarm/force-new-cluster.sh", &[]).await
    }

    fn restores_from_backup(&self) -> bool {
        true
    }

    async fn restore(&self, node: &NodeShell, archive: &Secret) -> Result<(), ShellError> {
        node.run("swarm/restore.sh", &[], Some(archive), Output::Log)
            .await
            .map(|_| ())
    }

    async fn leave_old_cluster(&self, node: &NodeShell) -> Result<(), ShellError> {
        node.run_logged("swarm/leave.sh", &[]).await
    }

    async fn backup_blocker(&self, manager: &NodeShell) -> Result<Option<String>, ShellError> {
        let out = manager.query("swarm/backup-check.sh").await?;
        Ok(backup_blocker(&out))
    }

    async fn backup(&self, manager: &NodeShell) -> Result<StateArchive, ShellError> {
        let script = "swarm/backup.sh";
        let out = manager.run(script, &[], None, Output::Secret).await?;
        parse_archive(manager.node(), script, &out)
    }

    fn client_hint(&self) -> &'static str {
        "docker node ls"
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

    #[test]
    fn probe_of_a_member_manager() {
        let p = parse_probe("engine=running\nswarm_state=active\nnode_id=abc123\ncontrol=true\n");
        assert_eq!(
            p,
            NodeProbe {
                engine_running: true,
                joined: true,
                member_id: Some("abc123".into()),
                control: true,
                config_stale: false,
            }
        );
    }

    #[test]
    fn probe_of_a_fresh_node() {
        let p = parse_probe("engine=running\nswarm_state=inactive\nnode_id=\ncontrol=false\n");
        assert!(p.engine_running && !p.joined && p.member_id.is_none() && !p.control);
        let p = parse_probe("engine=missing\n");
        assert!(!p.engine_running && !p.joined);
    }

    #[test]
    fn members_from_node_ls() {
        let text = r#"{"Availability":"Active","EngineVersion":"20.10.24","Hostname":"web-manager-1","ID":"m1","ManagerStatus":"Leader","Self":true,"Status":"Ready","TLSStatus":"Ready"}
{"Availability":"Active","EngineVersion":"20.10.24","Hostname":"web-worker-1","ID":"w1","ManagerStatus":"","Self":false,"Status":"Down","TLSStatus":"Ready"}
"#;
        let m = parse_members(text).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].role, m[0].ready), (Role::Manager, true));
        assert_eq!(
            (m[1].role, m[1].ready, m[1].id.as_str()),
            (Role::Worker, false, "w1")
        );
        assert!(parse_members("not json").is_err());
    }

    #[test]
    fn tokens_parse_and_stay_secret() {
        let s = parse_tokens("m", "worker=SWMTKN-1-w\nmanager=SWMTKN-1-m\n").unwrap();
        assert_eq!(s.worker.expose(), "SWMTKN-1-w");
        assert!(!format!("{s:?}").contains("SWMTKN"));
        assert!(parse_tokens("m", "").is_err());
    }
}
