//! One store trait, two backends, the same tests: every operation the
//! controller uses gives the same answers on SQLite and on a real etcd; an
//! export of one imports into the other unchanged; locks in etcd are
//! leases that name their holder; daemons divide clusters through claims
//! and hear of changes through a watch. Needs etcd (Debian's etcd-server),
//! not Docker.

use std::time::Duration;

use crate::common::etcd::Etcd;
use provision::spec::{Cloud, ClusterTemplate};
use provision::state::etcd::Claims;
use provision::state::location::EtcdOptions;
use provision::state::Wake;
use provision::state::{
    export_cluster, ClusterExport, ClusterLock, ClusterRecord, EtcdStore, LockError, NodeRecord,
    SqliteStore, StateLocation, Store,
};
use provision_provider::Role;

fn etcd_store(etcd: &Etcd, prefix: &str) -> EtcdStore {
    let StateLocation::Etcd(target) =
        StateLocation::parse(Some(&etcd.state_url(prefix)), &EtcdOptions::default()).unwrap()
    else {
        panic!("not etcd")
    };
    EtcdStore::open(&target).expect("open etcd store")
}

fn record(name: &str, id: &str) -> ClusterRecord {
    let (_, template) = ClusterTemplate::load("swarm").unwrap();
    ClusterRecord {
        spec: template.to_spec(name, Cloud::Local),
        id: id.into(),
        phase: "creating".into(),
        created_at: String::new(),
        updated_at: String::new(),
    }
}

/// What a store answers to the controller's calls, with the times taken
/// out (they differ between two runs).
fn contract(store: &dyn Store) -> Vec<String> {
    let mut seen = Vec::new();
    let mut note = |what: &str, value: String| seen.push(format!("{what}: {value}"));
    store.put_cluster(&record("web", "id-1")).unwrap();
    store.put_cluster(&record("api", "id-2")).unwrap();
    // A second put keeps the id (it is stamped on every cloud resource).
    let mut changed = record("web", "id-other");
    changed.spec.workers = 7;
    store.put_cluster(&changed).unwrap();
    let web = store.cluster("web").unwrap().unwrap();
    note(
        "web",
        format!("{} {} {}", web.id, web.spec.workers, web.phase),
    );
    assert!(!web.created_at.is_empty() && !web.updated_at.is_empty());
    note(
        "clusters",
        format!(
            "{:?}",
            store
                .clusters()
                .unwrap()
                .iter()
                .map(|c| c.spec.name.clone())
                .collect::<Vec<_>>()
        ),
    );
    note("names", format!("{:?}", store.cluster_names().unwrap()));
    store.set_cluster_phase("web", "ready").unwrap();
    store.set_cluster_phase("nothing", "ready").unwrap();
    note("phase", store.cluster("web").unwrap().unwrap().phase);
    assert!(store.cluster("nothing").unwrap().is_none());

    for (name, role, index) in [
        ("web-worker-2", Role::Worker, 2),
        ("web-manager-1", Role::Manager, 1),
        ("web-worker-1", Role::Worker, 1),
    ] {
        let mut n = NodeRecord::new("web", name, role, index);
        n.host_key = Some(format!("ssh-ed25519 KEY-{name}"));
        store.put_node(&n).unwrap();
    }
    let names = |s: &dyn Store| -> Vec<String> {
        s.nodes("web")
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect()
    };
    note("nodes", format!("{:?}", names(store)));
    note(
        "node",
        format!(
            "{:?}",
            store
                .node("web", "web-worker-1")
                .unwrap()
                .map(|n| n.host_key)
        ),
    );
    store.delete_node("web", "web-worker-2").unwrap();
    note("nodes after delete", format!("{:?}", names(store)));
    assert!(store.nodes("api").unwrap().is_empty());

    store.put_resource("web", "network", "n-1").unwrap();
    store.put_resource("web", "network", "n-1").unwrap();
    store.put_resource("web", "keypair", "k-1").unwrap();
    let mut resources: Vec<String> = store
        .resources("web")
        .unwrap()
        .into_iter()
        .map(|r| format!("{} {}", r.kind, r.id))
        .collect();
    resources.sort();
    note("resources", format!("{resources:?}"));

    for i in 1..=5 {
        store
            .add_event("web", Some("web-worker-1"), &format!("event {i}"))
            .unwrap();
    }
    // The newest 3, oldest first; the store keeps 4 (see the callers).
    let events: Vec<String> = store
        .events("web", 3)
        .unwrap()
        .into_iter()
        .map(|e| e.message)
        .collect();
    note("events", format!("{events:?}"));
    note(
        "events kept",
        store.events("web", 100).unwrap().len().to_string(),
    );

    assert_eq!(store.file("web", "id_ed25519").unwrap(), None);
    store.put_file("web", "id_ed25519", b"PRIVATE KEY").unwrap();
    note(
        "file",
        String::from_utf8(store.file("web", "id_ed25519").unwrap().unwrap()).unwrap(),
    );

    store.delete_cluster("api").unwrap();
    note(
        "after delete",
        format!(
            "{:?} {} {:?}",
            store.cluster("api").unwrap().map(|c| c.id),
            store.events("api", 10).unwrap().len(),
            store.file("api", "id_ed25519").unwrap()
        ),
    );
    seen
}

