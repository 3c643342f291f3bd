//! The state in a real 3-member etcd, used by the real binary on the local
//! cloud: a cluster made on one machine is used from another (its key and
//! host keys come from etcd), two commands on one cluster from two
//! machines → one is told busy and by whom, a `kill -9` holder's lock frees
//! after its lease, the next run from the other machine finishes the
//! cluster, and `state export` / `state import` move it to SQLite and back.

use std::time::{Duration, Instant};

use crate::common::etcd::Etcd;
use crate::common::*;

#[test]
fn a_cluster_in_etcd_is_shared_by_two_machines_and_locked_by_a_lease() {
    let etcd = Etcd::start(3);
    let here = Cluster::on_etcd("it-etcd", &etcd.state_url("team"));
    let there = here.other_machine();
    let name = here.name.clone();
    let lock_key = format!("/team/locks/{name}");

    // Machine one starts the create; machine two is told who is at it.
    let mut child = here.spawn_create(&["--managers", "1", "--workers", "1"]);
    wait_until(
        "the create to hold the lock",
        Duration::from_secs(60),
        || etcd.get(&lock_key).is_some(),
    );
    let out = there.run(&["scale", &name, "--workers", "2"]);
    let err = output_text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "cluster {name} is busy (pid {}, since ",
            child.id()
        )) && err.contains("on host "),
        "{err}"
    );
    wait_until("the first node container", Duration::from_secs(120), || {
        !containers(&name).is_empty()
    });

    // kill -9: the lease outlives the holder by its TTL, then frees.
    kill9(&mut child);
    let killed = Instant::now();
    let out = there.run(&["swarm", "--name", &name]);
    assert!(
        output_text(&out).contains("is busy"),
        "the lock must outlive a killed holder until its lease ends: {}",
        output_text(&out)
    );
    wait_until(
        "the killed holder's lease to end",
        Duration::from_secs(30),
        || etcd.get(&lock_key).is_none(),
    );
    eprintln!(
        "measured: kill -9 of the lock holder to the lock free: {:.1}s (lease TTL 10 s)",
        killed.elapsed().as_secs_f64()
    );

    // Machine two finishes it with the key from etcd (it has no local copy).
    let out = there.ok(&[
        "swarm",
        "--name",
        &name,
        "--managers",
        "1",
        "--workers",
        "1",
    ]);
    assert!(out.contains("is ready"), "{out}");
    let names = containers(&name);
    assert_eq!(names.len(), 2, "no duplicate after the crash: {names:?}");
    let manager = here.manager();
    assert_eq!(there.ssh(&manager, &["hostname"]).trim(), manager);
    let nodes = here.swarm_nodes(&manager);
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert!(nodes.iter().all(|(_, s)| s == "Ready"), "{nodes:?}");

    // Everything is under the prefix: records, events, the key.
    let keys = etcd.keys("/team/");
    for want in [
        format!("/team/clusters/{name}"),
        format!("/team/nodes/{name}/{manager}"),
        format!("/team/files/{name}/id_ed25519"),
    ] {
        assert!(keys.contains(&want), "{want} not in {keys:?}");
    }
    assert!(keys
        .iter()
        .any(|k| k.starts_with(&format!("/team/events/{name}/"))));

    // Export to SQLite: the same cluster, usable from there.
    let file = here.dir().join("export.json");
    here.ok(&["state", "export", "--to", file.to_str().unwrap()]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(&name), "{text}");
    let copy = here.on_sqlite_elsewhere();
    copy.ok(&["state", "import", file.to_str().unwrap()]);
    assert_eq!(copy.ssh(&manager, &["hostname"]).trim(), manager);
    let listed = copy.ok(&["list"]);
    assert!(listed.contains(&name), "{listed}");
    // A second import names the clash and changes nothing.
    let out = copy.run(&["state", "import", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("--replace"),
        "{}",
        output_text(&out)
    );
    // And back into etcd under another prefix, from the SQLite copy.
    let back = copy.dir().join("back.json");
    copy.ok(&["state", "export", "--to", back.to_str().unwrap()]);
    let url = etcd.state_url("restored");
    let out = std::process::Command::new(BIN)
        .args(["--state", &url, "state", "import", back.to_str().unwrap()])
        .env("XDG_DATA_HOME", copy.dir().join("xdg"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(etcd
        .get(&format!("/restored/files/{name}/id_ed25519"))
        .is_some());

    here.ok(&["destroy", &name, "--yes"]);
    assert_eq!(leftovers(&name), Vec::<String>::new());
    assert!(etcd.keys(&format!("/team/nodes/{name}/")).is_empty());
    assert!(etcd.get(&format!("/team/clusters/{name}")).is_none());
}

/// A lock is a fence for a command too: `scale --workers 3` stopped
/// (SIGSTOP) past its lease's TTL while it adds machines; another machine's
/// `scale --workers 1` takes the cluster meanwhile and finishes; the first,
/// resumed, writes nothing to the state, makes and deletes no machine, and
/// says it lost the lock (issue 30: before, it made two more machines and
/// failed on "has no record in the state store").
#[test]
fn a_command_stopped_past_its_lease_writes_and_runs_nothing_more() {
    let etcd = Etcd::start(1);
    let here = Cluster::on_etcd("it-fence", &etcd.state_url("fence"));
    let there = here.other_machine();
    let name = here.name.clone();
    here.create(1, 1);

    let stderr = here.dir().join("first.err");
    let mut first = here
        .cmd()
        .args(["scale", &name, "--workers", "3"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    wait_until(
        "the first scale's new machines",
        Duration::from_secs(60),
        || containers(&name).len() >= 3,
    );
    // SAFETY: signals to our own child.
    unsafe { libc::kill(first.id() as i32, libc::SIGSTOP) };
    let stopped = Instant::now();

    // The other actor waits out the stopped holder's lease, then scales in.
    wait_until(
        "the second scale to take the cluster and finish",
        Duration::from_secs(240),
        || {
            let out = there.run(&["scale", &name, "--workers", "1"]);
            let text = output_text(&out);
            assert!(out.status.success() || text.contains("is busy"), "{text}");
            out.status.success()
        },
    );
    // The stopped holder's lease ran on: it had between two thirds of its
    // TTL and all of it left at the stop (it is kept alive every third),
    // and nothing took the cluster before that ran out.
    let least_left = provision::state::etcd::LOCK_TTL * 2 / 3;
    assert!(
        stopped.elapsed() > least_left,
        "the cluster was taken {:?} after its holder stopped, before its lease ({:?} at least) ran out",
        stopped.elapsed(),
        least_left
    );
    let records = || {
        let dump = etcd.etcdctl(&["get", "/fence/", "--prefix", "-w", "json"]);
        let all: serde_json::Value = serde_json::from_str(&dump).unwrap();
        // Every key and its mod revision, but the locks (the first's lock
        // key is gone; the daemons' would come and go).
        all["kvs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|kv| {
                (
                    kv["key"].as_str().unwrap().to_string(),
                    kv["mod_revision"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let (state_before, machines_before) = (records(), containers(&name));
    assert_eq!(machines_before.len(), 2, "{machines_before:?}");

    unsafe { libc::kill(first.id() as i32, libc::SIGCONT) };
    let ended = loop {
        if let Some(status) = first.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(400),
            "the first scale never ended"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let said = std::fs::read_to_string(&stderr).unwrap();
    eprintln!(
        "measured: stopped {:.1}s; the resumed command said:\n{}",
        stopped.elapsed().as_secs_f64(),
        said.lines().rev().take(3).collect::<Vec<_>>().join("\n")
    );
    assert!(!ended.success(), "{said}");
    assert!(
        said.contains(&format!("cluster {name}'s lock"))
            && said.contains("run the same command again")
            || said.contains(&format!("no longer holds cluster {name}'s lock")),
        "{said}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        records(),
        state_before,
        "the resumed holder wrote to the state"
    );
    assert_eq!(
        containers(&name),
        machines_before,
        "the resumed holder changed machines"
    );
    record_fault_row(FaultRow {
        id: "28",
        fault: "lost lease mid-pass, two actors at once: `scale --workers 3` stopped (SIGSTOP) past the lock's TTL while adding machines; another machine's `scale --workers 1` meanwhile",
        happened: "the second took the cluster once the lease ended and finished; the first, resumed, wrote no key, touched no machine and stopped: \"lost cluster …'s lock\"".into(),
        remediations: "0".into(),
        left_over: "none (2 machines for 2 nodes)".into(),
    });
    here.ok(&["destroy", &name, "--yes"]);
    assert_eq!(leftovers(&name), Vec::<String>::new());
}
