//! `provision swarm --cloud openstack` end to end on the OpenStack test
//! cloud: a real Keystone (every request's token is checked with it, the
//! services come from its catalog) and the simulated Nova/Neutron/Glance,
//! whose servers are node containers.

use std::time::Duration;

use crate::common::openstack::{openstack_cloud, OpenStackCloud};
use crate::common::*;

fn create(c: &Cluster, os_cloud: &str, extra: &[&str]) -> std::process::Output {
    c.cmd()
        .args([
            "swarm",
            "--cloud",
            "openstack",
            "--os-cloud",
            os_cloud,
            "--name",
            &c.name,
        ])
        .args(extra)
        .output()
        .unwrap()
}

fn assert_ok(out: &std::process::Output, what: &str) {
    assert!(out.status.success(), "{what} failed:\n{}", output_text(out));
}

/// The cluster formed: `nodes` ACTIVE servers with distinct names and as
/// many Ready Swarm nodes. Returns its id.
fn assert_formed(c: &Cluster, cloud: &OpenStackCloud, nodes: usize) -> String {
    let id = c.status_json()["id"].as_str().unwrap().to_string();
    let servers = cloud.servers(&id);
    let names: std::collections::BTreeSet<&str> = servers
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!((servers.len(), names.len()), (nodes, nodes), "{servers:?}");
    assert!(
        servers.iter().all(|s| s["status"] == "ACTIVE"),
        "{servers:?}"
    );
    assert_eq!(ready_swarm_nodes(c), nodes);
    id
}

/// `destroy`, then the simulator holds no server of the cluster; its state.
fn destroy_leaves_no_server(c: &Cluster, cloud: &OpenStackCloud, id: &str) -> serde_json::Value {
    c.ok(&["destroy", &c.name, "--yes"]);
    let state = cloud.state();
    // Destroy waits until every server is gone, not only deleting.
    assert!(cloud.all_servers(id).is_empty(), "{state}");
    state
}

