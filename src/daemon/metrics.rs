//! Prometheus metrics of the daemon, served as text on `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{debug, info};

/// Counters and gauges the daemon updates after every pass.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    clusters: u64,
    /// (cluster, phase) → count
    nodes_by_phase: BTreeMap<(String, String), u64>,
    /// (cluster, health) → count
    nodes_by_health: BTreeMap<(String, String), u64>,
    /// cluster → remediations started
    remediations: BTreeMap<String, u64>,
    /// cluster → nodes that never joined and are no longer replaced
    stalled: BTreeMap<String, u64>,
    /// cluster → cloud API errors
    cloud_errors: BTreeMap<String, u64>,
    /// cluster → (passes, sum of their seconds)
    passes: BTreeMap<String, (u64, f64)>,
    /// cluster → passes that ended in an error
    failed_passes: BTreeMap<String, u64>,
    /// cluster → passes skipped because another command held the lock
    skipped_busy: BTreeMap<String, u64>,
    /// cluster → unix time of its newest backup
    backup_last_success: BTreeMap<String, i64>,
    /// cluster → (seconds, bytes) of the last backup this daemon took
    backup_last: BTreeMap<String, (f64, u64)>,
    /// cluster → scheduled backups that failed
    backup_failures: BTreeMap<String, u64>,
    /// (cluster, `certificate` or `ca`) → unix time the nearest expires
    certificate_expiry: BTreeMap<(String, &'static str), i64>,
}

impl Metrics {
    pub fn set_clusters(&self, n: u64) {
        self.lock().clusters = n;
    }

    /// Replaces the node gauges of one cluster.
    pub fn set_nodes(&self, cluster: &str, phases: &[(String, String)]) {
        let mut inner = self.lock();
        inner.nodes_by_phase.retain(|(c, _), _| c != cluster);
        inner.nodes_by_health.retain(|(c, _), _| c != cluster);
        for (phase, health) in phases {
            *inner
                .nodes_by_phase
                .entry((cluster.to_string(), phase.clone()))
                .or_default() += 1;
            *inner
                .nodes_by_health
                .entry((cluster.to_string(), health.clone()))
                .or_default() += 1;
        }
    }

    /// When the cluster's nearest node certificate and CA expire, as its
    /// nodes last reported (none known: no gauge).
    pub fn set_certificate_expiry(&self, cluster: &str, leaf: Option<i64>, ca: Option<i64>) {
        let mut inner = self.lock();
        for (kind, at) in [("certificate", leaf), ("ca", ca)] {
            let key = (cluster.to_string(), kind);
            match at {
                Some(at) => inner.certificate_expiry.insert(key, at),
                None => inner.certificate_expiry.remove(&key),
            };
        }
    }

    /// Drops the gauges of every cluster not in `clusters` (destroyed since
    /// the last pass), so a dashboard stops showing nodes that are gone.
    pub fn keep_clusters(&self, clusters: &[&str]) {
        let mut inner = self.lock();
        inner
            .nodes_by_phase
            .retain(|(c, _), _| clusters.contains(&c.as_str()));
        inner
            .nodes_by_health
            .retain(|(c, _), _| clusters.contains(&c.as_str()));
        inner.stalled.retain(|c, _| clusters.contains(&c.as_str()));
        inner
            .certificate_expiry
            .retain(|(c, _), _| clusters.contains(&c.as_str()));
    }

    pub fn forget_cluster(&self, cluster: &str) {
        let mut inner = self.lock();
        inner.nodes_by_phase.retain(|(c, _), _| c != cluster);
        inner.nodes_by_health.retain(|(c, _), _| c != cluster);
        inner.stalled.remove(cluster);
        inner.certificate_expiry.retain(|(c, _), _| c != cluster);
    }

    pub fn add_remediations(&self, cluster: &str, n: u64) {
        *self
            .lock()
            .remediations
            .entry(cluster.to_string())
            .or_default() += n;
    }

    /// Nodes whose replacements are stopped (budget of attempts spent).
    pub fn set_stalled(&self, cluster: &str, n: u64) {
        self.lock().stalled.insert(cluster.to_string(), n);
    }

    pub fn add_cloud_error(&self, cluster: &str) {
        *self
            .lock()
            .cloud_errors
            .entry(cluster.to_string())
            .or_default() += 1;
    }

    pub fn add_skipped_busy(&self, cluster: &str) {
        *self
            .lock()
            .skipped_busy
            .entry(cluster.to_string())
            .or_default() += 1;
    }

    pub fn observe_pass(&self, cluster: &str, seconds: f64, failed: bool) {
        let mut inner = self.lock();
        let entry = inner.passes.entry(cluster.to_string()).or_default();
        entry.0 += 1;
        entry.1 += seconds;
        if failed {
            *inner.failed_passes.entry(cluster.to_string()).or_default() += 1;
        }
    }

