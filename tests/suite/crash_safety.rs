//! `kill -9` of `provision` in the middle of create (at two points),
//! scale-in and a replacement by the daemon; then the same command again: it finishes, with no duplicate node, and destroy leaves no
//! container, network or volume with the cluster's label.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::*;

fn kill9(child: &mut std::process::Child) {
    crate::common::kill9(child);
    // The engine finishes a create call it already accepted even though the
    // caller is gone; let those land so the next step sees them.
    std::thread::sleep(std::time::Duration::from_secs(2));
}

#[test]
fn killed_runs_are_finished_by_the_next_one_without_duplicates() {
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
    record_fault_row(FaultRow {
        id: "13",
        fault: "kill -9 of `provision swarm` while machines are created, then while a script runs",
        happened: "the next run finished the cluster; no duplicate container or swarm member"
            .into(),
        remediations: "0".into(),
        left_over: "none after destroy".into(),
    });
}

/// Spawns `provision ARGS` with its output dropped.
fn spawn(c: &Cluster, args: &[&str]) -> std::process::Child {
    c.cmd()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn provision")
}

#[test]
fn killed_scale_in_and_replacement_are_finished_by_the_next_run() {
    let c = Cluster::new("it-kill");
    c.create_from_template(
        "coe: swarm\nmanagers: 1\nworkers: 3\nhealth:\n  lost_timeout: 2s\n",
        &[],
    );

    // Scale-in, killed once the first node is retiring (its drain under way).
    let mut child = spawn(&c, &["scale", &c.name, "--workers", "2"]);
    wait_until("a node retiring", Duration::from_secs(120), || {
        c.recorded_events().contains("retiring: scale in")
    });
    kill9(&mut child);
    c.ok(&["scale", &c.name, "--workers", "2"]);
    assert_eq!(containers(&c.name).len(), 3, "{:?}", containers(&c.name));
    assert_eq!(c.swarm_nodes(&c.manager()).len(), 3);
    record_fault_row(FaultRow {
        id: "14",
        fault: "kill -9 of `provision scale` (scale-in) while the node drains",
        happened: "the next run drained, removed and deleted it; 3 nodes".into(),
        remediations: "0".into(),
        left_over: "none".into(),
    });

    // A replacement by the daemon, killed once the node is retiring.
    let victim = format!("{}-worker-1", c.name);
    docker(&["kill", &victim]);
    let mut daemon = Daemon::start(&c, "2s");
    wait_until(
        "the daemon retiring the node",
        Duration::from_secs(120),
        || c.recorded_events().contains(&format!("{victim}  retiring")),
    );
    kill9(&mut daemon.child);
    c.ok(&["heal", &c.name]);
    let names = containers(&c.name);
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(!names.contains(&victim), "{names:?}");
    assert_eq!(ready_swarm_nodes(&c), 3);
    record_fault_row(FaultRow {
        id: "15",
        fault: "kill -9 of the daemon in the middle of a replacement",
        happened: "`heal` finished it: replacement Ready, the dead machine deleted".into(),
        remediations: remediations_in(&c.events()).to_string(),
        left_over: "none".into(),
    });

    c.ok(&["destroy", &c.name, "--yes"]);
    assert_eq!(leftovers(&c.name), Vec::<String>::new());
}

