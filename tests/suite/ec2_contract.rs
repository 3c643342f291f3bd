//! Contract tests of every EC2 call the driver makes, against moto alone:
//! instances go to the default VPC's subnet, which the bridge leaves alone,
//! and each check reads moto back with boto3 (tests/clouds/ec2_inspect.py),
//! not with the driver under test.

use std::sync::Mutex;

use crate::common::ec2::{ec2_cloud, AMI};
use provision_provider::{
    Apply, ClusterRef, Firewall, MachineSpec, MachineState, PortRule, Protocol, Provider,
    ProviderError, Recorder, Role,
};
use provision_provider_ec2::{Ec2Options, Ec2Provider, Ec2Settings};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHl9S4Lp3KCA5oEuPIz0mP0uOmvh3tB6mPP9X3l0hZ3Z contract";

fn cluster(name: &str) -> ClusterRef {
    ClusterRef {
        name: name.into(),
        id: format!("{:016x}", rand::random::<u64>()),
        ssh_public_key: KEY.into(),
        minimum_size: None,
        kinds: Vec::new(),
        firewall: Firewall {
            ssh_from: "192.0.2.0/24".into(),
            members: vec![
                PortRule::new(Protocol::Tcp, 2377),
                PortRule::new(Protocol::Udp, 4789),
                PortRule {
                    protocol: Protocol::Tcp,
                    port: 30000,
                    to: Some(32767),
                },
            ],
            ..Firewall::default()
        },
    }
}

fn options(profile: &str) -> Ec2Options {
    Ec2Options {
        settings: Ec2Settings {
            profile: Some(profile.into()),
            ..Default::default()
        },
        image: Some(AMI.into()),
        instance_type: Some("t3.micro".into()),
    }
}

async fn driver(options: Ec2Options) -> Ec2Provider {
    Ec2Provider::connect(options).await.expect("connect")
}

#[derive(Default)]
struct Seen(Mutex<Vec<(String, String)>>);

impl Recorder for Seen {
    fn note(&self, _: &str) {}
    fn created(&self, kind: &str, id: &str) {
        self.0.lock().unwrap().push((kind.into(), id.into()));
    }
}

fn machine_spec(node: &str, role: Role) -> MachineSpec {
    MachineSpec {
        node: node.into(),
        role,
        image: None,
        flavor: None,
        labels: Default::default(),
        zone: None,
        launch_token: format!("{:032x}", rand::random::<u128>()),
        private_address: None,
    }
}

#[tokio::test]
async fn preflight_accepts_good_settings_and_names_each_bad_one() {
    let cloud = ec2_cloud();
    let c = cluster("pf");
    driver(options(&cloud.profile))
        .await
        .preflight(&c)
        .await
        .expect("default subnet, known AMI and type pass");

    // By name (wildcards, newest wins) and owner, and the default Ubuntu image.
    let mut o = options(&cloud.profile);
    o.image = Some("ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-*".into());
    o.settings.ami_owner = Some("099720109477".into());
    driver(o)
        .await
        .preflight(&c)
        .await
        .expect("image by name and owner");
    let mut o = options(&cloud.profile);
    o.image = None;
    driver(o)
        .await
        .preflight(&c)
        .await
        .expect("the default Canonical image");

    let mut o = options(&cloud.profile);
    o.image = Some("ami-00000000".into());
    let e = driver(o).await.preflight(&c).await.unwrap_err();
    assert!(
        matches!(&e, ProviderError::Invalid { field, .. } if field == "image"),
        "{e}"
    );

    let mut o = options(&cloud.profile);
    o.image = Some("no-such-image-*".into());
    o.settings.ami_owner = Some("amazon".into());
    let e = driver(o).await.preflight(&c).await.unwrap_err().to_string();
    assert!(e.contains("no image named") && e.contains("amazon"), "{e}");

    let mut o = options(&cloud.profile);
    o.settings.subnet = Some("subnet-00000000".into());
    let e = driver(o).await.preflight(&c).await.unwrap_err();
    assert!(
        matches!(&e, ProviderError::Invalid { field, .. } if field == "ec2.subnet"),
        "{e}"
    );

    let mut o = options(&cloud.profile);
    o.instance_type = Some("t9.enormous".into());
    let e = driver(o).await.preflight(&c).await.unwrap_err();
    assert!(
        matches!(&e, ProviderError::Invalid { field, .. } if field == "flavor"),
        "{e}"
    );
}

#[tokio::test]
async fn refused_credentials_say_what_to_check() {
    ec2_cloud();
    let e = driver(options("provision-wrong"))
        .await
        .preflight(&cluster("cred"))
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Unavailable { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("credentials were refused") && text.contains("--profile"),
        "{text}"
    );
}