#[test]
fn sqlite_and_etcd_answer_alike_and_an_export_moves_between_them() {
    let etcd = Etcd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("state.db"))
        .unwrap()
        .keeping_events(4);
    let shared = etcd_store(&etcd, "contract").keeping_events(4);
    let on_sqlite = contract(&sqlite);
    let on_etcd = contract(&shared);
    assert_eq!(on_sqlite, on_etcd);
    assert!(
        on_etcd.contains(&"events kept: 4".to_string()),
        "{on_etcd:?}"
    );

    // SQLite → etcd → a new SQLite: the same cluster each time, ids,
    // times, history and key included.
    let first = export_cluster(&sqlite, "web").unwrap().unwrap();
    let other = etcd_store(&etcd, "imported");
    other.import_cluster(&first).unwrap();
    let second = export_cluster(&other, "web").unwrap().unwrap();
    assert_eq!(first, second);
    let again = SqliteStore::open(&dir.path().join("again.db")).unwrap();
    again.import_cluster(&second).unwrap();
    assert_eq!(export_cluster(&again, "web").unwrap().unwrap(), first);
    // Importing again replaces, never doubles.
    other.import_cluster(&first).unwrap();
    assert_eq!(export_cluster(&other, "web").unwrap().unwrap(), first);
    // Everything sits under the prefix, the key included.
    let keys = etcd.keys("/imported/");
    assert!(
        keys.contains(&"/imported/files/web/id_ed25519".to_string()),
        "{keys:?}"
    );
    assert!(etcd.keys("/provision/").is_empty());
}

#[test]
fn an_etcd_lock_names_its_holder_and_is_free_once_dropped() {
    let etcd = Etcd::start(1);
    let a = etcd_store(&etcd, "locks");
    let b = etcd_store(&etcd, "locks");
    let held = ClusterLock::acquire_etcd(&a, "web").unwrap();
    let err = ClusterLock::acquire_etcd(&b, "web").unwrap_err();
    let LockError::Busy { holder, .. } = &err else {
        panic!("not busy: {err}");
    };
    assert_eq!(holder.pid, std::process::id().to_string());
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "cluster web is busy (pid {}, since ",
            std::process::id()
        )),
        "{text}"
    );
    // Another cluster is not held.
    drop(ClusterLock::acquire_etcd(&b, "api").unwrap());
    // The key lives under the holder's lease, released on drop (not at the TTL).
    let lease = etcd.etcdctl(&["get", "/locks/locks/web", "-w", "json"]);
    assert!(lease.contains("\"lease\""), "{lease}");
    drop(held);
    let again = ClusterLock::acquire_etcd(&b, "web").expect("free once dropped");
    drop(again);
}

