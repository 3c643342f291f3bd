//! Seeds the daemon scale bench (`scripts/bench/daemon-scale.sh`): N
//! converged Swarm clusters of M nodes on the OpenStack test cloud, as a
//! finished `provision swarm` would leave them, without building them.
//!
//! Writes, under `--dir`:
//! - `state.db` and each cluster's key (with the library's own types);
//! - `servers.json`: the servers for the simulator's `POST /bench/servers`
//!   (ACTIVE, no body, each at its own 127.x.y.z address);
//! - `authorized_keys`: every cluster's public key, for the bench's sshd;
//! - `nodes/ADDRESS/info`: the engine's `/info` on that node as the stand-in
//!   `curl` answers it, and `nodes/ADDRESS/members`: its cluster's `/nodes`
//!   (a link to `clusters/NAME/members`; write that file to change membership).
//!
//!   cargo run --example daemon_scale_seed -- --dir DIR --clusters 100 --nodes 20 --host-key KEYLINE

use std::fmt::Write as _;
use std::path::PathBuf;

use provision::bootstrap::ClusterKey;
use provision::spec::{Cloud, ClusterTemplate};
use provision::state::{
    ClusterRecord, Health, NodePhase, NodeRecord, SqliteStore, StatePaths, Store,
};
use provision_provider::{Addresses, Role};
use provision_provider_openstack::OpenStackSettings;

struct Args {
    dir: PathBuf,
    clusters: usize,
    nodes: usize,
    managers: usize,
    host_key: String,
}

fn args() -> Args {
    let mut a = Args {
        dir: PathBuf::new(),
        clusters: 10,
        nodes: 20,
        managers: 3,
        host_key: String::new(),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => a.dir = value.into(),
            "--clusters" => a.clusters = value.parse().expect("--clusters N"),
            "--nodes" => a.nodes = value.parse().expect("--nodes M"),
            "--managers" => a.managers = value.parse().expect("--managers K"),
            "--host-key" => a.host_key = value.clone(),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!a.dir.as_os_str().is_empty(), "--dir is required");
    assert!(a.clusters <= 250 * 200, "at most 50,000 clusters");
    assert!(
        a.nodes >= a.managers && a.nodes <= 250,
        "--nodes between --managers and 250"
    );
    a
}

/// Node `n` (1-based) of cluster `c` (0-based): its own loopback address.
fn address(c: usize, n: usize) -> String {
    format!("127.{}.{}.{}", 10 + c / 250, c % 250, n)
}

/// A Swarm-like member id: 25 lowercase letters and digits.
fn member_id(c: usize, n: usize) -> String {
    format!("bench{c:010}x{n:09}zz")
}

fn main() {
    let a = args();
    std::fs::create_dir_all(&a.dir).expect("bench dir");
    let paths = StatePaths::resolve(Some(a.dir.join("state.db"))).expect("state paths");
    let store = SqliteStore::open(paths.db()).expect("state store");
    let mut servers = Vec::with_capacity(a.clusters * a.nodes);
    let mut authorized = String::new();
    for c in 0..a.clusters {
        let name = format!("bench{c:05}");
        let workers = a.nodes - a.managers;
        let (_, template) = ClusterTemplate::load("swarm").expect("built-in template");
        let mut spec = template.to_spec(&name, Cloud::OpenStack);
        spec.managers = a.managers as u32;
        spec.workers = workers as u32;
        spec.ssh_user = "root".into();
        spec.image = Some("debian-12".into());
        spec.flavor = Some("m1.small".into());
        spec.openstack = Some(OpenStackSettings {
            cloud: Some("provision-test".into()),
            ..Default::default()
        });
        let record = ClusterRecord {
            spec,
            id: format!("bench-{c:05}"),
            phase: "ready".into(),
            created_at: String::new(),
            updated_at: String::new(),
        };
        store.put_cluster(&record).expect("put cluster");
        let key = ClusterKey::for_new_cluster(&store, &name).expect("cluster key");
        writeln!(authorized, "{}", key.public_line()).unwrap();
        let mut members = Vec::new();
        let mut manager_ids: Vec<String> = (1..=a.managers).map(|n| member_id(c, n)).collect();
        manager_ids.sort();
        let managers_view = manager_ids.join(",");
        for n in 1..=a.nodes {
            let (role, index) = if n <= a.managers {
                (Role::Manager, n)
            } else {
                (Role::Worker, n - a.managers)
            };
            let node = format!("{name}-{}-{index}", role.as_str());
            let addr = address(c, n);
            let id = member_id(c, n);
            let machine = format!("00000000-0000-4000-8000-{:06}{:06}", c, n);
            let mut rec = NodeRecord::new(&name, &node, role, index as u32);
            rec.machine_id = Some(machine.clone());
            rec.addresses = Some(Addresses::private_only(&addr));
            rec.phase = NodePhase::Ready;
            rec.health = Health::Healthy;
            rec.host_key = Some(a.host_key.clone());
            rec.member_id = Some(id.clone());
            rec.machine_created_at = Some(0);
            // As a create leaves it: every node found running with these managers.
            rec.managers_seen = Some(managers_view.clone());
            store.put_node(&rec).expect("put node");
            servers.push(serde_json::json!({
                "id": machine,
                "name": node,
                "address": addr,
                "metadata": {
                    "provision-cluster": record.id,
                    "provision-cluster-name": name,
                    "provision-node": node,
                    "provision-role": role.as_str(),
                },
            }));
            // As the engine API's /nodes gives them (swarm/members.sh).
            let manager_status = match (role, n) {
                (Role::Manager, 1) => {
                    serde_json::json!({"Leader": true, "Reachability": "reachable"})
                }
                (Role::Manager, _) => serde_json::json!({"Reachability": "reachable"}),
                (Role::Worker, _) => serde_json::Value::Null,
            };
            let mut entry = serde_json::json!({
                "ID": id, "Description": {"Hostname": node},
                "Spec": {"Role": role.as_str(), "Availability": "active"},
                "Status": {"State": "ready"},
            });
            if !manager_status.is_null() {
                entry["ManagerStatus"] = manager_status;
            }
            members.push(entry);
            let dir = a.dir.join("nodes").join(&addr);
            std::fs::create_dir_all(&dir).expect("node dir");
            // The engine's /info as swarm/probe.sh reads it.
            let info = serde_json::json!({"Swarm": {
                "NodeID": id, "LocalNodeState": "active",
                "ControlAvailable": role == Role::Manager,
            }});
            std::fs::write(dir.join("info"), info.to_string()).expect("info");
        }
        let listing = a.dir.join("clusters").join(&name).join("members");
        std::fs::write(&listing, serde_json::Value::from(members).to_string()).expect("members");
        for n in 1..=a.nodes {
            let link = a.dir.join("nodes").join(address(c, n)).join("members");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&listing, link).expect("members link");
        }
    }
    std::fs::write(a.dir.join("authorized_keys"), authorized).expect("authorized_keys");
    std::fs::write(
        a.dir.join("servers.json"),
        serde_json::json!({ "servers": servers }).to_string(),
    )
    .expect("servers.json");
    println!(
        "seeded {} clusters × {} nodes in {}",
        a.clusters,
        a.nodes,
        a.dir.display()
    );
}
