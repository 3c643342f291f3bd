//! Apache Mesos as containers on the Docker install: ZooKeeper, mesos-master
//! and Marathon on every master, mesos-agent (docker containerizer) on every
//! worker, each with host networking and `--restart always`.
//!
//! Masters join the ZooKeeper ensemble one at a time through its dynamic
//! reconfiguration and leave it the same way; mesos-master's `--quorum` and
//! `--zk` follow the ensemble, and a master (or agent) running with an older
//! list says so in its probe (`config_stale`), so the controller restarts
//! the nodes one at a time. Membership: the ensemble's servers (masters, up
//! when mesos-master answers) and the master state API's agents (up when
//! active). An agent leaves through a maintenance window and machine down,
//! then is marked gone.

use std::path::Path;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use minijinja::Value;
use provision_provider::Role;
use serde::Deserialize;
use serde_json::json;

use super::{field, JoinSecrets, Member, NodeProbe, Orchestrator};
use crate::bootstrap::{ArchiveInfo, NodeShell, Output, ShellError};
use crate::secret::Secret;
use crate::spec::{Coe, MesosSettings};

pub struct Mesos {
    pub settings: MesosSettings,
}

#[derive(Debug, Deserialize)]
struct Agents {
    #[serde(default)]
    slaves: Vec<Agent>,
}

#[derive(Debug, Deserialize)]
struct Agent {
    id: String,
    hostname: String,
    #[serde(default)]
    active: bool,
}

/// `mesos/restore.sh`: the backup's ZooKeeper data and replicated log on a
/// first master, or only the log on a master `joining` the restored one.
async fn put_backup(node: &NodeShell, archive: &Path, joining: bool) -> Result<(), ShellError> {
    node.run_with_file(
        "mesos/restore.sh",
        &[("joining", Value::from(joining))],
        archive,
        Output::Log,
    )
    .await
    .map(|_| ())
}

/// Parses the probe script's `key=value` lines.
pub(crate) fn parse_probe(text: &str) -> NodeProbe {
    let joined = field(text, "joined") == Some("true");
    NodeProbe {
        engine_running: field(text, "engine") == Some("running"),
        joined,
        member_id: field(text, "member").filter(|_| joined).map(str::to_string),
        control: joined && field(text, "control") == Some("true"),
        config_stale: joined && field(text, "config_stale") == Some("true"),
        certificates: Default::default(),
    }
}

fn agents_of(text: &str) -> Result<Vec<Agent>, String> {
    let json = field(text, "agents").ok_or("the master printed no agents")?;
    serde_json::from_str::<Agents>(json)
        .map(|a| a.slaves)
        .map_err(|e| format!("unreadable /master/slaves: {e}"))
}

/// Members from members.sh: `master=HOST up|down` lines, then the master
/// state API's agents. A member's id is its address (mesos runs with
/// `MESOS_HOSTNAME` set to it).
pub(crate) fn parse_members(text: &str) -> Result<Vec<Member>, String> {
    let mut members: Vec<Member> = text
        .lines()
        .filter_map(|l| l.strip_prefix("master="))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(host, state)| Member {
            id: host.to_string(),
            hostname: host.to_string(),
            role: Role::Manager,
            ready: state.trim() == "up",
            status: format!("master {}", state.trim()),
        })
        .collect();
    members.extend(agents_of(text)?.into_iter().map(|a| {
        Member {
            id: a.hostname.clone(),
            hostname: a.hostname,
            role: Role::Worker,
            ready: a.active,
            status: if a.active {
                "agent active"
            } else {
                "agent inactive"
            }
            .to_string(),
        }
    }));
    Ok(members)
}