/// A lock is a fence: once etcd has dropped the holder's key (its lease
/// ended while the holder was stopped) and another actor holds the
/// cluster, every write the first makes to that cluster is refused, named,
/// and changes nothing; its writes to other clusters, and the new holder's,
/// go through.
#[test]
fn a_holder_whose_lock_was_taken_over_writes_nothing() {
    let etcd = Etcd::start(1);
    let a = etcd_store(&etcd, "fence");
    let b = etcd_store(&etcd, "fence");
    a.put_cluster(&record("web", "id-web")).unwrap();
    let held = ClusterLock::acquire_etcd(&a, "web").unwrap();
    let node = NodeRecord::new("web", "web-worker-1", Role::Worker, 1);
    a.put_node(&node)
        .expect("the holder writes while it holds the lock");

    // As etcd does when the holder's lease runs out: the key is gone, and
    // another actor takes the cluster.
    let lease = etcd.etcdctl(&["get", "/fence/locks/web", "-w", "fields"]);
    let lease_id = lease
        .lines()
        .find_map(|l| l.strip_prefix("\"Lease\" : "))
        .expect("the lock key's lease");
    etcd.etcdctl(&[
        "lease",
        "revoke",
        &format!("{:x}", lease_id.trim().parse::<i64>().unwrap()),
    ]);
    assert!(etcd.get("/fence/locks/web").is_none());
    let other = ClusterLock::acquire_etcd(&b, "web").expect("free once the lease is gone");

    let before = etcd.etcdctl(&["get", "/fence/", "--prefix", "-w", "json"]);
    let mut changed = node.clone();
    changed.phase = provision::state::NodePhase::Ready;
    let refused: Vec<String> = [
        a.put_node(&changed),
        a.set_cluster_phase("web", "ready"),
        a.add_event("web", None, "from the stopped holder"),
        a.put_resource("web", "machine", "m-1"),
        a.put_file("web", "id_ed25519", b"key"),
        a.delete_node("web", "web-worker-1"),
        a.delete_cluster("web"),
    ]
    .into_iter()
    .map(|r| r.expect_err("a write after the lock was lost").to_string())
    .collect();
    for text in &refused {
        assert!(
            text.contains("no longer holds cluster web's lock")
                && text.contains("Run the command again"),
            "{text}"
        );
    }
    let revisions = |dump: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(dump).unwrap()["kvs"].clone()
    };
    assert_eq!(
        revisions(&before),
        revisions(&etcd.etcdctl(&["get", "/fence/", "--prefix", "-w", "json"])),
        "nothing written"
    );
    // Other clusters are not fenced; the new holder writes.
    a.put_cluster(&record("api", "id-api")).unwrap();
    b.put_node(&changed).expect("the new holder writes");
    drop(other);
    drop(held);
}

#[test]
fn daemons_divide_the_clusters_and_hear_of_changes() {
    let etcd = Etcd::start(1);
    let store = etcd_store(&etcd, "claims");
    let clusters: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let one = Claims::new(&store, Duration::from_secs(5));
        assert_eq!(one.claim(&clusters).await.unwrap(), clusters);
        let two = Claims::new(&store, Duration::from_secs(5));
        // Two daemons now: a share is 2; all three are still one's.
        assert!(two.claim(&clusters).await.unwrap().is_empty());
        let one_now = one.claim(&clusters).await.unwrap();
        assert_eq!(one_now.len(), 2, "{one_now:?}");
        let two_now = two.claim(&clusters).await.unwrap();
        assert_eq!(two_now.len(), 1, "{two_now:?}");
        assert!(!one_now.contains(&two_now[0]));

        // A watch hears of a record written and of a daemon gone.
        let mut wakes = two.watch();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = std::sync::Arc::new(store);
        let writer = s.clone();
        tokio::task::spawn_blocking(move || writer.put_cluster(&record("b", "id-b")).unwrap())
            .await
            .unwrap();
        let woken = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match wakes.recv().await {
                    Some(Wake::Changed(name)) => return name,
                    Some(_) => continue,
                    None => panic!("watch ended"),
                }
            }
        })
        .await
        .expect("a wake within 5 s");
        assert_eq!(woken, "b");
        one.resign().await;
        let relist = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if wakes.recv().await == Some(Wake::Relist) {
                    return;
                }
            }
        })
        .await;
        assert!(relist.is_ok(), "no wake when a daemon's claims ended");
        // The survivor takes everything.
        assert_eq!(two.claim(&clusters).await.unwrap().len(), 3);
    });
}