#[test]
fn a_second_command_on_a_busy_cluster_is_told_who_holds_it() {
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

/// What `docker top` lists of a container's processes ("" while it is not there).
fn processes_of(container: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["top", container, "-eo", "pid,args"])
        .output()
        .expect("docker");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kill -9` of a command while a script runs on a node: the script, with
/// what it started, stops on the node within seconds (its SSH connection
/// is gone; sshd would leave a command without a terminal running), so the
/// next run does not find it still at work. The next run then installs and
/// joins the node.
#[test]
fn a_killed_command_s_script_stops_on_the_node() {
    let c = Cluster::new("it-held");
    c.create(1, 0);
    let scripts = c.dir().join("held-scripts");
    std::fs::create_dir_all(scripts.join("swarm")).unwrap();
    std::fs::write(
        scripts.join("swarm/install.sh.j2"),
        "#!/usr/bin/env bash\necho 'install held (test)'\nsleep 317.5 &\nwait\n{% include \"docker/install.sh\" %}\n",
    )
    .unwrap();
    let mut child = c
        .cmd()
        .args(["--scripts-dir", scripts.to_str().unwrap()])
        .args(["scale", &c.name, "--workers", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let worker = format!("{}-worker-1", c.name);
    wait_until(
        "the held install running on the worker",
        Duration::from_secs(120),
        || processes_of(&worker).contains("sleep 317.5"),
    );
    crate::common::kill9(&mut child);
    let killed = std::time::Instant::now();
    wait_until(
        "the held install gone from the worker",
        Duration::from_secs(20),
        || !processes_of(&worker).contains("317.5"),
    );
    let gone_after = killed.elapsed().as_secs_f64();
    eprintln!(
        "measured: kill -9 of the command to its script gone from the node: {gone_after:.1}s"
    );
    record_fault_row(FaultRow {
        id: "30",
        fault: "kill -9 of `provision scale` while its install script runs (held) on the new worker",
        happened: format!("the script and its child stopped on the node {gone_after:.1} s later (its SSH connection gone); the next run installed and joined the worker"),
        remediations: "0".into(),
        left_over: "none after destroy".into(),
    });
    let out = c.ok(&["scale", &c.name, "--workers", "1"]);
    assert!(out.contains("all healthy"), "{out}");
    assert_eq!(ready_swarm_nodes(&c), 2);
    c.ok(&["destroy", &c.name, "--yes"]);
    assert_eq!(leftovers(&c.name), Vec::<String>::new());
}

/// SIGTERM to the daemon while its pass runs a script on a node: the
/// daemon starts nothing more and waits, within `--drain-timeout`, for
/// that script to end before it gives up the lock (its next step, the
/// join, is left for the next run); past the drain time the pass is
/// dropped and the script is stopped on the node. The next run finishes.
#[test]
fn a_stopped_daemon_waits_for_its_node_script_and_drops_it_past_the_drain_time() {
    let c = Cluster::new("it-drain");
    c.create(1, 0);
    let worker = format!("{}-worker-1", c.name);
    let scripts = c.dir().join("held-scripts");
    std::fs::create_dir_all(scripts.join("swarm")).unwrap();
    let scripts = scripts.to_str().unwrap().to_string();
    let hold = |script: &str, seconds: &str, then: &str| {
        std::fs::write(
            std::path::Path::new(&scripts).join(format!("swarm/{script}.sh.j2")),
            format!("#!/usr/bin/env bash\necho '{script} held (test)'\nsleep {seconds} &\nwait\n{then}\n"),
        )
        .unwrap();
    };
    c.ok(&["scale", &c.name, "--workers", "1", "--no-wait"]);

    // Within the drain time: the script ends, then the daemon leaves.
    hold(
        "install",
        "6.5",
        "touch /tmp/held-install-ended\n{% include \"docker/install.sh\" %}",
    );
    let mut daemon = Daemon::start_with(&c, "2s", &["--scripts-dir", &scripts]);
    wait_until(
        "the held install running on the worker",
        Duration::from_secs(120),
        || processes_of(&worker).contains("sleep 6.5"),
    );
    let signalled = std::time::Instant::now();
    assert!(
        daemon.stop(Duration::from_secs(60)),
        "{}",
        daemon.log_text()
    );
    let left_after = signalled.elapsed().as_secs_f64();
    let log = daemon.log_text();
    assert!(log.contains("every pass stopped"), "{log}");
    assert!(log.contains("pass stopped at a step boundary"), "{log}");
    assert!(
        std::process::Command::new("docker")
            .args(["exec", &worker, "test", "-e", "/tmp/held-install-ended"])
            .status()
            .unwrap()
            .success(),
        "the install did not run to its end before the daemon left:\n{log}"
    );
    assert_eq!(ready_swarm_nodes(&c), 1, "the join ran after the stop");
    eprintln!("measured: SIGTERM to the daemon's exit, with a script of up to 6.5 s running: {left_after:.1}s");

    // Past the drain time: the pass is dropped and its script stopped.
    hold("join", "317.5", "exit 1");
    let mut daemon = Daemon::start_with(
        &c,
        "2s",
        &["--scripts-dir", &scripts, "--drain-timeout", "1s"],
    );
    wait_until(
        "the long held join running on the worker",
        Duration::from_secs(120),
        || processes_of(&worker).contains("sleep 317.5"),
    );
    let signalled = std::time::Instant::now();
    assert!(
        daemon.stop(Duration::from_secs(30)),
        "{}",
        daemon.log_text()
    );
    let exited = signalled.elapsed().as_secs_f64();
    let log = daemon.log_text();
    assert!(
        log.contains("at the end of the drain time: dropped"),
        "{log}"
    );
    wait_until(
        "the dropped join gone from the worker",
        Duration::from_secs(20),
        || !processes_of(&worker).contains("317.5"),
    );
    let gone = signalled.elapsed().as_secs_f64();
    eprintln!("measured: --drain-timeout 1s: daemon exited {exited:.1}s, script gone {gone:.1}s after SIGTERM");
    record_fault_row(FaultRow {
        id: "32",
        fault: "SIGTERM to the daemon while its pass runs a script (held) on a new worker",
        happened: format!("no pass started; the script ran to its end and the daemon left {left_after:.1} s after the signal, the join left for the next run; with --drain-timeout 1s a held join was dropped at {exited:.1} s and gone from the node at {gone:.1} s"),
        remediations: "0".into(),
        left_over: "none after destroy".into(),
    });
    let out = c.ok(&["scale", &c.name, "--workers", "1"]);
    assert!(out.contains("all healthy"), "{out}");
    assert_eq!(ready_swarm_nodes(&c), 2);
    c.ok(&["destroy", &c.name, "--yes"]);
    assert_eq!(leftovers(&c.name), Vec::<String>::new());
}
