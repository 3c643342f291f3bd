//! End to end on the local cloud: `provision swarm` forms a real 1+2 Docker
//! Swarm of node containers (systemd, sshd, dockerd each), a replicated
//! service runs a task on every node, and destroy leaves nothing behind.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

#[test]
fn swarm_forms_runs_a_service_everywhere_and_destroys_cleanly() {
    let c = Cluster::new("it-swarm");
    let out = c.create(1, 2);
    assert!(
        out.contains(&format!("Cluster {} is ready", c.name)),
        "{out}"
    );

    // A new image for it is rolled out node by node: the dry run says in
    // which order, and changes nothing (docs/operations/rollouts.md).
    let dry = c.ok(&[
        "swarm",
        "--name",
        &c.name,
        "--image",
        "other/image:1",
        "--dry-run",
    ]);
    assert!(
        dry.contains("managers -> image=other/image:1 flavor=-: 0 new, 1 to replace")
            && dry.contains("Dry run: nothing was changed."),
        "{dry}"
    );
    let status = c.ok(&["rollout", &c.name, "status"]);
    assert!(status.contains("no rollout under way"), "{status}");

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
    let nodes: Vec<String> = expected.iter().cloned().collect();
    load_busybox(&c, &nodes);
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

    // env: the real docker CLI reaches the manager in a shell that evaluated
    // `provision env`, with a HOME that has no ~/.ssh/config to lean on.
    let home = c.dir().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let in_shell = |script: &str| {
        let out = Command::new("bash")
            .args(["-c", script])
            .env("HOME", &home)
            .env("P", BIN)
            .env("STATE", c.state())
            .env("NAME", &c.name)
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {}", output_text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = in_shell(
        r#"set -e; eval "$("$P" --state "$STATE" env "$NAME")"
           docker node ls --format '{{.Hostname}} {{.Status}}' | LC_ALL=C sort"#,
    );
    let expected_ls: Vec<String> = expected.iter().map(|n| format!("{n} Ready")).collect();
    assert_eq!(listed.lines().collect::<Vec<_>>(), expected_ls, "{listed}");
    // Host keys stay verified: with another key on record, docker is refused.
    let known = c.dir().join("clusters").join(&c.name).join("known_hosts");
    let recorded = std::fs::read_to_string(&known).unwrap();
    let other = c.dir().join("other_host_key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(made.success());
    let other_key = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let other_key: Vec<&str> = other_key.split_whitespace().take(2).collect();
    let forged: String = recorded
        .lines()
        .map(|l| format!("{} {}\n", l.split(' ').next().unwrap(), other_key.join(" ")))
        .collect();
    std::fs::write(c.dir().join("forged_known_hosts"), forged).unwrap();
    let refused = Command::new("bash")
        .args([
            "-c",
            r#"eval "$("$P" --state "$STATE" env "$NAME")"
               cp "$FORGED" "$KNOWN"; timeout 60 docker node ls"#,
        ])
        .env("HOME", &home)
        .env("P", BIN)
        .env("STATE", c.state())
        .env("NAME", &c.name)
        .env("KNOWN", &known)
        .env("FORGED", c.dir().join("forged_known_hosts"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    std::fs::write(&known, &recorded).unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("Host key verification failed"),
        "{}",
        output_text(&refused)
    );
    // --unset takes it all back.
    let after_unset = in_shell(
        r#"set -e; eval "$("$P" --state "$STATE" env "$NAME")"; eval "$("$P" --state "$STATE" env --unset)"
           echo "host=${DOCKER_HOST:-none}"; case ":$PATH:" in *"/clusters/$NAME/bin:"*) echo on-path;; *) echo off-path;; esac"#,
    );
    assert_eq!(after_unset, "host=none\noff-path\n");

    // Re-running the create on a converged cluster changes nothing.
    let before = containers(&c.name);
    c.ok(&["swarm", "--name", &c.name]);
    assert_eq!(containers(&c.name), before);

    // --dry-run on every command that changes something: the plan printed,
    // and nothing changed: state rows, containers, the swarm's members, and
    // the files on the nodes (the probes that observe store no script).
    let w2 = format!("{}-worker-2", c.name);
    let w3 = format!("{}-worker-3", c.name);
    let node_files = || -> Vec<String> {
        expected
            .iter()
            .map(|n| {
                c.ssh(
                    n,
                    &[
                        "ls",
                        "-l",
                        "--time-style=+%s.%N",
                        "/var/lib/provision/scripts",
                    ],
                )
            })
            .collect()
    };
    let snapshot = || {
        (
            c.state_dump(),
            containers(&c.name),
            c.swarm_nodes(&c.manager()),
            node_files(),
        )
    };
    let before = snapshot();
    let dry = |args: &[&str], expect: &[String]| {
        let out = c.ok(args);
        for e in expect {
            assert!(
                out.contains(e.as_str()),
                "{args:?} should say {e:?}:\n{out}"
            );
        }
        assert!(
            out.contains("Dry run: nothing was changed."),
            "{args:?}: {out}"
        );
    };
    dry(
        &["scale", &c.name, "--workers", "3", "--dry-run"],
        &[
            format!("add worker {w3}"),
            format!("create machine for {w3}"),
            format!("join {w3} as worker"),
        ],
    );
    dry(
        &["nodes", "add", &c.name, "--dry-run"],
        &[format!("add worker {w3}")],
    );
    dry(
        &["nodes", "remove", &c.name, &w2, "--dry-run"],
        &[
            format!("drain {w2}"),
            format!("of {w2}"),
            format!("forget node {w2}"),
        ],
    );
    dry(
        &["swarm", "--name", &c.name, "--workers", "1", "--dry-run"],
        &[format!("retire {w2} (scale in)")],
    );
    dry(
        &["heal", &c.name, "--dry-run"],
        &[format!("{}: nothing to do", c.name)],
    );
    dry(
        &["destroy", &c.name, "--dry-run"],
        &[
            "destroy would delete".to_string(),
            format!("of node {}", c.manager()),
        ],
    );
    assert_eq!(snapshot(), before, "a dry run changed something");

    // A dry run of a cluster that does not exist: the first pass's plan, and
    // not even a state file or a key made.
    let fresh = Cluster::new("it-dry");
    let out = fresh.ok(&[
        "swarm",
        "--name",
        &fresh.name,
        "--workers",
        "2",
        "--dry-run",
    ]);
    for e in [
        format!("add manager {}-manager-1", fresh.name),
        format!("initialise the cluster on {}-manager-1", fresh.name),
        format!("join {}-worker-2 as worker", fresh.name),
        "the cluster's node image, network (each made when missing)".to_string(),
    ] {
        assert!(out.contains(&e), "should say {e:?}:\n{out}");
    }
    assert!(!fresh.state().exists() && !fresh.dir().join("clusters").exists());
    assert!(containers(&fresh.name).is_empty());

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
    let c = Cluster::new("it-bare");
    c.create_on("swarm", BARE_IMAGE, "1", "1");
    assert_formed_from_bare_image(&c, 2, false);
    c.ok(&["destroy", &c.name, "--yes"]);
    assert_eq!(leftovers(&c.name), Vec::<String>::new());
}

