//! End to end on the local cloud: `provision swarm` forms a real 1+2 Docker
//! Swarm of node containers (systemd, sshd, dockerd each), a replicated
//! service runs a task on every node, and destroy leaves nothing behind.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn swarm_forms_runs_a_service_everywhere_and_destroys_cleanly() {
    if skip_docker_tests() {
        return;
    }
    let c = Cluster::new("it-swarm");
    let out = c.create(1, 2);
    assert!(
        out.contains(&format!("Cluster {} is ready", c.name)),
        "{out}"
    );

    // A re-run finishes the cluster; it does not move it to another image.
    let rerun = c.run(&["swarm", "--name", &c.name, "--image", "other/image:1"]);
    let err = String::from_utf8_lossy(&rerun.stderr);
    assert!(!rerun.status.success(), "{err}");
    assert!(
        err.contains("--image other/image:1 cannot change it"),
        "{err}"
    );

    // status --output json: one object with the documented fields.
    let status = c.status_json();
    assert_eq!(status["name"], c.name.as_str());
    assert_eq!(status["coe"], "swarm");
    assert_eq!(status["cloud"], "local");
    assert_eq!(status["phase"], "ready");
    let nodes = status["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        assert_eq!(n["phase"], "ready", "{n}");
        assert_eq!(n["health"], "healthy", "{n}");
        assert!(
            n["private_address"].is_string() && n["machine_id"].is_string(),
            "{n}"
        );
        assert!(n["role"] == "manager" || n["role"] == "worker", "{n}");
    }

    // Three nodes Ready in the manager's own view.
    let nodes = c.swarm_nodes(&c.manager());
    let ready: BTreeSet<&str> = nodes
        .iter()
        .filter(|(_, status)| status == "Ready")
        .map(|(host, _)| host.as_str())
        .collect();
    let expected: BTreeSet<String> = ["manager-1", "worker-1", "worker-2"]
        .iter()
        .map(|s| format!("{}-{s}", c.name))
        .collect();
    assert_eq!(
        ready,
        expected.iter().map(String::as_str).collect(),
        "docker node ls: {nodes:?}"
    );

    // A locally made busybox image, loaded on every node (there is no registry).
    let tar = busybox_image_tar(c.dir());
    for node in &expected {
        let status = c
            .cmd()
            .args(["ssh", &c.name, node, "--", "docker", "load"])
            .stdin(std::fs::File::open(&tar).unwrap())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "docker load on {node}");
    }
    c.ssh(
        &c.manager(),
        &[
            "docker",
            "service",
            "create",
            "--detach",
            "--name",
            "probe",
            "--replicas",
            "3",
            "--replicas-max-per-node",
            "1",
            "--no-resolve-image",
            "provision-test/busybox:latest",
            "/bin/busybox",
            "sleep",
            "3600",
        ],
    );
    let mut running = BTreeSet::new();
    wait_until(
        "a running probe task on every node",
        Duration::from_secs(120),
        || {
            let ps = c.ssh(
                &c.manager(),
                &[
                    "docker",
                    "service",
                    "ps",
                    "probe",
                    "--filter",
                    "desired-state=running",
                    "--format",
                    "{{.Node}} {{.CurrentState}}",
                ],
            );
            running = ps
                .lines()
                .filter(|l| l.contains(" Running"))
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect();
            running == expected
        },
    );

    // env points the docker CLI at a manager through the written ssh_config.
    let env = c.ok(&["env", &c.name]);
    assert!(
        env.contains(&format!("export DOCKER_HOST=ssh://{}", c.manager())),
        "{env}"
    );
    let config = c.dir().join("clusters").join(&c.name).join("ssh_config");
    let out = Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .arg(c.manager())
        .args(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "active",
        "{out:?}"
    );

    // Re-running the create on a converged cluster changes nothing.
    let before = containers(&c.name);
    c.ok(&["swarm", "--name", &c.name]);
    assert_eq!(containers(&c.name), before);

    // Node logs hold the scripts' output but never a join token.
    for entry in std::fs::read_dir(c.log_dir()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains("SWMTKN"), "a join token reached a log");
    }

    // A node whose host key changes is not trusted again: provision's own
    // probe refuses it, and so does OpenSSH through the written known_hosts.
    let worker = format!("{}-worker-2", c.name);
    c.ssh(
        &worker,
        &[
            "sh",
            "-c",
            "rm -f /etc/ssh/ssh_host_* && ssh-keygen -q -A && systemctl restart ssh",
        ],
    );
    c.ok(&["status", &c.name]);
    let status = c.status_json();
    let node = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == worker.as_str())
        .unwrap()
        .clone();
    assert_eq!(node["health"], "unhealthy", "{node}");
    assert!(
        node["reason"]
            .as_str()
            .unwrap()
            .contains("host key changed"),
        "{node}"
    );
    let out = c.run(&["ssh", &c.name, &worker, "--", "true"]);
    assert!(!out.status.success(), "OpenSSH accepted a changed host key");

    c.ok(&["destroy", &c.name, "--yes"]);
    assert_eq!(leftovers(&c.name), Vec::<String>::new());
    let list = c.ok(&["list"]);
    assert!(!list.contains(&c.name), "{list}");
}

/// A node image without Docker, as a distribution's cloud image is: the
/// install script installs docker.io from Debian's mirror, then the swarm forms.
#[test]
fn swarm_forms_from_a_bare_image() {
    if skip_docker_tests() {
        return;
    }
    let c = Cluster::new("it-bare");
    c.create_on("swarm", BARE_IMAGE, "1", "1");
    assert_formed_from_bare_image(&c, 2, false);
    c.ok(&["destroy", &c.name, "--yes"]);
    assert_eq!(leftovers(&c.name), Vec::<String>::new());
}
