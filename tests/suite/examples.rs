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
    let spec = t.to_spec("prod", Cloud::Local);
    assert!(validate(&spec).unwrap().is_empty());
    let backup = spec.backup.expect("the example's backup section");
    assert_eq!(
        (backup.interval.as_secs(), backup.keep, backup.to),
        (24 * 3600, 7, None)
    );
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
    let ctx = context! { node => context! { name => "web-worker-1", private_address => "10.0.0.3", public_address => "", ssh_address => "10.0.0.3", role => "worker", index => 1 } };
    let text = scripts.render("swarm/install.sh", &ctx).unwrap();
    if let Err(findings) = shellcheck(&text) {
        panic!("the example override fails shellcheck:\n{findings}");
    }
}

#[test]
fn example_ec2_template_is_valid_and_its_settings_reach_the_spec() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ec2-swarm.yaml");
    let (_, t) = ClusterTemplate::load(path.to_str().unwrap()).unwrap();
    let spec = t.to_spec("web", Cloud::Ec2);
    assert!(validate(&spec).unwrap().is_empty());
    let ec2 = spec.ec2.clone().expect("ec2 settings");
    assert_eq!(ec2.region.as_deref(), Some("eu-west-1"));
    assert_eq!(ec2.root_volume_gb, Some(30));
    assert!(ec2.spread_managers);
    assert_eq!(spec.ssh_user, "ubuntu");
    assert_eq!(spec.firewall().ssh_from, "203.0.113.0/24");
    assert_eq!(spec.firewall().members, Coe::Swarm.profile().member_ports);
}

#[test]
fn example_iam_policy_allows_exactly_the_calls_the_driver_makes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let policy: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("examples/ec2-iam-policy.json")).unwrap(),
    )
    .unwrap();
    let mut allowed: Vec<String> = Vec::new();
    for statement in policy["Statement"].as_array().unwrap() {
        match &statement["Action"] {
            serde_json::Value::String(a) => allowed.push(a.clone()),
            serde_json::Value::Array(a) => {
                allowed.extend(a.iter().map(|v| v.as_str().unwrap().to_string()))
            }
            other => panic!("unexpected Action {other}"),
        }
    }
    // Every call the driver counts, read from its source.
    let mut used: Vec<String> = Vec::new();
    for file in ["prerequisites.rs", "instances.rs", "volumes.rs"] {
        let text = std::fs::read_to_string(root.join("providers/ec2/src").join(file)).unwrap();
        for part in text.split("self.count(\"").skip(1) {
            used.push(format!("ec2:{}", &part[..part.find('"').unwrap()]));
        }
    }
    used.sort();
    used.dedup();
    // Tags are written by the create calls; a role is passed with an instance profile.
    let mut expected = used.clone();
    expected.extend(["ec2:CreateTags".to_string(), "iam:PassRole".to_string()]);
    expected.sort();
    allowed.sort();
    assert_eq!(allowed, expected);
}

#[test]
fn example_kubernetes_template_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes-ha.yaml");
    let (_, t) = ClusterTemplate::load(path.to_str().unwrap()).unwrap();
    assert_eq!((t.coe, t.managers, t.workers), (Coe::Kubernetes, 3, 3));
    let spec = t.to_spec("prod", Cloud::Ec2);
    assert!(validate(&spec).unwrap().is_empty());
    let k8s = spec.kubernetes.unwrap();
    assert_eq!(k8s.cni, provision::spec::Cni::Calico);
    assert_eq!(
        k8s.control_plane_endpoint.as_deref(),
        Some("k8s-api.example.internal")
    );
    // The built-in template's firewall is the orchestrator's own list.
    let (_, builtin) = ClusterTemplate::load("kubernetes").unwrap();
    assert_eq!(
        builtin.to_spec("k", Cloud::Local).firewall().members,
        Coe::Kubernetes.profile().member_ports
    );
}

#[test]
fn example_openstack_template_is_valid_and_its_settings_reach_the_spec() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/openstack-swarm.yaml");
    let (_, t) = ClusterTemplate::load(path.to_str().unwrap()).unwrap();
    let spec = t.to_spec("web", Cloud::OpenStack);
    assert!(validate(&spec).unwrap().is_empty());
    let os = spec.openstack.clone().expect("openstack settings");
    assert_eq!(os.cloud.as_deref(), Some("mycloud"));
    assert_eq!(os.floating_ip_pool.as_deref(), Some("public"));
    assert_eq!(
        os.ssh_address,
        provision_provider_openstack::SshAddress::Floating
    );
    assert_eq!(
        os.server_group_policy,
        provision_provider_openstack::ServerGroupPolicy::SoftAntiAffinity
    );
    assert_eq!(os.metadata.get("team").map(String::as_str), Some("web"));
    assert_eq!(spec.ssh_user, "debian");
    assert_eq!(spec.firewall().members, Coe::Swarm.profile().member_ports);
}

#[test]
fn example_mesos_template_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/mesos-3-masters.yaml");
    let (_, t) = ClusterTemplate::load(path.to_str().unwrap()).unwrap();
    assert_eq!((t.coe, t.managers, t.workers), (Coe::Mesos, 3, 4));
    let spec = t.to_spec("batch", Cloud::OpenStack);
    assert!(validate(&spec).unwrap().is_empty());
    assert_eq!(
        spec.mesos.clone().unwrap(),
        provision::spec::MesosSettings::default()
    );
    assert_eq!(spec.firewall().members, Coe::Mesos.profile().member_ports);
    // The built-in template's firewall is the orchestrator's own list.
    let (_, builtin) = ClusterTemplate::load("mesos").unwrap();
    assert_eq!(
        builtin.to_spec("m", Cloud::Local).firewall().members,
        Coe::Mesos.profile().member_ports
    );
}

#[test]
fn example_pools_template_is_valid_and_spreads_over_its_zones() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/openstack-pools.yaml");
    let (_, t) = ClusterTemplate::load(path.to_str().unwrap()).unwrap();
    let spec = t.to_spec("web", Cloud::OpenStack);
    // Valid; its one warning is the open SSH range it leaves as it is.
    let warnings = validate(&spec).unwrap();
    assert!(
        warnings.iter().all(|w| w.starts_with("firewall.ssh_from")),
        "{warnings:?}"
    );
    let groups = spec.groups();
    let groups: Vec<(&str, u32, Option<&str>)> = groups
        .iter()
        .map(|g| (g.label(), g.count, g.flavor))
        .collect();
    assert_eq!(
        groups,
        [
            ("managers", 3, Some("m1.small")),
            ("workers", 0, Some("m1.small")),
            ("small", 2, Some("m1.small")),
            ("big", 1, Some("m1.medium"))
        ]
    );
    assert_eq!(spec.all_zones(), ["az-1", "az-2", "az-3"]);
}
