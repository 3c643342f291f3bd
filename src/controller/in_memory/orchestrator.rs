//! An orchestrator with Swarm's shape, kept in memory: the cluster is
//! initialised once on a manager, nodes join through it (managers one at a
//! time, as Raft takes them), a manager lists the members. A test fails or
//! holds a node's install and marks a member down. A restore from a backup
//! behaves as Swarm's does: the restored manager takes the backed-up
//! manager's id, the other members are listed but not Ready, and a node of
//! the cluster as it was still says it is joined (and a join is a no-op for
//! it, as `swarm/join.sh` finds it active) until it leaves. A test may
//! have members named after their nodes instead, as Kubernetes names its
//! Node objects: a node that registers again takes its old entry over.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use provision_provider::Role;

use crate::bootstrap::{NodeShell, ShellError};
use crate::orchestrator::{JoinSecrets, Member, NodeProbe, Orchestrator};
use crate::secret::Secret;
use crate::spec::Coe;

/// How long a manager's join takes (time is paused in the tests: free).
const MANAGER_JOIN: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct Swarmish {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    installed: BTreeSet<String>,
    exists: bool,
    inits: u32,
    /// By node name.
    members: BTreeMap<String, Member>,
    /// Members a restored cluster knows from its backup that no node is
    /// (until removed): listed, never Ready.
    ghosts: Vec<Member>,
    /// Machines still in the cluster as it was before a restore, by
    /// address (a new machine of the same node starts on a fresh engine):
    /// node name and member.
    stale: BTreeMap<String, (String, Member)>,
    /// Each member's address, by node name.
    addresses: BTreeMap<String, String>,
    restores: u32,
    next_id: u32,
    probes: BTreeMap<String, u32>,
    installs: BTreeMap<String, u32>,
    fail_install: BTreeSet<String>,
    hold_install: BTreeSet<String>,
    manager_joins_now: u32,
    manager_joins_most: u32,
    /// Nodes that report this as their member id once joined (a
    /// compromised node's word).
    claimed_ids: BTreeMap<String, String>,
    /// Members are named after their nodes (Kubernetes' Node objects).
    named_after_nodes: bool,
    /// Joins each node made so far.
    joins: BTreeMap<String, u32>,
}

impl Swarmish {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `node`'s installs fail from now on (a dead package mirror).
    pub fn fail_install(&self, node: &str) {
        self.state().fail_install.insert(node.to_string());
    }

    /// `node` reports `id` as its member id once it joins.
    pub fn claim_id(&self, node: &str, id: &str) {
        self.state()
            .claimed_ids
            .insert(node.to_string(), id.to_string());
    }

    /// Members are named after their nodes from now on, as Kubernetes
    /// names Node objects: a node that joins again is its old entry.
    pub fn name_members_after_nodes(&self) {
        self.state().named_after_nodes = true;
    }

    /// Joins of each node so far.
    pub fn joins(&self) -> BTreeMap<String, u32> {
        self.state().joins.clone()
    }

    /// `node`'s installs never finish from now on.
    pub fn hold_install(&self, node: &str) {
        self.state().hold_install.insert(node.to_string());
    }

    /// The member of `node` is listed Down, as a manager lists a node whose
    /// engine stopped answering.
    pub fn down(&self, node: &str) {
        if let Some(m) = self.state().members.get_mut(node) {
            m.ready = false;
            m.status = "Down Active".into();
        }
    }

