//! `provision backup` of a real 3-manager Swarm on the local cloud: taken
//! on a follower (the engine stopped, as Docker documents it) while the
//! other two keep quorum, the raft state in the archive, the swarm whole
//! again afterwards; refused, with the engine left running, when autolock
//! is on.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;

#[test]
fn a_backup_is_taken_on_a_follower_and_autolock_is_refused() {
    if skip_docker_tests() {
        return;
    }
    let c = Cluster::new("it-bk");
    c.create(3, 0);
    let first = c.manager();
    let ready_managers = |c: &Cluster| {
        c.swarm_nodes(&first)
            .iter()
            .filter(|(_, s)| s == "Ready")
            .count()
    };
    c.ssh(
        &first,
        &[
            "sh",
            "-c",
            "echo hello | docker config create provision-backup-test -",
        ],
    );
    let leader = c
        .ssh(
            &first,
            &[
                "docker",
                "node",
                "ls",
                "--filter",
                "role=manager",
                "--format",
                "{{.Hostname}} {{.ManagerStatus}}",
            ],
        )
        .lines()
        .find(|l| l.ends_with(" Leader"))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .expect("a leader");

    let dir = c.dir().join("backups");
    let out = c.ok(&["backup", &c.name, "--to", dir.to_str().unwrap()]);
    assert!(out.contains("Backup of cluster"), "{out}");
    let listed = c.ok(&["backup", "list", &c.name, "--from", dir.to_str().unwrap()]);
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{listed}");
    let node = rows[0].split_whitespace().nth(1).unwrap();
    assert_ne!(node, leader, "taken on the leader: {listed}");
    let archive = rows[0].split_whitespace().last().unwrap();
    let mode = std::fs::metadata(archive).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let entries = std::process::Command::new("tar")
        .args(["-tzf", archive])
        .output()
        .unwrap();
    let entries = String::from_utf8_lossy(&entries.stdout);
    assert!(
        entries.lines().any(|l| l.starts_with("swarm/raft/")),
        "{entries}"
    );
    assert!(
        entries
            .lines()
            .any(|l| l.starts_with("swarm/certificates/")),
        "{entries}"
    );

    // The follower's engine is back and it rejoined: three Ready managers,
    // the config still defined.
    wait_until(
        "three Ready managers again",
        Duration::from_secs(120),
        || ready_managers(&c) == 3,
    );
    let configs = c.ssh(&first, &["docker", "config", "ls", "--format", "{{.Name}}"]);
    assert!(configs.contains("provision-backup-test"), "{configs}");
    let events = c.events();
    assert!(events.contains("backup taken"), "{events}");

    // Autolock on: refused with what to do, and no engine was stopped.
    c.ssh(&leader, &["docker", "swarm", "update", "--autolock=true"]);
    let out = c.run(&["backup", &c.name, "--to", dir.to_str().unwrap()]);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("autolock") && text.contains("unlock-key"),
        "{text}"
    );
    assert_eq!(ready_managers(&c), 3);
    c.ssh(&leader, &["docker", "swarm", "update", "--autolock=false"]);
    let still = c.ok(&["backup", "list", &c.name, "--from", dir.to_str().unwrap()]);
    assert_eq!(
        still.lines().count(),
        2,
        "one backup, the refused one left nothing: {still}"
    );
}
