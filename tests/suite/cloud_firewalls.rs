//! The test clouds' security groups filter packets as real clouds' do
//! (tests/clouds/firewall.py): a port no rule opens cannot be reached from
//! the test host (through the NAT router, as from the internet) nor from
//! another member; a member port is open between members only; a rule
//! added by hand opens its port on running servers within seconds, and
//! its removal closes it again. On each cloud, Swarm, Kubernetes and Mesos
//! (stand-ins) form through the filter, and their clients reach them from
//! the test host as `provision env` points them: `docker` over SSH, the
//! kubeconfig's API server and the Mesos master and Marathon URLs, opened
//! from `--clients-from`.

use std::time::Duration;

use crate::common::ec2::{ec2_cloud, AMI};
use crate::common::firewall::{becomes, body_at, listen, opens};
use crate::common::openstack::openstack_cloud;
use crate::common::standins::standin_image;
use crate::common::*;

/// A port no rule of the cluster's group opens.
const UNOPENED: u16 = 7001;
/// How long a rule change may take to reach the packets. The test clouds
/// apply a group's rules within a poll, but one poll also starts the bodies
/// of instances other tests launch meanwhile (docker run, keys): with the
/// EC2 cloud shared by a parallel lane, a removal once took longer than 5 s
/// to close the port. The check still fails if it never does.
const SOON: Duration = Duration::from_secs(30);