    /// Nodes listed as ready members.
    pub fn ready(&self) -> BTreeSet<String> {
        self.state()
            .members
            .iter()
            .filter(|(_, m)| m.ready)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Probes of each node so far.
    pub fn probes(&self) -> BTreeMap<String, u32> {
        self.state().probes.clone()
    }

    /// Install attempts on each node so far.
    pub fn installs(&self) -> BTreeMap<String, u32> {
        self.state().installs.clone()
    }

    /// Times the cluster was initialised.
    pub fn inits(&self) -> u32 {
        self.state().inits
    }

    /// Entries `members` lists: nodes, and what a restore knew of that no
    /// node is.
    pub fn listed(&self) -> usize {
        let state = self.state();
        state.members.len() + state.ghosts.len()
    }

    /// Times the cluster was restored from a backup.
    pub fn restores(&self) -> u32 {
        self.state().restores
    }

    /// `node`'s member id now.
    pub fn member_id(&self, node: &str) -> Option<String> {
        self.state().members.get(node).map(|m| m.id.clone())
    }

    /// What a backup taken on `node` holds, for [`Orchestrator::restore`]:
    /// its member id (Swarm's raft state names the node by it).
    pub fn backup_of(&self, node: &str) -> Vec<u8> {
        self.member_id(node).unwrap_or_default().into_bytes()
    }

    /// The most manager joins that ran at once.
    pub fn most_manager_joins_at_once(&self) -> u32 {
        self.state().manager_joins_most
    }

    /// The member `node` was before a restore, if this machine of it is
    /// still in that cluster.
    fn stale(&self, node: &NodeShell) -> Option<Member> {
        self.state()
            .stale
            .get(node.private_address())
            .filter(|(name, _)| name == node.node())
            .map(|(_, m)| m.clone())
    }

    fn add_member(&self, node: &NodeShell, role: Role) {
        let (node, address) = (node.node(), node.private_address());
        let mut state = self.state();
        state
            .addresses
            .insert(node.to_string(), address.to_string());
        state.next_id += 1;
        let id = match state.claimed_ids.get(node) {
            Some(claimed) => claimed.clone(),
            None if state.named_after_nodes => node.to_string(),
            None => format!("node{:021}", state.next_id),
        };
        state.ghosts.retain(|m| m.id != id);
        state.members.insert(
            node.to_string(),
            Member {
                id,
                hostname: node.to_string(),
                role,
                ready: true,
                status: "Ready Active".into(),
            },
        );
    }
}

#[async_trait]
impl Orchestrator for Swarmish {
    fn coe(&self) -> Coe {
        Coe::Swarm
    }

    async fn install(&self, node: &NodeShell) -> Result<(), ShellError> {
        let (held, failed) = {
            let mut state = self.state();
            *state.installs.entry(node.node().to_string()).or_default() += 1;
            (
                state.hold_install.contains(node.node()),
                state.fail_install.contains(node.node()),
            )
        };
        if held {
            std::future::pending::<()>().await;
        }
        if failed {
            return Err(ShellError::Failed {
                node: node.node().to_string(),
                script: "swarm/install.sh".into(),
                code: 100,
                tail: vec!["E: Failed to fetch: the package mirror is down".into()],
            });
        }
        self.state().installed.insert(node.node().to_string());
        Ok(())
    }

    async fn probe(&self, node: &NodeShell) -> Result<NodeProbe, ShellError> {
        // As a channel open on a dead SSH session fails.
        if node.is_closed() {
            return Err(ShellError::Ssh(crate::bootstrap::SshError::Protocol {
                node: node.node().to_string(),
                what: "channel open",
                message: "the connection is closed".into(),
            }));
        }
        let stale = self.stale(node);
        let mut state = self.state();
        *state.probes.entry(node.node().to_string()).or_default() += 1;
        if let Some(old) = stale {
            return Ok(NodeProbe {
                engine_running: true,
                joined: true,
                member_id: Some(old.id.clone()),
                control: false,
                config_stale: false,
                certificates: Default::default(),
            });
        }
        let member = state.members.get(node.node());
        let joined = member.is_some();
        Ok(NodeProbe {
            engine_running: state.installed.contains(node.node()),
            joined,
            member_id: member.map(|m| m.id.clone()),
            control: joined && state.exists && member.is_some_and(|m| m.role == Role::Manager),
            config_stale: false,
            certificates: Default::default(),
        })
    }

    async fn init(&self, node: &NodeShell) -> Result<(), ShellError> {
        {
            let mut state = self.state();
            state.exists = true;
            state.inits += 1;
        }
        self.add_member(node, Role::Manager);
        Ok(())
    }

