//! The fault matrix: the real binary against the local cloud and the
//! OpenStack test cloud with a fault injected, each test one row of the
//! table `scripts/test-all.sh` prints (fault → what happened → nodes
//! replaced → what was left over). Other rows come from `heal_daemon.rs`,
//! `crash_safety.rs` and `openstack_cloud.rs`, which inject their own
//! faults. Every row asserts what it reports.

use std::time::{Duration, Instant};

use crate::common::openstack::openstack_cloud;
use crate::common::*;

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// More unhealthy nodes than max_unhealthy (a partition cuts 2 of 4 off the
/// network): nothing is replaced, an event says why, and once the network
/// is back every node is healthy again, with no node replaced.
///
/// The partition drops every packet in the node's own firewall, so the node
/// keeps its address as in a real partition (a `docker network disconnect`
/// and `connect` hands out a new address, which is another fault).
#[test]
fn a_partition_of_more_than_max_unhealthy_nodes_replaces_none() {
    let c = Cluster::new("fm-part");
    c.create_from_template("coe: swarm\nmanagers: 1\nworkers: 3\nhealth:\n  max_unhealthy: 1\n  ssh_timeout: 3s\n  not_ready_timeout: 3s\n  lost_timeout: 3s\n",
        &[],
    );
    let before = sorted(containers(&c.name));
    let cut = [
        format!("{}-worker-1", c.name),
        format!("{}-worker-2", c.name),
    ];
    for node in &cut {
        partition(node, true);
    }
    // Swarm's failure detector marks the two Down seconds apart; until it
    // has marked both, the one it still lists Ready is (rightly) taken as
    // healthy, and the other alone is within max_unhealthy.
    wait_until(
        "the swarm to list the 2 cut-off nodes Down",
        Duration::from_secs(120),
        || ready_swarm_nodes(&c) == 2,
    );
    let mut daemon = Daemon::start(&c, "2s");
    wait_until(
        "the daemon to see 2 nodes unhealthy past their grace",
        Duration::from_secs(120),
        // Read without the lock: `status` would hold it while it probes
        // the cut-off nodes, and the daemon would find the cluster busy.
        || c.recorded_events().contains("above max_unhealthy 1"),
    );
    // A few more passes: still nothing replaced.
    std::thread::sleep(Duration::from_secs(8));
    assert!(daemon.stop(Duration::from_secs(15)));
    assert_eq!(
        sorted(containers(&c.name)),
        before,
        "nothing created or deleted"
    );
    for node in &cut {
        partition(node, false);
    }
    wait_until(
        "the swarm to see all 4 Ready",
        Duration::from_secs(120),
        || ready_swarm_nodes(&c) == 4,
    );
    c.ok(&["heal", &c.name]);
    let events = c.events();
    let nodes = c.status_nodes();
    assert!(nodes.iter().all(|(_, h)| h == "healthy"), "{nodes:?}");
    assert_eq!(remediations_in(&events), 0, "{events}");
    assert_eq!(sorted(containers(&c.name)), before);
    record_fault_row(FaultRow {
        id: "07",
        fault: "network partition of 2 of 4 nodes (max_unhealthy 1), then healed",
        happened: "event \"2 of 4 nodes are unhealthy, above max_unhealthy 1\"; all healthy once reconnected".into(),
        remediations: "0".into(),
        left_over: "none (same 4 machines)".into(),
    });
}

