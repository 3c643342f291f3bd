//! Act: carry out a plan. Each node runs its own pipeline (create → SSH →
//! install → join) so one slow node never holds the others; joins wait only
//! for the cluster to exist, and managers join one at a time.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use futures_util::future::join_all;
use provision_provider::{Addresses, Machine, MachineSpec, MachineState, ProviderError, Role};
use tokio::sync::{watch, Mutex, Semaphore};
use tracing::{debug, info, warn};

use super::connections::Connections;
use super::context::{ClusterContext, Controller, ControllerError};
use super::health::backoff;
use super::observe::unix_now;
use super::plan::{Action, Observed, Plan, RejoinCause};
use crate::bootstrap::NodeShell;
use crate::orchestrator::reported::refuse_probe;
use crate::orchestrator::reported::CertificateExpiry;
use crate::orchestrator::{JoinSecrets, Member, NodeProbe};
use crate::secret::Secret;
use crate::state::{NodePhase, NodeRecord, JOIN_STATE_FILE};

/// How often a new machine's addresses are looked for.
const ADDRESS_POLL: Duration = Duration::from_secs(1);

/// The cluster is ready to take joins once this holds a manager and secrets.
#[derive(Clone)]
enum Gate {
    Waiting,
    Open(Arc<(String, JoinSecrets)>),
    Failed(String),
}

struct Run<'a> {
    ctl: &'a Controller,
    ctx: &'a ClusterContext,
    observed: &'a Observed,
    connections: &'a Connections,
    gate_tx: watch::Sender<Gate>,
    /// Some node in this plan joins, so the join credentials are needed.
    joins_waiting: bool,
    manager_join: Mutex<()>,
    creates: Semaphore,
    /// The node this plan restores the cluster on from a backup, if any.
    plan_restores_on: Option<String>,
    /// The manager joins go through (the plan's `join_via`): also how a
    /// joined worker is labelled.
    join_via: Option<String>,
    /// The last listing of the cluster's machines, shared by nodes waiting
    /// for their addresses ([`Run::recent_listing`]).
    listing: Mutex<Option<(tokio::time::Instant, Arc<Vec<Machine>>)>>,
}

impl Controller {
    /// Runs `plan`, reusing the pass's open `connections`; returns every
    /// node's failure, after all nodes finished.
    pub async fn act(
        &self,
        ctx: &ClusterContext,
        plan: &Plan,
        observed: &Observed,
        connections: &Connections,
    ) -> Result<(), ControllerError> {
        let (gate_tx, _) = watch::channel(Gate::Waiting);
        let run = Run {
            ctl: self,
            ctx,
            observed,
            connections,
            gate_tx,
            joins_waiting: plan
                .any_step(|a| matches!(a, Action::Join { .. } | Action::Rejoin { .. })),
            manager_join: Mutex::new(()),
            creates: Semaphore::new(self.provider.create_concurrency().max(1)),
            plan_restores_on: plan
                .actions()
                .into_iter()
                .find(|a| matches!(a, Action::RestoreCluster { .. }))
                .map(|a| a.node().to_string()),
            join_via: plan.join_via.clone(),
            listing: Mutex::new(None),
        };

        self.may_go_on(ctx.name())?;
        // Records first: a crash after this point finds them.
        for change in &plan.changes {
            match change {
                Action::AddNode {
                    node,
                    role,
                    index,
                    attempt,
                    pool,
                    zone,
                    machine,
                } => {
                    let mut rec = NodeRecord::new(ctx.name(), node, *role, *index);
                    rec.start_attempt = *attempt;
                    rec.pool = pool.clone();
                    rec.zone = zone.clone();
                    rec.machine = machine.clone();
                    self.store.put_node(&rec)?;
                }
                Action::Retire { node, reason } => {
                    let mut rec = run.record(node)?;
                    rec.retiring = true;
                    self.store.put_node(&rec)?;
                    self.event(ctx, Some(node), &format!("retiring: {reason}"));
                }
                other => unreachable!("the planner puts only record changes here: {other:?}"),
            }
        }

        let initialising = plan.any_step(|a| {
            matches!(
                a,
                Action::InitCluster { .. } | Action::RestoreCluster { .. }
            )
        });
        let gate_opener = async {
            match (initialising, plan.join_via.as_deref()) {
                (true, _) => {}
                (false, Some(via)) => run.open_gate_through(via).await,
                // Never leave a join waiting for a gate nobody will open.
                (false, None) => {
                    run.gate_tx.send_replace(Gate::Failed(
                        "no manager with control is reachable to join through".into(),
                    ));
                }
            }
        };
        let nodes = join_all(
            plan.nodes
                .iter()
                .map(|n| run.pipeline(n.node.clone(), n.steps.clone())),
        );
        let (_, results) = tokio::join!(gate_opener, nodes);
        let errors: Vec<ControllerError> = results.into_iter().filter_map(Result::err).collect();
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.into_iter().next().expect("one error")),
            _ => Err(ControllerError::Nodes(errors)),
        }
    }

    pub(crate) fn event(&self, ctx: &ClusterContext, node: Option<&str>, message: &str) {
        if let Err(e) = self.store.add_event(ctx.name(), node, message) {
            warn!(error = %e, "cannot record event");
        }
    }
}