#[tokio::test]
async fn prerequisites_are_tagged_made_once_and_found_again() {
    let cloud = ec2_cloud();
    let c = cluster("pre");
    let first = Seen::default();
    driver(options(&cloud.profile))
        .await
        .ensure_prerequisites(&c, &first)
        .await
        .unwrap();
    let kinds: Vec<String> = first
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(kinds, ["key-pair", "security-group"]);

    // A new process (no cache) finds them by tag and makes nothing.
    let second = Seen::default();
    driver(options(&cloud.profile))
        .await
        .ensure_prerequisites(&c, &second)
        .await
        .unwrap();
    assert!(second.0.lock().unwrap().is_empty(), "{:?}", second.0);

    let seen = cloud.inspect("provision:cluster", &c.id);
    assert_eq!(seen["key_pairs"].as_array().unwrap().len(), 1, "{seen}");
    let groups = seen["security_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{seen}");
    let group = groups[0]["id"].as_str().unwrap();
    let rules = groups[0]["rules"].as_array().unwrap();
    let ssh: Vec<_> = rules.iter().filter(|r| r["from"] == 22).collect();
    assert_eq!(ssh.len(), 1, "{rules:?}");
    assert_eq!(ssh[0]["cidrs"], serde_json::json!(["192.0.2.0/24"]));
    for (protocol, from, to) in [
        ("tcp", 2377, 2377),
        ("udp", 4789, 4789),
        ("tcp", 30000, 32767),
    ] {
        let r = rules
            .iter()
            .find(|r| r["protocol"] == protocol && r["from"] == from && r["to"] == to)
            .unwrap_or_else(|| panic!("no {protocol} {from}-{to} rule in {rules:?}"));
        assert_eq!(r["groups"], serde_json::json!([group]), "members only: {r}");
        assert_eq!(
            r["cidrs"],
            serde_json::json!([]),
            "never open to a range: {r}"
        );
    }
    assert_eq!(rules.len(), 4, "exactly the rules asked for: {rules:?}");

    // Drift: an operator removes the swarm port's rule and adds one of
    // their own; the template changes ssh_from and drops udp 4789.
    cloud.admin(
        "ec2.revoke_security_group_ingress(GroupId=sys.argv[1], IpPermissions=[{'IpProtocol': 'tcp', 'FromPort': 2377, 'ToPort': 2377, 'UserIdGroupPairs': [{'GroupId': sys.argv[1], 'Description': 'provision-members'}]}])\n\
         ec2.authorize_security_group_ingress(GroupId=sys.argv[1], IpPermissions=[{'IpProtocol': 'tcp', 'FromPort': 9100, 'ToPort': 9100, 'IpRanges': [{'CidrIp': '198.18.0.0/15', 'Description': 'monitoring'}]}])",
        &[group],
    );
    let mut changed = c.clone();
    changed.firewall.ssh_from = "10.0.0.0/8".into();
    changed
        .firewall
        .members
        .retain(|r| r.protocol != Protocol::Udp);
    let d = driver(options(&cloud.profile)).await;
    // A dry run says what it would change, and changes nothing.
    let mut would = d.reconcile_firewall(&changed, Apply::DryRun).await.unwrap();
    would.sort();
    assert_eq!(
        would,
        [
            "firewall: would add tcp 22 from 10.0.0.0/8",
            "firewall: would add tcp 2377 from the cluster's members",
            "firewall: would revoke tcp 22 from 192.0.2.0/24",
            "firewall: would revoke udp 4789 from the cluster's members",
        ]
    );
    assert_eq!(
        d.reconcile_firewall(&changed, Apply::DryRun)
            .await
            .unwrap()
            .len(),
        4,
        "the dry run changed the group"
    );
    let mut changes = d
        .reconcile_firewall(&changed, Apply::Changes)
        .await
        .unwrap();
    changes.sort();
    assert_eq!(
        changes,
        [
            "firewall: added tcp 22 from 10.0.0.0/8",
            "firewall: added tcp 2377 from the cluster's members",
            "firewall: revoked tcp 22 from 192.0.2.0/24",
            "firewall: revoked udp 4789 from the cluster's members",
        ]
    );
    let seen = cloud.inspect("provision:cluster", &c.id);
    let rules = seen["security_groups"][0]["rules"]
        .as_array()
        .unwrap()
        .clone();
    let has = |protocol: &str, from: u16| {
        rules
            .iter()
            .find(|r| r["protocol"] == protocol && r["from"] == from)
            .cloned()
    };
    assert_eq!(
        has("tcp", 22).unwrap()["cidrs"],
        serde_json::json!(["10.0.0.0/8"])
    );
    assert!(has("tcp", 2377).is_some(), "{rules:?}");
    assert!(has("udp", 4789).is_none(), "{rules:?}");
    assert!(
        has("tcp", 9100).is_some(),
        "the operator's own rule stays: {rules:?}"
    );
    assert!(d
        .reconcile_firewall(&changed, Apply::Changes)
        .await
        .unwrap()
        .is_empty());

    driver(options(&cloud.profile))
        .await
        .destroy_cluster(&c)
        .await
        .unwrap();
    let seen = cloud.inspect("provision:cluster", &c.id);
    assert!(seen["key_pairs"].as_array().unwrap().is_empty(), "{seen}");
    assert!(
        seen["security_groups"].as_array().unwrap().is_empty(),
        "{seen}"
    );
}