/// The maintenance schedule with `host`'s machine in a window from `now_ns`
/// (`Some`) or taken out of every window (`None`); other windows kept.
pub(crate) fn schedule_with(
    current: &str,
    host: &str,
    now_ns: Option<u128>,
) -> Result<String, String> {
    let mut schedule: serde_json::Value = if current.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(current)
            .map_err(|e| format!("unreadable maintenance schedule: {e}"))?
    };
    let machine = json!({"hostname": host, "ip": host});
    let windows = schedule
        .as_object_mut()
        .ok_or("the maintenance schedule is not an object")?
        .entry("windows")
        .or_insert_with(|| json!([]));
    let list = windows.as_array_mut().ok_or("windows is not a list")?;
    for w in list.iter_mut() {
        if let Some(ids) = w.get_mut("machine_ids").and_then(|m| m.as_array_mut()) {
            ids.retain(|m| m.get("hostname").and_then(|h| h.as_str()) != Some(host));
        }
    }
    list.retain(|w| w["machine_ids"].as_array().is_some_and(|m| !m.is_empty()));
    if let Some(now) = now_ns {
        list.push(json!({
            "machine_ids": [machine],
            "unavailability": {"start": {"nanoseconds": now as u64}},
        }));
    }
    Ok(schedule.to_string())
}