#[test]
fn etcd_with_tls_client_certificates_and_a_password() {
    use crate::common::etcd_tls::{SecureEtcd, PASSWORD, USER};
    let etcd = SecureEtcd::start();
    let url = etcd.state_url("secure");
    let tls = EtcdOptions {
        cacert: Some(etcd.file("ca.pem")),
        cert: Some(etcd.file("client.pem")),
        key: Some(etcd.file("client.key")),
        user: Some(USER.into()),
        password: Some(provision::secret::Secret::new(PASSWORD)),
    };
    let open = |options: &EtcdOptions| -> Result<EtcdStore, String> {
        let StateLocation::Etcd(target) = StateLocation::parse(Some(&url), options).unwrap() else {
            panic!("not etcd")
        };
        EtcdStore::open(&target)
            .and_then(|s| s.clusters().map(|_| s))
            .map_err(|e| e.to_string())
    };
    let store = open(&tls).expect("TLS, certificate and password");
    store.put_cluster(&record("web", "id-1")).unwrap();
    store.put_file("web", "id_ed25519", b"PRIVATE KEY").unwrap();
    assert_eq!(store.clusters().unwrap().len(), 1);
    drop(ClusterLock::acquire_etcd(&store, "web").unwrap());
    // The stored key is readable by etcd's users only, and never shown.
    assert!(etcd
        .etcdctl(&["get", "/secure/files/web/id_ed25519"])
        .contains("PRIVATE KEY"));

    // A wrong password is refused, named, and the password never shown.
    let wrong = EtcdOptions {
        password: Some(provision::secret::Secret::new("wrong-pw")),
        ..tls.clone()
    };
    let err = open(&wrong).err().expect("a wrong password is refused");
    assert!(
        err.contains("authentication failed") || err.contains("invalid"),
        "{err}"
    );
    assert!(!err.contains("wrong-pw"), "{err}");
    // Without TLS the server is not reachable.
    let plain = EtcdOptions {
        cacert: None,
        cert: None,
        key: None,
        ..tls.clone()
    };
    assert!(open(&plain).is_err());
    // Without the client certificate the TLS handshake is refused.
    let no_cert = EtcdOptions {
        cert: None,
        key: None,
        ..tls
    };
    assert!(open(&no_cert).is_err());
}

/// A crafted export (a file named `../../…`, a node named `../x`, a
/// cluster named `../web`) is refused whole by `state import`: nothing is
/// written, inside the state directory or out of it.
#[test]
fn a_crafted_export_writes_nothing_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").join("state.db");
    let good = || {
        let mut record = record("web", "id-web");
        record.phase = "ready".into();
        ClusterExport {
            record,
            nodes: vec![NodeRecord::new("web", "web-manager-1", Role::Manager, 1)],
            resources: vec![],
            events: vec![],
            files: [("id_ed25519".to_string(), "a2V5".to_string())].into(),
        }
    };
    let mut outside = good();
    outside
        .files
        .insert("../../../planted".into(), "cGxhbnRlZA==".into());
    let mut node = good();
    node.nodes[0].name = "../x".into();
    let mut cluster = good();
    cluster.record.spec.name = "../web".into();
    let import = |file: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_provision"))
            .arg("--state")
            .arg(&state)
            .args(["state", "import"])
            .arg(file)
            .output()
            .unwrap()
    };
    for (what, crafted) in [
        ("a cluster file named ../../../planted", outside),
        ("a node named ../x", node),
        ("a cluster named ../web", cluster),
    ] {
        let file = dir.path().join("export.json");
        let export = serde_json::json!({ "format": 1, "from": "crafted", "clusters": [crafted] });
        std::fs::write(&file, export.to_string()).unwrap();
        let out = import(&file);
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: {text}");
        assert!(text.contains("nothing imported"), "{what}: {text}");
        assert!(!state.exists(), "{what}: the state store was created");
        let planted: Vec<_> = walk(dir.path())
            .into_iter()
            .filter(|p| p.ends_with("planted") || p.ends_with("x"))
            .collect();
        assert!(planted.is_empty(), "{what}: {planted:?}");
    }
    // The same export, uncrafted, imports.
    let file = dir.path().join("export.json");
    let export = serde_json::json!({ "format": 1, "from": "crafted", "clusters": [good()] });
    std::fs::write(&file, export.to_string()).unwrap();
    let out = import(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every path under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(walk(&path));
        }
        all.push(path);
    }
    all
}