/// What both clouds must show on a formed 1+1 Swarm; `open_rule` adds a
/// rule for UNOPENED from anywhere by hand, `close_rule` removes it.
fn assert_packets_filtered(
    c: &Cluster,
    cloud_label: &str,
    open_rule: &dyn Fn(),
    close_rule: &dyn Fn(),
) {
    let nodes = node_addresses(&c.status_json());
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
    let group_id = cloud.security_group(&id)["id"]
        .as_str()
        .unwrap()
        .to_string();
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

/// The test host's own range toward the test clouds' public networks.
const TEST_HOST_RANGE: &str = "198.51.100.0/24";
/// A range the test host is not in.
const ELSEWHERE: &str = "192.0.2.0/24";

/// `provision env NAME`'s `export K=V` lines.
fn env_vars(c: &Cluster) -> std::collections::BTreeMap<String, String> {
    c.ok(&["env", &c.name])
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

/// `curl -fsS URL` from the test host: the body, or None.
fn get(url: &str) -> Option<String> {
    let out = std::process::Command::new("curl")
        .args(["-fsS", "-m", "5", url])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A kubeconfig's CA and client certificate and key, as files for curl.
struct Credentials {
    ca: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl Credentials {
    fn from_kubeconfig(kubeconfig: &str, dir: &std::path::Path) -> Credentials {
        use base64::Engine;
        let write = |field: &str, file: &str| {
            let data = kubeconfig
                .lines()
                .find_map(|l| l.trim().strip_prefix(&format!("{field}: ")))
                .unwrap_or_else(|| panic!("the kubeconfig's {field}"));
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .unwrap();
            let path = dir.join(file);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        Credentials {
            ca: write("certificate-authority-data", "kube-ca.crt"),
            cert: write("client-certificate-data", "kube-client.crt"),
            key: write("client-key-data", "kube-client.key"),
        }
    }

    /// `openssl verify`: the client certificate chains to the CA.
    fn client_signed_by_ca(&self) -> bool {
        std::process::Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(&self.ca)
            .arg(&self.cert)
            .output()
            .unwrap()
            .status
            .success()
    }

    /// GET with the server checked against the CA, the client certificate
    /// presented; the body when the answer is 2xx.
    fn get(&self, url: &str) -> Option<String> {
        let out = std::process::Command::new("curl")
            .args(["-fsS", "-m", "5", "--cacert"])
            .arg(&self.ca)
            .arg("--cert")
            .arg(&self.cert)
            .arg("--key")
            .arg(&self.key)
            .arg(url)
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// `provision COE --name NAME ARGS…` on a test cloud, with a template of
/// `coe: COE` and `template` after it; fails the test on error.
fn create_on_cloud(c: &Cluster, coe: &str, template: &str, args: &[&str]) {
    let path = c.dir().join(format!("{coe}.yaml"));
    std::fs::write(&path, format!("coe: {coe}\n{template}")).unwrap();
    let out = c
        .cmd()
        .args([coe, "--name", &c.name, "--managers", "1", "--workers", "2"])
        .args(["--template", path.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{coe}: {}", output_text(&out));
}

/// A Kubernetes 1+2 whose API port is open to a range the test host is not
/// in, then (the same command with another --clients-from) to the test
/// host's: the kubeconfig's server is unreachable, then answers /readyz
/// over TLS with the kubeconfig's own credentials: its CA verifies the
/// server's certificate for the public address, and its client certificate
/// is one that CA signed. Then a Mesos 1+2 whose
/// MESOS_MASTER_URL and MARATHON_URL answer from the test host. Both form
/// through the enforced firewall: every port between members is one a
/// rule opens.
fn kubernetes_and_mesos_clients_get_through(
    template: &str,
    cloud_args: &[&str],
    env: &[(String, String)],
) {
    let k = Cluster::new("fwk8s").with_env(env);
    let mut args = cloud_args.to_vec();
    args.extend_from_slice(&["--clients-from", ELSEWHERE]);
    create_on_cloud(&k, "kubernetes", template, &args);
    let kubeconfig = std::fs::read_to_string(env_vars(&k)["KUBECONFIG"].as_str()).unwrap();
    let server = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://"))
        .expect("the kubeconfig's server")
        .to_string();
    let (host, port) = server.rsplit_once(':').unwrap();
    assert!(
        host.starts_with("198.51.100."),
        "a public address: {server}"
    );
    assert!(
        !opens(None, host, port.parse().unwrap()),
        "6443 is open to {ELSEWHERE} only"
    );
    let mut args = cloud_args.to_vec();
    args.extend_from_slice(&["--clients-from", TEST_HOST_RANGE]);
    create_on_cloud(&k, "kubernetes", template, &args);
    let creds = Credentials::from_kubeconfig(&kubeconfig, k.dir());
    assert!(
        creds.client_signed_by_ca(),
        "the kubeconfig's client certificate"
    );
    let readyz = (0..25).find_map(|_| {
        std::thread::sleep(Duration::from_millis(200));
        creds.get(&format!("https://{server}/cgi-bin/readyz"))
    });
    assert_eq!(readyz.as_deref().map(str::trim), Some("ok"), "{server}");
    let status = k.status_nodes();
    assert!(status.iter().all(|(_, h)| h == "healthy"), "{status:?}");
    k.ok(&["destroy", &k.name, "--yes"]);

    let m = Cluster::new("fwmesos").with_env(env);
    create_on_cloud(&m, "mesos", template, cloud_args);
    let vars = env_vars(&m);
    let (master, marathon) = (&vars["MESOS_MASTER_URL"], &vars["MARATHON_URL"]);
    assert!(master.contains("198.51.100."), "{master}");
    assert!(
        get(&format!("{master}/health")).is_some(),
        "{master}/health"
    );
    let info = get(&format!("{marathon}/v2/info")).unwrap_or_default();
    assert!(
        info.contains("\"name\": \"marathon\""),
        "{marathon}: {info}"
    );
    let status = m.status_nodes();
    assert!(status.iter().all(|(_, h)| h == "healthy"), "{status:?}");
    schedulers_across_nodes_are_reached_through_the_rule(&m, master);
    m.ok(&["destroy", &m.name, "--yes"]);
}

/// Marathon's scheduler driver on another node than the leading master:
/// the master answers a registration by connecting to the address and port
/// the scheduler advertises (LIBPROCESS_IP:LIBPROCESS_PORT), through the
/// enforced firewall. A scheduler on a worker at the port the members'
/// rules open becomes active; one at a port no rule opens stays inactive.
fn schedulers_across_nodes_are_reached_through_the_rule(m: &Cluster, master_url: &str) {
    let worker = format!("{}-worker-1", m.name);
    let worker_ip = m.private_address(&worker);
    let master_ip = m.private_address(&m.manager());
    // The stand-in agent's image is the Marathon stand-in's too.
    let image = provision::spec::MesosSettings::default().agent_image;
    let schedulers = [("through-rule", 15101, 18081), ("no-rule", 15109, 18082)];
    for (name, port, http) in schedulers {
        m.ssh(
            &worker,
            &[
                "sudo",
                "docker",
                "run",
                "-d",
                "--name",
                name,
                "--net",
                "host",
                "-e",
                &format!("MARATHON_MASTER=zk://{master_ip}:2181/mesos"),
                "-e",
                &format!("MARATHON_FRAMEWORK_NAME={name}"),
                "-e",
                &format!("MARATHON_HTTP_PORT={http}"),
                "-e",
                &format!("LIBPROCESS_IP={worker_ip}"),
                "-e",
                &format!("LIBPROCESS_PORT={port}"),
                &image,
            ],
        );
    }
    let state = |name: &str| -> Option<(String, bool)> {
        let text = get(&format!("{master_url}/master/frameworks"))?;
        let all: serde_json::Value = serde_json::from_str(&text).ok()?;
        all["frameworks"]
            .as_array()?
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| {
                (
                    f["pid"].as_str().unwrap_or("").to_string(),
                    f["active"] == true,
                )
            })
    };
    let reached = (0..40).any(|_| {
        std::thread::sleep(Duration::from_millis(500));
        state("through-rule").is_some_and(|(_, active)| active)
    });
    let (pid, _) = state("through-rule").unwrap_or_default();
    assert!(
        reached && pid.ends_with(&format!("@{worker_ip}:15101")),
        "the scheduler on {worker} at {worker_ip}:15101 is active: {pid}"
    );
    // Registered (its POST reached the master), never reached back.
    let blocked = (0..10).all(|_| {
        std::thread::sleep(Duration::from_millis(500));
        state("no-rule").is_none_or(|(_, active)| !active)
    });
    let seen = state("no-rule");
    assert!(
        blocked && seen.is_some(),
        "the scheduler at {worker_ip}:15109, a port no rule opens, stays inactive: {seen:?}"
    );
}

#[test]
fn openstack_kubernetes_and_mesos_clients_reach_their_clusters() {
    let (_turn, cloud) = openstack_cloud();
    cloud.add_image("debian-12-standins", standin_image(), "debian");
    let args = [
        "--cloud",
        "openstack",
        "--os-cloud",
        "provision-test",
        "--image",
        "debian-12-standins",
        "--flavor",
        "m1.medium",
    ];
    // Floating IPs (NAT by the test cloud's router) for SSH and clients.
    kubernetes_and_mesos_clients_get_through(
        "openstack:\n  floating_ip_pool: public\n  ssh_address: floating\n",
        &args,
        &cloud.env,
    );
}

#[test]
fn ec2_kubernetes_and_mesos_clients_reach_their_clusters() {
    let cloud = ec2_cloud();
    let ami = cloud.register_ami(
        &format!("standins-{}", std::process::id()),
        standin_image(),
        "ubuntu",
    );
    let args = [
        "--cloud",
        "ec2",
        "--profile",
        &cloud.profile,
        "--subnet",
        &cloud.subnet,
        "--image",
        &ami,
        "--flavor",
        "t3.small",
        "--ssh-from",
        TEST_HOST_RANGE,
    ];
    kubernetes_and_mesos_clients_get_through("", &args, &cloud.env);
}