/// A pool's nodes carry its labels in the swarm (and `provision.pool`),
/// set through a manager as each joins, for placement constraints; `scale
/// --pool` adds to that pool alone, labelled the same.
#[test]
fn a_pools_nodes_carry_its_labels_in_the_swarm() {
    let c = Cluster::new("it-pools");
    c.create_from_template(
        "coe: swarm\nmanagers: 1\nworkers: 1\npools:\n  - name: gpu\n    count: 1\n    labels: {tier: gpu}\n",
        &[],
    );
    let labels = |node: &str| {
        c.ssh(
            &c.manager(),
            &[
                "docker",
                "node",
                "inspect",
                node,
                "--format",
                "{{json .Spec.Labels}}",
            ],
        )
        .trim()
        .to_string()
    };
    let gpu = format!("{}-gpu-1", c.name);
    assert_eq!(labels(&gpu), r#"{"provision.pool":"gpu","tier":"gpu"}"#);
    assert_eq!(
        labels(&format!("{}-worker-1", c.name)),
        r#"{"provision.pool":"workers"}"#
    );
    assert_eq!(labels(&c.manager()), r#"{"provision.pool":"managers"}"#);
    c.ok(&["scale", &c.name, "--pool", "gpu", "--workers", "2"]);
    assert_eq!(
        labels(&format!("{}-gpu-2", c.name)),
        r#"{"provision.pool":"gpu","tier":"gpu"}"#
    );
    let status = c.ok(&["status", &c.name]);
    assert!(
        status.contains("managers 1/1 ready, workers 1/1 ready, gpu 2/2 ready"),
        "{status}"
    );
    c.ok(&["destroy", &c.name, "--yes"]);
}

/// A pinned Docker engine version (`--engine-version`, a pattern apt
/// takes) is rolled out like an image: every node replaced by one whose
/// docker.io is that version. (Here the only version there is, Debian's:
/// no other can be had offline.)
#[test]
fn an_engine_version_is_rolled_out_to_every_node() {
    let c = Cluster::new("it-engine");
    c.create_from_template("coe: swarm\nmanagers: 1\nworkers: 1\n", &[]);
    let installed = String::from_utf8(
        Command::new("dpkg-query")
            .args(["-W", "-f=${Version}", "docker.io"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let minor: String = installed.split('.').take(2).collect::<Vec<_>>().join(".");
    let pattern = format!("{minor}.*");
    let refused = c.run(&["swarm", "--name", &c.name, "--engine-version", "latest"]);
    let text = output_text(&refused);
    assert!(
        !refused.status.success() && text.contains("node.engine_version"),
        "{text}"
    );
    let dry = c.ok(&[
        "swarm",
        "--name",
        &c.name,
        "--engine-version",
        &pattern,
        "--dry-run",
    ]);
    assert!(
        dry.contains(&format!(
            "managers -> image=- flavor=- engine={pattern}: 0 new, 1 to replace"
        )),
        "{dry}"
    );
    c.ok(&["swarm", "--name", &c.name, "--engine-version", &pattern]);
    let events = c.events();
    assert_eq!(events.matches("retiring: rollout").count(), 2, "{events}");
    for (node, health) in c.status_nodes() {
        assert_eq!(health, "healthy", "{node}");
        let version = c.ssh(&node, &["dpkg-query", "-W", "-f=${Version}", "docker.io"]);
        assert!(
            version.starts_with(&format!("{minor}.")),
            "{node}: {version}"
        );
    }
    let status = c.ok(&["rollout", &c.name, "status"]);
    assert!(status.contains("no rollout under way"), "{status}");
    c.ok(&["destroy", &c.name, "--yes"]);
}