fn ids(servers: &[serde_json::Value]) -> Vec<String> {
    servers
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn swarm_on_openstack_forms_heals_and_destroy_leaves_nothing() {
    let (_turn, cloud) = openstack_cloud();
    let c = Cluster::new("os").with_env(&cloud.env);
    // A failed server is replaced on the second look 2 s later (the
    // default, a minute, guards against one bad listing).
    let template = c.dir().join("os.yaml");
    std::fs::write(
        &template,
        "coe: swarm\nmanagers: 1\nworkers: 2\nhealth:\n  lost_timeout: 2s\n",
    )
    .unwrap();
    let out = create(
        &c,
        "provision-test",
        &["--template", template.to_str().unwrap()],
    );
    assert_ok(&out, "create");
    let (create_calls, per_call) = cloud.calls();
    eprintln!("OpenStack API calls to create a 1+2 cluster (counted by the simulator): {create_calls}\n{per_call:#}");
    assert_eq!(ready_swarm_nodes(&c), 3);

    let status = c.status_json();
    let id = status["id"].as_str().unwrap().to_string();
    let kinds: Vec<&str> = status["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    for kind in ["keypair", "security-group", "server-group"] {
        assert!(kinds.contains(&kind), "{kind} not recorded: {status}");
    }
    let servers = cloud.servers(&id);
    assert_eq!(servers.len(), 3, "{servers:?}");
    let state = cloud.state();
    let name = format!("provision-{id}");
    // Exactly the rules Swarm needs: SSH from the template's range, the
    // member ports from the group itself (and Neutron's default egress).
    let group = state["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name.as_str())
        .unwrap()
        .clone();
    let mut ingress: Vec<String> = group["security_group_rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["direction"] == "ingress")
        .map(|r| {
            let from = if r["remote_group_id"] == group["id"] {
                "members".to_string()
            } else {
                r["remote_ip_prefix"].as_str().unwrap_or("?").to_string()
            };
            format!(
                "{}/{} from {from}",
                r["port_range_min"],
                r["protocol"].as_str().unwrap()
            )
        })
        .collect();
    ingress.sort();
    assert_eq!(
        ingress,
        [
            "22/tcp from 0.0.0.0/0",
            "2377/tcp from members",
            "4789/udp from members",
            "7946/tcp from members",
            "7946/udp from members"
        ]
    );
    let managers: Vec<&serde_json::Value> = servers
        .iter()
        .filter(|s| s["metadata"]["provision-role"] == "manager")
        .collect();
    let sg = state["server_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name.as_str())
        .unwrap()
        .clone();
    assert_eq!(sg["policies"], serde_json::json!(["soft-anti-affinity"]));
    assert_eq!(
        sg["members"],
        serde_json::json!([managers[0]["id"]]),
        "only managers in the server group"
    );
    assert!(servers.iter().all(
        |s| s["key_name"] == name.as_str() && s["security_groups"] == serde_json::json!([name])
    ));

    // One reconcile pass of a converged cluster: one server listing, one
    // security group listing (the firewall is reconciled every run), and
    // the compute and network version documents a new process reads once.
    cloud.reset_calls();
    c.ok(&["heal", &c.name]);
    let (pass_calls, per_call) = cloud.calls();
    eprintln!("OpenStack API calls for one reconcile pass of a converged 1+2 cluster: {pass_calls}\n{per_call:#}");
    assert_eq!(
        per_call["compute GET /v2.1/servers/detail"], 1,
        "{per_call}"
    );
    assert_eq!(
        per_call["network GET /v2.0/security-groups"], 1,
        "{per_call}"
    );
    assert!(pass_calls <= 4, "{per_call}");

    // Dry runs of every changing command reach the cloud with reads only.
    cloud.reset_calls();
    for args in [
        vec!["scale", c.name.as_str(), "--workers", "3", "--dry-run"],
        vec![
            "nodes",
            "add",
            c.name.as_str(),
            "--role",
            "manager",
            "--count",
            "2",
            "--dry-run",
        ],
        vec!["heal", c.name.as_str(), "--dry-run"],
        vec!["destroy", c.name.as_str(), "--dry-run"],
    ] {
        let out = c.ok(&args);
        assert!(
            out.contains("Dry run: nothing was changed."),
            "{args:?}: {out}"
        );
    }
    let (_, per_call) = cloud.calls();
    let writes: Vec<&String> = per_call
        .as_object()
        .unwrap()
        .keys()
        .filter(|call| call.split_whitespace().nth(1) != Some("GET"))
        .collect();
    assert!(
        writes.is_empty(),
        "a dry run changed the cloud: {per_call:#}"
    );

    // The daemon keeps its cloud connection for its lifetime: pass after
    // pass only the listings recur; what a new connection reads (the
    // compute and network version documents) comes once.
    cloud.reset_calls();
    let mut daemon = Daemon::start(&c, "2s");
    wait_until("4 daemon rounds", Duration::from_secs(90), || {
        std::fs::read_to_string(c.dir().join("daemon.log"))
            .unwrap_or_default()
            .contains("round done round=4 ")
    });
    assert!(daemon.stop(Duration::from_secs(15)));
    let (total, per_call) = cloud.calls();
    let listings = per_call["compute GET /v2.1/servers/detail"]
        .as_u64()
        .unwrap_or(0)
        + per_call["network GET /v2.0/security-groups"]
            .as_u64()
            .unwrap_or(0);
    assert!(listings >= 8, "{per_call:#}");
    assert!(
        total - listings <= 4,
        "the daemon connected again each pass: {per_call:#}"
    );

    // A worker's server fails: Nova's fault shows, the policy replaces it.
    let worker = servers
        .iter()
        .find(|s| s["metadata"]["provision-role"] == "worker")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    cloud.fail_server(&worker, "Hypervisor host lost: compute-3 is down");
    c.ok(&["heal", &c.name]);
    std::thread::sleep(Duration::from_secs(3));
    let heal = c.run(&["heal", &c.name]);
    assert_ok(&heal, "heal");
    let log = String::from_utf8_lossy(&heal.stderr);
    assert!(
        log.contains("Nova: Hypervisor host lost: compute-3 is down"),
        "{log}"
    );
    let live = cloud.servers(&id);
    assert_eq!(live.len(), 3, "{live:?}");
    assert!(
        live.iter()
            .all(|s| s["id"] != worker.as_str() && s["status"] == "ACTIVE"),
        "{live:?}"
    );
    assert_eq!(ready_swarm_nodes(&c), 3);

    let mut all = ids(&servers);
    all.extend(ids(&live));
    let state = destroy_leaves_no_server(&c, cloud, &id);
    for kind in ["security_groups", "server_groups"] {
        assert!(
            !state[kind]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"] == name.as_str()),
            "{kind}: {state}"
        );
    }
    assert!(
        !state["keypairs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == name.as_str()),
        "{state}"
    );
    wait_until(
        "the server containers to go",
        Duration::from_secs(20),
        || cloud.bodies(&all).is_empty(),
    );
}

/// One request in five answers 500, 503, 429 or 409: retries with backoff and
/// jitter carry the calls through, and no server is made twice.
#[test]
fn injected_errors_are_retried_and_the_cluster_still_converges() {
    let (_turn, cloud) = openstack_cloud();
    cloud.faults(r#"{"error_rate": 0.2, "error_codes": [500, 503, 429, 409]}"#);
    let c = Cluster::new("osflaky").with_env(&cloud.env);
    let out = create(&c, "provision-test", &[]);
    let injected = cloud.faults("{}")["injected"].as_u64().unwrap();
    cloud.reset();
    assert_ok(&out, "create with 20% injected errors");
    eprintln!("injected {injected} errors; the cluster formed");
    assert!(injected > 0, "no fault was injected");
    let id = assert_formed(&c, cloud, 3);
    destroy_leaves_no_server(&c, cloud, &id);
}

/// The first server Nova builds goes to ERROR ("No valid host"): the run
/// says so with Nova's fault and stops; the next run replaces the failed
/// server (the health policy) and the cluster forms, with no server left
/// in ERROR.
#[test]
fn a_server_that_fails_to_build_is_reported_and_replaced_by_the_next_run() {
    let (_turn, cloud) = openstack_cloud();
    cloud.faults(r#"{"servers_fail": 1}"#);
    let c = Cluster::new("oserr").with_env(&cloud.env);
    let first = create(&c, "provision-test", &["--workers", "1"]);
    let text = output_text(&first);
    assert!(
        text.contains("Nova: No valid host was found"),
        "Nova's fault in the output: {text}"
    );
    let second = if first.status.success() {
        first
    } else {
        create(&c, "provision-test", &["--workers", "1"])
    };
    assert_ok(&second, "the run after a build failure");
    let id = assert_formed(&c, cloud, 2);
    destroy_leaves_no_server(&c, cloud, &id);
}

/// Each bad setting fails before any server exists or anything is stored.
#[test]
fn bad_openstack_input_fails_before_any_server_is_created() {
    let (_turn, cloud) = openstack_cloud();
    let c = Cluster::new("osbad").with_env(&cloud.env);
    let attempt = |os_cloud: &str, extra: &[&str]| {
        let out = create(&c, os_cloud, extra);
        assert!(!out.status.success(), "{os_cloud} {extra:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = attempt("provision-wrong", &[]);
    assert!(
        e.contains("Keystone refused the credentials") && e.contains("clouds.yaml"),
        "{e}"
    );
    assert!(
        !e.contains("not-the-password"),
        "the password reached the output: {e}"
    );
    let e = attempt("provision-test", &["--flavor", "m9.enormous"]);
    assert!(
        e.contains("flavor: no flavor m9.enormous") && e.contains("m1.small"),
        "{e}"
    );
    let e = attempt("provision-test", &["--image", "windows-95"]);
    assert!(
        e.contains("image: no image windows-95") && e.contains("debian-12"),
        "{e}"
    );
    let e = attempt("provision-test", &["--network", "nowhere"]);
    assert!(
        e.contains("openstack.network: no network nowhere") && e.contains("private"),
        "{e}"
    );
    // A zone the cloud does not offer: Nova would refuse it only at the
    // server's create, after the keypair and groups exist.
    let zone = c.dir().join("zone.yaml");
    std::fs::write(&zone, "coe: swarm\nopenstack:\n  availability_zone: az-9\n").unwrap();
    let e = attempt("provision-test", &["--template", zone.to_str().unwrap()]);
    assert!(
        e.contains("openstack.availability_zone: no available zone az-9") && e.contains("az-2"),
        "{e}"
    );
    // A pool's flavor, and a zone, checked the same way, the group named.
    let pool = c.dir().join("pool.yaml");
    std::fs::write(
        &pool,
        "coe: swarm\npools:\n  - {name: gpu, count: 1, flavor: m9.enormous}\n",
    )
    .unwrap();
    let e = attempt("provision-test", &["--template", pool.to_str().unwrap()]);
    assert!(
        e.contains("flavor of the gpu: no flavor m9.enormous") && e.contains("m1.medium"),
        "{e}"
    );
    std::fs::write(&pool, "coe: swarm\nnode:\n  zones: [az-1, az-9]\n").unwrap();
    let e = attempt("provision-test", &["--template", pool.to_str().unwrap()]);
    assert!(
        e.contains("zones of the managers: no available zone az-9"),
        "{e}"
    );
    let e = attempt("no-such-cloud", &[]);
    assert!(
        e.contains("cloud no-such-cloud is not in") && e.contains("provision-test"),
        "{e}"
    );
    // Kubernetes on the default flavor (m1.small: 1 vCPU) would fail in
    // kubeadm's preflight on the first node: refused before any server.
    let out = c
        .cmd()
        .args([
            "kubernetes",
            "--cloud",
            "openstack",
            "--os-cloud",
            "provision-test",
        ])
        .args(["--name", &c.name])
        .output()
        .unwrap();
    let e = output_text(&out);
    assert!(!out.status.success(), "{e}");
    assert!(
        e.contains("flavor: flavor m1.small has 1 vCPU(s) and 2048 MiB")
            && e.contains("Kubernetes control-plane nodes"),
        "{e}"
    );

    let (calls, per_call) = cloud.calls();
    assert!(
        per_call.get("compute POST /v2.1/servers").is_none(),
        "{calls} calls: {per_call}"
    );
    assert!(
        per_call.get("compute POST /v2.1/os-keypairs").is_none(),
        "{per_call}"
    );
    let list = c.ok(&["list"]);
    assert!(!list.contains(&c.name), "nothing stored: {list}");
}

/// Application-credential auth, floating IPs from a pool used for SSH, and
/// a destroy that releases the floating IPs it allocated but not one that
/// was there before.
#[test]
fn application_credential_and_floating_ips() {
    let (_turn, cloud) = openstack_cloud();
    let (foreign_id, _) = cloud.foreign_floating_ip();
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("floating.yaml");
    std::fs::write(
        &template,
        "coe: swarm\nmanagers: 1\nworkers: 1\nopenstack:\n  floating_ip_pool: public\n  ssh_address: floating\n  availability_zone: az-2\n  metadata: {team: infra}\n  user_data: \"#cloud-config\\nruncmd: [touch, /tmp/booted]\\n\"\n",
    )
    .unwrap();
    let c = Cluster::new("osfip").with_env(&cloud.env);
    let out = create(
        &c,
        "provision-test-appcred",
        &["--template", template.to_str().unwrap()],
    );
    assert_ok(&out, "create with floating IPs");
    let status = c.status_json();
    assert_eq!(ready_swarm_nodes(&c), 2);
    // SSH over the floating IPs, which the test cloud's router NATs as
    // Neutron's does; the swarm formed on the fixed addresses.
    assert_swarm_on_private_addresses(&c, "198.51.100.");
    let id = status["id"].as_str().unwrap().to_string();
    for server in cloud.servers(&id) {
        assert_eq!(server["metadata"]["team"], "infra");
        assert_eq!(server["availability_zone"], "az-2");
        assert_eq!(
            server["user_data"],
            "#cloud-config\nruncmd: [touch, /tmp/booted]\n"
        );
    }
    let ours = |state: &serde_json::Value| {
        state["floatingips"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| {
                f["description"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("provision-cluster={id} "))
            })
            .count()
    };
    assert_eq!(ours(&cloud.state()), 2);

    let state = destroy_leaves_no_server(&c, cloud, &id);
    assert_eq!(ours(&state), 0, "{state}");
    assert!(
        state["floatingips"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == foreign_id.as_str()),
        "the foreign floating IP must stay: {state}"
    );
}

/// A quota too small for the cluster: the error names the quota and says by
/// how much it is short.
#[test]
fn quota_errors_say_which_quota_and_by_how_much() {
    let (_turn, cloud) = openstack_cloud();
    cloud.quota(r#"{"instances": 2}"#);
    let c = Cluster::new("osquota").with_env(&cloud.env);
    let out = create(&c, "provision-test", &[]);
    cloud.reset();
    let text = output_text(&out);
    assert!(
        !out.status.success(),
        "a 3-node cluster fit a quota of 2: {text}"
    );
    assert!(
        text.contains("quota instances exceeded: 1 more wanted, 2 of 2 in use, short by 1"),
        "{text}"
    );
    c.ok(&["destroy", &c.name, "--yes"]);
    let id_gone = cloud.state();
    assert!(
        id_gone["servers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| !s["name"].as_str().unwrap().starts_with(&c.name)),
        "{id_gone}"
    );
}

/// `kill -9` of `provision swarm --cloud openstack` while it makes the
/// prerequisites, and again while servers are being created: the next run
/// finishes the cluster with no duplicate, and destroy leaves nothing.
#[test]
fn killed_openstack_runs_are_finished_by_the_next_one() {
    let (_turn, cloud) = openstack_cloud();
    // Slow calls widen the windows the kills aim at.
    cloud.faults(r#"{"latency_ms": 150}"#);
    let c = Cluster::new("oskill").with_env(&cloud.env);
    let args = ["--cloud", "openstack", "--os-cloud", "provision-test"];
    let kill9 = |child: &mut std::process::Child| {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
    };
    let mut child = c.spawn_create(&args);
    wait_until("the cluster's keypair", Duration::from_secs(60), || {
        cloud.state()["keypairs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k.as_str().unwrap().starts_with("provision-"))
    });
    kill9(&mut child);
    let mut child = c.spawn_create(&args);
    wait_until("a first server", Duration::from_secs(60), || {
        cloud.state()["servers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"].as_str().unwrap().starts_with(&c.name))
    });
    kill9(&mut child);
    cloud.reset();

    let out = create(&c, "provision-test", &[]);
    assert_ok(&out, "the run after two kills");
    let id = assert_formed(&c, cloud, 3);
    let state = cloud.state();
    let groups = state["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["name"] == format!("provision-{id}").as_str())
        .count();
    assert_eq!(groups, 1, "one security group: {state}");

    // Destroy, killed once it has deleted a first server (slow calls keep
    // it from finishing first): the daemon recreates nothing, and destroy
    // again finishes.
    // (Each call takes a second, and the servers are looked at every
    // 100 ms: the kill comes right after the first delete, not up to a
    // second later, when a loaded machine let destroy finish first.)
    cloud.faults(r#"{"latency_ms": 1000}"#);
    let mut child = c
        .cmd()
        .args(["destroy", &c.name, "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while cloud.servers(&id).len() >= 3 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "destroy deleted no server in 120 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    kill9(&mut child);
    cloud.reset();
    let left = ids(&cloud.servers(&id));
    assert!(
        !left.is_empty(),
        "destroy finished before the kill: the test needs slower calls"
    );
    assert!(
        c.status_json()["phase"] == "destroying",
        "{}",
        c.status_json()
    );
    c.ok(&["daemon", "--once"]);
    let after = ids(&cloud.servers(&id));
    assert!(
        after.iter().all(|s| left.contains(s)),
        "the daemon created servers: {after:?} (at the kill: {left:?})"
    );
    let left = left.len();
    let state = destroy_leaves_no_server(&c, cloud, &id);
    assert!(
        !state.to_string().contains(&format!("provision-{id}")),
        "{state}"
    );
    record_fault_row(FaultRow {
        id: "16",
        fault: "kill -9 of `provision destroy --cloud openstack` after its first server deletion",
        happened: format!("{left} server(s) left, phase destroying; `daemon --once` recreated nothing; destroy again finished"),
        remediations: "0".into(),
        left_over: "none".into(),
    });
    record_fault_row(FaultRow {
        id: "18",
        fault: "kill -9 of `provision swarm --cloud openstack` after the keypair, then after a first server",
        happened: "the next run formed the cluster with one security group and one server a node".into(),
        remediations: "0".into(),
        left_over: "none after destroy".into(),
    });
}

/// Debian's own cloud image (no Docker, cloud-init still running at first
/// SSH), reached over floating IPs: the install script waits for first
/// boot, installs docker.io, and the swarm forms on the fixed addresses.
#[test]
fn swarm_forms_from_the_bare_debian_cloud_image() {
    let (_turn, cloud) = openstack_cloud();
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("bare.yaml");
    std::fs::write(
        &template,
        "coe: swarm\nmanagers: 1\nworkers: 1\nnode:\n  image: debian-12-genericcloud\nopenstack:\n  floating_ip_pool: public\n  ssh_address: floating\n",
    )
    .unwrap();
    let c = Cluster::new("osbare").with_env(&cloud.env);
    let out = create(
        &c,
        "provision-test",
        &["--template", template.to_str().unwrap()],
    );
    assert_ok(&out, "create from the bare image");
    let id = assert_formed(&c, cloud, 2);
    assert_formed_from_bare_image(&c, 2, true);
    assert_swarm_on_private_addresses(&c, "198.51.100.");
    let state = destroy_leaves_no_server(&c, cloud, &id);
    let ours = state["floatingips"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["description"].as_str().unwrap().contains(&id))
        .count();
    assert_eq!(ours, 0, "{state}");
}

/// Its only manager's server failed for good (Nova ERROR): `provision
/// restore` deletes it first (it holds the address), then restores the
/// swarm on a new server at the same fixed IP — Nova refuses a fixed IP in
/// use, and Swarm keeps the backed-up manager's address as its raft
/// address — and the worker rejoins.
#[test]
fn a_swarm_whose_manager_failed_is_restored_at_the_backed_up_address() {
    let (_turn, cloud) = openstack_cloud();
    let c = Cluster::new("osr").with_env(&cloud.env);
    assert_ok(
        &create(&c, "provision-test", &["--managers", "1", "--workers", "1"]),
        "create",
    );
    let first = c.manager();
    let address = c.private_address(&first);
    let dir = c.dir().join("backups");
    let dir = dir.to_str().unwrap();
    back_up_marked_swarm(&c, dir, "provision-os-restore");
    let id = c.status_json()["id"].as_str().unwrap().to_string();
    let failed = cloud
        .servers(&id)
        .into_iter()
        .find(|s| s["name"] == first.as_str())
        .unwrap();
    cloud.fail_server(failed["id"].as_str().unwrap(), "the host is gone");

    assert_restored_swarm(&c, dir, &address, "provision-os-restore");
    assert_eq!(cloud.servers(&id).len(), 2);
    destroy_leaves_no_server(&c, cloud, &id);
}

/// Each server of the cluster as (name, flavor, zone), by name.
fn placement(cloud: &OpenStackCloud, id: &str) -> Vec<(String, String, String)> {
    let mut placed: Vec<(String, String, String)> = cloud
        .servers(id)
        .iter()
        .map(|s| {
            let text = |key: &str| s[key].as_str().unwrap().to_string();
            (text("name"), text("flavor"), text("availability_zone"))
        })
        .collect();
    placed.sort();
    placed
}

/// Pools and zones: three managers one per zone, two worker pools of
/// different flavors each in its own zone; `scale --pool` grows one pool
/// alone, in its zone and flavor; status groups the nodes by pool.
#[test]
fn pools_of_two_flavors_form_in_their_zones_and_scale_alone() {
    let (_turn, cloud) = openstack_cloud();
    let c = Cluster::new("ospools").with_env(&cloud.env);
    let template = c.dir().join("pools.yaml");
    std::fs::write(
        &template,
        "coe: swarm\nmanagers: 3\nworkers: 0\nnode:\n  zones: [az-1, az-2, az-3]\n\
         pools:\n  - name: small\n    count: 1\n    zones: [az-1]\n    labels: {tier: web}\n\
         \x20 - name: big\n    count: 1\n    flavor: m1.medium\n    zones: [az-2]\n",
    )
    .unwrap();
    let out = create(
        &c,
        "provision-test",
        &["--template", template.to_str().unwrap()],
    );
    assert_ok(&out, "create with two pools");
    let id = assert_formed(&c, cloud, 5);
    let row = |node: &str, flavor: &str, zone: &str| {
        (
            format!("{}-{node}", c.name),
            flavor.to_string(),
            zone.to_string(),
        )
    };
    assert_eq!(
        placement(cloud, &id),
        [
            row("big-1", "m1.medium", "az-2"),
            row("manager-1", "m1.small", "az-1"),
            row("manager-2", "m1.small", "az-2"),
            row("manager-3", "m1.small", "az-3"),
            row("small-1", "m1.small", "az-1"),
        ]
    );
    let status = c.ok(&["status", &c.name]);
    assert!(
        status.contains("managers 3/3 ready, small 1/1 ready, big 1/1 ready"),
        "{status}"
    );
    let json = c.status_json();
    let zones: Vec<(&str, &str)> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["pool"].as_str().unwrap(), n["zone"].as_str().unwrap()))
        .collect();
    assert_eq!(
        zones,
        [
            ("managers", "az-1"),
            ("managers", "az-2"),
            ("managers", "az-3"),
            ("small", "az-1"),
            ("big", "az-2")
        ]
    );

    c.ok(&["scale", &c.name, "--pool", "big", "--workers", "2"]);
    assert_formed(&c, cloud, 6);
    let placed = placement(cloud, &id);
    assert!(
        placed.contains(&row("big-2", "m1.medium", "az-2")),
        "{placed:?}"
    );
    let out = c
        .cmd()
        .args(["scale", &c.name, "--pool", "gpu", "--workers", "1"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("--pool: the cluster has no pool \"gpu\" (it has small, big)"),
        "{text}"
    );
    destroy_leaves_no_server(&c, cloud, &id);
}

/// Each server's (name, flavor, image name), by name.
fn machines_of(cloud: &OpenStackCloud, id: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = cloud
        .servers(id)
        .iter()
        .map(|s| {
            let text = |key: &str| s[key].as_str().unwrap().to_string();
            (text("name"), text("flavor"), text("image"))
        })
        .collect();
    out.sort();
    out
}

/// Ready swarm nodes as a manager that is there now lists them (a
/// rollout replaces manager-1 too).
fn ready_members(c: &Cluster) -> usize {
    let status = c.status_json();
    let manager = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["role"] == "manager" && n["health"] == "healthy")
        .and_then(|n| n["name"].as_str())
        .expect("a healthy manager")
        .to_string();
    let nodes = c.ssh(
        &manager,
        &["sudo", "docker", "node", "ls", "--format", "{{.Status}}"],
    );
    nodes.lines().filter(|s| *s == "Ready").count()
}

/// `nodes` ACTIVE servers of distinct names, as many Ready swarm nodes.
fn assert_rolled(c: &Cluster, cloud: &OpenStackCloud, id: &str, nodes: usize) {
    let servers = cloud.servers(id);
    assert_eq!(servers.len(), nodes, "{servers:?}");
    assert!(
        servers.iter().all(|s| s["status"] == "ACTIVE"),
        "{servers:?}"
    );
    assert_eq!(ready_members(c), nodes);
}

/// A flavor change given to the cluster command is rolled out: a dry run
/// prints the order; the run replaces every server, a new one joined
/// before an old one goes; afterwards each server has the new flavor.
/// Then an image whose servers never let the login user in: the rollout
/// halts after its first new node, the old nodes stay in the swarm,
/// `rollout status` says why; `rollout undo` goes back and leaves the
/// cluster as it was, with nothing of the broken image left.
#[test]
fn a_flavor_change_rolls_out_and_a_broken_image_halts_until_undone() {
    let (_turn, cloud) = openstack_cloud();
    let c = Cluster::new("osroll").with_env(&cloud.env);
    let template = c.dir().join("roll.yaml");
    std::fs::write(
        &template,
        "coe: swarm\nmanagers: 1\nworkers: 2\ntimeouts:\n  ssh: 20s\n  script: 10m\n  converge: 30m\n\
         health:\n  startup_timeout: 30s\n",
    )
    .unwrap();
    let template = template.to_str().unwrap();
    assert_ok(
        &create(&c, "provision-test", &["--template", template]),
        "create",
    );
    let id = assert_formed(&c, cloud, 3);

    let dry = create(
        &c,
        "provision-test",
        &["--flavor", "m1.medium", "--dry-run"],
    );
    assert_ok(&dry, "dry run of the change");
    let text = output_text(&dry);
    assert!(
        text.contains("managers -> image=- flavor=m1.medium: 0 new, 1 to replace")
            && text.contains(&format!(
                "workers -> image=- flavor=m1.medium: 0 new, 2 to replace ({0}-worker-2, {0}-worker-1)",
                c.name
            )),
        "{text}"
    );
    assert!(cloud.servers(&id).iter().all(|s| s["flavor"] == "m1.small"));

    assert_ok(
        &create(&c, "provision-test", &["--flavor", "m1.medium"]),
        "rollout",
    );
    assert_rolled(&c, cloud, &id, 3);
    let machines = machines_of(cloud, &id);
    assert!(
        machines.iter().all(|(_, flavor, _)| flavor == "m1.medium"),
        "{machines:?}"
    );
    let events = c.events();
    assert_eq!(events.matches("retiring: rollout").count(), 3, "{events}");
    let status = c.ok(&["rollout", &c.name, "status"]);
    assert!(status.contains("no rollout under way"), "{status}");

    cloud.add_image("debian-12-broken", "provision/node:bookworm", "nobody");
    // The run stops at the new node's failed bootstrap (run again to go
    // on); past its startup timeout the next run halts the rollout.
    let out = create(&c, "provision-test", &["--image", "debian-12-broken"]);
    let text = output_text(&out);
    assert!(
        !out.status.success() && text.contains("waiting for SSH"),
        "{text}"
    );
    let mut status = String::new();
    wait_until("the rollout halted", Duration::from_secs(180), || {
        let heal = c.cmd().args(["heal", &c.name]).output().unwrap();
        status = c.ok(&["rollout", &c.name, "status"]);
        heal.status.success() && status.contains("halted")
    });
    assert!(
        status.contains("halted: the rollout of the managers halted: new node")
            && status.contains("image=debian-12-broken"),
        "{status}"
    );
    // The old nodes stay and serve; the one new node is kept to look at.
    assert_eq!(cloud.servers(&id).len(), 4);
    assert_eq!(ready_members(&c), 3);

    c.ok(&["rollout", &c.name, "undo"]);
    assert_rolled(&c, cloud, &id, 3);
    let machines = machines_of(cloud, &id);
    assert!(
        machines
            .iter()
            .all(|(_, flavor, image)| flavor == "m1.medium" && image == "debian-12"),
        "{machines:?}"
    );
    destroy_leaves_no_server(&c, cloud, &id);
    record_fault_row(FaultRow {
        id: "34",
        fault: "a rollout to an image whose servers never let the login user in",
        happened: "halted after its first new node (kept, reason in `rollout status`); the 3 \
                   old nodes Ready meanwhile; `rollout undo` went back, nothing of the image left"
            .into(),
        remediations: "0".into(),
        left_over: "none".into(),
    });
}

/// What a manager's `docker node ls` shows: each node's name, address and
/// whether it is a Ready manager or a Ready worker.
struct SwarmView {
    ready_managers: usize,
    ready_workers: Vec<(String, String)>,
    managers: Vec<String>,
    /// What the manager listed, for a failure's message.
    text: String,
}

fn swarm_view(c: &Cluster, via: &[String]) -> Option<SwarmView> {
    const LIST: &str = "sudo docker node ls -q | xargs sudo docker node inspect --format \
        '{{.Description.Hostname}} {{.Status.State}} {{.Status.Addr}} {{.Spec.Role}} {{if .ManagerStatus}}{{.ManagerStatus.Reachability}}{{end}}'";
    for manager in via {
        let out = c
            .cmd()
            .args(["ssh", &c.name, manager, "--", "sh", "-c", LIST])
            .output()
            .ok()?;
        if !out.status.success() {
            continue;
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut view = SwarmView {
            ready_managers: 0,
            ready_workers: Vec::new(),
            managers: Vec::new(),
            text: format!("through {manager}:\n{text}"),
        };
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [name, state, addr, role, rest @ ..] = f.as_slice() else {
                continue;
            };
            // A new leader's dispatcher marks every node unknown until its
            // next heartbeat (swarmkit, manager/dispatcher/dispatcher.go,
            // `markNodesUnknown`): a manager rollout changes the leader, and
            // that is no node down. Down is not counted.
            match (*role, *state) {
                ("manager", "ready" | "unknown") if rest.first() == Some(&"reachable") => {
                    view.ready_managers += 1;
                    view.managers.push(name.to_string());
                }
                ("worker", "ready" | "unknown") => view
                    .ready_workers
                    .push((name.to_string(), addr.to_string())),
                _ => {}
            }
        }
        // Only a manager that is one of the swarm's reachable managers has
        // its view (one leaving, or cut off, lists what it last knew).
        if view.managers.contains(manager) {
            return Some(view);
        }
    }
    None
}

/// One request to the service through the workers, as a load balancer
/// with health checks would send it: each address in turn until one
/// answers within a second.
fn request(addresses: &[String]) -> bool {
    use std::io::{Read, Write};
    addresses.iter().any(|addr| {
        let Ok(sock) = format!("{addr}:8080").parse::<std::net::SocketAddr>() else {
            return false;
        };
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(1)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n").is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.") && answer.contains(" 200 ")
    })
}

/// The issue's own test of a rolling change: a 3+3 Swarm serving a
/// published port changes flavor. Throughout, at least 3 Ready managers and
/// 3 Ready workers; the service answers a request every second, none
/// failed (counted and printed); afterwards every server has the new
/// flavor and none of the old is left. The busybox image the service runs
/// is loaded on each worker as it joins (there is no registry), and the
/// service is placed only on workers labelled after the load.
#[test]
fn a_3_3_swarm_serving_a_port_changes_flavor_with_no_failed_request() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    let (_turn, cloud) = openstack_cloud();
    let c = Cluster::new("osflag").with_env(&cloud.env);
    let template = c.dir().join("flag.yaml");
    std::fs::write(
        &template,
        "coe: swarm\nmanagers: 3\nworkers: 3\ntimeouts:\n  ssh: 60s\n  script: 10m\n  converge: 30m\n\
         firewall:\n  ssh_from: 0.0.0.0/0\n  members:\n\
         \x20   - {protocol: tcp, port: 2377}\n    - {protocol: tcp, port: 7946}\n\
         \x20   - {protocol: udp, port: 7946}\n    - {protocol: udp, port: 4789}\n\
         \x20 clients:\n    - {protocol: tcp, port: 8080}\n",
    )
    .unwrap();
    assert_ok(
        &create(
            &c,
            "provision-test",
            &["--template", template.to_str().unwrap()],
        ),
        "create",
    );
    let id = assert_formed(&c, cloud, 6);
    assert!(cloud.servers(&id).iter().all(|s| s["flavor"] == "m1.small"));

    let tar = busybox_image_tar(c.dir());
    let c = Arc::new(c);
    let labelled = Arc::new(Mutex::new(std::collections::BTreeSet::<String>::new()));
    // Loads the image on a worker, then labels it through a manager.
    let prepare = {
        let (c, labelled, tar) = (c.clone(), labelled.clone(), tar.clone());
        move |worker: &str, managers: &[String]| {
            if labelled.lock().unwrap().contains(worker) {
                return;
            }
            let loaded = c
                .cmd()
                .args(["ssh", &c.name, worker, "--", "sudo", "docker", "load"])
                .stdin(std::fs::File::open(&tar).unwrap())
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            let label = |m: &String| {
                c.cmd()
                    .args(["ssh", &c.name, m, "--", "sudo", "docker", "node", "update"])
                    .args(["--label-add", "web=ready", worker])
                    .output()
                    .is_ok_and(|o| o.status.success())
            };
            if loaded && managers.iter().any(label) {
                labelled.lock().unwrap().insert(worker.to_string());
            }
        }
    };
    let view = swarm_view(&c, &[c.manager()]).expect("the swarm's nodes");
    for (worker, _) in &view.ready_workers {
        prepare(worker, &view.managers);
    }
    c.ssh(
        &c.manager(),
        &[
            "sudo", "docker", "service", "create", "--detach", "--name", "web",
            "--replicas", "2", "--replicas-max-per-node", "1",
            "--constraint", "node.labels.web==ready",
            "--publish", "mode=host,published=8080,target=8080",
            "--no-resolve-image", "provision-test/busybox:latest",
            "/bin/busybox", "sh", "-c",
            "mkdir -p /www && hostname >/www/index.html && exec /bin/busybox httpd -f -p 8080 -h /www",
        ],
    );
    let addresses = Arc::new(Mutex::new(
        view.ready_workers
            .iter()
            .map(|(_, a)| a.clone())
            .collect::<Vec<_>>(),
    ));
    wait_until("the service to answer", Duration::from_secs(120), || {
        request(&addresses.lock().unwrap())
    });

    // During the rollout: one request a second, and the swarm watched.
    let done = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let requests = {
        let (done, addresses) = (done.clone(), addresses.clone());
        let (answered, failed) = (answered.clone(), failed.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                let tick = std::time::Instant::now();
                let targets = addresses.lock().unwrap().clone();
                if request(&targets) {
                    answered.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                    eprintln!("a request failed; workers tried: {targets:?}");
                }
                std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
            }
        })
    };
    let watch = {
        let (c, done, addresses) = (c.clone(), done.clone(), addresses.clone());
        std::thread::spawn(move || {
            let mut managers = vec![c.manager()];
            let mut lowest = (usize::MAX, usize::MAX);
            let mut looks = 0;
            while !done.load(Ordering::SeqCst) {
                if let Some(view) = swarm_view(&c, &managers) {
                    looks += 1;
                    if view.ready_managers < 3 || view.ready_workers.len() < 3 {
                        eprintln!("fewer than 3+3 Ready: {}", view.text);
                    }
                    lowest.0 = lowest.0.min(view.ready_managers);
                    lowest.1 = lowest.1.min(view.ready_workers.len());
                    for (worker, _) in &view.ready_workers {
                        prepare(worker, &view.managers);
                    }
                    // New workers first: the old ones are the ones leaving.
                    let mut ready = view.ready_workers.clone();
                    ready.sort_by(|a, b| b.0.cmp(&a.0));
                    *addresses.lock().unwrap() = ready.into_iter().map(|(_, a)| a).collect();
                    // The newest first: the old ones are the ones leaving;
                    // the rest kept to fall back on.
                    let mut next = view.managers;
                    next.sort_by(|a, b| b.cmp(a));
                    for m in managers {
                        if !next.contains(&m) {
                            next.push(m);
                        }
                    }
                    managers = next;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            (lowest, looks)
        })
    };
    let started = std::time::Instant::now();
    let out = create(&c, "provision-test", &["--flavor", "m1.medium"]);
    let took = started.elapsed();
    // A few more seconds of service after the last old node left.
    std::thread::sleep(Duration::from_secs(5));
    done.store(true, Ordering::SeqCst);
    requests.join().unwrap();
    let (lowest, looks) = watch.join().unwrap();
    assert_ok(&out, "rollout");
    let (answered, failed) = (
        answered.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst),
    );
    eprintln!(
        "3+3 flavor rollout in {took:?}: {answered} requests answered, {failed} failed; \
         at least {} Ready managers and {} Ready workers in {looks} looks",
        lowest.0, lowest.1
    );
    assert_eq!(failed, 0, "requests failed during the rollout");
    assert!(
        answered as u64 >= took.as_secs(),
        "one request a second: {answered} in {took:?}"
    );
    assert!(looks >= 10, "the swarm was watched: {looks} looks");
    assert!(
        lowest.0 >= 3 && lowest.1 >= 3,
        "lowest Ready (managers, workers): {lowest:?}"
    );

    let machines = machines_of(cloud, &id);
    assert_eq!(machines.len(), 6, "{machines:?}");
    assert!(
        machines.iter().all(|(_, flavor, _)| flavor == "m1.medium"),
        "{machines:?}"
    );
    wait_until(
        "the last old server to be deleted",
        Duration::from_secs(60),
        || {
            cloud
                .all_servers(&id)
                .iter()
                .all(|s| s["flavor"] == "m1.medium")
        },
    );
    let events = c.events();
    assert_eq!(events.matches("retiring: rollout").count(), 6, "{events}");
    destroy_leaves_no_server(&c, cloud, &id);
}