impl Run<'_> {
    fn record(&self, node: &str) -> Result<NodeRecord, ControllerError> {
        self.ctl
            .store
            .node(self.ctx.name(), node)?
            .ok_or_else(|| ControllerError::Node {
                node: node.to_string(),
                message: "has no record in the state store".into(),
            })
    }

    fn set_phase(&self, node: &str, phase: NodePhase) -> Result<(), ControllerError> {
        let mut rec = self.record(node)?;
        rec.phase = phase;
        self.ctl.store.put_node(&rec)?;
        self.ctl.reporter.phase(node, phase);
        Ok(())
    }

    fn addresses_of(&self, node: &str) -> Option<Addresses> {
        self.observed
            .machines
            .iter()
            .find(|m| m.node == node)
            .and_then(|m| m.addresses.clone())
    }

    /// The pass's connection to a manager, opened now if it has none.
    async fn manager_shell(&self, via: &str) -> Result<Arc<NodeShell>, ControllerError> {
        if let Some(shell) = self.connections.get(via) {
            return Ok(shell);
        }
        let rec = self.record(via)?;
        let addresses = rec
            .addresses
            .clone()
            .or_else(|| self.addresses_of(via))
            .ok_or_else(|| ControllerError::Node {
                node: via.to_string(),
                message: "has no address to reach it on".into(),
            })?;
        let shell = self
            .ctl
            .open_shell(self.ctx, &rec, &addresses, None)
            .await?;
        Ok(self.connections.keep(shell))
    }

    /// Drops what the last join credentials fetch kept: a restored cluster
    /// holds the state of its backup (Kubernetes: the kubeadm-certs Secret
    /// encrypted with the certificate key of that time), so a key kept
    /// since would fail every control-plane join until it expired. The next
    /// fetch makes new credentials. (Kept empty: the store has no delete
    /// of one file, and empty reads as nothing kept.)
    fn forget_join_state(&self) -> Result<(), ControllerError> {
        self.ctl
            .store
            .put_file(self.ctx.name(), JOIN_STATE_FILE, b"")?;
        Ok(())
    }

    /// The archive a restore names, checked and opened with the cluster's
    /// backup key (from the state store).
    async fn restore_archive(
        &self,
        request: &crate::spec::RestoreRequest,
    ) -> Result<crate::archive::OpenedArchive, ControllerError> {
        let key = self
            .ctl
            .store
            .file(self.ctx.name(), crate::archive::seal::KEY_FILE)?;
        Ok(crate::archive::read_archive(request, key.as_deref()).await?)
    }

    /// Join credentials from `manager`, handing it what the cluster's last
    /// fetch asked to keep and keeping what this one asks (per cluster, so
    /// it does not matter which manager answers).
    async fn join_secrets(&self, manager: &NodeShell) -> Result<JoinSecrets, ControllerError> {
        let name = self.ctx.name();
        let kept = self
            .ctl
            .store
            .file(name, JOIN_STATE_FILE)?
            .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
            .filter(|kept| !kept.is_empty())
            .map(Secret::new);
        let secrets = self
            .ctl
            .orchestrator
            .join_secrets(manager, kept.as_ref())
            .await?;
        if let Some(keep) = &secrets.keep {
            self.ctl
                .store
                .put_file(name, JOIN_STATE_FILE, keep.expose().as_bytes())?;
        }
        Ok(secrets)
    }

    async fn open_gate_through(&self, via: &str) {
        let result = async {
            let shell = self.manager_shell(via).await?;
            let secrets = self.join_secrets(&shell).await;
            let address = shell.private_address().to_string();
            Ok::<_, ControllerError>((address, secrets?))
        }
        .await;
        self.gate_tx.send_replace(match result {
            Ok(open) => Gate::Open(Arc::new(open)),
            Err(e) => Gate::Failed(format!("cannot get join credentials from {via}: {e}")),
        });
    }

    async fn wait_for_gate(&self) -> Result<Arc<(String, JoinSecrets)>, String> {
        let mut rx = self.gate_tx.subscribe();
        let gate = rx
            .wait_for(|g| !matches!(g, Gate::Waiting))
            .await
            .map_err(|_| "the cluster was never initialised".to_string())?
            .clone();
        match gate {
            Gate::Open(open) => Ok(open),
            Gate::Failed(why) => Err(why),
            Gate::Waiting => unreachable!("waited for a decided gate"),
        }
    }

    /// A manager with control to act through, other than `except`.
    fn control_manager(&self, except: &str) -> Result<String, ControllerError> {
        self.observed
            .probes
            .iter()
            .filter(|(name, _)| name.as_str() != except)
            .find(|(_, p)| p.has_control())
            .map(|(name, _)| name.clone())
            .ok_or_else(|| ControllerError::Node {
                node: except.to_string(),
                message: "no manager with control is reachable to act through".into(),
            })
    }

    /// Gives the member `node` joined as its pool's labels (and
    /// `provision.zone`), where the orchestrator keeps them in its
    /// membership: through itself when it is a manager (it has just joined
    /// or formed the cluster), else through the manager joins went through.
    async fn label(
        &self,
        node: &str,
        role: Role,
        member_id: Option<&str>,
    ) -> Result<(), ControllerError> {
        let Some(member_id) = member_id else {
            return Ok(());
        };
        let via = match role {
            Role::Manager => node.to_string(),
            Role::Worker => match &self.join_via {
                Some(via) => via.clone(),
                None => self.control_manager(node)?,
            },
        };
        let rec = self.record(node)?;
        let labels = crate::bootstrap::scripts::member_labels(&self.ctx.record, &rec);
        let shell = self.manager_shell(&via).await?;
        self.ctl
            .orchestrator
            .label_member(&shell, member_id, &labels)
            .await?;
        Ok(())
    }

    /// Drains or removes `member` through a manager with control (not `node` itself).
    async fn through_manager(
        &self,
        node: &str,
        member: &Member,
        drain: bool,
    ) -> Result<(), ControllerError> {
        let via = self.control_manager(node)?;
        let shell = self.manager_shell(&via).await?;
        if drain {
            self.ctl.orchestrator.drain(&shell, member).await?;
        } else {
            self.ctl.orchestrator.remove_member(&shell, member).await?;
        }
        Ok(())
    }

    /// One node's steps in order; on failure the node is marked failed and
    /// the error names it.
    async fn pipeline(&self, node: String, steps: Vec<Action>) -> Result<(), ControllerError> {
        let result = self.run_steps(&node, &steps).await;
        if let Err(e) = &result {
            if let Ok(mut rec) = self.record(&node) {
                // Back off before the next attempt.
                rec.failures += 1;
                let wait = backoff(&self.ctx.record.spec.health, rec.failures).as_secs();
                rec.retry_at = Some(unix_now() + wait as i64);
                rec.phase = NodePhase::Failed;
                let _ = self.ctl.store.put_node(&rec);
                self.ctl.reporter.phase(&node, NodePhase::Failed);
            }
            self.ctl
                .event(self.ctx, Some(&node), &format!("failed: {e}"));
            // Joins waiting on a failed init would wait forever.
            if steps.iter().any(|a| {
                matches!(
                    a,
                    Action::InitCluster { .. } | Action::RestoreCluster { .. }
                )
            }) {
                self.gate_tx.send_replace(Gate::Failed(format!(
                    "initialising the cluster on {node} failed"
                )));
            }
        }
        result
    }

    async fn run_steps(&self, node: &str, steps: &[Action]) -> Result<(), ControllerError> {
        let mut shell: Option<Arc<NodeShell>> = self.connections.get(node);
        let mut address = self.addresses_of(node);
        for step in steps {
            // A pass whose lock was lost, or whose process is stopping,
            // starts nothing more on a node or the cloud.
            self.ctl.may_go_on(self.ctx.name())?;
            match step {
                Action::CreateMachine { role, .. } => {
                    // A new machine: no connection of the old one is used.
                    shell = None;
                    self.connections.forget(node);
                    address = Some(self.create_machine(node, *role).await?);
                }
                Action::Bootstrap { .. } => {
                    let addr = match &address {
                        Some(a) => a.clone(),
                        None => self.wait_for_address(node).await?,
                    };
                    address = Some(addr.clone());
                    self.set_phase(node, NodePhase::Booting)?;
                    let s = self.ensure_shell(node, &addr, &mut shell).await?;
                    self.set_phase(node, NodePhase::Ssh)?;
                    self.set_phase(node, NodePhase::Installing)?;
                    self.ctl.orchestrator.install(s).await?;
                }
                Action::InitCluster { .. } => {
                    let addr = self.need_address(node, &address)?;
                    let s = self.ensure_shell(node, &addr, &mut shell).await?;
                    self.set_phase(node, NodePhase::Joining)?;
                    self.ctl.orchestrator.init(s).await?;
                    self.formed(node, s, &addr).await?;
                    let member = self.record(node)?.member_id;
                    self.label(node, Role::Manager, member.as_deref()).await?;
                    self.ctl
                        .event(self.ctx, Some(node), "initialised the cluster");
                }
                Action::RestoreCluster { .. } => {
                    let addr = self.need_address(node, &address)?;
                    let s = self.ensure_shell(node, &addr, &mut shell).await?;
                    self.set_phase(node, NodePhase::Joining)?;
                    let request = self.ctx.record.spec.restore.as_ref().ok_or_else(|| {
                        ControllerError::Node {
                            node: node.to_string(),
                            message: "the cluster's spec names no backup to restore from".into(),
                        }
                    })?;
                    let archive = self.restore_archive(request).await?;
                    self.ctl.orchestrator.restore(s, archive.path()).await?;
                    self.forget_join_state()?;
                    self.formed(node, s, &addr).await?;
                    warn!(node, backup = %request.archive, "restored the cluster from a backup on this new manager");
                    self.ctl.event(
                        self.ctx,
                        Some(node),
                        &format!(
                            "restored the cluster on this new manager from the backup of {} ({}); the other nodes join it next",
                            request.taken_at, request.archive
                        ),
                    );
                }
                Action::Join { role, .. } | Action::Rejoin { role, .. } => {
                    let rejoin = matches!(step, Action::Rejoin { .. });
                    let addr = self.need_address(node, &address)?;
                    let s = self.ensure_shell(node, &addr, &mut shell).await?;
                    self.set_phase(node, NodePhase::Joining)?;
                    let open =
                        self.wait_for_gate()
                            .await
                            .map_err(|message| ControllerError::Node {
                                node: node.to_string(),
                                message: format!("cannot join: {message}"),
                            })?;
                    let (via, secrets) = (&open.0, &open.1);
                    // Swarm Raft (and etcd) take one new member at a time.
                    let _turn = match role {
                        Role::Manager => Some(self.manager_join.lock().await),
                        Role::Worker => None,
                    };
                    if rejoin {
                        self.ctl.orchestrator.leave_old_cluster(s).await?;
                    }
                    self.seed_joining_manager(node, *role, s).await?;
                    let report = self.ctl.orchestrator.join(s, *role, via, secrets).await?;
                    let joined_as = self.joined(node, s, report).await?;
                    self.label(node, *role, joined_as.as_deref()).await?;
                    // Its entry from before the restore: the node left it,
                    // though it may still be listed Ready for a while (it
                    // had reconnected: the restored manager has the old
                    // address), so it is removed now, not left behind.
                    // Kubernetes names a member after its node: the entry
                    // the node joined as is that same one, and is kept.
                    if let Action::Rejoin { old: Some(old), .. } = step {
                        if joined_as.as_deref() != Some(old.id.as_str()) {
                            self.through_manager(node, old, false).await?;
                        }
                    }
                    let what = match step {
                        Action::Rejoin {
                            cause: RejoinCause::Restore,
                            ..
                        } => format!("left the cluster as it was before the restore and joined the restored one as {role}"),
                        Action::Rejoin {
                            cause: RejoinCause::CertificateExpired,
                            ..
                        } => format!("its certificate had expired: it left the cluster and joined again as {role}"),
                        _ => format!("joined as {role}"),
                    };
                    self.ctl.event(self.ctx, Some(node), &what);
                }
                Action::Drain { member, .. } => {
                    self.through_manager(node, member, true).await?;
                    self.ctl.event(self.ctx, Some(node), "drained");
                }
                Action::RemoveMember { member, .. } => {
                    self.through_manager(node, member, false).await?;
                    info!(node, member = %member.id, "removed from the cluster membership");
                    self.ctl.event(
                        self.ctx,
                        Some(node),
                        &format!("removed member {} ({})", member.id, member.status),
                    );
                }
                Action::DeleteMachine { machine_id, .. } => {
                    // A node's second machine never served it: only the
                    // one the node runs on leaves the orchestrator.
                    let serves_node = self.observed.machines.iter().any(|m| &m.id == machine_id);
                    if serves_node {
                        self.leave(node, &address, &mut shell).await;
                    }
                    shell = None;
                    self.connections.forget(node);
                    self.ctl
                        .provider
                        .delete_machine(&self.ctx.cluster, machine_id)
                        .await?;
                    self.ctl.event(
                        self.ctx,
                        Some(node),
                        &format!("deleted machine {machine_id}"),
                    );
                }
                Action::ForgetNode { .. } => {
                    self.ctl.store.delete_node(self.ctx.name(), node)?;
                    self.ctl.reporter.note(&format!("{node} left the cluster"));
                    self.ctl.event(self.ctx, Some(node), "left the cluster");
                }
                Action::Reconfigure { .. } => {
                    let addr = self.need_address(node, &address)?;
                    let s = self.ensure_shell(node, &addr, &mut shell).await?;
                    self.ctl.orchestrator.reconfigure(s).await?;
                    self.ctl.event(
                        self.ctx,
                        Some(node),
                        "reconfigured for the current managers",
                    );
                }
                Action::Upgrade { machine, .. } => {
                    let addr = self.need_address(node, &address)?;
                    let s = self.ensure_shell(node, &addr, &mut shell).await?;
                    self.ctl.orchestrator.upgrade(s).await?;
                    // A holder that lost the lock during the script records
                    // nothing: the next holder upgrades it again (idempotent).
                    self.ctl.store.still_held(self.ctx.name())?;
                    // Recorded only once done: a run killed midway upgrades
                    // it again (the script finishes what it finds).
                    let mut rec = self.record(node)?;
                    rec.machine = Some(machine.clone());
                    rec.failures = 0;
                    rec.retry_at = None;
                    self.ctl.store.put_node(&rec)?;
                    self.ctl.reporter.note(&format!("{node} upgraded in place"));
                    self.ctl.event(
                        self.ctx,
                        Some(node),
                        &format!("upgraded in place: its machines are now {machine}"),
                    );
                }
                Action::RenewCertificates { .. } | Action::RotateCa { .. } => {
                    let addr = self.need_address(node, &address)?;
                    let s = self.ensure_shell(node, &addr, &mut shell).await?;
                    let ca = matches!(step, Action::RotateCa { .. });
                    if ca {
                        self.ctl.orchestrator.rotate_ca(s).await?;
                    } else {
                        self.ctl.orchestrator.renew_certificates(s).await?;
                    }
                    let expires = self
                        .renewed(node, s, if ca { |c| c.ca } else { |c| c.leaf })
                        .await?;
                    self.ctl.store.still_held(self.ctx.name())?;
                    self.record_renewal(node, expires, ca)?;
                }
                Action::RecoverQuorum { .. } => {
                    let addr = self.need_address(node, &address)?;
                    let s = self.ensure_shell(node, &addr, &mut shell).await?;
                    self.ctl.orchestrator.recover_quorum(s).await?;
                    warn!(node, "re-formed the cluster on this surviving manager: a majority of the managers is gone");
                    self.ctl.event(
                        self.ctx,
                        Some(node),
                        "quorum restored: the cluster was re-formed on this surviving manager (a majority of the managers is gone for good); the gone managers are removed and replaced next",
                    );
                }
                Action::AddNode { .. } | Action::Retire { .. } => {
                    unreachable!("record changes are made before pipelines start")
                }
            }
        }
        Ok(())
    }

    /// Records a renewal on `node` of its certificates (`ca`: the cluster's
    /// root CA, which the rotation put on every node before it returned),
    /// and says so.
    fn record_renewal(&self, node: &str, expires: i64, ca: bool) -> Result<(), ControllerError> {
        for mut rec in self.ctl.store.nodes(self.ctx.name())? {
            if rec.name == node {
                rec.failures = 0;
                rec.retry_at = None;
                if !ca {
                    rec.cert_expires = Some(expires);
                }
            } else if !ca {
                continue;
            }
            if ca {
                rec.ca_expires = Some(expires);
            }
            self.ctl.store.put_node(&rec)?;
        }
        let what = if ca {
            "the cluster's root CA was rotated: the new one expires at"
        } else {
            "certificates renewed: they now expire at"
        };
        self.ctl.event(
            self.ctx,
            Some(node),
            &format!("{what} {}", crate::state::rfc3339(expires)),
        );
        Ok(())
    }

    /// What `node` now reports of the certificates a renewal renewed
    /// (`pick`), checked to lie beyond the renewal threshold: one that did
    /// not take is an error (the node backs off), not a renewal every pass.
    async fn renewed(
        &self,
        node: &str,
        shell: &NodeShell,
        pick: fn(&CertificateExpiry) -> Option<i64>,
    ) -> Result<i64, ControllerError> {
        let probe = self.ctl.orchestrator.probe(shell).await?;
        let before = self.ctx.record.spec.health.renew_certificates_before;
        match pick(&probe.certificates) {
            Some(at) if at - unix_now() >= before.as_secs() as i64 => Ok(at),
            found => Err(ControllerError::Node {
                node: node.to_string(),
                message: format!(
                    "the renewal ran but the certificates now expire at {}, still within \
                     health.renew_certificates_before ({}): look at the node",
                    found.map_or("an unknown time".into(), crate::state::rfc3339),
                    humantime::format_duration(before)
                ),
            }),
        }
    }

    /// After the cluster was initialised or restored on `node`: its client
    /// configuration kept, joins let through it, its membership recorded.
    async fn formed(
        &self,
        node: &str,
        shell: &NodeShell,
        addr: &Addresses,
    ) -> Result<(), ControllerError> {
        self.save_client_config(shell).await?;
        if self.joins_waiting {
            let secrets = self.join_secrets(shell).await?;
            // Members join over the private network.
            self.gate_tx
                .send_replace(Gate::Open(Arc::new((addr.private.clone(), secrets))));
        }
        self.joined(node, shell, None).await.map(|_| ())
    }

    /// Keeps the orchestrator's client configuration (a kubeconfig) in the
    /// state store beside the cluster's key (clients get a copy: `env`).
    async fn save_client_config(&self, manager: &NodeShell) -> Result<(), ControllerError> {
        if let Some(config) = self.ctl.orchestrator.client_config(manager).await? {
            self.ctl.store.put_file(
                self.ctx.name(),
                crate::state::CLIENT_CONFIG_FILE,
                config.expose().as_bytes(),
            )?;
        }
        Ok(())
    }

    /// Lets a node that is about to be deleted drop its cluster state, when
    /// it still answers; a dead node is deleted all the same.
    async fn leave(
        &self,
        node: &str,
        address: &Option<Addresses>,
        shell: &mut Option<Arc<NodeShell>>,
    ) {
        let Some(addr) = address else { return };
        if !self.ctl.orchestrator.profile().needs_leave {
            return;
        }
        if shell.is_none() {
            let Ok(rec) = self.record(node) else { return };
            match self.ctl.open_shell(self.ctx, &rec, addr, None).await {
                Ok(s) => *shell = Some(Arc::new(s)),
                Err(e) => {
                    debug!(node, error = %e, "not reachable before deletion");
                    return;
                }
            }
        }
        if let Some(s) = shell.as_ref() {
            if let Err(e) = self.ctl.orchestrator.leave(s).await {
                self.ctl.event(
                    self.ctx,
                    Some(node),
                    &format!("could not leave cleanly before deletion: {e}"),
                );
            }
        }
    }

    fn need_address(
        &self,
        node: &str,
        address: &Option<Addresses>,
    ) -> Result<Addresses, ControllerError> {
        address.clone().ok_or_else(|| ControllerError::Node {
            node: node.to_string(),
            message: "the machine has no address yet".into(),
        })
    }

    async fn ensure_shell<'s>(
        &self,
        node: &str,
        address: &Addresses,
        shell: &'s mut Option<Arc<NodeShell>>,
    ) -> Result<&'s NodeShell, ControllerError> {
        if shell.is_none() {
            let rec = self.record(node)?;
            let opened = self
                .ctl
                .open_shell(
                    self.ctx,
                    &rec,
                    address,
                    Some(self.ctx.record.spec.timeouts.ssh),
                )
                .await?;
            *shell = Some(self.connections.keep(opened));
        }
        Ok(shell.as_deref().expect("just set"))
    }

    /// Records the member id the node now reports (in `report`, or asked
    /// for now) and marks it ready; returns that id.
    async fn joined(
        &self,
        node: &str,
        shell: &NodeShell,
        report: Option<NodeProbe>,
    ) -> Result<Option<String>, ControllerError> {
        let probe = match report {
            Some(report) => report,
            None => self.ctl.orchestrator.probe(shell).await?,
        };
        // Its member id is the node's own word: checked before it is kept
        // (it reaches scripts run on managers), as an observation does.
        if let Some(why) = refuse_probe(node, &probe) {
            return Err(ControllerError::Node {
                node: node.to_string(),
                message: format!("after joining, {why}"),
            });
        }
        self.connections.note_report(node, &probe);
        if !probe.joined {
            return Err(ControllerError::Node {
                node: node.to_string(),
                message: "the join command succeeded but the node does not report membership"
                    .into(),
            });
        }
        let mut rec = self.record(node)?;
        rec.member_id = probe.member_id;
        rec.phase = NodePhase::Ready;
        rec.failures = 0;
        rec.retry_at = None;
        self.ctl.store.put_node(&rec)?;
        self.ctl.reporter.phase(node, NodePhase::Ready);
        Ok(rec.member_id)
    }

    /// Creates (or finds) the machine and records it; returns its addresses.
    async fn create_machine(&self, node: &str, role: Role) -> Result<Addresses, ControllerError> {
        self.set_phase(node, NodePhase::Creating)?;
        // Stored before the cloud is asked, so a re-run after a crash sends
        // the same token and gets the same machine.
        let mut rec = self.record(node)?;
        let launch_token = match &rec.launch_token {
            Some(t) => t.clone(),
            None => {
                let t = format!("{:032x}", rand::random::<u128>());
                rec.launch_token = Some(t.clone());
                self.ctl.store.put_node(&rec)?;
                t
            }
        };
        // The node's group gives its flavor and image; a pool the spec has
        // dropped meanwhile, the cluster's.
        let cluster = &self.ctx.record.spec;
        let group = cluster.group(role, rec.pool.as_deref());
        let spec = MachineSpec {
            node: node.to_string(),
            role,
            image: group
                .map_or(cluster.image.as_deref(), |g| g.image)
                .map(str::to_string),
            flavor: group
                .map_or(cluster.flavor.as_deref(), |g| g.flavor)
                .map(str::to_string),
            labels: Default::default(),
            zone: rec.zone.clone(),
            launch_token,
            private_address: self.fixed_address(node),
        };
        let machine = {
            let _permit = self.creates.acquire().await.expect("never closed");
            (|| self.ctl.provider.create_machine(&self.ctx.cluster, &spec))
                .retry(
                    ExponentialBuilder::default()
                        .with_min_delay(Duration::from_millis(500))
                        .with_max_times(4)
                        .with_jitter(),
                )
                .when(ProviderError::is_retryable)
                .await?
        };
        let mut rec = self.record(node)?;
        let new_machine = rec.machine_id.as_deref() != Some(machine.id.as_str());
        // The startup clock runs from here for a new machine, and for one an
        // observation recorded before any run got to time it.
        if new_machine || rec.machine_created_at.is_none() {
            rec.machine_created_at = Some(unix_now());
        }
        if new_machine {
            // A new machine has a new host key and is not a member yet.
            rec.host_key = None;
            rec.member_id = None;
            self.ctl.event(
                self.ctx,
                Some(node),
                &format!("created machine {}", machine.id),
            );
        }
        rec.machine_id = Some(machine.id.clone());
        if machine.addresses.is_some() {
            rec.addresses = machine.addresses.clone();
        }
        rec.phase = NodePhase::Booting;
        self.ctl.store.put_node(&rec)?;
        self.ctl.reporter.phase(node, NodePhase::Booting);
        if let Some(a) = machine.addresses {
            return Ok(a);
        }
        self.wait_for_address(node).await
    }

    /// A manager joining while a restore is under way gets what the
    /// orchestrator needs of the backup on every manager first.
    async fn seed_joining_manager(
        &self,
        node: &str,
        role: Role,
        shell: &NodeShell,
    ) -> Result<(), ControllerError> {
        let Some(request) = &self.ctx.record.spec.restore else {
            return Ok(());
        };
        if role != Role::Manager || !self.ctl.orchestrator.profile().seeds_joining_managers {
            return Ok(());
        }
        let archive = self.restore_archive(request).await?;
        self.ctl
            .orchestrator
            .seed_from_backup(shell, archive.path())
            .await?;
        info!(node, backup = %request.archive, "seeded from the backup before joining the restored cluster");
        Ok(())
    }

    /// The private address `node`'s machine must have: the backed-up
    /// manager's, for the manager a backup is restored on.
    fn fixed_address(&self, node: &str) -> Option<String> {
        if self.plan_restores_on.as_deref() != Some(node) {
            return None;
        }
        self.ctx
            .record
            .spec
            .restore
            .as_ref()
            .and_then(|r| r.private_address.clone())
    }

    /// Polls the machine list until the node's machine has its addresses.
    async fn wait_for_address(&self, node: &str) -> Result<Addresses, ControllerError> {
        let deadline = self.ctx.record.spec.timeouts.ssh;
        let poll = || async {
            let machines = self.recent_listing().await?;
            match machines.iter().find(|m| m.node == node).cloned() {
                Some(m) if matches!(m.state, MachineState::Error(_)) => {
                    Err(ControllerError::Provider(ProviderError::MachineFailed {
                        node: node.to_string(),
                        message: format!("{:?}", m.state),
                    }))
                }
                Some(m) if m.addresses.is_some() => Ok(m.addresses),
                _ => Ok(None),
            }
        };
        let started = tokio::time::Instant::now();
        loop {
            if let Some(addr) = poll().await? {
                let mut rec = self.record(node)?;
                rec.addresses = Some(addr.clone());
                self.ctl.store.put_node(&rec)?;
                return Ok(addr);
            }
            if started.elapsed() > deadline {
                return Err(ControllerError::Node {
                    node: node.to_string(),
                    message: format!(
                        "the machine got no address within {}",
                        humantime::format_duration(deadline)
                    ),
                });
            }
            tokio::time::sleep(ADDRESS_POLL).await;
        }
    }

    /// The cluster's machines as listed at most half a poll ago: every node
    /// of the run waiting for its address shares one listing, so N nodes
    /// cost about one cloud call a poll, not N (a 1+8 on the OpenStack test
    /// cloud made 37 calls in all, 44 when each node polled on its own).
    /// Callers that come while a listing is under way wait for it.
    async fn recent_listing(&self) -> Result<Arc<Vec<Machine>>, ProviderError> {
        let mut last = self.listing.lock().await;
        if let Some((at, machines)) = &*last {
            if at.elapsed() < ADDRESS_POLL / 2 {
                return Ok(machines.clone());
            }
        }
        let machines = Arc::new(self.ctl.provider.list_machines(&self.ctx.cluster).await?);
        *last = Some((tokio::time::Instant::now(), machines.clone()));
        Ok(machines)
    }
}