    /// The newest backup of `cluster` was taken at `at` (unix seconds).
    pub fn set_backup_last_success(&self, cluster: &str, at: i64) {
        self.lock()
            .backup_last_success
            .insert(cluster.to_string(), at);
    }

    /// A backup this daemon took.
    pub fn observe_backup(&self, cluster: &str, at: i64, seconds: f64, bytes: u64) {
        let mut inner = self.lock();
        inner.backup_last_success.insert(cluster.to_string(), at);
        inner
            .backup_last
            .insert(cluster.to_string(), (seconds, bytes));
    }

    pub fn add_backup_failure(&self, cluster: &str) {
        *self
            .lock()
            .backup_failures
            .entry(cluster.to_string())
            .or_default() += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP provision_clusters Clusters in the state store."
        );
        let _ = writeln!(out, "# TYPE provision_clusters gauge");
        let _ = writeln!(out, "provision_clusters {}", inner.clusters);
        let _ = writeln!(out, "# HELP provision_nodes Nodes by phase.");
        let _ = writeln!(out, "# TYPE provision_nodes gauge");
        for ((c, p), n) in &inner.nodes_by_phase {
            let _ = writeln!(out, "provision_nodes{{cluster=\"{c}\",phase=\"{p}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP provision_nodes_health Nodes by health.");
        let _ = writeln!(out, "# TYPE provision_nodes_health gauge");
        for ((c, h), n) in &inner.nodes_by_health {
            let _ = writeln!(
                out,
                "provision_nodes_health{{cluster=\"{c}\",health=\"{h}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP provision_remediation_stalled_nodes Nodes that never joined and are no longer replaced (max_start_attempts spent)."
        );
        let _ = writeln!(out, "# TYPE provision_remediation_stalled_nodes gauge");
        for (c, n) in &inner.stalled {
            let _ = writeln!(
                out,
                "provision_remediation_stalled_nodes{{cluster=\"{c}\"}} {n}"
            );
        }
        let counter = |out: &mut String, name: &str, help: &str, map: &BTreeMap<String, u64>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (c, n) in map {
                let _ = writeln!(out, "{name}{{cluster=\"{c}\"}} {n}");
            }
        };
        counter(
            &mut out,
            "provision_remediations_total",
            "Node remediations started.",
            &inner.remediations,
        );
        counter(
            &mut out,
            "provision_cloud_api_errors_total",
            "Failed cloud API calls.",
            &inner.cloud_errors,
        );
        counter(
            &mut out,
            "provision_passes_skipped_busy_total",
            "Passes skipped because another command held the cluster lock.",
            &inner.skipped_busy,
        );
        let _ = writeln!(
            out,
            "# HELP provision_reconcile_duration_seconds Reconcile pass duration."
        );
        let _ = writeln!(out, "# TYPE provision_reconcile_duration_seconds summary");
        for (c, (count, sum)) in &inner.passes {
            let _ = writeln!(
                out,
                "provision_reconcile_duration_seconds_sum{{cluster=\"{c}\"}} {sum:.3}"
            );
            let _ = writeln!(
                out,
                "provision_reconcile_duration_seconds_count{{cluster=\"{c}\"}} {count}"
            );
        }
        counter(
            &mut out,
            "provision_reconcile_failures_total",
            "Reconcile passes that ended in an error.",
            &inner.failed_passes,
        );
        counter(
            &mut out,
            "provision_backup_failures_total",
            "Scheduled backups that failed.",
            &inner.backup_failures,
        );
        let gauge = |out: &mut String, name: &str, help: &str, values: Vec<(&String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (c, v) in values {
                let _ = writeln!(out, "{name}{{cluster=\"{c}\"}} {v}");
            }
        };
        gauge(
            &mut out,
            "provision_backup_last_success_timestamp_seconds",
            "Unix time of the cluster's newest backup.",
            inner
                .backup_last_success
                .iter()
                .map(|(c, t)| (c, t.to_string()))
                .collect(),
        );
        let name = "provision_certificate_expiry_timestamp_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Unix time the cluster's nearest node certificate (kind=\"certificate\") and CA (kind=\"ca\") expire, as its nodes last reported."
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        for ((c, kind), t) in &inner.certificate_expiry {
            let _ = writeln!(out, "{name}{{cluster=\"{c}\",kind=\"{kind}\"}} {t}");
        }
        gauge(
            &mut out,
            "provision_backup_duration_seconds",
            "How long the last backup this daemon took lasted.",
            inner
                .backup_last
                .iter()
                .map(|(c, (s, _))| (c, format!("{s:.3}")))
                .collect(),
        );
        gauge(
            &mut out,
            "provision_backup_size_bytes",
            "Size of the last backup this daemon took.",
            inner
                .backup_last
                .iter()
                .map(|(c, (_, b))| (c, b.to_string()))
                .collect(),
        );
        out
    }
}

