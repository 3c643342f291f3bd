//! `provision swarm --cloud ec2` end to end on the EC2 test cloud: moto
//! with IAM authentication on (the test user holds exactly
//! examples/ec2-iam-policy.json), and the bridge that runs a node container
//! for each instance at its private IP, its public IPv4 by NAT.

use std::time::Duration;

use crate::common::ec2::{ec2_cloud, AMI};
use crate::common::*;

/// `provision` debug lines the driver logs per EC2 call.
fn api_calls(stderr: &[u8]) -> usize {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.contains("ec2 api call"))
        .count()
}

const COUNT_CALLS: (&str, &str) = ("PROVISION_LOG", "info,provision_provider_ec2=debug");

/// `provision swarm --cloud ec2` on the test cloud's subnet, profile and
/// template, with `env` and `extra` arguments on top.
fn create(c: &Cluster, env: &[(&str, &str)], extra: &[&str]) -> std::process::Output {
    let cloud = ec2_cloud();
    let template = cloud.template();
    c.cmd()
        .envs(env.iter().copied())
        .args(["swarm", "--cloud", "ec2", "--name", &c.name])
        .args(["--template", template.to_str().unwrap()])
        .args([
            "--profile",
            &cloud.profile,
            "--subnet",
            &cloud.subnet,
            "--image",
            AMI,
        ])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn swarm_on_ec2_forms_and_destroy_leaves_nothing() {
    let cloud = ec2_cloud();
    let c = Cluster::new("ec2").with_env(&cloud.env);
    let out = create(&c, &[COUNT_CALLS], &[]);
    assert!(
        out.status.success(),
        "create failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "EC2 API calls to create a 1+2 cluster: {}",
        api_calls(&out.stderr)
    );

    assert_eq!(ready_swarm_nodes(&c), 3);
    // Reached over public IPv4 (the default ssh_address) through the test
    // cloud's NAT; formed on the private addresses.
    assert_swarm_on_private_addresses(&c, "198.51.100.");

    let status = c.status_json();
    let id = status["id"].as_str().unwrap().to_string();
    let kinds: Vec<&str> = status["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"key-pair") && kinds.contains(&"security-group"),
        "{status}"
    );
    let instances: Vec<String> = cloud
        .live_instances("provision:cluster", &id)
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(instances.len(), 3);
    assert_eq!(cloud.bodies(&instances).len(), 3);

    // One reconcile pass of a converged cluster: one DescribeInstances.
    let heal = c
        .cmd()
        .env(COUNT_CALLS.0, COUNT_CALLS.1)
        .args(["heal", &c.name])
        .output()
        .unwrap();
    assert!(
        heal.status.success(),
        "{}",
        String::from_utf8_lossy(&heal.stderr)
    );
    let pass_calls = api_calls(&heal.stderr);
    eprintln!("EC2 API calls for one reconcile pass of a converged 1+2 cluster: {pass_calls}");
    // DescribeInstances, and DescribeSecurityGroups: the firewall is
    // reconciled every run.
    assert_eq!(pass_calls, 2);

    // The cloud loses a worker's instance: heal replaces the node.
    let lost = cloud
        .live_instances("provision:cluster", &id)
        .into_iter()
        .find(|i| i["tags"]["provision:role"] == "worker")
        .unwrap();
    cloud.terminate(lost["id"].as_str().unwrap());
    // Seen gone twice, lost_timeout (2 s in the test template) apart.
    c.ok(&["heal", &c.name]);
    std::thread::sleep(Duration::from_secs(3));
    let healed = c.ok(&["heal", &c.name]);
    assert!(healed.contains("all healthy"), "{healed}");
    let live = cloud.live_instances("provision:cluster", &id);
    assert_eq!(live.len(), 3, "{live:?}");
    assert!(live.iter().all(|i| i["id"] != lost["id"]));
    assert_eq!(ready_swarm_nodes(&c), 3);
    let mut instances = instances;
    instances.extend(live.iter().map(|i| i["id"].as_str().unwrap().to_string()));

    c.ok(&["destroy", &c.name, "--yes"]);
    let left = cloud.inspect("provision:cluster", &id);
    assert!(
        cloud.live_instances("provision:cluster", &id).is_empty(),
        "{left}"
    );
    assert!(
        left["security_groups"].as_array().unwrap().is_empty(),
        "{left}"
    );
    assert!(left["key_pairs"].as_array().unwrap().is_empty(), "{left}");
    wait_until(
        "the bridge to remove the bodies",
        Duration::from_secs(20),
        || cloud.bodies(&instances).is_empty(),
    );
}

/// A Debian AMI without Docker, reached on its public IPv4 as user
/// `admin` (Debian's AMIs' login user, through sudo): the install script
/// waits for first boot's cloud-init, installs docker.io, and the swarm forms.
#[test]
fn swarm_forms_from_a_bare_debian_ami() {
    let cloud = ec2_cloud();
    let c = Cluster::new("ec2bare").with_env(&cloud.env);
    let template = c.dir().join("bare.yaml");
    let base = std::fs::read_to_string(cloud.template()).unwrap();
    std::fs::write(
        &template,
        base.replace("workers: 2", "workers: 1")
            .replace("node:\n", "node:\n  ssh_user: admin\n"),
    )
    .unwrap();
    let out = c
        .cmd()
        .args(["swarm", "--cloud", "ec2", "--name", &c.name])
        .args(["--template", template.to_str().unwrap()])
        .args(["--profile", &cloud.profile, "--subnet", &cloud.subnet])
        .args(["--image", &cloud.bare_ami])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert_formed_from_bare_image(&c, 2, true);
    assert_swarm_on_private_addresses(&c, "198.51.100.");
    c.ok(&["destroy", &c.name, "--yes"]);
}

/// Each bad setting fails before anything is launched or stored.
#[test]
fn bad_ec2_input_fails_before_anything_is_launched() {
    let cloud = ec2_cloud();
    let c = Cluster::new("ec2bad").with_env(&cloud.env);
    let template = cloud.template();
    let attempt = |extra: &[&str]| {
        let out = c
            .cmd()
            .args(["swarm", "--cloud", "ec2", "--name", &c.name])
            .args(["--template", template.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{extra:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let good_subnet = ["--subnet", cloud.subnet.as_str()];

    let e = attempt(
        &[
            &["--profile", "provision-wrong", "--image", AMI][..],
            &good_subnet,
        ]
        .concat(),
    );
    assert!(
        e.contains("credentials were refused") && e.contains("--profile"),
        "{e}"
    );

    let e = attempt(
        &[
            &["--profile", &cloud.profile, "--image", "ami-00000000"][..],
            &good_subnet,
        ]
        .concat(),
    );
    assert!(e.contains("image:") && e.contains("ami-00000000"), "{e}");

    let e = attempt(&[
        "--profile",
        &cloud.profile,
        "--image",
        AMI,
        "--subnet",
        "subnet-00000000",
    ]);
    assert!(
        e.contains("ec2.subnet:") && e.contains("subnet-00000000"),
        "{e}"
    );

    let e = attempt(&[
        "--image",
        AMI,
        "--flavor",
        "t9.enormous",
        "--profile",
        &cloud.profile,
        "--subnet",
        &cloud.subnet,
    ]);
    assert!(e.contains("flavor:"), "{e}");

    // Kubernetes on t3.micro (1 GiB) would fail in kubeadm's preflight.
    let out = c
        .cmd()
        .args(["kubernetes", "--cloud", "ec2", "--name", &c.name])
        .args(["--profile", &cloud.profile, "--subnet", &cloud.subnet])
        .args(["--image", AMI, "--flavor", "t3.micro"])
        .output()
        .unwrap();
    let e = output_text(&out);
    assert!(!out.status.success(), "{e}");
    assert!(
        e.contains("flavor: instance type t3.micro has 2 vCPU(s) and 1024 MiB")
            && e.contains("1700 MiB"),
        "{e}"
    );

    let seen = cloud.inspect("provision:cluster-name", &c.name);
    assert!(seen["instances"].as_array().unwrap().is_empty(), "{seen}");
    assert!(seen["key_pairs"].as_array().unwrap().is_empty(), "{seen}");
    assert!(
        seen["security_groups"].as_array().unwrap().is_empty(),
        "{seen}"
    );
    let list = c.ok(&["list"]);
    assert!(!list.contains(&c.name), "nothing stored: {list}");
}

/// Every third EC2 request is throttled: the SDK's standard retries (with
/// backoff and jitter) carry the create through, and nothing is launched
/// twice.
#[test]
fn throttled_requests_are_retried_and_the_cluster_still_forms() {
    let cloud = ec2_cloud();
    let proxy = crate::common::ec2::ThrottlingProxy::start(&cloud.endpoint, 3);
    let c = Cluster::new("ec2thr").with_env(&cloud.env);
    // The environment's endpoint wins over the profile's, as in the aws CLI.
    let out = create(&c, &[("AWS_ENDPOINT_URL", &proxy.url)], &["--workers", "1"]);
    assert!(
        out.status.success(),
        "create through the throttling proxy failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(proxy.throttled() > 0, "the proxy throttled nothing");
    eprintln!(
        "throttled {} requests; the cluster formed",
        proxy.throttled()
    );
    let id = c.status_json()["id"].as_str().unwrap().to_string();
    assert_eq!(cloud.live_instances("provision:cluster", &id).len(), 2);
    c.ok(&["destroy", &c.name, "--yes"]);
    assert!(cloud.live_instances("provision:cluster", &id).is_empty());
}

/// A node name comes back after scale-in: it gets a new instance with a
/// token of its own, never the terminated one (AWS hands back the instance
/// of a token it still remembers, for at least 24 h). And destroy deletes a
/// volume an instance left behind (an AMI whose root volume outlives it).
#[test]
fn a_name_reused_after_scale_in_gets_a_new_instance_and_destroy_deletes_left_volumes() {
    let cloud = ec2_cloud();
    let c = Cluster::new("ec2re").with_env(&cloud.env);
    let out = create(&c, &[], &["--workers", "1"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let id = c.status_json()["id"].as_str().unwrap().to_string();
    let worker = format!("{}-worker-1", c.name);
    let instance = || {
        cloud
            .live_instances("provision:cluster", &id)
            .into_iter()
            .find(|i| i["tags"]["Name"] == worker.as_str())
            .map(|i| {
                (
                    i["id"].as_str().unwrap().to_string(),
                    i["client_token"].as_str().unwrap_or_default().to_string(),
                )
            })
    };
    let first = instance().expect("the worker's instance");
    c.ok(&["scale", &c.name, "--workers", "0"]);
    assert_eq!(instance(), None);
    c.ok(&["scale", &c.name, "--workers", "1"]);
    let second = instance().expect("the worker's new instance");
    assert_ne!(second.0, first.0, "a new instance, not the terminated one");
    assert_ne!(second.1, first.1, "a token of its own");
    assert_eq!(ready_swarm_nodes(&c), 2);

    let orphan = cloud.orphan_volume(&id);
    c.ok(&["destroy", &c.name, "--yes"]);
    let left = cloud.inspect("provision:cluster", &id);
    assert_eq!(left["volumes"], serde_json::json!([]), "{orphan}: {left}");
    assert!(cloud.live_instances("provision:cluster", &id).is_empty());
    record_fault_row(FaultRow {
        id: "20",
        fault: "EC2: a node name reused after scale-in; a volume left behind by an instance",
        happened: "the name got a new instance with its own ClientToken; destroy deleted the tagged volume".into(),
        remediations: "0".into(),
        left_over: "none".into(),
    });
}

/// Its only manager's instance terminated: `provision restore` launches
/// the new manager at the backed-up manager's private address
/// (RunInstances' PrivateIpAddress), the swarm comes back from the backup
/// and the worker rejoins.
#[test]
fn a_swarm_whose_manager_was_terminated_is_restored_at_the_backed_up_address() {
    let cloud = ec2_cloud();
    let c = Cluster::new("ec2r").with_env(&cloud.env);
    let out = create(&c, &[], &["--managers", "1", "--workers", "1"]);
    assert!(
        out.status.success(),
        "create failed:\n{}",
        output_text(&out)
    );
    let first = c.manager();
    let address = c.private_address(&first);
    let dir = c.dir().join("backups");
    let dir = dir.to_str().unwrap();
    back_up_marked_swarm(&c, dir, "provision-ec2-restore");
    let id = c.status_json()["id"].as_str().unwrap().to_string();
    let manager = cloud
        .live_instances("provision:cluster", &id)
        .into_iter()
        .find(|i| i["tags"]["provision:role"] == "manager")
        .unwrap();
    cloud.terminate(manager["id"].as_str().unwrap());

    assert_restored_swarm(&c, dir, &address, "provision-ec2-restore");
    c.ok(&["destroy", &c.name, "--yes"]);
    assert!(cloud.live_instances("provision:cluster", &id).is_empty());
}
