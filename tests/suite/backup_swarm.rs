//! `provision backup` of a real 3-manager Swarm on the local cloud: taken
//! on a follower (the engine stopped, as Docker documents it) while the
//! other two keep quorum, the raft state in the archive, the swarm whole
//! again afterwards; refused, with the engine left running, when autolock
//! is on.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::common::*;

#[test]
fn a_backup_is_taken_on_a_follower_and_autolock_is_refused() {
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
    // Sealed: nothing of the archive reads without the cluster's key.
    let sealed = std::fs::read(archive).unwrap();
    assert!(sealed.starts_with(b"PVSEAL01"), "not sealed");
    let tar = std::process::Command::new("tar")
        .args(["-tzf", archive])
        .output()
        .unwrap();
    assert!(!tar.status.success(), "a sealed archive read as a tar");
    // Opened and checked with the key from the state, it holds the raft
    // state and the certificates.
    let entries = c.ok(&["backup", "verify", &c.name, "--from", archive]);
    assert!(
        entries.contains("size and SHA-256 as its manifest says, sealed"),
        "{entries}"
    );
    assert!(entries.contains("  swarm/raft/"), "{entries}");
    assert!(entries.contains("  swarm/certificates/"), "{entries}");
    assert_tampering_is_refused(&c, &dir, archive);
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

#[test]
fn the_daemon_takes_scheduled_backups_and_reports_them() {
    let c = Cluster::new("it-bks");
    let dir = c.dir().join("scheduled");
    let template = format!(
        "coe: swarm\nmanagers: 3\nworkers: 0\nbackup:\n  interval: 1h\n  keep: 2\n  to: {}\n",
        dir.display()
    );
    c.create_from_template(&template, &[]);
    let mut daemon = Daemon::start(&c, "3s");
    wait_until(
        "the daemon's first scheduled backup",
        Duration::from_secs(120),
        || c.recorded_events().contains("backup taken"),
    );
    let listed = c.ok(&["backup", "list", &c.name, "--from", dir.to_str().unwrap()]);
    assert_eq!(listed.lines().count(), 2, "one backup: {listed}");
    // Its metrics, then no second backup within the hour, however many passes.
    let mut metrics = String::new();
    wait_until("the backup's metrics", Duration::from_secs(30), || {
        metrics = daemon.metrics();
        metrics.contains("provision_backup_size_bytes{")
    });
    for name in [
        "provision_backup_last_success_timestamp_seconds{",
        "provision_backup_duration_seconds{",
    ] {
        assert!(metrics.contains(name), "{name}: {metrics}");
    }
    std::thread::sleep(Duration::from_secs(10));
    assert!(daemon.stop(Duration::from_secs(15)));
    let listed = c.ok(&["backup", "list", &c.name, "--from", dir.to_str().unwrap()]);
    assert_eq!(listed.lines().count(), 2, "still one backup: {listed}");

    // A new daemon (it has seen nothing yet) whose listing of the location
    // finds no backup (a lagging listing; here the manifests are moved
    // away) goes by the state store's record of the last one: no second
    // backup within the hour either.
    let manifests = |in_dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(in_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect()
    };
    let hidden = c.dir().join("hidden");
    std::fs::create_dir_all(&hidden).unwrap();
    for m in manifests(&dir) {
        std::fs::rename(&m, hidden.join(m.file_name().unwrap())).unwrap();
    }
    let mut daemon = Daemon::start(&c, "3s");
    wait_until(
        "three rounds of the new daemon",
        Duration::from_secs(60),
        || daemon.log_text().matches("round done").count() >= 3,
    );
    assert!(daemon.stop(Duration::from_secs(15)));
    assert_eq!(
        manifests(&dir),
        Vec::<std::path::PathBuf>::new(),
        "no backup taken"
    );
    for m in manifests(&hidden) {
        std::fs::rename(&m, dir.join(m.file_name().unwrap())).unwrap();
    }
    let managers = c
        .swarm_nodes(&c.manager())
        .iter()
        .filter(|(_, s)| s == "Ready")
        .count();
    assert_eq!(managers, 3);
}

/// S3 through moto (the EC2 test cloud's server), as the user holding
/// exactly `examples/s3-backup-iam-policy.json`: a backup goes there, is
/// listed from there, and a cluster with no manager left is restored from
/// there; the EC2 user, without S3 permissions, is refused with the policy
/// named. The swarm directory carries 40 MiB of random bytes, so the
/// archive streams through in parts (a multipart upload of three) and
/// comes back whole.
#[test]
fn a_backup_goes_to_s3_and_a_restore_comes_from_there() {
    let cloud = crate::common::ec2::ec2_cloud();
    let mut env = cloud.env.clone();
    env.push(("AWS_PROFILE".into(), "provision-backup".into()));
    let c = Cluster::new("it-bk3").with_env(&env);
    c.create(1, 0);
    let first = c.manager();
    c.ssh(
        &first,
        &[
            "sh",
            "-c",
            "echo hello | docker config create provision-s3-test -",
        ],
    );
    let ballast = "/var/lib/docker/swarm/provision-test-ballast";
    c.ssh(
        &first,
        &[
            "sh",
            "-c",
            &format!("head -c 41943040 /dev/urandom > {ballast}"),
        ],
    );
    let ballast_sum = c.ssh(&first, &["sha256sum", ballast]);
    let to = format!("s3://provision-backups/{}", c.name);
    let out = c.ok(&["backup", &c.name, "--to", &to, "--force"]);
    assert!(out.contains(&format!("{to}/{}-", c.name)), "{out}");
    let listed = c.ok(&["backup", "list", &c.name, "--from", &to]);
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{listed}");
    assert!(
        rows[0].ends_with(".tar.gz") && rows[0].contains(&to),
        "{listed}"
    );

    let denied = c
        .cmd()
        .env("AWS_PROFILE", &cloud.profile)
        .args(["backup", "list", &c.name, "--from", &to])
        .output()
        .unwrap();
    let text = output_text(&denied);
    assert!(!denied.status.success(), "{text}");
    assert!(
        text.contains("AccessDenied") && text.contains("s3-backup-iam-policy.json"),
        "{text}"
    );

    docker(&["rm", "-f", &first]);
    c.ok(&["restore", &c.name, "--from", &to]);
    let manager = format!("{}-manager-2", c.name);
    let configs = c.ssh(
        &manager,
        &["docker", "config", "ls", "--format", "{{.Name}}"],
    );
    assert!(configs.contains("provision-s3-test"), "{configs}");
    assert_eq!(c.ssh(&manager, &["sha256sum", ballast]), ballast_sum);
    assert_eq!(containers(&c.name).len(), 1);
}

/// A flipped byte, a wrong size, a manifest naming a file elsewhere, and a
/// backup of another cluster of the same name: each refused before anything
/// is read into the cluster (verify and restore say why); the listing skips
/// what is not this location's.
fn assert_tampering_is_refused(c: &Cluster, dir: &std::path::Path, archive: &str) {
    let original = std::fs::read(archive).unwrap();
    let manifest_path = archive.replace(".tar.gz", ".json");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    let refused = |args: &[&str], why: &str| {
        let out = c.run(args);
        let text = output_text(&out);
        assert!(!out.status.success(), "{args:?}: {text}");
        assert!(text.contains(why), "{args:?}: want {why:?} in {text}");
    };
    let verify = ["backup", "verify", &c.name, "--from", archive];
    let restore = ["restore", &c.name, "--from", archive];

    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    std::fs::write(archive, &flipped).unwrap();
    refused(&verify, "SHA-256");
    refused(&restore, "SHA-256");

    let mut longer = original.clone();
    longer.push(0);
    std::fs::write(archive, &longer).unwrap();
    refused(&verify, &format!("manifest says {}", original.len()));
    std::fs::write(archive, &original).unwrap();

    // A manifest that names /etc/shadow, or ../: not a backup of this location.
    for bad in ["/etc/shadow", "../escape.tar.gz"] {
        let text = manifest.replace(
            &format!("\"archive\": \"{}\"", archive.rsplit('/').next().unwrap()),
            &format!("\"archive\": \"{bad}\""),
        );
        assert_ne!(text, manifest);
        std::fs::write(&manifest_path, &text).unwrap();
        refused(&verify, "is no backup of cluster");
    }
    // Another cluster named the same (another id): neither used by default.
    let mut other: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    other["cluster_id"] = "0123456789abcdef".into();
    std::fs::write(&manifest_path, other.to_string()).unwrap();
    let dir = dir.to_str().unwrap();
    refused(
        &["backup", "verify", &c.name, "--from", dir],
        "no backup of cluster",
    );
    refused(&restore, "--cluster-id 0123456789abcdef");
    std::fs::write(&manifest_path, &manifest).unwrap();
    let ok = c.ok(&verify);
    assert!(ok.contains("entries:"), "{ok}");
    record_fault_row(FaultRow {
        id: "29",
        fault: "a backup archive with one flipped byte, one byte longer; a manifest naming /etc/shadow or ../; another cluster's backup of the same name",
        happened: "verify and restore refused each before reading anything into the cluster (SHA-256, size, not a backup of this location, --cluster-id asked)".into(),
        remediations: "0".into(),
        left_over: "none".into(),
    });
}