/// Serves `GET /metrics` on `addr` until the task is dropped.
/// Scrapes answered at once; beyond, a connection waits for a turn (a
/// flood of clients costs a bounded number of tasks and buffers).
const METRICS_CONNECTIONS: usize = 16;
/// How long a client may take to read its answer.
const METRICS_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let turns = Arc::new(tokio::sync::Semaphore::new(METRICS_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let turn = turns.clone().acquire_owned().await.expect("never closed");
            let (mut socket, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors (EMFILE) and the like: retrying at
                    // once would spin a core; the passes need it more.
                    debug!(error = %e, "metrics: accept failed; pausing");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    continue;
                }
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let _turn = turn;
                let mut buf = [0u8; 1024];
                let n = match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    socket.read(&mut buf),
                )
                .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("");
                let (status, body) =
                    if request.starts_with("GET ") && (path == "/metrics" || path == "/") {
                        ("200 OK", metrics.render())
                    } else {
                        ("404 Not Found", "not found: try /metrics\n".to_string())
                    };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                match tokio::time::timeout(
                    METRICS_WRITE_TIMEOUT,
                    socket.write_all(response.as_bytes()),
                )
                .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => debug!(%peer, error = %e, "metrics client went away"),
                    Err(_) => debug!(%peer, "metrics client did not read its answer in time"),
                }
            });
        }
    });
    info!(%addr, "serving Prometheus metrics on /metrics");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.set_clusters(2);
        m.set_nodes(
            "web",
            &[
                ("ready".into(), "healthy".into()),
                ("ready".into(), "unhealthy".into()),
            ],
        );
        m.add_remediations("web", 1);
        m.set_stalled("web", 1);
        m.observe_pass("web", 1.5, false);
        m.observe_pass("web", 0.5, true);
        m.set_certificate_expiry("web", Some(1_900_000_000), Some(2_500_000_000));
        let text = m.render();
        assert!(text.contains(
            "provision_certificate_expiry_timestamp_seconds{cluster=\"web\",kind=\"certificate\"} 1900000000\n"
        ));
        assert!(text.contains(
            "provision_certificate_expiry_timestamp_seconds{cluster=\"web\",kind=\"ca\"} 2500000000\n"
        ));
        assert!(text.contains("provision_clusters 2\n"));
        assert!(text.contains("provision_nodes{cluster=\"web\",phase=\"ready\"} 2\n"));
        assert!(text.contains("provision_nodes_health{cluster=\"web\",health=\"unhealthy\"} 1\n"));
        assert!(text.contains("provision_remediations_total{cluster=\"web\"} 1\n"));
        assert!(text.contains("provision_remediation_stalled_nodes{cluster=\"web\"} 1\n"));
        assert!(text.contains("provision_reconcile_duration_seconds_count{cluster=\"web\"} 2\n"));
        assert!(text.contains("provision_reconcile_duration_seconds_sum{cluster=\"web\"} 2.000\n"));
        assert!(text.contains("provision_reconcile_failures_total{cluster=\"web\"} 1\n"));
        assert!(!text.contains("provision_backup_size_bytes{"));
        m.set_backup_last_success("db", 1_700_000_000);
        m.observe_backup("web", 1_800_000_000, 12.5, 94_870);
        m.add_backup_failure("web");
        let text = m.render();
        assert!(text.contains(
            "provision_backup_last_success_timestamp_seconds{cluster=\"db\"} 1700000000\n"
        ));
        assert!(text.contains(
            "provision_backup_last_success_timestamp_seconds{cluster=\"web\"} 1800000000\n"
        ));
        assert!(text.contains("provision_backup_duration_seconds{cluster=\"web\"} 12.500\n"));
        assert!(text.contains("provision_backup_size_bytes{cluster=\"web\"} 94870\n"));
        assert!(text.contains("provision_backup_failures_total{cluster=\"web\"} 1\n"));
    }

    #[test]
    fn gauges_of_a_destroyed_cluster_disappear() {
        let m = Metrics::default();
        for cluster in ["web", "db"] {
            m.set_nodes(cluster, &[("ready".into(), "healthy".into())]);
            m.set_stalled(cluster, 1);
        }
        m.keep_clusters(&["db"]);
        let text = m.render();
        assert!(!text.contains("cluster=\"web\""), "{text}");
        assert!(text.contains("provision_nodes{cluster=\"db\",phase=\"ready\"} 1\n"));
        assert!(text.contains("provision_remediation_stalled_nodes{cluster=\"db\"} 1\n"));
    }
}