    async fn join_secrets(
        &self,
        _manager: &NodeShell,
        _kept: Option<&Secret>,
    ) -> Result<JoinSecrets, ShellError> {
        Ok(JoinSecrets {
            worker: Secret::new("worker-token"),
            manager: Secret::new("manager-token"),
            keep: None,
        })
    }

    async fn join(
        &self,
        node: &NodeShell,
        role: Role,
        _manager_address: &str,
        _secrets: &JoinSecrets,
    ) -> Result<Option<NodeProbe>, ShellError> {
        if !self.state().exists {
            return Err(ShellError::Failed {
                node: node.node().to_string(),
                script: "swarm/join.sh".into(),
                code: 1,
                tail: vec!["Error response from daemon: no swarm to join".into()],
            });
        }
        *self
            .state()
            .joins
            .entry(node.node().to_string())
            .or_default() += 1;
        if self.stale(node).is_some() {
            // `swarm/join.sh`: "already a swarm member", whichever swarm,
            // then its report.
            return self.probe(node).await.map(Some);
        }
        if role == Role::Manager {
            {
                let mut state = self.state();
                state.manager_joins_now += 1;
                state.manager_joins_most = state.manager_joins_most.max(state.manager_joins_now);
            }
            tokio::time::sleep(MANAGER_JOIN).await;
            self.state().manager_joins_now -= 1;
        }
        self.add_member(node, role);
        // `swarm/join.sh` ends with probe.sh's report.
        self.probe(node).await.map(Some)
    }

    async fn members(&self, _manager: &NodeShell) -> Result<Vec<Member>, ShellError> {
        let state = self.state();
        Ok(state
            .members
            .values()
            .chain(state.ghosts.iter())
            .cloned()
            .collect())
    }

    async fn drain(&self, _manager: &NodeShell, _member: &Member) -> Result<(), ShellError> {
        Ok(())
    }

    async fn remove_member(&self, _manager: &NodeShell, member: &Member) -> Result<(), ShellError> {
        let mut state = self.state();
        state.members.retain(|_, m| m.id != member.id);
        state.ghosts.retain(|m| m.id != member.id);
        Ok(())
    }

    async fn restore(&self, node: &NodeShell, archive: &Path) -> Result<(), ShellError> {
        use base64::Engine;
        let text = std::fs::read_to_string(archive)
            .map_err(|e| ShellError::unreadable(node.node(), "restore", e.to_string()))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| ShellError::unreadable(node.node(), "restore", "not base64".into()))?;
        let id = String::from_utf8(bytes)
            .map_err(|_| ShellError::unreadable(node.node(), "restore", "not an id".into()))?;
        let mut state = self.state();
        if state.members.contains_key(node.node()) {
            return Ok(());
        }
        // Every node of the cluster as it was still thinks it is in it; the
        // restored one lists them all, none Ready, but the node restored
        // here, which takes the backed-up manager's id.
        let before = std::mem::take(&mut state.members);
        for (name, m) in before {
            state.ghosts.push(Member {
                ready: false,
                status: "Unknown Active".into(),
                ..m.clone()
            });
            if let Some(address) = state.addresses.get(&name).cloned() {
                state.stale.insert(address, (name, m));
            }
        }
        state.ghosts.retain(|m| m.id != id);
        state
            .addresses
            .insert(node.node().to_string(), node.private_address().to_string());
        state.members.insert(
            node.node().to_string(),
            Member {
                id,
                hostname: node.node().to_string(),
                role: Role::Manager,
                ready: true,
                status: "Ready Active Leader".into(),
            },
        );
        state.exists = true;
        state.restores += 1;
        Ok(())
    }

    async fn leave_old_cluster(&self, node: &NodeShell) -> Result<(), ShellError> {
        self.state().stale.remove(node.private_address());
        Ok(())
    }

    fn client_env(&self, alias: &str, _: &str, _: &Path) -> Vec<(String, String)> {
        vec![("DOCKER_HOST".into(), format!("ssh://{alias}"))]
    }
}
