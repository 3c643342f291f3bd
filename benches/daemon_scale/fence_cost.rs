//! Fencing's cost per write, for the daemon scale bench with etcd state
//! (`scripts/bench/daemon-scale.sh --etcd`): the same node record written
//! through the store one write at a time, as a pass writes, without the
//! cluster's lock (a plain transaction) and with it held (the transaction
//! made conditional on the lock key's lease). Batches alternate so a drift
//! in the machine's load falls on both alike.
//!
//!   cargo run --example fence_cost -- etcd://127.0.0.1:23790/fence-cost 2000
//!
//! Prints one line: `writes=N unfenced_us=… fenced_us=… cost_us=…` (medians).

use std::time::Instant;

use provision::spec::{Cloud, ClusterTemplate};
use provision::state::location::EtcdOptions;
use provision::state::{ClusterLock, ClusterRecord, EtcdStore, NodeRecord, StateLocation, Store};
use provision_provider::Role;

const BATCH: usize = 100;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let [location, writes] = argv.as_slice() else {
        panic!("usage: fence_cost etcd://HOST:PORT/PREFIX WRITES");
    };
    let writes: usize = writes.parse().expect("WRITES is a number");
    let StateLocation::Etcd(target) =
        StateLocation::parse(Some(location), &EtcdOptions::default()).expect("a state location")
    else {
        panic!("{location} is not an etcd:// location");
    };
    let store = EtcdStore::open(&target).expect("etcd answers");
    let name = "fence-cost";
    let (_, template) = ClusterTemplate::load("swarm").expect("built-in template");
    let record = ClusterRecord {
        spec: template.to_spec(name, Cloud::Local),
        id: "fence-cost".into(),
        phase: "ready".into(),
        created_at: String::new(),
        updated_at: String::new(),
    };
    store.put_cluster(&record).expect("put cluster");
    let mut node = NodeRecord::new(name, "fence-cost-worker-1", Role::Worker, 1);

    let mut unfenced = Vec::with_capacity(writes);
    let mut fenced = Vec::with_capacity(writes);
    while unfenced.len() < writes {
        time_writes(&store, &mut node, BATCH, &mut unfenced);
        let lock = ClusterLock::acquire_etcd(&store, name).expect("the lock is free");
        time_writes(&store, &mut node, BATCH, &mut fenced);
        drop(lock);
    }
    store.delete_cluster(name).expect("delete cluster");
    let (u, f) = (median(&mut unfenced), median(&mut fenced));
    println!(
        "writes={} unfenced_us={u} fenced_us={f} cost_us={}",
        unfenced.len(),
        f as i64 - u as i64
    );
}

/// Writes the node `count` times, each write's time in microseconds.
fn time_writes(store: &EtcdStore, node: &mut NodeRecord, count: usize, into: &mut Vec<u64>) {
    for _ in 0..count {
        node.start_attempt = node.start_attempt.wrapping_add(1);
        let t = Instant::now();
        store.put_node(node).expect("put node");
        into.push(t.elapsed().as_micros() as u64);
    }
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}
