//! How long one planning step takes for converged clusters of growing size,
//! and for one with a failed worker. The planner runs every daemon pass for
//! every cluster, so it must stay cheap.
//!
//!   cargo bench --bench plan

use std::hint::black_box;
use std::time::Instant;

use provision::controller::{plan, Observed, Probe};
use provision::orchestrator::{Member, NodeProbe};
use provision::spec::{node_name, Cloud, ClusterTemplate};
use provision::state::NodeRecord;
use provision_provider::{Machine, MachineState, Role};

fn converged(managers: u32, workers: u32) -> (Vec<NodeRecord>, Observed) {
    let mut records = Vec::new();
    let mut observed = Observed {
        members: Some(Vec::new()),
        ..Default::default()
    };
    for (role, count) in [(Role::Manager, managers), (Role::Worker, workers)] {
        for i in 1..=count {
            let name = node_name("bench", role, i);
            let id = format!("{name}-id");
            let mut r = NodeRecord::new("bench", &name, role, i);
            r.member_id = Some(id.clone());
            r.machine_id = Some(format!("m-{name}"));
            records.push(r);
            observed.machines.push(Machine {
                id: format!("m-{name}"),
                node: name.clone(),
                role,
                state: MachineState::Running,
                addresses: Some(provision_provider::Addresses::private_only("10.0.0.1")),
                zone: None,
            });
            observed.probes.insert(
                name.clone(),
                Probe::Reached(NodeProbe {
                    engine_running: true,
                    joined: true,
                    member_id: Some(id.clone()),
                    control: role == Role::Manager,
                    config_stale: false,
                    certificates: Default::default(),
                }),
            );
            observed.members.as_mut().unwrap().push(Member {
                id,
                hostname: name,
                role,
                ready: true,
                status: "Ready".into(),
            });
        }
    }
    (records, observed)
}

fn main() {
    let (_, template) = ClusterTemplate::load("swarm").expect("built-in template");
    for (managers, workers) in [(1, 2), (3, 30), (5, 300)] {
        let mut spec = template.to_spec("bench", Cloud::Local);
        spec.managers = managers;
        spec.workers = workers;
        let (records, mut observed) = converged(managers, workers);
        for (label, broken) in [("converged", false), ("one worker gone", true)] {
            if broken {
                let gone = node_name("bench", Role::Worker, 1);
                observed.machines.retain(|m| m.node != gone);
                observed.probes.remove(&gone);
            }
            let rounds = 2_000 / (managers + workers) as usize + 10;
            let started = Instant::now();
            for _ in 0..rounds {
                black_box(plan(
                    black_box(&spec),
                    black_box(&records),
                    black_box(&observed),
                    1_000_000,
                ));
            }
            let per = started.elapsed() / rounds as u32;
            println!("plan {managers}+{workers} {label:16} {per:>10.2?} per call ({rounds} calls)");
        }
    }
}