/// Replacements that never join (the install always fails, as with a dead
/// package mirror): each is deleted as soon as it is retired, and after
/// max_start_attempts nodes in a row the cluster stops adding, says so in
/// an event and a metric, and keeps the last one to look at. A person's
/// `heal` with the cause fixed tries again and the cluster forms.
#[test]
fn replacements_whose_install_always_fails_stop_at_max_start_attempts() {
    let c = Cluster::new("fm-inst");
    // A bare image: every attempt must install the engine (a prepared image
    // would skip the install once Docker answers).
    c.create_from_template("coe: swarm\nmanagers: 1\nworkers: 1\nhealth:\n  startup_timeout: 15s\n  remediation_backoff: 1s\n  max_start_attempts: 3\n",
        &["--image", BARE_IMAGE],
    );
    let broken = c.dir().join("broken-scripts");
    std::fs::create_dir_all(broken.join("swarm")).unwrap();
    std::fs::write(
        broken.join("swarm/install.sh.j2"),
        "#!/usr/bin/env bash\nset -euo pipefail\necho 'E: Failed to fetch: the package mirror is down' >&2\nexit 100\n",
    )
    .unwrap();
    let broken = broken.to_str().unwrap();
    let out = c.run(&["--scripts-dir", broken, "scale", &c.name, "--workers", "2"]);
    assert!(!out.status.success(), "{}", output_text(&out));

    let mut daemon = Daemon::start_with(&c, "2s", &["--scripts-dir", broken]);
    let started = Instant::now();
    let mut most = 0;
    loop {
        most = most.max(containers(&c.name).len());
        if c.recorded_events().contains("no further replacement") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the cluster never stopped replacing: {}",
            c.recorded_events()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    std::thread::sleep(Duration::from_secs(5));
    let metrics = daemon.metrics();
    assert!(daemon.stop(Duration::from_secs(15)));
    let events = c.events();
    let names = containers(&c.name);
    // Manager, the good worker, and the last attempt kept for inspection.
    assert_eq!(names.len(), 3, "{names:?}\n{events}");
    // Within one pass the retired attempt's delete and the next attempt's
    // create run side by side, so a sample can see both (4); attempts that
    // piled up would make 5 by the third.
    assert!(most <= 4, "attempts piled up: {most} machines");
    assert_eq!(remediations_in(&events), 2, "{events}");
    assert!(
        metrics.contains(&format!(
            "provision_remediation_stalled_nodes{{cluster=\"{}\"}} 1",
            c.name
        )),
        "{metrics}"
    );

    // Fixed: a person's heal gives the nodes a fresh budget.
    c.ok(&["heal", &c.name]);
    assert_eq!(ready_swarm_nodes(&c), 3);
    assert_eq!(containers(&c.name).len(), 3);
    record_fault_row(FaultRow {
        id: "09",
        fault: "replacements whose install always fails (max_start_attempts 3)",
        happened: format!(
            "attempts 1 and 2 deleted when retired, attempt 3 kept and \"no further replacement\" event, stalled metric 1; at most {most} machines at once; `heal` after the fix formed the cluster"
        ),
        remediations: "2".into(),
        left_over: "none (the kept attempt was replaced by `heal`)".into(),
    });
}

/// A destroy cut short after it deleted one machine: the daemon leaves the
/// cluster alone (it would recreate what was deleted), `swarm` and `scale`
/// refuse and say to run destroy, and destroy finishes it.
#[test]
fn a_destroy_cut_short_is_finished_by_destroy_and_by_nothing_else() {
    let c = Cluster::new("fm-dest");
    c.create(1, 1);
    // What a destroy killed after its first deletion leaves.
    let db = c.state();
    let script = format!(
        "import sqlite3; c = sqlite3.connect({:?}); c.execute(\"UPDATE clusters SET phase = 'destroying' WHERE name = ?\", ({:?},)); c.commit()",
        db.to_str().unwrap(),
        c.name
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    docker(&["rm", "-f", &format!("{}-worker-1", c.name)]);

    c.ok(&["daemon", "--once"]);
    assert_eq!(containers(&c.name), vec![format!("{}-manager-1", c.name)]);
    for args in [
        vec!["swarm", "--name", c.name.as_str()],
        vec!["scale", c.name.as_str(), "--workers", "3"],
    ] {
        let out = c.run(&args);
        let text = output_text(&out);
        assert!(!out.status.success(), "{args:?}: {text}");
        assert!(
            text.contains("is being destroyed") && text.contains("provision destroy"),
            "{args:?}: {text}"
        );
    }
    assert_eq!(containers(&c.name).len(), 1);
    c.ok(&["destroy", &c.name, "--yes"]);
    assert_eq!(leftovers(&c.name), Vec::<String>::new());
    record_fault_row(FaultRow {
        id: "03",
        fault: "destroy cut short after deleting one machine (phase destroying)",
        happened: "daemon skipped it; `swarm` and `scale` refused naming `provision destroy`; destroy finished".into(),
        remediations: "0".into(),
        left_over: "none".into(),
    });
}

/// The cluster's key file is lost: nothing makes a new one (its machines
/// would not accept it, and EC2 would keep the old key pair); heal fails
/// saying what to do, status shows the recorded state with that note, and
/// with the file restored all works again.
#[test]
fn a_lost_cluster_key_is_an_error_that_says_what_to_do() {
    let c = Cluster::new("fm-key");
    c.create(1, 0);
    let key = std::fs::read_dir(c.dir().join("clusters").join(&c.name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().is_some_and(|n| n == "id_ed25519"))
        .expect("the cluster's key file");
    let kept = c.dir().join("key-backup");
    std::fs::rename(&key, &kept).unwrap();

    let out = c.run(&["heal", &c.name]);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("SSH key of cluster") && text.contains("Restore the file"),
        "{text}"
    );
    let out = c.run(&["status", &c.name]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("is missing"),
        "{}",
        output_text(&out)
    );
    assert!(!key.exists(), "no new key may be made");
    assert_eq!(containers(&c.name).len(), 1);

    std::fs::rename(&kept, &key).unwrap();
    c.ok(&["heal", &c.name]);
    assert_eq!(ready_swarm_nodes(&c), 1);
    record_fault_row(FaultRow {
        id: "08",
        fault: "the cluster's SSH key file lost",
        happened: "heal failed: \"the SSH key of cluster … is missing … Restore the file …\"; status showed the recorded state; no key made; healed once restored".into(),
        remediations: "0".into(),
        left_over: "none".into(),
    });
}

/// Scale-in of two workers at once: both are drained through the one
/// manager at the same time, each running its own script.
#[test]
fn two_drains_through_one_manager_at_once_each_run_their_own_script() {
    let c = Cluster::new("fm-drain");
    c.create(1, 3);
    c.ok(&["scale", &c.name, "--workers", "1"]);
    let nodes = c.swarm_nodes(&c.manager());
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    let events = c.events();
    for w in ["worker-2", "worker-3"] {
        let node = format!("{}-{w}", c.name);
        assert!(events.contains(&format!("{node}  drained")), "{events}");
        assert!(!nodes.iter().any(|(h, _)| h == &node), "{nodes:?}");
    }
    // One kept copy a script name, no per-run file left behind.
    let kept = c.ssh(&c.manager(), &["ls", "/var/lib/provision/scripts"]);
    let drains: Vec<&str> = kept.lines().filter(|l| l.contains("drain")).collect();
    assert_eq!(drains, ["swarm-drain.sh"], "{kept}");
    record_fault_row(FaultRow {
        id: "06",
        fault: "two drains through one manager at once (scale-in by 2)",
        happened: "both drained and removed, each from its own script file; one kept copy".into(),
        remediations: "0".into(),
        left_over: "none".into(),
    });
}

/// Runs `provision swarm --cloud openstack` with `extra` arguments.
fn openstack_create(c: &Cluster, template: &str) -> std::process::Output {
    let path = c.dir().join("template.yaml");
    std::fs::write(&path, template).unwrap();
    c.cmd()
        .args([
            "swarm",
            "--cloud",
            "openstack",
            "--os-cloud",
            "provision-test",
        ])
        .args(["--name", &c.name, "--template", path.to_str().unwrap()])
        .output()
        .unwrap()
}

const OS_TEMPLATE: &str = "coe: swarm\nmanagers: 1\nworkers: 1\nhealth:\n  ssh_timeout: 3s\n  not_ready_timeout: 3s\n  lost_timeout: 20s\n";

/// A cluster formed on the OpenStack test cloud from `template`, and its id.
fn formed_on_openstack(env: &[(String, String)], name: &str, template: &str) -> (Cluster, String) {
    let c = Cluster::new(name).with_env(env);
    let out = openstack_create(&c, template);
    assert!(out.status.success(), "{}", output_text(&out));
    let id = c.status_json()["id"].as_str().unwrap().to_string();
    (c, id)
}

/// Server ids of the cluster, sorted.
fn server_ids(cloud: &crate::common::openstack::OpenStackCloud, id: &str) -> Vec<String> {
    sorted(
        cloud
            .servers(id)
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect(),
    )
}

/// A joined worker's server in REBOOT for 90 s, its body frozen meanwhile
/// (SSH does not answer, Swarm marks it Down): with the daemon running,
/// nothing is replaced; after the reboot the node is healthy again.
#[test]
fn a_server_rebooting_for_90_s_is_not_replaced() {
    let (_turn, cloud) = openstack_cloud();
    let (c, id) = formed_on_openstack(&cloud.env, "fm-boot", OS_TEMPLATE);
    let before = server_ids(cloud, &id);
    let worker = cloud
        .servers(&id)
        .into_iter()
        .find(|s| s["name"].as_str().unwrap().ends_with("-worker-1"))
        .unwrap();
    let server = worker["id"].as_str().unwrap().to_string();
    let body = cloud.bodies(std::slice::from_ref(&server)).remove(0);
    cloud.force_status(&server, "REBOOT", 90);
    docker(&["pause", &body]);
    let mut daemon = Daemon::start(&c, "5s");
    std::thread::sleep(Duration::from_secs(90));
    docker(&["unpause", &body]);
    wait_until(
        "the rebooted node healthy",
        Duration::from_secs(120),
        || c.status_nodes().iter().all(|(_, h)| h == "healthy"),
    );
    assert!(daemon.stop(Duration::from_secs(15)));
    let events = c.events();
    assert_eq!(remediations_in(&events), 0, "{events}");
    assert!(
        events.contains("machine busy: Nova reports REBOOT"),
        "{events}"
    );
    assert_eq!(server_ids(cloud, &id), before);
    c.ok(&["destroy", &c.name, "--yes"]);
    assert!(cloud.all_servers(&id).is_empty());
    record_fault_row(FaultRow {
        id: "01",
        fault: "a joined worker's server in Nova REBOOT for 90 s (its body frozen), daemon at 5 s",
        happened: "event \"machine busy: Nova reports REBOOT\"; healthy again after; same servers"
            .into(),
        remediations: "0".into(),
        left_over: "none".into(),
    });
}

/// Servers whose sshd answers while their boot still refuses every user
/// but root (systemd-user-sessions 8 s late; pam_nologin(8) meanwhile, so
/// OpenSSH accepts the key and closes the connection): the create waits
/// that out instead of failing on the cluster key, and each node's sshd
/// shows that it turned the login user away first.
#[test]
fn logins_refused_while_machines_boot_are_waited_out() {
    let (_turn, cloud) = openstack_cloud();
    cloud.faults(r#"{"user_sessions_after_s": 8}"#);
    let c = Cluster::new("fm-nologin").with_env(&cloud.env);
    let out = openstack_create(&c, OS_TEMPLATE);
    cloud.reset();
    assert!(out.status.success(), "{}", output_text(&out));
    let id = c.status_json()["id"].as_str().unwrap().to_string();
    let bodies = cloud.bodies(&server_ids(cloud, &id));
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    for body in &bodies {
        let sshd = docker(&["exec", body, "journalctl", "-u", "ssh", "--no-pager"]);
        assert!(
            sshd.contains("Access denied for user debian by PAM account configuration"),
            "{body} let the login in without turning it away first: {sshd}"
        );
    }
    assert!(c.status_nodes().iter().all(|(_, h)| h == "healthy"));
    c.ok(&["destroy", &c.name, "--yes"]);
    assert!(cloud.all_servers(&id).is_empty());
    record_fault_row(FaultRow {
        id: "27",
        fault: "servers whose sshd answers 8 s before their boot allows logins other than root (pam_nologin closes the login)",
        happened: "each node's sshd turned the login user away first (PAM account stage); the create waited it out and formed the cluster".into(),
        remediations: "0".into(),
        left_over: "none".into(),
    });
}

/// One listing misses a server (Nova skips servers of a cell that does not
/// answer): nothing is replaced or deleted; the next listing has it back.
#[test]
fn one_listing_without_a_server_replaces_and_deletes_nothing() {
    let (_turn, cloud) = openstack_cloud();
    let (c, id) = formed_on_openstack(&cloud.env, "fm-hide", OS_TEMPLATE);
    let before = server_ids(cloud, &id);
    cloud.faults(&format!(r#"{{"hide_servers": ["{}-worker-1"]}}"#, c.name));
    c.ok(&["heal", &c.name]);
    let events = c.events();
    assert!(events.contains("unhealthy: machine gone"), "{events}");
    c.ok(&["heal", &c.name]);
    let events = c.events();
    assert_eq!(remediations_in(&events), 0, "{events}");
    assert_eq!(server_ids(cloud, &id), before);
    assert!(c.status_nodes().iter().all(|(_, h)| h == "healthy"));
    c.ok(&["destroy", &c.name, "--yes"]);
    record_fault_row(FaultRow {
        id: "02",
        fault: "one server listing without a joined worker's server",
        happened: "recorded \"machine gone\" once, healthy at the next listing; same servers"
            .into(),
        remediations: "0".into(),
        left_over: "none".into(),
    });
}

/// Every create POST answered 504 after the cloud carried it out (a gateway
/// that gave up while Nova and Neutron went on): each retry finds what the
/// earlier try made, so there is one keypair, one security group with one
/// copy of each rule, one server a node.
#[test]
fn creates_answered_504_after_they_were_carried_out_make_nothing_twice() {
    let (_turn, cloud) = openstack_cloud();
    cloud.faults(r#"{"late_posts": 1000, "late_answered": 0}"#);
    let c = Cluster::new("fm-late").with_env(&cloud.env);
    let out = openstack_create(&c, OS_TEMPLATE);
    let late = cloud.faults(r#"{"late_posts": 0}"#)["late_answered"]
        .as_u64()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let id = c.status_json()["id"].as_str().unwrap().to_string();
    let state = cloud.state();
    let servers = cloud.servers(&id);
    let names: std::collections::BTreeSet<&str> = servers
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!((servers.len(), names.len()), (2, 2), "{state}");
    let group = format!("provision-{id}");
    let groups: Vec<&serde_json::Value> = state["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["name"] == group.as_str())
        .collect();
    assert_eq!(groups.len(), 1, "{state}");
    let rules: Vec<String> = groups[0]["security_group_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {}",
                r["direction"],
                r["ethertype"],
                r["protocol"],
                r["port_range_min"],
                r["remote_ip_prefix"],
                r["remote_group_id"]
            )
        })
        .collect();
    let unique_rules: std::collections::BTreeSet<&String> = rules.iter().collect();
    assert_eq!(rules.len(), unique_rules.len(), "{rules:#?}");
    let keypairs = state["keypairs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k.as_str() == Some(group.as_str()))
        .count();
    assert_eq!(keypairs, 1, "{state}");
    assert_eq!(ready_swarm_nodes(&c), 2);
    c.ok(&["destroy", &c.name, "--yes"]);
    assert!(cloud.all_servers(&id).is_empty());
    record_fault_row(FaultRow {
        id: "04",
        fault: "every create POST answered 504 after it was carried out",
        happened: format!(
            "{late} late answers; formed with 1 keypair, 1 security group ({} rules, none twice), 1 server a node",
            rules.len()
        ),
        remediations: "0".into(),
        left_over: "none".into(),
    });
}

/// 20 % of all calls fail with 500, 503 or 429: create, scale-in and
/// destroy all finish, with nothing made twice and nothing left over.
#[test]
fn a_fifth_of_all_calls_failing_still_converges_and_leaves_nothing() {
    let (_turn, cloud) = openstack_cloud();
    cloud.faults(r#"{"error_rate": 0.2, "error_codes": [500, 503, 429], "injected": 0}"#);
    let c = Cluster::new("fm-flaky").with_env(&cloud.env);
    let template = "coe: swarm\nmanagers: 1\nworkers: 2\n";
    let out = openstack_create(&c, template);
    assert!(out.status.success(), "{}", output_text(&out));
    let id = c.status_json()["id"].as_str().unwrap().to_string();
    assert_eq!(cloud.servers(&id).len(), 3);
    c.ok(&["scale", &c.name, "--workers", "1"]);
    assert_eq!(cloud.servers(&id).len(), 2);
    assert_eq!(ready_swarm_nodes(&c), 2);
    c.ok(&["destroy", &c.name, "--yes"]);
    let injected = cloud.faults(r#"{"error_rate": 0.0}"#)["injected"]
        .as_u64()
        .unwrap();
    assert!(injected > 0);
    let state = cloud.state();
    assert!(cloud.all_servers(&id).is_empty(), "{state}");
    assert!(
        !state.to_string().contains(&format!("provision-{id}")),
        "{state}"
    );
    record_fault_row(FaultRow {
        id: "05",
        fault: "20 % of all OpenStack calls fail (500, 503, 429)",
        happened: format!(
            "{injected} errors injected; create, scale-in and destroy finished; one server a node"
        ),
        remediations: "0".into(),
        left_over: "none".into(),
    });
}

/// Firewall drift: an operator removes the swarm port's rule and adds one
/// of their own, and the user changes `ssh_from`: the next run puts the
/// swarm rule back, moves SSH to the new range (revoking the old), leaves
/// the operator's rule, and says each change. At create, an SSH range open
/// to the world is warned about.
#[test]
fn firewall_drift_is_reconciled_to_the_template_and_said() {
    let (_turn, cloud) = openstack_cloud();
    let c = Cluster::new("fm-fw").with_env(&cloud.env);
    let out = openstack_create(&c, "coe: swarm\nmanagers: 1\nworkers: 0\n");
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("firewall.ssh_from is 0.0.0.0/0"),
        "a warning at create: {text}"
    );
    let id = c.status_json()["id"].as_str().unwrap().to_string();
    let group_id = cloud.security_group(&id)["id"]
        .as_str()
        .unwrap()
        .to_string();
    cloud.edit_rules(&format!(
        r#"{{"security_group_id": "{group_id}", "remove_port": 2377,
             "add": {{"protocol": "tcp", "port_range_min": 9100, "port_range_max": 9100,
                     "remote_ip_prefix": "198.18.0.0/15", "description": "monitoring"}}}}"#
    ));
    let out = c
        .cmd()
        .args([
            "swarm",
            "--cloud",
            "openstack",
            "--os-cloud",
            "provision-test",
        ])
        .args(["--name", &c.name, "--ssh-from", "10.0.0.0/8"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let rules = cloud.security_group(&id)["security_group_rules"].clone();
    let find = |port: u64| {
        rules
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["port_range_min"] == port)
            .cloned()
            .collect::<Vec<_>>()
    };
    let ssh = find(22);
    assert_eq!(ssh.len(), 1, "{rules:#}");
    assert_eq!(ssh[0]["remote_ip_prefix"], "10.0.0.0/8");
    assert_eq!(find(2377).len(), 1, "{rules:#}");
    assert_eq!(find(9100).len(), 1, "the operator's rule stays: {rules:#}");
    let events = c.events();
    for change in [
        "firewall: added tcp 2377 from the cluster's members",
        "firewall: added tcp 22 from 10.0.0.0/8",
        "firewall: revoked tcp 22 from 0.0.0.0/0",
    ] {
        assert!(events.contains(change), "{change}: {events}");
    }
    // Nothing more to change.
    c.ok(&["heal", &c.name]);
    assert_eq!(c.events().matches("firewall:").count(), 3);
    c.ok(&["destroy", &c.name, "--yes"]);
    record_fault_row(FaultRow {
        id: "19",
        fault: "firewall drift: an operator removed the swarm port's rule and added one of theirs; `--ssh-from` changed",
        happened: "the next run re-added tcp 2377, added SSH from the new range and revoked the old, kept the operator's rule; each change an event".into(),
        remediations: "0".into(),
        left_over: "none".into(),
    });
}

/// A worker sets its own hostname to text that would end a script's comment
/// line and run a command on the manager (Swarm reports the hostname the
/// node's engine gives): the member is refused with an event, scale-in of
/// that worker runs nothing of it on the manager, and the cluster goes on.
#[test]
fn a_hostname_that_would_run_a_command_on_a_manager_is_refused() {
    let c = Cluster::new("fm-host");
    c.create(1, 2);
    let evil = format!("{}-worker-2", c.name);
    c.ssh(
        &evil,
        &[
            "sh",
            "-c",
            // sethostname(2) itself (x86_64 syscall 170): `hostname` and
            // /proc refuse or cut a newline, the kernel does not.
            "perl -e '$h = \"x\\ntouch /tmp/pwned\\n#\"; syscall(170, $h, length $h) == 0 or die $!' && systemctl restart docker",
        ],
    );
    let manager = c.manager();
    wait_until(
        "Swarm to report the new hostname",
        Duration::from_secs(120),
        || {
            c.ssh(
            &manager,
            &[
                "sh",
                "-c",
                "docker node inspect --format '{{json .Description.Hostname}}' $(docker node ls -q)",
            ],
        )
        .contains("pwned")
        },
    );
    c.ok(&["heal", &c.name]);
    c.ok(&["scale", &c.name, "--workers", "1"]);
    let events = c.events();
    assert!(
        events.contains("reports a hostname that is not a valid one"),
        "{events}"
    );
    let pwned = c.ssh(
        &manager,
        &["sh", "-c", "test -e /tmp/pwned && echo PWNED || echo clean"],
    );
    assert_eq!(pwned.trim(), "clean");
    assert!(!containers(&c.name).contains(&evil));
    // Its entry goes Down once Swarm misses its heartbeats.
    wait_until("2 Ready nodes", Duration::from_secs(60), || {
        ready_swarm_nodes(&c) == 2
    });
    record_fault_row(FaultRow {
        id: "21",
        fault: "a worker sets its hostname to \"x\\ntouch /tmp/pwned\\n#\" (Swarm reports it)",
        happened: "member refused with an event; scale-in of it ran nothing on the manager (no /tmp/pwned)".into(),
        remediations: "0".into(),
        left_over: "its Swarm entry (Down, refused) for an operator".into(),
    });
}

/// The largest resident size any waited-for child of this test reached, in MiB.
fn children_max_rss_mib() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

/// Every node's probe prints without end (`yes`): each is cut off at the
/// probe's limit and reported as such, the node counted unreachable, and
/// `heal` stays within a fixed memory bound (without the limit it would
/// keep the probe's whole output, hundreds of MiB a second over SSH).
#[test]
fn a_node_that_prints_without_end_is_cut_off_and_memory_stays_bounded() {
    let c = Cluster::new("fm-yes");
    c.create(1, 1);
    let scripts = c.dir().join("endless-scripts");
    std::fs::create_dir_all(scripts.join("swarm")).unwrap();
    std::fs::write(
        scripts.join("swarm/probe.sh.j2"),
        "#!/usr/bin/env bash\nexec yes 'endless output from a node'\n",
    )
    .unwrap();
    let out = c.run(&["--scripts-dir", scripts.to_str().unwrap(), "heal", &c.name]);
    let text = output_text(&out);
    let rss = children_max_rss_mib();
    eprintln!(
        "measured: heal with every probe printing without end: largest child resident {rss:.0} MiB"
    );
    assert!(rss < 200.0, "{rss:.0} MiB: {text}");
    let events = c.recorded_events();
    assert!(
        events.contains("swarm/probe.sh printed more than 1048576 bytes, so it was cut off"),
        "{text}\n{events}"
    );
    // The cluster itself is as it was: with the real probe, healthy.
    let again = c.ok(&["heal", &c.name]);
    assert!(!again.contains("replacing"), "{again}");
    record_fault_row(FaultRow {
        id: "31",
        fault: "every node's probe prints without end (`yes`), `provision heal`",
        happened: format!("each probe cut off at 1 MiB and the node counted unreachable, named; heal's largest resident size {rss:.0} MiB"),
        remediations: "0".into(),
        left_over: "none".into(),
    });
}

/// Every compute host of one zone fails: its manager's and worker's
/// servers go to ERROR and the zone is listed unavailable. With the daemon
/// running, both are replaced, and into the healthy zones (never back into
/// the failed one); the cluster is whole again.
#[test]
fn a_failed_zone_is_replaced_into_the_healthy_zones() {
    let (_turn, cloud) = openstack_cloud();
    let template = "coe: swarm\nmanagers: 3\nworkers: 3\nnode:\n  zones: [az-1, az-2, az-3]\n\
                    health:\n  ssh_timeout: 3s\n  not_ready_timeout: 3s\n  lost_timeout: 20s\n";
    let (c, id) = formed_on_openstack(&cloud.env, "fm-zone", template);
    let failed = cloud.zone_down("az-3", true);
    assert_eq!(failed.len(), 2, "one manager and one worker in az-3");
    let mut daemon = Daemon::start(&c, "5s");
    let whole = || {
        let servers = cloud.servers(&id);
        let nodes = c.status_nodes();
        servers.len() == 6
            && servers
                .iter()
                .all(|s| s["status"] == "ACTIVE" && s["availability_zone"] != "az-3")
            && nodes.len() == 6
            && nodes.iter().all(|(_, h)| h == "healthy")
    };
    wait_until(
        "both replaced in the healthy zones",
        Duration::from_secs(360),
        whole,
    );
    assert!(daemon.stop(Duration::from_secs(15)));
    cloud.zone_down("az-3", false);
    let events = c.events();
    assert_eq!(remediations_in(&events), 2, "{events}");
    assert!(events.contains("zone az-3 is failing"), "{events}");
    assert_eq!(ready_swarm_nodes(&c), 6);
    let mut zones: Vec<String> = cloud
        .servers(&id)
        .iter()
        .map(|s| s["availability_zone"].as_str().unwrap().to_string())
        .collect();
    zones.sort();
    c.ok(&["destroy", &c.name, "--yes"]);
    assert!(cloud.all_servers(&id).is_empty());
    record_fault_row(FaultRow {
        id: "33",
        fault: "every server of one zone of three in ERROR (its hosts down), daemon at 5 s",
        happened: format!(
            "manager and worker replaced into the healthy zones ({}); event \"zone az-3 is \
             failing\"",
            zones.join(" ")
        ),
        remediations: "2".into(),
        left_over: "none".into(),
    });
}

/// kill -9 of the cluster command in the middle of a flavor rollout (an
/// old node leaving), then of the daemon in the middle of the rest: the
/// next run finishes it from the records, with every server of the new
/// flavor, one server a node, and each old node retired once.
#[test]
fn a_rollout_killed_in_the_command_and_in_the_daemon_is_finished() {
    let (_turn, cloud) = openstack_cloud();
    let (c, id) = formed_on_openstack(&cloud.env, "fm-roll", OS_TEMPLATE);
    let rolled = |n: usize| {
        let events = c.recorded_events();
        move || events.matches("retiring: rollout").count() >= n
    };
    let mut command = c
        .cmd()
        .args([
            "swarm",
            "--cloud",
            "openstack",
            "--os-cloud",
            "provision-test",
        ])
        .args(["--name", &c.name, "--flavor", "m1.medium"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "an old node retired by the command",
        Duration::from_secs(180),
        || rolled(1)(),
    );
    kill9(&mut command);
    let left = c.ok(&["rollout", &c.name, "status"]);
    assert!(left.contains("1 to replace"), "killed mid-way: {left}");
    let mut daemon = Daemon::start(&c, "2s");
    wait_until(
        "the next old node retired by the daemon",
        Duration::from_secs(180),
        || rolled(2)(),
    );
    kill9(&mut daemon.child);
    c.ok(&["heal", &c.name]);
    let servers = cloud.servers(&id);
    assert_eq!(servers.len(), 2, "{servers:?}");
    assert!(
        servers
            .iter()
            .all(|s| s["flavor"] == "m1.medium" && s["status"] == "ACTIVE"),
        "{servers:?}"
    );
    let events = c.recorded_events();
    assert_eq!(events.matches("retiring: rollout").count(), 2, "{events}");
    assert_eq!(remediations_in(&events), 0, "{events}");
    let status = c.ok(&["rollout", &c.name, "status"]);
    assert!(status.contains("no rollout under way"), "{status}");
    c.ok(&["destroy", &c.name, "--yes"]);
    assert!(cloud.all_servers(&id).is_empty());
    record_fault_row(FaultRow {
        id: "35",
        fault: "kill -9 of the cluster command mid-rollout (flavor), then of the daemon \
                carrying it on",
        happened: "`heal` finished it: both servers m1.medium, each old node retired once, \
                   none remediated"
            .into(),
        remediations: "0".into(),
        left_over: "none".into(),
    });
}
