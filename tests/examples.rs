//! The files under examples/ work as their comments say.

use std::path::Path;

use minijinja::context;
use provision::bootstrap::scripts::shellcheck;
use provision::bootstrap::Scripts;
use provision::spec::{validate, Cloud, ClusterTemplate, Coe};

#[test]
fn example_cluster_template_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/swarm-3-managers.yaml");
    let (_, t) = ClusterTemplate::load(path.to_str().unwrap()).unwrap();
    assert_eq!((t.coe, t.managers, t.workers), (Coe::Swarm, 3, 5));
    assert!(validate(&t.to_spec("prod", Cloud::Local))
        .unwrap()
        .is_empty());
}

#[test]
fn example_script_override_renders_and_passes_shellcheck() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/custom-scripts");
    let scripts = Scripts::new(Some(&dir));
    let (_, origin) = scripts.source("swarm/install.sh").unwrap();
    assert!(
        origin.ends_with("examples/custom-scripts/swarm/install.sh.j2"),
        "{origin}"
    );
    let ctx = context! { node => context! { name => "web-worker-1", address => "10.0.0.3", role => "worker", index => 1 } };
    let text = scripts.render("swarm/install.sh", &ctx).unwrap();
    if let Err(findings) = shellcheck(&text) {
        panic!("the example override fails shellcheck:\n{findings}");
    }
}
