//! Certificate lifetimes, renewed by the daemon before
//! `health.renew_certificates_before`: a real Swarm's root CA (rotated
//! through a manager, every node's certificate reissued under the new one)
//! and kubeadm's control-plane certificates on the stand-ins (renewed, the
//! static pods restarted). `status` and the daemon's metrics show the new
//! expiry.

use std::time::Duration;

use crate::common::standins::standin_image;
use crate::common::*;

const DAY: i64 = 86_400;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The value of the certificate-expiry gauge of `kind` for `cluster`.
fn expiry_gauge(metrics: &str, cluster: &str, kind: &str) -> Option<i64> {
    let prefix = format!(
        "provision_certificate_expiry_timestamp_seconds{{cluster=\"{cluster}\",kind=\"{kind}\"}} "
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

fn create(c: &Cluster, coe: &str, template: &str, image: Option<&str>) {
    let path = c.dir().join("template.yaml");
    std::fs::write(&path, template).unwrap();
    let mut args = vec![coe, "--name", &c.name, "--template", path.to_str().unwrap()];
    if let Some(image) = image {
        args.extend(["--image", image]);
    }
    c.ok(&args);
}

#[test]
fn a_swarm_root_ca_near_expiry_is_rotated_by_the_daemon() {
    require_docker();
    let c = Cluster::new("certs");
    create(
        &c,
        "swarm",
        "coe: swarm\nmanagers: 1\nworkers: 1\nhealth:\n  renew_certificates_before: 500d\n",
        None,
    );
    let manager = c.manager();
    let worker = format!("{}-worker-1", c.name);
    // A root CA of 400 days, as a cluster's gets near its end (swarmkit
    // takes none that lasts less than a year).
    c.ssh(
        &manager,
        &[
            "sh",
            "-c",
            "cd /tmp && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
             -nodes -days 400 -subj /CN=old-ca -keyout ca.key -out ca.crt 2>/dev/null \
             && docker swarm ca --rotate --ca-cert ca.crt --ca-key ca.key --quiet >/dev/null",
        ],
    );
    // `status` asks every node: the CA now expires within the 500 days.
    let status = c.status_json();
    let ca = status["certificates"]["ca_expiry"].as_i64().unwrap();
    assert!(ca < now() + 401 * DAY, "{status}");

    let mut daemon = Daemon::start(&c, "2s");
    wait_until(
        "the daemon to rotate the CA",
        Duration::from_secs(120),
        || {
            daemon
                .try_metrics()
                .and_then(|m| expiry_gauge(&m, &c.name, "ca"))
                .is_some_and(|t| t > now() + 500 * DAY)
        },
    );
    let metrics = daemon.metrics();
    assert!(
        daemon.stop(Duration::from_secs(15)),
        "{}",
        daemon.log_text()
    );

    // swarmkit's own CA: 20 years. Both nodes hold certificates it signed.
    let status = c.status_json();
    let ca = status["certificates"]["ca_expiry"].as_i64().unwrap();
    assert!(ca > now() + 19 * 365 * DAY, "{status}");
    assert_eq!(
        expiry_gauge(&metrics, &c.name, "ca"),
        Some(ca),
        "status and metrics agree"
    );
    for node in [&manager, &worker] {
        let verified = c.ssh(
            node,
            &[
                "openssl",
                "verify",
                "-CAfile",
                "/var/lib/docker/swarm/certificates/swarm-root-ca.crt",
                "/var/lib/docker/swarm/certificates/swarm-node.crt",
            ],
        );
        assert!(verified.contains(": OK"), "{node}: {verified}");
    }
    let events = c.events();
    assert_eq!(
        events.matches("the cluster's root CA was rotated").count(),
        1,
        "{events}"
    );
    let nodes = c.status_nodes();
    assert!(nodes.iter().all(|(_, h)| h == "healthy"), "{nodes:?}");
    let listed = c.ssh(
        &manager,
        &["docker", "node", "ls", "--format", "{{.Status}}"],
    );
    assert_eq!(listed.matches("Ready").count(), 2, "{listed}");
    assert_eq!(remediations_in(&events), 0, "{events}");
    record_fault_row(FaultRow {
        id: "36",
        fault: "a Swarm root CA 400 days from expiry, health.renew_certificates_before 500d, daemon at 2 s",
        happened: format!(
            "rotated once through the manager (event); the new CA lasts {} days, both nodes' certificates verify under it; status and the metric show its expiry",
            (ca - now()) / DAY
        ),
        remediations: "0".into(),
        left_over: "none (same 2 machines)".into(),
    });
}

#[test]
fn kubeadm_certificates_near_expiry_are_renewed_by_the_daemon() {
    let c = Cluster::new("k8scert");
    create(
        &c,
        "kubernetes",
        "coe: kubernetes\nmanagers: 1\nworkers: 1\n",
        Some(standin_image()),
    );
    let manager = c.manager();
    // A cluster made long ago: its certificates (not its CAs) expire in 20
    // days, within the default 30.
    c.ssh(
        &manager,
        &[
            "sh",
            "-c",
            "echo 20 >/var/lib/standin/cert-days && kubeadm certs renew all >/dev/null \
             && rm /var/lib/standin/cert-days",
        ],
    );
    let status = c.status_json();
    let nearest = status["certificates"]["nearest_expiry"].as_i64().unwrap();
    assert!(nearest < now() + 21 * DAY, "{status}");
    assert_eq!(status["certificates"]["renew_before"], "30d", "{status}");

    let mut daemon = Daemon::start(&c, "2s");
    wait_until(
        "the daemon to renew the certificates",
        Duration::from_secs(180),
        || {
            daemon
                .try_metrics()
                .and_then(|m| expiry_gauge(&m, &c.name, "certificate"))
                .is_some_and(|t| t > now() + 300 * DAY)
        },
    );
    assert!(
        daemon.stop(Duration::from_secs(15)),
        "{}",
        daemon.log_text()
    );

    let status = c.status_json();
    let nearest = status["certificates"]["nearest_expiry"].as_i64().unwrap();
    assert!(nearest > now() + 300 * DAY, "{status}");
    let events = c.events();
    assert!(events.contains("certificates renewed"), "{events}");
    // The API server serves the renewed certificate: its static pod was
    // restarted (its manifest taken out, then back).
    let served = c.ssh(
        &manager,
        &[
            "sh",
            "-c",
            "openssl s_client -connect 127.0.0.1:6443 </dev/null 2>/dev/null \
             | openssl x509 -noout -enddate",
        ],
    );
    let end = served.trim().trim_start_matches("notAfter=");
    let end = c.ssh(&manager, &["date", "-d", end, "+%s"]);
    assert!(
        end.trim().parse::<i64>().unwrap() > now() + 300 * DAY,
        "{served}"
    );
    let log = crate::common::standins::standin_calls(&c, &manager);
    let stopped = log
        .iter()
        .position(|(_, l)| l == "kubelet stopped-static-pod kube-apiserver")
        .expect("the kubelet stopped the API server's pod");
    assert!(
        log[stopped..]
            .iter()
            .any(|(_, l)| l == "kubelet started-static-pod kube-apiserver"),
        "{log:?}"
    );
    wait_until(
        "every node to be healthy again",
        Duration::from_secs(60),
        || c.status_nodes().iter().all(|(_, h)| h == "healthy"),
    );
    let events = c.events();
    assert_eq!(
        events.matches("certificates renewed").count(),
        1,
        "{events}"
    );
    assert_eq!(remediations_in(&events), 0, "{events}");
    record_fault_row(FaultRow {
        id: "37",
        fault: "kubeadm's certificates 20 days from expiry (stand-ins, default threshold 30d), daemon at 2 s",
        happened: format!(
            "renewed once on the control-plane node (event), its API server restarted and serving the renewed certificate; the nearest now {} days away in status and the metric",
            (nearest - now()) / DAY
        ),
        remediations: "0".into(),
        left_over: "none (same 2 machines)".into(),
    });
}
