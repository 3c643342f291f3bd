//! `provision mesos` on node containers whose Docker pulls of the
//! ZooKeeper, Mesos and Marathon images load busybox stand-ins
//! (tests/standins/mesos) that answer the HTTP calls and `zkCli.sh` commands
//! the scripts make: the order of steps across nodes, idempotence (a second
//! run starts nothing again), membership from the master state API, removal
//! of an agent through a maintenance window and machine down, and masters
//! added and removed one at a time with the others restarted one at a time
//! with the new quorum. Real Mesos (offers, tasks, the replicated log) is
//! not claimed here.

mod common;

use common::standins::standin_image;
use common::*;

/// `/var/log/standin.log` of a node: (time, call).
fn calls(c: &Cluster, node: &str) -> Vec<(f64, String)> {
    c.ssh(node, &["cat", "/var/log/standin.log"])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(t, rest)| (t.parse().unwrap(), rest.to_string()))
        .collect()
}

fn runs(calls: &[(f64, String)], name: &str) -> Vec<f64> {
    calls
        .iter()
        .filter(|(_, c)| c.starts_with("docker run") && c.contains(&format!("--name {name} ")))
        .map(|(t, _)| *t)
        .collect()
}

fn mesos(c: &Cluster, managers: &str, workers: &str) -> String {
    let out = c
        .cmd()
        .args(["mesos", "--name", &c.name, "--image", standin_image()])
        .args(["--managers", managers, "--workers", workers])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "provision mesos failed:\n{text}");
    text
}

/// The master state API's agents as the first master's master lists them.
fn agents(c: &Cluster) -> String {
    let addr = c.status_json()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == c.manager().as_str())
        .unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    c.ssh(
        &c.manager(),
        &[
            "curl",
            "-fsSL",
            &format!("http://{addr}:5050/master/slaves"),
        ],
    )
}

#[test]
fn mesos_forms_in_order_and_a_second_run_starts_nothing_again() {
    if skip_docker_tests() {
        return;
    }
    let c = Cluster::new("mesos");
    let out = mesos(&c, "1", "2");
    assert!(out.contains("is ready"), "{out}");
    let status = c.status_nodes();
    assert_eq!(status.len(), 3, "{status:?}");
    assert!(status.iter().all(|(_, h)| h == "healthy"), "{status:?}");
    let listed = agents(&c);
    assert_eq!(listed.matches("\"active\": true").count(), 2, "{listed}");

    let master = calls(&c, &c.manager());
    let zk = runs(&master, "zookeeper");
    let mm = runs(&master, "mesos-master");
    let marathon = runs(&master, "marathon");
    assert_eq!(
        (zk.len(), mm.len(), marathon.len()),
        (1, 1, 1),
        "{master:?}"
    );
    assert!(
        zk[0] < mm[0] && mm[0] < marathon[0],
        "ZooKeeper, then mesos-master, then Marathon"
    );
    let master_run = master
        .iter()
        .find(|(_, l)| l.starts_with("docker run") && l.contains("--name mesos-master "))
        .unwrap();
    assert!(
        master_run.1.contains("MESOS_QUORUM=1")
            && master_run.1.contains("--restart always")
            && master_run.1.contains("--net host"),
        "{master_run:?}"
    );
    for i in 1..=2 {
        let worker = format!("{}-worker-{i}", c.name);
        let log = calls(&c, &worker);
        let agent = runs(&log, "mesos-agent");
        // One start; two where the engine refused --privileged and the
        // script ran the agent unprivileged (a node that is a container).
        let fallback = agent.len() == 2
            && log
                .iter()
                .any(|(_, l)| l.starts_with("docker run") && l.contains("--privileged"));
        assert!(agent.len() == 1 || fallback, "{worker}: {log:?}");
        assert!(
            agent[0] > mm[0],
            "{worker}'s agent started before the master"
        );
        let run = log
            .iter()
            .find(|(_, l)| l.starts_with("docker run"))
            .unwrap();
        assert!(
            run.1.contains("MESOS_CONTAINERIZERS=docker,mesos")
                && run.1.contains("/var/run/docker.sock"),
            "{run:?}"
        );
        assert!(
            !log.iter().any(|(_, l)| l.contains("zookeeper")),
            "no ZooKeeper on an agent"
        );
    }

    let agent_runs: Vec<Vec<f64>> = (1..=2)
        .map(|i| runs(&calls(&c, &format!("{}-worker-{i}", c.name)), "mesos-agent"))
        .collect();
    // A second run changes nothing: no container is started again.
    let again = mesos(&c, "1", "2");
    assert!(again.contains("is ready"), "{again}");
    let master_after = calls(&c, &c.manager());
    assert_eq!(runs(&master_after, "mesos-master").len(), 1);
    assert_eq!(runs(&master_after, "zookeeper").len(), 1);
    for i in 1..=2 {
        let worker = format!("{}-worker-{i}", c.name);
        assert_eq!(
            runs(&calls(&c, &worker), "mesos-agent"),
            agent_runs[i - 1],
            "{worker}"
        );
    }

    c.ok(&["destroy", &c.name, "--yes"]);
}
