//! `kill -9` of `provision swarm` at two different points, then the same
//! command again: the cluster completes with no duplicate node, and destroy
//! leaves no container, network or volume with the cluster's label.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

fn kill9(child: &mut std::process::Child) {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    // The engine finishes a create call it already accepted even though the
    // caller is gone; let those land so the next step sees them.
    std::thread::sleep(std::time::Duration::from_secs(2));
}

#[test]
fn killed_runs_are_finished_by_the_next_one_without_duplicates() {
    if skip_docker_tests() {
        return;
    }
    let c = Cluster::new("it-crash");
    let args = ["--managers", "1", "--workers", "2"];

    // Point 1: while the machines are being created.
    let mut child = c.spawn_create(&args);
    wait_until("the first node container", Duration::from_secs(120), || {
        !containers(&c.name).is_empty()
    });
    kill9(&mut child);

    // Point 2: in the middle of bootstrapping (a script has started on the manager).
    let mut child = c.spawn_create(&args);
    let manager_log = c.log_dir().join(format!("{}.log", c.manager()));
    wait_until(
        "a bootstrap script on the manager",
        Duration::from_secs(300),
        || {
            std::fs::read_to_string(&manager_log)
                .map(|t| t.contains("=== swarm/"))
                .unwrap_or(false)
        },
    );
    kill9(&mut child);

    // The lock died with the process: the next run is not told the cluster is busy.
    let out = c.create(1, 2);
    assert!(out.contains("is ready"), "{out}");

    let names: Vec<String> = containers(&c.name);
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(names.len(), 3, "containers: {names:?}");
    assert_eq!(unique.len(), 3);

    let nodes = c.swarm_nodes(&c.manager());
    assert_eq!(nodes.len(), 3, "no duplicate swarm members: {nodes:?}");
    assert!(
        nodes.iter().all(|(_, status)| status == "Ready"),
        "{nodes:?}"
    );

    c.ok(&["destroy", &c.name, "--yes"]);
    assert_eq!(leftovers(&c.name), Vec::<String>::new());
}

#[test]
fn a_second_command_on_a_busy_cluster_is_told_who_holds_it() {
    if skip_docker_tests() {
        return;
    }
    let c = Cluster::new("it-busy");
    let mut child = c.spawn_create(&["--managers", "1", "--workers", "0"]);
    let lock = c.dir().join("locks").join(format!("{}.lock", c.name));
    wait_until(
        "the first command to hold the lock",
        Duration::from_secs(60),
        || {
            std::fs::read_to_string(&lock)
                .map(|t| !t.is_empty())
                .unwrap_or(false)
        },
    );
    let out = c.run(&["destroy", &c.name, "--yes"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "cluster {} is busy (pid {}, since ",
            c.name,
            child.id()
        )),
        "{err}"
    );
    kill9(&mut child);
}
