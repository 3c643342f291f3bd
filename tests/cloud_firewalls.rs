//! The test clouds' security groups filter packets as real clouds' do
//! (tests/clouds/firewall.py): a port no rule opens cannot be reached from
//! the test host (through the NAT router, as from the internet) nor from
//! another member; a member port is open between members only; a rule
//! added by hand opens its port on running servers within seconds, and
//! its removal closes it again. Each cloud forms a Swarm through the
//! filter and its client (`docker` through `provision env`) reaches it.

mod common;

use std::time::Duration;

use common::ec2::{ec2_cloud, AMI};
use common::firewall::{becomes, body_at, listen, opens};
use common::openstack::openstack_cloud;
use common::*;

/// A port no rule of the cluster's group opens.
const UNOPENED: u16 = 7001;
const SOON: Duration = Duration::from_secs(5);

/// (name, private, public) of each node, from `status`.
fn addresses(c: &Cluster) -> Vec<(String, String, String)> {
    c.status_json()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let field = |k: &str| {
                n[k].as_str()
                    .unwrap_or_else(|| panic!("{k}: {n}"))
                    .to_string()
            };
            (
                field("name"),
                field("private_address"),
                field("public_address"),
            )
        })
        .collect()
}

/// What both clouds must show on a formed 1+1 Swarm; `open_rule` adds a
/// rule for UNOPENED from anywhere by hand, `close_rule` removes it.
fn assert_packets_filtered(
    c: &Cluster,
    cloud_label: &str,
    open_rule: &dyn Fn(),
    close_rule: &dyn Fn(),
) {
    let nodes = addresses(c);
    let manager = nodes.iter().find(|n| n.0.contains("manager")).unwrap();
    let worker = nodes.iter().find(|n| n.0.contains("worker")).unwrap();
    let (manager_body, worker_body) = (
        body_at(cloud_label, &manager.1),
        body_at(cloud_label, &worker.1),
    );
    listen(&manager_body, UNOPENED);
    assert!(
        opens(Some(&manager_body), "127.0.0.1", UNOPENED),
        "the listener answers on the node itself"
    );

    // SSH is open from ssh_from; Swarm's management port from members only.
    assert!(opens(None, &manager.2, 22), "SSH from the test host");
    assert!(
        opens(Some(&worker_body), &manager.1, 2377),
        "2377 from a member"
    );
    assert!(
        !opens(None, &manager.2, 2377),
        "2377 is open to members only, not to the test host"
    );
    // No rule opens UNOPENED: dropped from outside and between members.
    assert!(!opens(None, &manager.2, UNOPENED), "from the test host");
    assert!(
        !opens(Some(&worker_body), &manager.1, UNOPENED),
        "from another member"
    );

    open_rule();
    assert!(
        becomes(None, &manager.2, UNOPENED, true, SOON),
        "a rule added by hand opens the port from the test host"
    );
    assert!(
        becomes(Some(&worker_body), &manager.1, UNOPENED, true, SOON),
        "and from another member"
    );
    close_rule();
    assert!(
        becomes(None, &manager.2, UNOPENED, false, SOON),
        "its removal closes the port again"
    );
}

/// `eval "$(provision env NAME)"; docker node ls` in a shell with the
/// cluster's environment: the Swarm client through the filter.
fn docker_node_ls_through_env(c: &Cluster) -> String {
    let cmd = c.cmd();
    let bin = cmd.get_program().to_str().unwrap().to_string();
    let state = cmd
        .get_args()
        .map(|a| a.to_str().unwrap().to_string())
        .collect::<Vec<_>>();
    let mut shell = std::process::Command::new("bash");
    shell.arg("-c").arg(format!(
        "set -e; eval \"$('{bin}' {} env '{}')\"; docker node ls --format '{{{{.Hostname}}}} {{{{.Status}}}}'",
        state
            .iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" "),
        c.name
    ));
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            shell.env(k, v);
        }
    }
    let out = shell.output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn openstack_security_groups_filter_packets_and_the_swarm_client_gets_through() {
    let (_turn, cloud) = openstack_cloud();
    let c = Cluster::new("osfw").with_env(&cloud.env);
    let template = c.dir().join("t.yaml");
    // Floating IPs (NAT by the test cloud's router) for SSH, as from the internet.
    std::fs::write(
        &template,
        "coe: swarm\nmanagers: 1\nworkers: 1\n\
         openstack:\n  floating_ip_pool: public\n  ssh_address: floating\n",
    )
    .unwrap();
    let out = c
        .cmd()
        .args([
            "swarm",
            "--cloud",
            "openstack",
            "--os-cloud",
            "provision-test",
        ])
        .args(["--name", &c.name, "--template", template.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let id = c.status_json()["id"].as_str().unwrap().to_string();
    let group_id = cloud.state()["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == format!("provision-{id}").as_str())
        .map(|g| g["id"].as_str().unwrap().to_string())
        .expect("the cluster's security group");
    let ls = docker_node_ls_through_env(&c);
    assert_eq!(ls.matches(" Ready").count(), 2, "{ls}");
    assert_packets_filtered(
        &c,
        "openstack",
        &|| {
            cloud.edit_rules(&format!(
                r#"{{"security_group_id": "{group_id}",
                     "add": {{"protocol": "tcp", "port_range_min": {UNOPENED},
                             "port_range_max": {UNOPENED}, "remote_ip_prefix": "0.0.0.0/0"}}}}"#
            ));
        },
        &|| {
            cloud.edit_rules(&format!(
                r#"{{"security_group_id": "{group_id}", "remove_port": {UNOPENED}}}"#
            ));
        },
    );
    c.ok(&["destroy", &c.name, "--yes"]);
}

#[test]
fn ec2_security_groups_filter_packets_and_the_swarm_client_gets_through() {
    let cloud = ec2_cloud();
    let c = Cluster::new("ec2fw").with_env(&cloud.env);
    let template = c.dir().join("t.yaml");
    let text = std::fs::read_to_string(cloud.template())
        .unwrap()
        .replace("workers: 2", "workers: 1");
    std::fs::write(&template, text).unwrap();
    let out = c
        .cmd()
        .args(["swarm", "--cloud", "ec2", "--name", &c.name])
        .args(["--template", template.to_str().unwrap()])
        .args(["--profile", &cloud.profile, "--subnet", &cloud.subnet])
        .args(["--image", AMI])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let id = c.status_json()["id"].as_str().unwrap().to_string();
    let seen = cloud.inspect("provision:cluster", &id);
    let group_id = seen["security_groups"][0]["id"]
        .as_str()
        .expect("the cluster's security group")
        .to_string();
    let ls = docker_node_ls_through_env(&c);
    assert_eq!(ls.matches(" Ready").count(), 2, "{ls}");
    let permission = format!(
        "[{{'IpProtocol': 'tcp', 'FromPort': {UNOPENED}, 'ToPort': {UNOPENED}, \
         'IpRanges': [{{'CidrIp': '0.0.0.0/0'}}]}}]"
    );
    assert_packets_filtered(
        &c,
        "ec2",
        &|| {
            cloud.admin(
                &format!(
                    "ec2.authorize_security_group_ingress(GroupId=sys.argv[1], IpPermissions={permission})"
                ),
                &[&group_id],
            );
        },
        &|| {
            cloud.admin(
                &format!(
                    "ec2.revoke_security_group_ingress(GroupId=sys.argv[1], IpPermissions={permission})"
                ),
                &[&group_id],
            );
        },
    );
    c.ok(&["destroy", &c.name, "--yes"]);
}
