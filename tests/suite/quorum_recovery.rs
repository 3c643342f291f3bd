//! Lost quorum on a real 3-manager Swarm with the daemon running: two
//! managers' machines deleted (`docker rm -f`) → the daemon re-forms the
//! swarm on the survivor (`--force-new-cluster`) with no operator, removes
//! and replaces the gone managers, and the service is still defined and
//! running; two managers cut off by a partition → no recovery, only events.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::*;

/// Lost machines confirmed 5 s after first seen; the rest as by default
/// (workers re-register with the re-formed swarm within its grace).
const TEMPLATE: &str = "coe: swarm\nmanagers: 3\nworkers: 2\nhealth:\n  lost_timeout: 5s\n";

/// The same with unreachable nodes due after 5 s, for the partition.
const QUICK: &str =
    "coe: swarm\nmanagers: 3\nworkers: 2\nhealth:\n  lost_timeout: 5s\n  ssh_timeout: 5s\n  not_ready_timeout: 5s\n";

/// The managers `docker node ls` on `via` lists Ready, and the workers.
fn ready(c: &Cluster, via: &str) -> (usize, usize) {
    let out = c.run(&[
        "ssh",
        &c.name,
        via,
        "--",
        "docker",
        "node",
        "ls",
        "--format",
        "{{.Status}} {{.ManagerStatus}}",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("Ready")).collect();
    let managers = lines
        .iter()
        .filter(|l| l.split_whitespace().nth(1).is_some())
        .count();
    (managers, lines.len() - managers)
}

/// A service on the two workers, from a busybox image loaded on them.
fn run_service(c: &Cluster) {
    let workers: Vec<String> = (1..=2).map(|i| format!("{}-worker-{i}", c.name)).collect();
    load_busybox(c, &workers);
    c.ssh(
        &c.manager(),
        &[
            "docker",
            "service",
            "create",
            "--detach",
            "--name",
            "keep",
            "--replicas",
            "2",
            "--constraint",
            "node.role==worker",
            "--no-resolve-image",
            "provision-test/busybox:latest",
            "/bin/busybox",
            "sleep",
            "3600",
        ],
    );
    wait_until(
        "the service's two tasks running",
        Duration::from_secs(120),
        || running_tasks(c, &c.manager()) == 2,
    );
}

fn running_tasks(c: &Cluster, via: &str) -> usize {
    let out = c.run(&[
        "ssh",
        &c.name,
        via,
        "--",
        "docker",
        "service",
        "ps",
        "keep",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.CurrentState}}",
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("Running"))
        .count()
}