#[tokio::test]
async fn machines_are_launched_once_listed_by_tag_and_terminated_idempotently() {
    let cloud = ec2_cloud();
    let c = cluster("mach");
    let d = driver(options(&cloud.profile)).await;
    d.ensure_prerequisites(&c, &Seen::default()).await.unwrap();

    let spec = machine_spec("mach-manager-1", Role::Manager);
    let a = d.create_machine(&c, &spec).await.unwrap();
    let b = driver(options(&cloud.profile))
        .await
        .create_machine(&c, &spec)
        .await
        .unwrap();
    assert_eq!(
        a.id, b.id,
        "a second create of the same node finds the first"
    );
    assert_eq!((a.node.as_str(), a.role), ("mach-manager-1", Role::Manager));
    let worker = d
        .create_machine(&c, &machine_spec("mach-worker-1", Role::Worker))
        .await
        .unwrap();

    let seen = cloud.live_instances("provision:cluster", &c.id);
    assert_eq!(seen.len(), 2, "{seen:?}");
    let manager = seen.iter().find(|i| i["id"] == a.id.as_str()).unwrap();
    assert_eq!(manager["tags"]["Name"], "mach-manager-1");
    assert_eq!(manager["tags"]["provision:role"], "manager");
    assert_eq!(manager["tags"]["provision:cluster-name"], "mach");
    assert!(
        manager["client_token"]
            .as_str()
            .is_some_and(|t| t.starts_with(&c.id)),
        "RunInstances carries a client token: {manager}"
    );
    assert_eq!(
        manager["delete_on_termination"],
        serde_json::json!([true]),
        "the root volume goes with the instance: {manager}"
    );

    // Listing is one DescribeInstances, whatever the node count.
    let before = d.api_calls();
    let listed = d.list_machines(&c).await.unwrap();
    assert_eq!(d.api_calls() - before, 1);
    assert_eq!(listed.len(), 2);
    // The default address is the public one; moto gives every instance one.
    assert!(
        listed.iter().all(|m| m
            .addresses
            .as_ref()
            .is_some_and(|a| a.public.as_ref() == Some(&a.ssh))),
        "{listed:?}"
    );
    assert!(listed
        .iter()
        .all(|m| matches!(m.state, MachineState::Pending | MachineState::Running)));

    d.delete_machine(&c, &worker.id).await.unwrap();
    d.delete_machine(&c, &worker.id)
        .await
        .expect("already terminated is fine");
    d.delete_machine(&c, "i-0123456789abcdef0")
        .await
        .expect("unknown is fine");
    let listed = d.list_machines(&c).await.unwrap();
    assert_eq!(
        listed.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [a.id.as_str()]
    );

    // The name comes back after scale-in, as a new node record with its own
    // launch token: a new instance, not the terminated one.
    let again = d
        .create_machine(&c, &machine_spec("mach-worker-1", Role::Worker))
        .await
        .unwrap();
    assert_ne!(again.id, worker.id);
    let tokens: Vec<String> = cloud
        .live_instances("provision:cluster", &c.id)
        .iter()
        .map(|i| i["client_token"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(tokens.len(), 2);
    assert_ne!(tokens[0], tokens[1], "one token per launch");

    // A volume its instance left behind goes with the cluster.
    let orphan = cloud.orphan_volume(&c.id);
    d.destroy_cluster(&c).await.unwrap();
    let volumes = cloud.inspect("provision:cluster", &c.id)["volumes"].clone();
    assert_eq!(
        volumes.as_array().unwrap().len(),
        0,
        "{orphan} left: {volumes}"
    );
    assert!(cloud.live_instances("provision:cluster", &c.id).is_empty());
    assert!(d.list_machines(&c).await.unwrap().is_empty());
}

#[tokio::test]
async fn launch_settings_reach_the_instance() {
    let cloud = ec2_cloud();
    let c = cluster("settings");
    let mut o = options(&cloud.profile);
    o.image = Some("ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-*".into());
    o.settings.ami_owner = Some("099720109477".into());
    o.settings.root_volume_gb = Some(42);
    o.settings.user_data = Some("#cloud-config\npackages: [htop]\n".into());
    o.settings.subnet = Some(cloud.subnet.clone());
    o.instance_type = Some("m5.large".into());
    let d = driver(o).await;
    d.ensure_prerequisites(&c, &Seen::default()).await.unwrap();
    let m = d
        .create_machine(&c, &machine_spec("settings-worker-1", Role::Worker))
        .await
        .unwrap();
    let seen = cloud.live_instances("provision:cluster", &c.id);
    let i = seen.iter().find(|i| i["id"] == m.id.as_str()).unwrap();
    assert_eq!(
        i["image"], "ami-785db401",
        "the newest image of that name: {i}"
    );
    assert_eq!(i["instance_type"], "m5.large");
    assert_eq!(i["subnet"], cloud.subnet.as_str());
    assert_eq!(i["volume_sizes"], serde_json::json!([42]), "{i}");
    let data = i["user_data"].as_str().expect("user data");
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        "#cloud-config\npackages: [htop]\n"
    );
    d.destroy_cluster(&c).await.unwrap();
}

#[tokio::test]
async fn destroy_touches_only_the_clusters_own_resources() {
    let cloud = ec2_cloud();
    let (mine, other) = (cluster("mine"), cluster("other"));
    let d = driver(options(&cloud.profile)).await;
    for c in [&mine, &other] {
        d.ensure_prerequisites(c, &Seen::default()).await.unwrap();
        d.create_machine(
            c,
            &machine_spec(&format!("{}-worker-1", c.name), Role::Worker),
        )
        .await
        .unwrap();
    }
    d.destroy_cluster(&mine).await.unwrap();
    d.destroy_cluster(&mine)
        .await
        .expect("a second destroy finds nothing to do");
    let gone = cloud.inspect("provision:cluster", &mine.id);
    assert!(
        cloud
            .live_instances("provision:cluster", &mine.id)
            .is_empty(),
        "{gone}"
    );
    assert!(
        gone["security_groups"].as_array().unwrap().is_empty(),
        "{gone}"
    );
    assert!(gone["key_pairs"].as_array().unwrap().is_empty(), "{gone}");
    let kept = cloud.inspect("provision:cluster", &other.id);
    assert_eq!(
        cloud.live_instances("provision:cluster", &other.id).len(),
        1,
        "{kept}"
    );
    assert_eq!(
        kept["security_groups"].as_array().unwrap().len(),
        1,
        "{kept}"
    );
    assert_eq!(kept["key_pairs"].as_array().unwrap().len(), 1, "{kept}");
    d.destroy_cluster(&other).await.unwrap();
}

/// A pool's zones and instance type: each zone is the default VPC's
/// subnet there (moto's default VPC has one in each of the region's zones,
/// as AWS's does), a zone with no subnet is refused by preflight naming
/// the group, and a machine made for a zone runs there with its group's
/// instance type.
#[tokio::test]
async fn zones_are_subnets_and_a_pool_has_its_own_instance_type() {
    let cloud = ec2_cloud();
    let mut c = cluster("zones");
    let kind =
        |group: &str, flavor: Option<&str>, zones: &[&str]| provision_provider::MachineKind {
            group: group.into(),
            flavor: flavor.map(Into::into),
            image: None,
            zones: zones.iter().map(|z| z.to_string()).collect(),
        };
    c.kinds = vec![
        kind("managers", None, &["us-east-1a", "us-east-1b"]),
        kind("gpu", Some("t3.large"), &["us-east-1b"]),
    ];
    let d = driver(options(&cloud.profile)).await;
    d.preflight(&c).await.expect("zones with default subnets");

    let mut bad = c.clone();
    bad.kinds[1] = kind("gpu", Some("t3.large"), &["us-east-1z"]);
    let e = d.preflight(&bad).await.unwrap_err().to_string();
    assert!(
        e.starts_with("zones of the gpu: VPC") && e.contains("no subnet in zone us-east-1z"),
        "{e}"
    );

    d.ensure_prerequisites(&c, &Seen::default()).await.unwrap();
    let mut spec = machine_spec("zones-gpu-1", Role::Worker);
    spec.zone = Some("us-east-1b".into());
    spec.flavor = Some("t3.large".into());
    let m = d.create_machine(&c, &spec).await.unwrap();
    let listed = d.list_machines(&c).await.unwrap();
    let found = listed.iter().find(|l| l.id == m.id).unwrap();
    assert_eq!(found.zone.as_deref(), Some("us-east-1b"));
    let seen = cloud.live_instances("provision:cluster", &c.id);
    assert_eq!(seen[0]["instance_type"], "t3.large", "{seen:?}");
    d.destroy_cluster(&c).await.unwrap();
}
