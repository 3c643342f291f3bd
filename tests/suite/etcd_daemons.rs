//! Several daemons on one real 3-member etcd, healing real local Swarm
//! clusters: they divide the clusters, one killed by `kill -9` in the
//! middle of a replacement has it finished by the other within the lease
//! TTL and an interval, an etcd member lost stops nothing, etcd lost
//! altogether stops every action until it is back, and a scale request
//! written by a CLI is acted on through the watch, not at the next interval.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::etcd::Etcd;
use crate::common::*;

const LEASE_TTL: &str = "5s";

/// A 1+1 swarm whose lost machines are confirmed 5 s after first seen.
fn create_healing(c: &Cluster) {
    c.create_from_template(
        "coe: swarm\nmanagers: 1\nworkers: 1\nhealth:\n  lost_timeout: 5s\n",
        &[],
    );
}

/// Waits until the swarm lists `count` Ready nodes, none of them `gone`.
fn wait_swarm(c: &Cluster, count: usize, gone: &str, limit: Duration) {
    let manager = c.manager();
    wait_until(
        &format!("{count} Ready nodes in {} without {gone}", c.name),
        limit,
        || {
            let nodes = c.swarm_nodes(&manager);
            let ready: BTreeSet<&String> = nodes
                .iter()
                .filter(|(_, s)| s == "Ready")
                .map(|(h, _)| h)
                .collect();
            nodes.len() == count && ready.len() == count && !ready.iter().any(|h| *h == gone)
        },
    );
}

fn owner(etcd: &Etcd, prefix: &str, cluster: &str) -> Option<String> {
    etcd.get(&format!("/{prefix}/owners/{cluster}"))
}

#[test]
fn daemons_divide_clusters_and_one_finishes_what_a_killed_one_started() {
    let mut etcd = Etcd::start(3);
    let url = etcd.state_url("ha");
    let x = Cluster::on_etcd("it-hx", &url);
    let y = Cluster::sharing("it-hy", &x);
    create_healing(&x);
    create_healing(&y);
    let daemons = [x.other_machine(), x.other_machine()];
    let mut running: Vec<Daemon> = daemons
        .iter()
        .map(|m| Daemon::start_with(m, "5s", &["--lease-ttl", LEASE_TTL]))
        .collect();
    wait_until(
        "both clusters claimed, one by each daemon",
        Duration::from_secs(60),
        || match (owner(&etcd, "ha", &x.name), owner(&etcd, "ha", &y.name)) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        },
    );
    let first = owner(&etcd, "ha", &x.name).unwrap();
    let pid_of = |id: &str| -> u32 { id.rsplit('-').nth(1).unwrap().parse().unwrap() };
    let holder = running
        .iter()
        .position(|d| d.child.id() == pid_of(&first))
        .expect("x's owner is one of the two daemons");

    // One etcd member gone: nothing stops.
    etcd.kill_member(0);

    // x loses its worker; its daemon records the replacement, then dies.
    let lost = format!("{}-worker-1", x.name);
    docker(&["kill", &lost]);
    wait_until("the replacement recorded", Duration::from_secs(120), || {
        etcd.keys(&format!("/ha/nodes/{}/", x.name)).len() >= 3
    });
    kill9(&mut running[holder].child);
    let killed = Instant::now();
    wait_until(
        "the other daemon to claim x",
        Duration::from_secs(60),
        || owner(&etcd, "ha", &x.name).is_some_and(|o| o != first),
    );
    let takeover = killed.elapsed();
    wait_swarm(&x, 2, &lost, Duration::from_secs(180));
    eprintln!(
        "measured: kill -9 of the daemon mid-replacement to the other's claim {:.1}s, to the replacement Ready {:.1}s (lease TTL {LEASE_TTL}, interval 5s, one etcd member down)",
        takeover.as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );
    wait_until("the lost machine deleted", Duration::from_secs(60), || {
        !containers(&x.name).contains(&lost)
    });
    assert_eq!(containers(&x.name).len(), 2, "{:?}", containers(&x.name));
    // The survivor holds both clusters now.
    assert_eq!(owner(&etcd, "ha", &y.name), owner(&etcd, "ha", &x.name));
    record_fault_row(FaultRow {
        id: "22",
        fault: "kill -9 of the daemon holding a cluster mid-replacement (2 daemons on etcd, one etcd member down)",
        happened: format!(
            "the other daemon claimed it after {:.1}s and finished the replacement",
            takeover.as_secs_f64()
        ),
        remediations: "1".into(),
        left_over: "none".into(),
    });
}

#[test]
fn without_etcd_the_daemon_acts_on_nothing_until_it_is_back() {
    let mut etcd = Etcd::start(3);
    let c = Cluster::on_etcd("it-hz", &etcd.state_url("down"));
    create_healing(&c);
    let machine = c.other_machine();
    let _daemon = Daemon::start_with(&machine, "2s", &["--lease-ttl", LEASE_TTL]);
    wait_until("the cluster claimed", Duration::from_secs(60), || {
        owner(&etcd, "down", &c.name).is_some()
    });
    std::thread::sleep(Duration::from_secs(3));
    let before: BTreeSet<String> = containers(&c.name).into_iter().collect();

    etcd.kill_all();
    let lost = format!("{}-worker-1", c.name);
    docker(&["kill", &lost]);
    // Far past lost_timeout (5 s) and many intervals: nothing is created.
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(25) {
        let now: BTreeSet<String> = containers(&c.name).into_iter().collect();
        assert!(
            now.is_subset(&before),
            "a machine was created while etcd was down: {now:?} (before: {before:?})"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let back = Instant::now();
    etcd.start_all();
    wait_swarm(&c, 2, &lost, Duration::from_secs(180));
    eprintln!(
        "measured: etcd back to the replacement Ready: {:.1}s (no action in the 25 s without etcd)",
        back.elapsed().as_secs_f64()
    );
    record_fault_row(FaultRow {
        id: "23",
        fault: "every etcd member stopped for 25 s while a worker is killed",
        happened: "no action without etcd; replaced once etcd was back".into(),
        remediations: "1 (after etcd came back)".into(),
        left_over: "none".into(),
    });
}

#[test]
fn a_scale_request_is_acted_on_through_the_watch() {
    let etcd = Etcd::start(1);
    let c = Cluster::on_etcd("it-hw", &etcd.state_url("watch"));
    create_healing(&c);
    // An interval far longer than the test: only the watch can explain an action.
    let machine = c.other_machine();
    let _daemon = Daemon::start_with(&machine, "10m", &["--lease-ttl", LEASE_TTL]);
    wait_until("the cluster claimed", Duration::from_secs(60), || {
        owner(&etcd, "watch", &c.name).is_some()
    });
    // Let the first pass (at start) end.
    std::thread::sleep(Duration::from_secs(5));
    let written = Instant::now();
    let out = c.ok(&["scale", &c.name, "--workers", "2", "--no-wait"]);
    assert!(out.contains("requested"), "{out}");
    let new = format!("/watch/nodes/{}/{}-worker-2", c.name, c.name);
    wait_until(
        "the daemon to record the new worker",
        Duration::from_secs(60),
        || etcd.get(&new).is_some(),
    );
    let first_action = written.elapsed();
    wait_until(
        "the new worker's container",
        Duration::from_secs(60),
        || containers(&c.name).len() == 3,
    );
    eprintln!(
        "measured: scale written to the daemon's first action {:.2}s, to the machine {:.2}s (interval 10m)",
        first_action.as_secs_f64(),
        written.elapsed().as_secs_f64()
    );
    wait_swarm(&c, 3, "-", Duration::from_secs(120));
}
