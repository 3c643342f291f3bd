//! What the controller would do for a new 1-manager, 2-worker Swarm: the
//! planner is a pure function, so it runs without any cloud.
//!
//!   cargo run --example plan

use provision::controller::{plan, Observed};
use provision::spec::{Cloud, ClusterTemplate};

fn main() {
    let (_, template) = ClusterTemplate::load("swarm").expect("built-in template");
    let spec = template.to_spec("web", Cloud::Local);
    let plan = plan(&spec, &[], &Observed::default(), 0);
    for (i, step) in plan.describe().iter().enumerate() {
        println!("{:>2}. {step}", i + 1);
    }
}