/// An agent id as Mesos makes them (letters, digits, `-`), or none.
fn is_agent_id(id: &str) -> bool {
    id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn unreadable(node: &NodeShell, script: &str, message: String) -> ShellError {
    ShellError::unreadable(node.node(), script, message)
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

impl Mesos {
    /// The agent id the masters hold for `host`, empty when they list none
    /// (a DOWN machine's agent is removed from `/master/slaves`).
    async fn agent_id(&self, manager: &NodeShell, host: &str) -> Result<String, ShellError> {
        // Masters restarted a moment ago (a new ensemble, in a rollout)
        // have no leader for a few seconds and list no agents: asked
        // again while Mesos elects one, about half a minute at most.
        let agents = (|| async {
            let out = manager.query("mesos/members.sh").await?;
            agents_of(&out).map_err(|m| unreadable(manager, "mesos/members.sh", m))
        })
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(std::time::Duration::from_secs(1))
                .with_max_delay(std::time::Duration::from_secs(5))
                .with_max_times(8),
        )
        .await?;
        let id = agents
            .into_iter()
            .find(|a| a.hostname == host)
            .map(|a| a.id)
            .unwrap_or_default();
        // The id goes into a JSON body a script posts as root on a master:
        // only the form Mesos gives ids (`<uuid>-S<n>`) passes.
        if !is_agent_id(&id) {
            return Err(unreadable(
                manager,
                "mesos/members.sh",
                format!("the masters list agent {host} with an id of an unexpected form"),
            ));
        }
        Ok(id)
    }

    async fn schedule(
        &self,
        manager: &NodeShell,
        host: &str,
        down_from: Option<u128>,
    ) -> Result<String, ShellError> {
        let current = manager
            .run("mesos/schedule.sh", &[], None, Output::Quiet)
            .await?;
        schedule_with(&current, host, down_from)
            .map_err(|m| unreadable(manager, "mesos/schedule.sh", m))
    }
}

#[async_trait]
impl Orchestrator for Mesos {
    fn coe(&self) -> Coe {
        Coe::Mesos
    }

    async fn install(&self, node: &NodeShell) -> Result<(), ShellError> {
        node.run_logged("mesos/install.sh", &[]).await
    }

    async fn probe(&self, node: &NodeShell) -> Result<NodeProbe, ShellError> {
        let out = node.query("mesos/probe.sh").await?;
        Ok(parse_probe(&out))
    }

    async fn init(&self, node: &NodeShell) -> Result<(), ShellError> {
        node.run_logged("mesos/zookeeper-init.sh", &[]).await?;
        node.run_logged("mesos/master.sh", &[]).await
    }

    /// Mesos nodes need no secret to join (the ensemble and masters admit
    /// whoever reaches them; the security group keeps the rest out).
    async fn join_secrets(
        &self,
        _manager: &NodeShell,
        _kept: Option<&Secret>,
    ) -> Result<JoinSecrets, ShellError> {
        Ok(JoinSecrets {
            worker: Secret::new(String::new()),
            manager: Secret::new(String::new()),
            keep: None,
        })
    }

    async fn join(
        &self,
        node: &NodeShell,
        role: Role,
        manager_address: &str,
        _secrets: &JoinSecrets,
    ) -> Result<Option<NodeProbe>, ShellError> {
        let via = [("via", Value::from(manager_address))];
        match role {
            Role::Manager => {
                node.run_logged("mesos/zookeeper-join.sh", &via).await?;
                node.run_logged("mesos/master.sh", &[]).await?;
            }
            Role::Worker => node.run_logged("mesos/agent.sh", &via).await?,
        }
        Ok(None)
    }

    async fn members(&self, manager: &NodeShell) -> Result<Vec<Member>, ShellError> {
        let out = manager.query("mesos/members.sh").await?;
        parse_members(&out).map_err(|m| unreadable(manager, "mesos/members.sh", m))
    }

    async fn drain(&self, manager: &NodeShell, member: &Member) -> Result<(), ShellError> {
        // Masters run no tasks; an agent's machine goes down for maintenance.
        if member.role == Role::Manager {
            return Ok(());
        }
        // The id first: machine/down removes the agent from the listing.
        let agent_id = self.agent_id(manager, &member.hostname).await?;
        let schedule = self
            .schedule(manager, &member.hostname, Some(now_ns()))
            .await?;
        manager
            .run_logged(
                "mesos/drain.sh",
                &[
                    ("member_host", Value::from(member.hostname.as_str())),
                    ("agent_id", Value::from(agent_id)),
                    ("schedule", Value::from(schedule)),
                ],
            )
            .await
    }

    async fn remove_member(&self, manager: &NodeShell, member: &Member) -> Result<(), ShellError> {
        let mut vars = vec![
            ("member_host", Value::from(member.hostname.as_str())),
            ("member_master", Value::from(member.role == Role::Manager)),
        ];
        if member.role == Role::Worker {
            // Empty once the machine is down: the script falls back to the
            // id drain.sh kept.
            let id = self.agent_id(manager, &member.hostname).await?;
            vars.push(("agent_id", Value::from(id)));
            vars.push((
                "schedule",
                Value::from(self.schedule(manager, &member.hostname, None).await?),
            ));
        }
        manager.run_logged("mesos/remove-member.sh", &vars).await
    }

    async fn leave(&self, node: &NodeShell) -> Result<(), ShellError> {
        node.run_logged("mesos/leave.sh", &[]).await
    }

    /// The backup's state put in place, then the first master's start.
    async fn restore(&self, node: &NodeShell, archive: &Path) -> Result<(), ShellError> {
        put_backup(node, archive, false).await?;
        self.init(node).await
    }

    /// The backup's replicated log on a master joining the restored
    /// cluster: with the restored master's, a quorum of VOTING replicas
    /// (src/log/recover.cpp: an EMPTY replica beside a single VOTING one
    /// under a quorum of two stays EMPTY for ever). The restored master
    /// cannot write before that quorum exists, so the copies agree.
    async fn seed_from_backup(&self, node: &NodeShell, archive: &Path) -> Result<(), ShellError> {
        put_backup(node, archive, true).await
    }

    /// Everything the node ran for the old cluster removed (an agent's
    /// work directory too, so it registers as a new agent).
    async fn leave_old_cluster(&self, node: &NodeShell) -> Result<(), ShellError> {
        node.run_logged("mesos/leave.sh", &[]).await
    }

    /// The replicated log is copied with mesos-master stopped on the
    /// master chosen; a master always may give one.
    async fn backup_blocker(&self, _manager: &NodeShell) -> Result<Option<String>, ShellError> {
        Ok(None)
    }

    async fn backup(
        &self,
        manager: &NodeShell,
        to: &mut (dyn std::io::Write + Send),
    ) -> Result<ArchiveInfo, ShellError> {
        manager.run_archive("mesos/backup.sh", to).await
    }

    async fn reconfigure(&self, node: &NodeShell) -> Result<(), ShellError> {
        node.run_logged("mesos/reconfigure.sh", &[("via", Value::from(""))])
            .await
    }

    fn client_env(
        &self,
        _manager_alias: &str,
        manager_address: &str,
        _cluster_dir: &Path,
    ) -> Vec<(String, String)> {
        vec![
            (
                "MESOS_MASTER_URL".into(),
                format!("http://{manager_address}:5050"),
            ),
            (
                "MARATHON_URL".into(),
                format!("http://{manager_address}:8080"),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ids_of_another_form_are_refused() {
        assert!(is_agent_id("8f2b6c1e-5c0d-4d2a-9f7e-0a1b2c3d4e5f-S0"));
        assert!(is_agent_id(""));
        assert!(!is_agent_id("x\"}, \"type\": \"TEARDOWN"));
        assert!(!is_agent_id("a\nb"));
    }

    #[test]
    fn probe_reads_membership_control_and_staleness() {
        let p = parse_probe(
            "engine=running\njoined=true\nmember=10.0.0.5\ncontrol=true\nconfig_stale=true\n",
        );
        assert_eq!(
            p,
            NodeProbe {
                engine_running: true,
                joined: true,
                member_id: Some("10.0.0.5".into()),
                control: true,
                config_stale: true,
                certificates: Default::default(),
            }
        );
        let p = parse_probe("engine=running\njoined=false\n");
        assert!(!p.joined && !p.config_stale && p.member_id.is_none());
    }

    #[test]
    fn members_are_ensemble_masters_and_state_api_agents() {
        let text = "master=10.0.0.2 up\nmaster=10.0.0.3 down\nagents={\"slaves\": [\
            {\"id\": \"a1-S0\", \"hostname\": \"10.0.0.7\", \"active\": true},\
            {\"id\": \"a1-S1\", \"hostname\": \"10.0.0.8\", \"active\": false}]}\n";
        let m = parse_members(text).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(
            (m[0].role, m[0].ready, m[0].id.as_str()),
            (Role::Manager, true, "10.0.0.2")
        );
        assert_eq!((m[1].ready, m[1].status.as_str()), (false, "master down"));
        assert_eq!((m[2].role, m[2].ready), (Role::Worker, true));
        assert_eq!(
            (m[3].id.as_str(), m[3].status.as_str()),
            ("10.0.0.8", "agent inactive")
        );
        assert!(parse_members("master=10.0.0.2 up\n").is_err());
    }

    #[test]
    fn the_schedule_gains_and_loses_a_machine_keeping_the_rest() {
        let current = r#"{"windows":[{"machine_ids":[{"hostname":"10.0.0.9","ip":"10.0.0.9"}],"unavailability":{"start":{"nanoseconds":1}}}]}"#;
        let added = schedule_with(current, "10.0.0.7", Some(42)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&added).unwrap();
        assert_eq!(v["windows"].as_array().unwrap().len(), 2);
        assert_eq!(v["windows"][1]["machine_ids"][0]["hostname"], "10.0.0.7");
        assert_eq!(
            v["windows"][1]["unavailability"]["start"]["nanoseconds"],
            42
        );
        let removed = schedule_with(&added, "10.0.0.7", None).unwrap();
        let v: serde_json::Value = serde_json::from_str(&removed).unwrap();
        assert_eq!(v["windows"].as_array().unwrap().len(), 1);
        assert_eq!(v["windows"][0]["machine_ids"][0]["hostname"], "10.0.0.9");
        assert_eq!(schedule_with("", "h", None).unwrap(), r#"{"windows":[]}"#);
    }
}
