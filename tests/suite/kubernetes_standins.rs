//! `provision kubernetes` on node containers whose kubeadm, kubelet,
//! kubectl and package installs are recording stand-ins (tests/standins):
//! the order of steps across nodes, idempotence, join-token and
//! certificate-key handling, removal, and that no secret reaches a log.
//! What only a real cluster can show (real kubeadm, pods, the CNI) is not
//! claimed here.

use std::collections::BTreeMap;

use crate::common::standins::{standin_calls as calls, standin_image};
use crate::common::*;

/// What the stand-in API server on the first control-plane node was asked.
fn api_calls(c: &Cluster) -> Vec<String> {
    api_calls_on(c, &c.manager())
}

/// What the stand-in API server on `node` was asked.
fn api_calls_on(c: &Cluster, node: &str) -> Vec<String> {
    c.ssh(node, &["cat", "/var/lib/standin/apiserver/calls.log"])
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest.to_string()))
        .collect()
}

/// The secrets the stand-in API server handed out: tokens and certificate key.
fn secrets(c: &Cluster) -> Vec<String> {
    let text = c.ssh(
        &c.manager(),
        &[
            "sh",
            "-c",
            "/usr/local/lib/standin/kv list tokens/ | cut -d' ' -f2-; /usr/local/lib/standin/kv get certkey",
        ],
    );
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// More than one control-plane node needs a stable endpoint: here the first
/// one's container name, which Docker's DNS resolves on the cluster network.
fn create(c: &Cluster, managers: &str, workers: &str) -> String {
    let template = c.dir().join("k8s.yaml");
    std::fs::write(
        &template,
        format!(
            "coe: kubernetes\nkubernetes:\n  control_plane_endpoint: {}\n",
            c.manager()
        ),
    )
    .unwrap();
    let out = c
        .cmd()
        .args(["kubernetes", "--name", &c.name, "--image", standin_image()])
        .args(["--managers", managers, "--workers", workers])
        .args(["--template", template.to_str().unwrap()])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "provision kubernetes failed:\n{text}");
    text
}

/// `provision kubernetes` on the stand-ins from a template's text.
fn create_from(c: &Cluster, template: &str) {
    let path = c.dir().join("k8s-template.yaml");
    std::fs::write(&path, template).unwrap();
    c.ok(&[
        "kubernetes",
        "--name",
        &c.name,
        "--image",
        standin_image(),
        "--template",
        path.to_str().unwrap(),
    ]);
}

fn count(calls: &[(f64, String)], prefix: &str) -> usize {
    calls.iter().filter(|(_, c)| c.starts_with(prefix)).count()
}

fn first(calls: &[(f64, String)], prefix: &str) -> f64 {
    calls
        .iter()
        .find(|(_, c)| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("no call {prefix:?} in {calls:?}"))
        .0
}