#[test]
fn two_of_three_managers_gone_the_daemon_restores_quorum_and_the_service_stays() {
    let c = Cluster::new("it-q");
    c.create_from_template(TEMPLATE, &[]);
    run_service(&c);
    let survivor = format!("{}-manager-1", c.name);
    let mut daemon = Daemon::start(&c, "3s");
    let t0 = Instant::now();
    for i in [2, 3] {
        docker(&["rm", "-f", &format!("{}-manager-{i}", c.name)]);
    }
    wait_until(
        "the daemon to restore quorum",
        Duration::from_secs(120),
        || c.recorded_events().contains("quorum restored"),
    );
    let restored = t0.elapsed();
    let started = Instant::now();
    while ready(&c, &survivor) != (3, 2) {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no 3 Ready managers and 2 workers in 300 s: {}\nevents:\n{}",
            c.ssh(&survivor, &["docker", "node", "ls"]),
            c.recorded_events()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let whole = t0.elapsed();
    assert_eq!(running_tasks(&c, &survivor), 2, "the service kept running");
    assert!(daemon.stop(Duration::from_secs(15)));
    let names: BTreeSet<String> = containers(&c.name).into_iter().collect();
    assert_eq!(names.len(), 5, "{names:?}");
    // Gone managers were removed from the swarm, not left Down.
    let all = c.ssh(
        &survivor,
        &["docker", "node", "ls", "--format", "{{.Status}}"],
    );
    assert!(all.lines().all(|l| l == "Ready"), "{all}");
    let events = c.recorded_events();
    assert!(
        events.contains("quorum lost: 2 of 3 managers are gone for good"),
        "{events}"
    );
    eprintln!(
        "measured: docker rm -f of 2 of 3 managers to quorum restored {:.1}s, to 3 Ready managers {:.1}s (daemon 3s, lost_timeout 5s)",
        restored.as_secs_f64(),
        whole.as_secs_f64()
    );
    record_fault_row(FaultRow {
        id: "24",
        fault: "2 of 3 managers' machines deleted (docker rm -f), a service on the workers, daemon at 3 s",
        happened: format!(
            "quorum restored on the survivor (--force-new-cluster) after {:.0}s, gone managers removed and replaced; the service kept running",
            restored.as_secs_f64()
        ),
        remediations: "2".into(),
        left_over: "none (5 machines for 5 nodes)".into(),
    });
}

#[test]
fn two_managers_cut_off_by_a_partition_is_no_recovery() {
    let c = Cluster::new("it-qp");
    c.create_from_template(QUICK, &[]);
    let before: BTreeSet<String> = containers(&c.name).into_iter().collect();
    let cut = [
        format!("{}-manager-2", c.name),
        format!("{}-manager-3", c.name),
    ];
    for node in &cut {
        partition(node, true);
    }
    let mut daemon = Daemon::start(&c, "2s");
    wait_until(
        "the daemon to see the managers unreachable past their grace",
        Duration::from_secs(120),
        || {
            c.recorded_events()
                .contains("replacing it could lose quorum")
        },
    );
    std::thread::sleep(Duration::from_secs(10));
    assert!(daemon.stop(Duration::from_secs(15)));
    let events = c.recorded_events();
    assert!(
        !events.contains("quorum lost") && !events.contains("quorum restored"),
        "a partition must never trigger a recovery: {events}"
    );
    let after: BTreeSet<String> = containers(&c.name).into_iter().collect();
    assert_eq!(after, before, "nothing created or deleted");
    for node in &cut {
        partition(node, false);
    }
    let first = c.manager();
    wait_until("the swarm whole again", Duration::from_secs(120), || {
        ready(&c, &first) == (3, 2)
    });
    record_fault_row(FaultRow {
        id: "25",
        fault: "2 of 3 managers cut off by a partition (their machines still listed), daemon at 2 s",
        happened: "no recovery: events only (\"replacing it could lose quorum\"); whole again once the partition healed".into(),
        remediations: "0".into(),
        left_over: "none (same 5 machines)".into(),
    });
}

#[test]
fn all_three_managers_gone_restore_from_the_last_backup_brings_the_service_back() {
    let c = Cluster::new("it-rs");
    c.create_from_template(TEMPLATE, &[]);
    run_service(&c);
    let dir = c.dir().join("backups");
    let dir = dir.to_str().unwrap();
    c.ok(&["backup", &c.name, "--to", dir]);
    // Restore refuses while a manager holds the cluster's state.
    let out = c.run(&["restore", &c.name, "--from", dir]);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("nothing to restore"), "{text}");

    let t0 = Instant::now();
    for i in 1..=3 {
        docker(&["rm", "-f", &format!("{}-manager-{i}", c.name)]);
    }
    let dry = c.ok(&["restore", &c.name, "--from", dir, "--dry-run"]);
    let new_manager = format!("{}-manager-4", c.name);
    assert!(
        dry.contains(&format!(
            "restore the cluster on {new_manager} from the backup"
        )),
        "{dry}"
    );
    assert!(dry.contains("Dry run: nothing was changed."), "{dry}");
    assert_eq!(containers(&c.name).len(), 2, "the dry run created nothing");

    let t1 = Instant::now();
    c.ok(&["restore", &c.name, "--from", dir]);
    let restored = t1.elapsed();
    assert_eq!(
        ready(&c, &new_manager),
        (3, 2),
        "{}",
        c.ssh(&new_manager, &["docker", "node", "ls"])
    );
    // The service came back from the backup and runs on the rejoined workers.
    let services = c.ssh(
        &new_manager,
        &["docker", "service", "ls", "--format", "{{.Name}}"],
    );
    assert!(services.lines().any(|l| l == "keep"), "{services}");
    wait_until(
        "the restored service's two tasks running",
        Duration::from_secs(120),
        || running_tasks(&c, &new_manager) == 2,
    );
    let whole = t0.elapsed();
    // No Down entries left behind (old managers, the workers' old ids).
    let all = c.ssh(
        &new_manager,
        &["docker", "node", "ls", "--format", "{{.Status}}"],
    );
    assert!(all.lines().all(|l| l == "Ready"), "{all}");
    let names: BTreeSet<String> = containers(&c.name).into_iter().collect();
    assert_eq!(names.len(), 5, "{names:?}");
    let events = c.recorded_events();
    for part in [
        "restored the cluster on this new manager",
        "joined the restored one",
        "restore finished",
    ] {
        assert!(events.contains(part), "{part}: {events}");
    }
    // Finished: a second restore finds nothing to do.
    let again = c.run(&["restore", &c.name, "--from", dir]);
    assert!(!again.status.success(), "{}", output_text(&again));
    eprintln!(
        "measured: provision restore of a 3+2 swarm with no manager left {:.1}s; deletion to the service's tasks running again {:.1}s",
        restored.as_secs_f64(),
        whole.as_secs_f64()
    );
    record_fault_row(FaultRow {
        id: "26",
        fault: "all 3 managers' machines deleted (docker rm -f), a service on the workers, a backup taken before",
        happened: format!(
            "`provision restore` re-formed the swarm on a new manager from the backup in {:.0}s, 2 managers joined, the workers rejoined; the service defined and running again",
            restored.as_secs_f64()
        ),
        remediations: "3 (managers)".into(),
        left_over: "none (5 machines for 5 nodes)".into(),
    });
}
