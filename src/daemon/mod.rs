//! The healing daemon: reconciles every cluster on an interval.
//!
//! Each pass re-reads the store, so scale requests made by CLI commands are
//! seen without a restart. A cluster whose lock another command holds is
//! skipped for that pass. Clusters are reconciled concurrently and every
//! probe has a deadline, so one frozen node never stalls the others. On
//! SIGTERM or SIGINT the pass in flight is dropped (locks go with it) and
//! the daemon exits; whatever was half done is found and finished by the
//! next run, as after any crash.

mod metrics;
mod providers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::future::join_all;
use rand::Rng;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{debug, error, info, warn};

pub use metrics::Metrics;

use crate::cli::Global;
use crate::controller::{ClusterContext, ControllerError, ConvergeReport};
use crate::progress::LogReporter;
use crate::state::{ClusterLock, LockError};

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub interval: Duration,
    /// One pass, then exit.
    pub once: bool,
    /// Where to serve Prometheus metrics; `None` serves none.
    pub metrics_addr: Option<SocketAddr>,
}

/// How one cluster's pass ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Converged,
    Degraded,
    Busy,
    /// A destroy did not finish; only `destroy` touches it.
    Destroying,
    Failed,
}

pub async fn run(global: &Global, options: DaemonOptions) -> Result<()> {
    let session = crate::cli::session::Session::open(global)?;
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = options.metrics_addr {
        metrics::serve(addr, metrics.clone())
            .await
            .with_context(|| format!("serving metrics on {addr}"))?;
    }
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    info!(interval = ?options.interval, state = %session.paths.db().display(), "daemon started");
    let providers = providers::Providers::default();
    let mut pass_no: u64 = 0;
    loop {
        pass_no += 1;
        let pass = run_pass(global, &session, &metrics, &providers, pass_no);
        let failed = tokio::select! {
            failed = pass => failed,
            _ = term.recv() => { info!("SIGTERM: stopping; a half-done step is finished by the next run"); return Ok(()) }
            _ = int.recv() => { info!("SIGINT: stopping"); return Ok(()) }
        };
        if options.once {
            if failed > 0 {
                anyhow::bail!("{failed} cluster(s) did not converge in this pass (see the log and `provision status NAME --events`)");
            }
            return Ok(());
        }
        // ±10 % jitter so many daemons (or clusters) do not move in lockstep.
        let jitter = rand::thread_rng().gen_range(0.9..1.1);
        let wait = options.interval.mul_f64(jitter);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = term.recv() => { info!("SIGTERM: stopping"); return Ok(()) }
            _ = int.recv() => { info!("SIGINT: stopping"); return Ok(()) }
        }
    }
}

/// Reconciles every cluster once, concurrently; returns how many failed.
async fn run_pass(
    global: &Global,
    session: &crate::cli::session::Session,
    metrics: &Metrics,
    providers: &providers::Providers,
    pass_no: u64,
) -> usize {
    let started = Instant::now();
    let cpu_before = cpu_time();
    let clusters = match session.store.clusters() {
        Ok(c) => c,
        Err(e) => {
            error!(error = %e, "cannot read the state store");
            return 1;
        }
    };
    metrics.set_clusters(clusters.len() as u64);
    let names: Vec<&str> = clusters.iter().map(|c| c.spec.name.as_str()).collect();
    metrics.keep_clusters(&names);
    let outcomes = join_all(
        clusters
            .iter()
            .map(|c| reconcile_cluster(global, session, metrics, providers, &c.spec.name)),
    )
    .await;
    let failed = outcomes.iter().filter(|o| **o == Outcome::Failed).count();
    info!(
        pass = pass_no,
        clusters = clusters.len(),
        failed,
        busy = outcomes.iter().filter(|o| **o == Outcome::Busy).count(),
        destroying = outcomes
            .iter()
            .filter(|o| **o == Outcome::Destroying)
            .count(),
        degraded = outcomes.iter().filter(|o| **o == Outcome::Degraded).count(),
        seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
        cpu_ms = cpu_time().saturating_sub(cpu_before).as_millis() as u64,
        rss_kib = rss_kib(),
        "pass done"
    );
    failed
}

async fn reconcile_cluster(
    global: &Global,
    session: &crate::cli::session::Session,
    metrics: &Metrics,
    providers: &providers::Providers,
    name: &str,
) -> Outcome {
    let _lock = match ClusterLock::acquire(name, &session.paths.lock(name)) {
        Ok(lock) => lock,
        Err(LockError::Busy { pid, .. }) => {
            debug!(
                cluster = name,
                pid, "another command holds the cluster: skipped this pass"
            );
            metrics.add_skipped_busy(name);
            return Outcome::Busy;
        }
        Err(e) => {
            error!(cluster = name, error = %e, "cannot lock");
            return Outcome::Failed;
        }
    };
    // Re-read under the lock: the spec may have changed since the listing.
    let record = match session.store.cluster(name) {
        Ok(Some(r)) => r,
        Ok(None) => {
            metrics.forget_cluster(name);
            return Outcome::Converged;
        }
        Err(e) => {
            error!(cluster = name, error = %e, "cannot read the cluster");
            return Outcome::Failed;
        }
    };
    if record.is_destroying() {
        debug!(
            cluster = name,
            "a destroy did not finish: left for `provision destroy`"
        );
        return Outcome::Destroying;
    }
    let started = Instant::now();
    let mut report = ConvergeReport::default();
    let result = async {
        let provider = providers.for_spec(&record.spec).await?;
        let ctx = ClusterContext::new(&session.paths, record.clone())?;
        let controller = session.controller(global, provider, &record.spec, Arc::new(LogReporter));
        Ok::<_, anyhow::Error>(controller.converge_into(&ctx, &mut report).await)
    }
    .await;
    // Counted whether or not the pass failed later on.
    metrics.add_remediations(name, report.remediations.len() as u64);
    metrics.set_stalled(name, report.stalled.len() as u64);
    let outcome = match result {
        Ok(Ok(())) => {
            if report.healthy {
                Outcome::Converged
            } else {
                Outcome::Degraded
            }
        }
        Ok(Err(e)) => {
            if counts_as_cloud_error(&e) {
                metrics.add_cloud_error(name);
                providers.forget(&record.spec);
            }
            warn!(cluster = name, error = %e, "reconcile failed; retrying next pass");
            let _ = session
                .store
                .add_event(name, None, &format!("reconcile failed: {e}"));
            Outcome::Failed
        }
        Err(e) => {
            metrics.add_cloud_error(name);
            warn!(
                cluster = name,
                error = format!("{e:#}"),
                "cannot reach the cluster's cloud"
            );
            Outcome::Failed
        }
    };
    metrics.observe_pass(
        name,
        started.elapsed().as_secs_f64(),
        outcome == Outcome::Failed,
    );
    if let Ok(nodes) = session.store.nodes(name) {
        let phases: Vec<(String, String)> = nodes
            .iter()
            .map(|n| (n.phase.to_string(), n.health.as_str().to_string()))
            .collect();
        metrics.set_nodes(name, &phases);
    }
    outcome
}

fn counts_as_cloud_error(e: &ControllerError) -> bool {
    match e {
        ControllerError::Provider(_) => true,
        ControllerError::Nodes(all) => all.iter().any(counts_as_cloud_error),
        _ => false,
    }
}

/// CPU time this process has used.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct we pass; no other memory is touched.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe {
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Resident memory of this process, from /proc.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