#[test]
fn cluster_forms_in_order_and_a_second_run_changes_nothing() {
    let c = Cluster::new("k8s");
    let mut output = create(&c, "3", "1");
    let nodes = [
        c.manager(),
        format!("{}-manager-2", c.name),
        format!("{}-manager-3", c.name),
        format!("{}-worker-1", c.name),
    ];
    let status = c.status_nodes();
    assert_eq!(status.len(), 4, "{status:?}");
    assert!(status.iter().all(|(_, h)| h == "healthy"), "{status:?}");

    let before: BTreeMap<&String, Vec<(f64, String)>> =
        nodes.iter().map(|n| (n, calls(&c, n))).collect();
    for (node, log) in &before {
        // Kernel and packages first, pinned to the template's minor version and held.
        assert!(
            first(log, "modprobe br_netfilter") < first(log, "apt-get install"),
            "{node}"
        );
        assert!(
            first(log, "sysctl --system") < first(log, "apt-get install"),
            "{node}"
        );
        assert!(
            log.iter()
                .any(|(_, l)| l.contains("kubeadm=1.31.*") && l.starts_with("apt-get install")),
            "{node}: {log:?}"
        );
        assert!(
            first(log, "apt-get install") < first(log, "apt-mark hold kubelet kubeadm kubectl"),
            "{node}"
        );
        assert!(
            log.iter()
                .any(|(_, l)| l.contains("curl")
                    && l.contains("pkgs.k8s.io/core:/stable:/v1.31/deb/")),
            "{node}"
        );
        // Debian's containerd ships a config.toml with bin_dir /usr/lib/cni,
        // where flannel and calico install nothing; and the kubelet's cgroup
        // driver is systemd, so containerd's must be.
        // Read back by Debian's real containerd, as it will run with it.
        let config = c.ssh(node, &["containerd", "config", "dump"]);
        assert!(
            config.contains("bin_dir = \"/opt/cni/bin\""),
            "{node}: {config}"
        );
        assert!(config.contains("SystemdCgroup = true"), "{node}: {config}");
    }
    // One init, on the first control-plane node; every join after it.
    let init_at = first(&before[&nodes[0]], "kubeadm init --config");
    let inits: usize = before
        .values()
        .map(|l| count(l, "kubeadm init --config"))
        .sum();
    assert_eq!(inits, 1);
    for node in &nodes[1..] {
        assert_eq!(count(&before[node], "kubeadm join --config"), 1, "{node}");
        assert!(
            first(&before[node], "kubeadm join --config") > init_at,
            "{node} joined before init"
        );
    }
    let api = api_calls(&c);
    assert_eq!(
        api.iter().filter(|l| l.starts_with("apply ")).count(),
        1,
        "{api:?}"
    );
    // flannel's manifest, fetched and applied from standard input with
    // the pod CIDR (here the default) in its net-conf.json.
    assert!(api.contains(&"apply -".to_string()), "{api:?}");
    assert!(
        before[&nodes[0]]
            .iter()
            .any(|(_, l)| l.starts_with("curl") && l.contains("kube-flannel.yml")),
        "{:?}",
        before[&nodes[0]]
    );
    let applied = c.ssh(&nodes[0], &["cat", "/var/lib/standin/applied-stdin.yaml"]);
    assert!(
        applied.contains("\"Network\": \"10.244.0.0/16\""),
        "{applied}"
    );
    for m in &nodes[1..3] {
        assert!(api.contains(&format!("join {m} control-plane")), "{api:?}");
    }
    assert!(
        api.contains(&format!("join {} worker", nodes[3])),
        "{api:?}"
    );
    assert!(
        !api.iter().any(|l| l.starts_with("join-refused")),
        "{api:?}"
    );

    // The kubeconfig is kept locally, private, and `env` points at it.
    let kubeconfig = c.dir().join("clusters").join(&c.name).join("kubeconfig");
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(text.contains("server: https://"), "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let env = c.ok(&["env", &c.name]);
    assert!(
        env.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "{env}"
    );

    // The certificate key is kept per cluster (0600), not per control-plane
    // node: join credentials fetched through another control-plane node get
    // the same key, with no new upload that would void it for the others.
    let join_state = c.dir().join("clusters").join(&c.name).join("join-state");
    let kept = std::fs::read_to_string(&join_state).unwrap();
    assert_eq!(
        std::fs::metadata(&join_state).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let uploads = |c: &Cluster| api_calls(c).iter().filter(|l| *l == "upload-certs").count();
    let uploaded = uploads(&c);
    let script = c.ok(&[
        "templates",
        "render",
        "kubernetes/join-tokens.sh",
        "--node",
        &nodes[1],
    ]);
    let on_second = |input: &str, command: &str| {
        use std::io::Write;
        let mut child = c
            .cmd()
            .args(["ssh", &c.name, &nodes[1], "--", "bash", "-c", command])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    on_second(&script, "cat >/tmp/join-tokens.sh");
    let fetched = on_second(&kept, "bash /tmp/join-tokens.sh");
    let key = kept.split_whitespace().next().unwrap();
    assert!(
        fetched.contains(&format!("certificate_key={key}\n")),
        "another control-plane node handed out another key"
    );
    assert_eq!(
        uploads(&c),
        uploaded,
        "the certificates were uploaded again"
    );

    // A second run finds everything done: no install, init or join again.
    output.push_str(&create(&c, "3", "1"));
    for node in &nodes {
        let after = calls(&c, node);
        for step in [
            "apt-get install",
            "kubeadm init --config",
            "kubeadm join --config",
        ] {
            assert_eq!(
                count(&after, step),
                count(&before[node], step),
                "{node}: {step} ran again"
            );
        }
    }

    // No token or certificate key in provision's output, its node logs, or
    // the stand-ins' record of every command line.
    let secrets = secrets(&c);
    assert!(secrets.len() >= 2, "{secrets:?}");
    let mut logs = output;
    for entry in std::fs::read_dir(c.log_dir()).unwrap() {
        logs.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    for node in &nodes {
        logs.push_str(&c.ssh(node, &["cat", "/var/log/standin.log"]));
    }
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "a secret reached a log");
    }
    // kubeadm's own output (which prints join commands) stays root-only.
    let mode = c.ssh(
        &c.manager(),
        &["stat", "-c", "%a", "/var/log/provision/kubeadm-init.log"],
    );
    assert_eq!(mode.trim(), "600");
}

#[test]
fn expired_tokens_are_renewed_and_scale_in_cordons_drains_deletes_and_resets() {
    let c = Cluster::new("k8st");
    create(&c, "1", "1");
    let token_creates = |c: &Cluster| api_calls(c).iter().filter(|l| *l == "token-create").count();
    let made = token_creates(&c);

    // A token with time left is used again.
    c.ok(&["scale", &c.name, "--workers", "2"]);
    assert_eq!(token_creates(&c), made, "a valid token was replaced");

    // A day later: every bootstrap token the API server knows has expired.
    c.ssh(
        &c.manager(),
        &[
            "sh",
            "-c",
            "kv=/usr/local/lib/standin/kv; $kv list tokens/ | while read -r id t _; do echo \"$t 1\" | $kv put \"tokens/$id\"; done",
        ],
    );
    c.ok(&["scale", &c.name, "--workers", "3"]);
    assert_eq!(
        token_creates(&c),
        made + 1,
        "the expired token was not renewed"
    );
    let api = api_calls(&c);
    let new_worker = format!("{}-worker-3", c.name);
    assert!(
        api.contains(&format!("join {new_worker} worker")),
        "{api:?}"
    );
    assert!(
        !api.iter().any(|l| l.starts_with("join-refused")),
        "{api:?}"
    );

    // Scale in: the newest worker is cordoned, drained, deleted, reset —
    // though it runs a Pod no controller owns, which kubectl drain only
    // evicts with --force.
    add_pod(&c, &c.manager(), "bare-1", &new_worker);
    c.ok(&["scale", &c.name, "--workers", "2"]);
    let api = api_calls(&c);
    let leaving: Vec<&String> = api
        .iter()
        .filter(|l| l.ends_with(&new_worker) && !l.starts_with("join"))
        .collect();
    assert_eq!(
        leaving,
        [
            &format!("cordon {new_worker}"),
            &format!("drain {new_worker}"),
            &format!("delete {new_worker}"),
            &format!("reset {new_worker}"),
        ],
        "{api:?}"
    );
    let status = c.status_nodes();
    assert_eq!(status.len(), 3, "{status:?}");
    assert!(containers(&c.name).iter().all(|n| n != &new_worker));
}

/// Health comes from the Ready condition: a worker whose kubelet stops
/// heartbeating (SSH still fine) turns NotReady and `heal` replaces it.
/// The cluster is 1.30, whose kubeadm knows no v1beta4 configuration (the
/// stand-in refuses it as kubeadm's scheme does): init and every join write
/// v1beta3. Its pod CIDR is not flannel's default, so flannel's manifest is
/// applied with that CIDR in its net-conf.json.
#[test]
fn a_not_ready_node_is_replaced_by_heal() {
    let c = Cluster::new("k8sh");
    create_from(
        &c,
        "coe: kubernetes\nmanagers: 1\nworkers: 1\n\
         kubernetes: {version: '1.30', pod_cidr: 10.32.0.0/16}\n\
         health: {not_ready_timeout: 5s, remediation_backoff: 5s}\n",
    );
    let applied = c.ssh(
        &c.manager(),
        &["cat", "/var/lib/standin/applied-stdin.yaml"],
    );
    assert!(
        applied.contains("\"Network\": \"10.32.0.0/16\"") && !applied.contains("10.244.0.0/16"),
        "{applied}"
    );
    for node in [c.manager(), format!("{}-worker-1", c.name)] {
        let installed = c.ssh(&node, &["kubeadm", "version", "-o", "short"]);
        assert!(installed.starts_with("v1.30."), "{node}: {installed}");
    }
    let worker = format!("{}-worker-1", c.name);
    c.ssh(&worker, &["systemctl", "stop", "kubelet"]);
    wait_until(
        "the stopped kubelet's node to be replaced",
        std::time::Duration::from_secs(150),
        || {
            let _ = c.run(&["heal", &c.name]);
            let nodes = c.status_nodes();
            nodes.iter().all(|(n, _)| n != &worker)
                && nodes.iter().filter(|(_, h)| h == "healthy").count() == 2
        },
    );
    let events = c.events();
    assert!(events.contains("NotReady"), "{events}");
}

/// `kv ARGS` on `node`: the stand-in API server's etcd (tests/standins/lib/kv).
fn kv(c: &Cluster, node: &str, args: &str) -> String {
    c.ssh(
        node,
        &["sh", "-c", &format!("/usr/local/lib/standin/kv {args}")],
    )
}

/// A Pod no controller owns, recorded by the API server (so in etcd).
fn add_pod(c: &Cluster, api_node: &str, pod: &str, node: &str) {
    let api = c.private_address(api_node);
    c.ssh(
        api_node,
        &[
            "curl",
            "-fsSk",
            &format!("https://{api}:6443/cgi-bin/pod?name={pod}&node={node}"),
        ],
    );
}

/// Backup and restore of a Kubernetes cluster's state (the stand-in API
/// server keeps it in a real etcd): a backup is an `etcdctl snapshot save`
/// in the etcd pod plus the CA; with the only control-plane node deleted,
/// `provision restore` makes a new one at its address, restores the
/// snapshot under the same CA and runs `kubeadm init` over it. The workers'
/// kubelets, whose credentials are the old CA's, are trusted again without
/// rejoining; what changed after the backup is gone; the old control
/// plane's Node is removed.
#[test]
fn a_cluster_whose_control_plane_is_lost_is_restored_from_its_backup() {
    let c = Cluster::new("k8sr");
    create_from(&c, "coe: kubernetes\nmanagers: 1\nworkers: 2\n");
    let old = c.manager();
    let worker = format!("{}-worker-1", c.name);
    add_pod(&c, &old, "before", &worker);
    let dir = c.dir().join("backups");
    let dir = dir.to_str().unwrap();
    let out = c.ok(&["backup", &c.name, "--to", dir]);
    let backed_up = std::time::Instant::now();
    assert!(out.contains(&format!("taken on {old}")), "{out}");
    let listed = c.ok(&["backup", "list", &c.name, "--from", dir]);
    assert!(listed.contains("kubernetes v1."), "{listed}");
    // Taken in the etcd pod, through its own mounts and certificates.
    let snapshot = calls(&c, &old)
        .into_iter()
        .find(|(_, l)| l.contains("snapshot save"))
        .expect("an etcdctl snapshot save");
    assert!(
        snapshot.1.contains(&format!("exec etcd-{old} -- etcdctl"))
            && snapshot
                .1
                .contains("/etc/kubernetes/pki/etcd/healthcheck-client.crt"),
        "{snapshot:?}"
    );
    add_pod(&c, &old, "after", &worker);
    let address = c.private_address(&old);
    // Hours later the kept certificate key has expired, and a join uploads
    // the certificates again under a new key: the live cluster's
    // kubeadm-certs Secret is no longer the backup's.
    let join_state = c.dir().join("clusters").join(&c.name).join("join-state");
    let kept = std::fs::read_to_string(&join_state).expect("a kept certificate key");
    let key = kept.split_whitespace().next().unwrap().to_string();
    std::fs::write(&join_state, format!("{key} 1")).unwrap();
    c.ok(&["scale", &c.name, "--workers", "3"]);
    let kept = std::fs::read_to_string(&join_state).unwrap();
    assert!(
        !kept.starts_with(&key),
        "the certificates were uploaded again"
    );

    // A restore comes later than the grace a node has between heartbeats:
    // the snapshot's heartbeats are all older than that, as upstream's
    // would be, and the workers are not to be taken for lost on them.
    let grace = std::time::Duration::from_secs(21);
    std::thread::sleep(grace.saturating_sub(backed_up.elapsed()));
    docker(&["rm", "-f", &old]);
    let t0 = std::time::Instant::now();
    c.ok(&["restore", &c.name, "--from", dir]);
    let took = t0.elapsed();
    let new = format!("{}-manager-2", c.name);
    assert_eq!(c.private_address(&new), address, "not at the old address");
    // The state is the snapshot's: the Pod recorded before the backup, not
    // the one after.
    assert_eq!(kv(&c, &new, &format!("get pods/{worker}")).trim(), "before");
    let nodes = c.ok(&["status", &c.name]);
    let status = c.status_nodes();
    assert_eq!(status.len(), 4, "{nodes}");
    assert!(status.iter().all(|(_, h)| h == "healthy"), "{nodes}");
    let registry: Vec<String> = kv(&c, &new, "list nodes/")
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert!(!registry.contains(&old), "{registry:?}");
    assert!(
        registry.contains(&new) && registry.contains(&worker),
        "{registry:?}"
    );
    // The workers were trusted again as they were: one join each, no reset.
    for w in [&worker, &format!("{}-worker-2", c.name)] {
        let seen = calls(&c, w);
        assert_eq!(count(&seen, "kubeadm join"), 1, "{w}: {seen:?}");
        assert_eq!(count(&seen, "kubeadm reset"), 0, "{w}: {seen:?}");
    }
    let api = api_calls_on(&c, &new);
    assert!(
        !api.iter().any(|l| l.starts_with("heartbeat-refused")),
        "{api:?}"
    );
    let events = c.recorded_events();
    for part in [
        "restored the cluster on this new manager",
        "restore finished",
    ] {
        assert!(events.contains(part), "{part}: {events}");
    }
    eprintln!(
        "measured: provision restore of a 1+2 Kubernetes (stand-ins) with its control plane deleted {:.1}s",
        took.as_secs_f64()
    );
    // The kubeconfig provision keeps points at the restored control plane.
    let kubeconfig =
        std::fs::read_to_string(c.dir().join("clusters").join(&c.name).join("kubeconfig")).unwrap();
    assert!(
        kubeconfig.contains(&format!("https://{address}:6443")),
        "{kubeconfig}"
    );
    // The next join fetches credentials from the restored control plane:
    // the certificate key provision then keeps, and would hand a
    // control-plane join, is the one the restored kubeadm-certs Secret
    // holds (the stand-in's join refuses any other), not the one kept
    // since the backup.
    c.ok(&["scale", &c.name, "--workers", "4"]);
    let kept = std::fs::read_to_string(&join_state).unwrap();
    let secret = kv(&c, &new, "get certkey");
    // (Compared, never printed: it is a secret of the cluster.)
    assert!(
        kept.split_whitespace().next() == secret.split_whitespace().next(),
        "the key kept after the restore is not the restored cluster's"
    );
}

/// A control-plane join that stopped in kubeadm's control-plane-join/etcd
/// phase left kubelet.conf on a node without its etcd member: the node is
/// not taken as a member for it (probe and join.sh), and the next pass
/// resets it and joins it again, so every control-plane node ends up an
/// etcd member.
#[test]
fn a_control_plane_join_that_stopped_at_etcd_is_done_again() {
    let c = Cluster::new("k8sj");
    create(&c, "1", "0");
    c.ssh(
        &c.manager(),
        &[
            "sh",
            "-c",
            "echo 1 | /usr/local/lib/standin/kv put faults/etcd-join",
        ],
    );
    let first = c.run(&["scale", &c.name, "--managers", "3"]);
    if !first.status.success() {
        // The join failed in that run: the next one finishes it.
        c.ok(&["heal", &c.name]);
    }
    let calls = api_calls(&c);
    let stopped = calls
        .iter()
        .find_map(|l| l.strip_prefix("join-stopped-at-etcd "))
        .unwrap_or_else(|| panic!("the fault fired: {calls:?}"))
        .to_string();
    assert!(
        calls.contains(&format!("join {stopped} control-plane")),
        "{stopped} joined again: {calls:?}"
    );
    let nodes = kv(&c, &c.manager(), "list nodes/");
    for m in [
        c.manager(),
        format!("{}-manager-2", c.name),
        format!("{}-manager-3", c.name),
    ] {
        assert!(
            nodes
                .lines()
                .any(|l| l.starts_with(&format!("{m} control-plane "))),
            "{m} is a control-plane node with its etcd member: {nodes}"
        );
    }
    let log = c.ssh(&stopped, &["cat", "/var/log/provision/kubeadm-join.log"]);
    assert!(
        log.contains("control-plane-join/etcd") && log.contains("[reset]"),
        "{log}"
    );
    let status = c.status_nodes();
    assert!(status.iter().all(|(_, h)| h == "healthy"), "{status:?}");
}

/// A template of `version` with a stable endpoint (the first manager).
fn versioned(c: &Cluster, version: &str) -> String {
    format!(
        "coe: kubernetes\nkubernetes:\n  version: '{version}'\n  control_plane_endpoint: {}\n",
        c.manager()
    )
}

/// `provision kubernetes` on the existing cluster with `--kubernetes-version`.
fn to_version(c: &Cluster, version: &str, extra: &[&str]) -> std::process::Output {
    c.cmd()
        .args(["kubernetes", "--name", &c.name, "--image", standin_image()])
        .args(["--kubernetes-version", version])
        .args(extra)
        .output()
        .unwrap()
}

/// kubeadm's upgrade rules: one minor at a time. A skip is refused by
/// provision before anything changes; the stand-in kubeadm refuses it
/// too (its join of a kubeadm two minors newer, its `upgrade apply`).
#[test]
fn a_kubernetes_upgrade_that_skips_a_minor_is_refused_before_any_change() {
    let c = Cluster::new("k8sk");
    create_from(&c, &versioned(&c, "1.29"));
    let node = c.manager();
    let before = calls(&c, &node);
    let out = to_version(&c, "1.31", &[]);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("kubernetes.version of cluster k8sk")
            && text.contains("1.29 to 1.31 skips 1.30")
            && text.contains("move to 1.30 first"),
        "{text}"
    );
    // Nothing moved: no call on the node, no change under way, the same
    // version in the records.
    assert_eq!(
        calls(&c, &node).len(),
        before.len(),
        "{:?}",
        calls(&c, &node)
    );
    let rollout = c.ok(&["rollout", &c.name, "status"]);
    assert!(rollout.contains("no rollout"), "{rollout}");
    // And kubeadm itself refuses it: a 1.31 upgrade of this 1.29 cluster.
    c.ssh(
        &node,
        &[
            "sh",
            "-c",
            "echo 1.31.4 >/var/lib/standin/installed/kubeadm",
        ],
    );
    let out = c.run(&[
        "ssh", &c.name, &node, "--", "kubeadm", "upgrade", "apply", "-y", "v1.31.4",
    ]);
    let refused = output_text(&out);
    assert!(
        !out.status.success()
            && refused.contains("kubeadm can upgrade only 1 minor version at a time"),
        "{refused}"
    );
}

/// 1.30 to 1.31: the control plane in place, one node at a time (`kubeadm
/// upgrade apply` on the first, `upgrade node` on the others, kubelet
/// after a drain), then the workers replaced by nodes of 1.31, whose join
/// the stand-in would refuse before the control plane is at 1.31.
#[test]
fn a_kubernetes_version_is_rolled_out_control_plane_first_then_workers() {
    let c = Cluster::new("k8su");
    create_from(&c, &versioned(&c, "1.30"));
    c.ok(&["scale", &c.name, "--managers", "3", "--workers", "1"]);
    let managers: Vec<String> = (1..=3).map(|i| format!("{}-manager-{i}", c.name)).collect();
    let old_worker = format!("{}-worker-1", c.name);

    let dry = to_version(&c, "1.31", &["--dry-run"]);
    assert!(dry.status.success(), "{}", output_text(&dry));
    let dry = output_text(&dry);
    assert!(dry.contains("kubernetes=1.31"), "{dry}");
    let started = std::time::Instant::now();
    let out = to_version(&c, "1.31", &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    eprintln!("rollout of 3+1 from 1.30 to 1.31: {:?}", started.elapsed());

    let logs: Vec<Vec<(f64, String)>> = managers.iter().map(|m| calls(&c, m)).collect();
    let applies: Vec<usize> = (0..3)
        .filter(|&i| count(&logs[i], "kubeadm upgrade apply") > 0)
        .collect();
    assert_eq!(applies, [0], "apply on the first control-plane node only");
    for (i, log) in logs.iter().enumerate().skip(1) {
        assert_eq!(
            count(log, "kubeadm upgrade node"),
            1,
            "{}: {log:?}",
            managers[i]
        );
        // One at a time: each starts after the one before is uncordoned.
        assert!(
            first(log, "kubeadm upgrade") > first(&logs[i - 1], "kubectl uncordon"),
            "{} began before {} was done",
            managers[i],
            managers[i - 1]
        );
    }
    for (i, log) in logs.iter().enumerate() {
        // kubeadm first, then the node drained before its kubelet changes.
        assert!(
            first(
                log,
                "apt-get install -y -q --allow-downgrades kubeadm=1.31.*"
            ) < first(log, "kubeadm upgrade"),
            "{}: {log:?}",
            managers[i]
        );
        assert!(
            first(log, "kubectl drain")
                < first(
                    log,
                    "apt-get install -y -q --allow-downgrades kubelet=1.31.*"
                ),
            "{}",
            managers[i]
        );
    }
    // The workers after the whole control plane: a new node of 1.31 joined
    // and the old one is gone.
    let nodes = c.status_nodes();
    assert!(nodes.iter().all(|(n, _)| n != &old_worker), "{nodes:?}");
    let new_worker = format!("{}-worker-2", c.name);
    assert!(
        nodes.contains(&(new_worker.clone(), "healthy".into())),
        "{nodes:?}"
    );
    let joined_at = first(&calls(&c, &new_worker), "kubeadm join --config");
    let last_cp = first(&logs[2], "kubectl uncordon");
    assert!(
        joined_at > last_cp,
        "the worker joined before the control plane was done"
    );
    assert_eq!(
        c.ssh(&new_worker, &["kubeadm", "version", "-o", "short"])
            .trim(),
        "v1.31.4"
    );
    // The cluster's version and every node's kubelet.
    let config = c.ssh(
        &c.manager(),
        &[
            "kubectl",
            "--kubeconfig",
            "/etc/kubernetes/admin.conf",
            "get",
            "configmap",
            "kubeadm-config",
        ],
    );
    assert!(config.contains("kubernetesVersion: v1.31.4"), "{config}");
    wait_until(
        "every kubelet to report 1.31",
        std::time::Duration::from_secs(30),
        || {
            let list = c.ssh(
                &c.manager(),
                &[
                    "kubectl",
                    "--kubeconfig",
                    "/etc/kubernetes/admin.conf",
                    "get",
                    "nodes",
                ],
            );
            list.matches("\"kubeletVersion\":\"v1.31.4\"").count() == 4
        },
    );
    let api = api_calls(&c);
    assert!(
        !api.iter().any(|l| l.starts_with("join-refused")),
        "{api:?}"
    );
    let status = c.ok(&["rollout", &c.name, "status"]);
    assert!(status.contains("no rollout"), "{status}");
    assert!(nodes.iter().all(|(_, h)| h == "healthy"), "{nodes:?}");
}
