//! Scale and heal on local containers, with the daemon running: killed and
//! paused workers are replaced, a killed manager is replaced with quorum
//! held throughout, max_unhealthy stops mass remediation, and scale
//! requests made while the daemon runs are applied.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::*;

/// `docker pause`, tried again if the engine could not freeze it at once.
fn pause(container: &str) {
    for _ in 0..20 {
        let out = std::process::Command::new("docker")
            .args(["pause", container])
            .output()
            .unwrap();
        if docker(&["inspect", "-f", "{{.State.Paused}}", container]).trim() == "true" {
            return;
        }
        eprintln!(
            "docker pause {container}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("could not pause {container}");
}

fn ready_names(nodes: &[(String, String)]) -> BTreeSet<String> {
    nodes
        .iter()
        .filter(|(_, s)| s == "Ready")
        .map(|(h, _)| h.clone())
        .collect()
}

/// Waits until the swarm lists exactly `count` nodes, all Ready, none of them `gone`.
fn wait_swarm(
    c: &Cluster,
    manager: &str,
    count: usize,
    gone: &[String],
    limit: Duration,
) -> BTreeSet<String> {
    let started = Instant::now();
    loop {
        let last = c.swarm_nodes(manager);
        let ready = ready_names(&last);
        if last.len() == count && ready.len() == count && gone.iter().all(|g| !ready.contains(g)) {
            return ready;
        }
        assert!(
            started.elapsed() < limit,
            "swarm of {} did not settle in {limit:?}: {last:?}",
            c.name
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A swarm whose lost machines are confirmed 5 s after first seen (the
/// default, 60 s, guards against one listing that misses a server).
fn create_healing(c: &Cluster, managers: u32, workers: u32) {
    c.create_from_template(
        &format!(
            "coe: swarm\nmanagers: {managers}\nworkers: {workers}\nhealth:\n  lost_timeout: 5s\n"
        ),
        &[],
    );
}

#[test]
fn daemon_replaces_killed_and_paused_workers_and_applies_scale_requests() {
    let a = Cluster::new("it-da");
    let b = Cluster::sharing("it-db", &a);
    for c in [&a, &b] {
        create_healing(c, 1, 2);
    }
    let mut daemon = Daemon::start(&a, "5s");

    // B loses a worker to `docker kill`; A has one frozen by `docker pause`.
    let killed = format!("{}-worker-1", b.name);
    let paused = format!("{}-worker-2", a.name);
    let t0 = Instant::now();
    docker(&["kill", &killed]);
    pause(&paused);

    for (c, old, how) in [(&b, &killed, "kill"), (&a, &paused, "pause")] {
        wait_swarm(
            c,
            &c.manager(),
            3,
            std::slice::from_ref(old),
            Duration::from_secs(180),
        );
        eprintln!(
            "measured: docker {how} of a worker to its replacement Ready: {:.1}s",
            t0.elapsed().as_secs_f64()
        );
    }
    for (c, old) in [(&b, &killed), (&a, &paused)] {
        wait_until(
            "the old machine to be deleted",
            Duration::from_secs(60),
            || !containers(&c.name).contains(old),
        );
        // The record is forgotten after the delete returns, in the same
        // pass: the container can be gone a moment before it is.
        wait_until(
            "the old node's record to be forgotten",
            Duration::from_secs(60),
            || c.status_nodes().len() == 3,
        );
        let nodes = c.status_nodes();
        assert_eq!(nodes.len(), 3, "{nodes:?}");
        assert!(
            nodes.iter().all(|(n, h)| n != old && h == "healthy"),
            "{nodes:?}"
        );
    }
    assert!(
        b.events().contains("retiring: unhealthy: machine stopped"),
        "{}",
        b.events()
    );
    for (c, id, fault) in [
        (&b, "11", "a worker killed (docker kill), daemon at 5 s"),
        (&a, "12", "a worker paused (docker pause), daemon at 5 s"),
    ] {
        record_fault_row(FaultRow {
            id,
            fault,
            happened: "replaced after lost_timeout (5 s); the old machine deleted once the new one was Ready".into(),
            remediations: remediations_in(&c.events()).to_string(),
            left_over: format!("none ({} machines for 3 nodes)", containers(&c.name).len()),
        });
    }

    // A scale request made while the daemon runs (again while a pass
    // holds the cluster, as a person would: the command says it is busy).
    wait_until(
        "the scale request to be taken",
        Duration::from_secs(60),
        || {
            let out = a.run(&["scale", &a.name, "--workers", "4"]);
            let text = output_text(&out);
            assert!(out.status.success() || text.contains("is busy"), "{text}");
            out.status.success()
        },
    );
    let workers = wait_swarm(&a, &a.manager(), 5, &[], Duration::from_secs(120));
    assert_eq!(workers.iter().filter(|n| n.contains("-worker-")).count(), 4);

    let metrics = daemon.metrics();
    assert!(metrics.contains("provision_clusters 2\n"), "{metrics}");
    assert!(
        metrics.contains(&format!(
            "provision_remediations_total{{cluster=\"{}\"}} 1",
            b.name
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("provision_reconcile_duration_seconds_count"),
        "{metrics}"
    );

    // SIGTERM in the middle of a replacement: a new daemon finishes it.
    let victim = a
        .status_nodes()
        .into_iter()
        .map(|(n, _)| n)
        .find(|n| n.contains("-worker-"))
        .unwrap();
    docker(&["kill", &victim]);
    wait_until(
        "the daemon to start replacing the node",
        Duration::from_secs(60),
        || a.recorded_events().contains(&format!("{victim}  retiring")),
    );
    assert!(
        daemon.stop(Duration::from_secs(15)),
        "the daemon did not stop cleanly on SIGTERM"
    );
    let _second = Daemon::start(&a, "5s");
    wait_swarm(
        &a,
        &a.manager(),
        5,
        std::slice::from_ref(&victim),
        Duration::from_secs(180),
    );
    wait_until(
        "the killed machine to be deleted",
        Duration::from_secs(60),
        || !containers(&a.name).contains(&victim),
    );
    record_fault_row(FaultRow {
        id: "17",
        fault: "SIGTERM to the daemon in the middle of a replacement",
        happened: "exited cleanly; a new daemon finished the replacement".into(),
        remediations: "1".into(),
        left_over: format!("none ({} machines for 5 nodes)", containers(&a.name).len()),
    });
}

#[test]
fn a_killed_manager_is_replaced_while_quorum_holds() {
    let c = Cluster::new("it-mgr");
    create_healing(&c, 3, 0);
    let _daemon = Daemon::start(&c, "5s");
    let killed = format!("{}-manager-2", c.name);
    let old_id = c.ssh(
        &killed,
        &["docker", "info", "--format", "{{.Swarm.NodeID}}"],
    );
    docker(&["kill", &killed]);
    // Throughout, a surviving manager answers `docker node ls`: Raft has quorum.
    let survivor = c.manager();
    let started = Instant::now();
    loop {
        let nodes = c.swarm_nodes(&survivor);
        let ready = ready_names(&nodes);
        let ids = c.ssh(&survivor, &["docker", "node", "ls", "-q"]);
        let managers = c.ssh(
            &survivor,
            &["docker", "node", "ls", "--filter", "role=manager", "-q"],
        );
        // The replacement takes the freed name; the old member is gone; the
        // new one counts as a manager once its Raft join is done.
        if nodes.len() == 3
            && ready.len() == 3
            && !ids.contains(old_id.trim())
            && managers.lines().count() == 3
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "manager not replaced: {nodes:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let managers = c.ssh(
        &survivor,
        &["docker", "node", "ls", "--filter", "role=manager", "-q"],
    );
    assert_eq!(managers.lines().count(), 3);
    // The dead manager left the membership before its replacement joined:
    // 3 voters with 1 dead became 2 with 2 alive, never 4 with 2 alive.
    // (The join's event is written just after Swarm lists the node Ready.)
    wait_until(
        "the replacement's join event",
        Duration::from_secs(30),
        || {
            let events = c.events();
            events
                .find(&format!("{killed}  removed member"))
                .is_some_and(|removed| {
                    events.rfind(&format!("{killed}  joined as manager")) > Some(removed)
                })
        },
    );
    let events = c.events();
    let removed = events
        .find(&format!("{killed}  removed member"))
        .unwrap_or_else(|| panic!("no removal event: {events}"));
    let joined = events
        .rfind(&format!("{killed}  joined as manager"))
        .unwrap_or_else(|| panic!("no join event: {events}"));
    assert!(
        removed < joined,
        "removed after the replacement joined: {events}"
    );
    record_fault_row(FaultRow {
        id: "10",
        fault: "a dead manager (docker kill) in a 3-manager cluster, daemon at 5 s",
        happened: "removed from the swarm (demote, rm) before its replacement joined; a survivor answered `docker node ls` throughout".into(),
        remediations: remediations_in(&events).to_string(),
        left_over: format!("none ({} machines for 3 managers)", containers(&c.name).len()),
    });
}

#[test]
fn above_max_unhealthy_nothing_is_remediated_and_the_reason_is_recorded() {
    let c = Cluster::new("it-max");
    c.create_from_template(
        "coe: swarm\nmanagers: 1\nworkers: 3\nhealth:\n  max_unhealthy: 1\n  lost_timeout: 1s\n",
        &[],
    );
    let before = containers(&c.name);
    for w in ["worker-1", "worker-2"] {
        docker(&["kill", &format!("{}-{w}", c.name)]);
    }
    // Seen lost twice, past lost_timeout: both are due, and that is too many.
    c.ok(&["heal", &c.name]);
    std::thread::sleep(Duration::from_secs(2));
    c.ok(&["heal", &c.name]);
    let mut after = containers(&c.name);
    let mut expected = before.clone();
    after.sort();
    expected.sort();
    assert_eq!(after, expected, "nothing may be created or deleted");
    let events = c.events();
    assert!(
        events.contains("2 of 4 nodes are unhealthy, above max_unhealthy 1"),
        "{events}"
    );
    let dry = c.ok(&["heal", &c.name, "--dry-run"]);
    assert!(dry.contains("above max_unhealthy"), "{dry}");
}

#[test]
fn nodes_remove_drains_and_managers_never_drop_to_zero() {
    let c = Cluster::new("it-rm");
    c.create(1, 2);
    let gone = format!("{}-worker-1", c.name);
    c.ok(&["nodes", "remove", &c.name, &gone]);
    let nodes = c.swarm_nodes(&c.manager());
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert!(!nodes.iter().any(|(h, _)| h == &gone));
    assert!(!containers(&c.name).contains(&gone));
    assert!(c.events().contains("drained"), "{}", c.events());

    let out = c.run(&["scale", &c.name, "--managers", "0", "--force"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least one manager"));
    c.ok(&["nodes", "add", &c.name, "--count", "1"]);
    assert_eq!(c.swarm_nodes(&c.manager()).len(), 3);
}

#[test]
fn daemon_once_skips_a_busy_cluster_and_logs_json() {
    let c = Cluster::new("it-once");
    c.create(1, 0);

    // An even manager count is allowed, with a warning about quorum.
    let out = c.run(&["scale", &c.name, "--managers", "2"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("odd count is better for quorum"));
    c.ok(&["scale", &c.name, "--managers", "1"]);

    let once = |c: &Cluster| {
        let out = c.run(&["--log-format", "json", "daemon", "--once", "--no-metrics"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        let lines: Vec<serde_json::Value> = err
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        lines
            .into_iter()
            .find(|l| l["fields"]["message"] == "round done")
            .expect("a round line")
    };
    let pass = once(&c);
    assert_eq!(pass["fields"]["busy"], 0, "{pass}");
    assert_eq!(pass["fields"]["clusters"], 1, "{pass}");

    // Another command holds the cluster: the daemon leaves it alone.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(c.dir().join("locks").join(format!("{}.lock", c.name)))
        .unwrap();
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    let pass = once(&c);
    assert_eq!(pass["fields"]["busy"], 1, "{pass}");
    drop(lock);
}

/// Every cluster is on its own timer: while cluster A's replacement hangs
/// in its install, a worker of cluster B killed meanwhile is replaced within
/// detection (lost_timeout + one interval) plus one node's provision time,
/// as if A were idle. (With one pass for all clusters, B waited for A.)
#[test]
fn a_hung_replacement_in_one_cluster_delays_no_other() {
    let a = Cluster::new("it-hang");
    let b = Cluster::sharing("it-free", &a);
    for c in [&a, &b] {
        create_healing(c, 1, 1);
    }
    // One node's provision time on this machine, now: B grows by a worker.
    let t = Instant::now();
    b.ok(&["scale", &b.name, "--workers", "2"]);
    let provision_one = t.elapsed();

    // A's installs hang from now on (B's scripts are the built-in ones).
    let scripts = a.dir().join("held-scripts");
    std::fs::create_dir_all(scripts.join("swarm")).unwrap();
    std::fs::write(
        scripts.join("swarm/install.sh.j2"),
        format!(
            "#!/usr/bin/env bash\n{{% if cluster.name == \"{}\" %}}echo 'install held (test)'; sleep 900{{% endif %}}\n{{% include \"docker/install.sh\" %}}\n",
            a.name
        ),
    )
    .unwrap();
    let _daemon = Daemon::start_with(&a, "5s", &["--scripts-dir", scripts.to_str().unwrap()]);

    docker(&["kill", &format!("{}-worker-1", a.name)]);
    // Its replacement takes the lowest free index (worker-1 is still
    // recorded, retiring, until the replacement is Ready).
    wait_until(
        "A's replacement to hang in its install",
        Duration::from_secs(120),
        || {
            std::fs::read_dir(a.log_dir()).is_ok_and(|logs| {
                logs.flatten().any(|log| {
                    std::fs::read_to_string(log.path())
                        .unwrap_or_default()
                        .contains("install held (test)")
                })
            })
        },
    );

    let b_worker = format!("{}-worker-1", b.name);
    let t0 = Instant::now();
    docker(&["kill", &b_worker]);
    let detection = Duration::from_secs(5 + 5);
    let bound = detection + provision_one + Duration::from_secs(20);
    wait_swarm(&b, &b.manager(), 3, std::slice::from_ref(&b_worker), bound);
    let took = t0.elapsed();
    eprintln!(
        "measured: B's worker replaced in {:.1}s while A's install hung (one node's provision {:.1}s, detection {}s)",
        took.as_secs_f64(),
        provision_one.as_secs_f64(),
        detection.as_secs()
    );
    // A is still held all the while (its replacement made, never joined):
    // the two overlapped. (With `--workers 1` this test fails: B waits.)
    let events = a.recorded_events();
    assert_eq!(events.matches("created machine").count(), 3, "{events}");
    assert_eq!(
        events.matches("joined as worker").count(),
        1,
        "A's replacement joined: {events}"
    );
}
