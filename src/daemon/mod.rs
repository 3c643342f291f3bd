//! The healing daemon: reconciles every cluster on its own timer.
//!
//! Each cluster is due an interval after its last pass started; a bounded
//! pool of workers takes due clusters, so one cluster busy replacing a node
//! never delays another's pass. The store's cluster list is re-read every
//! few seconds, so clusters and scale requests made by CLI commands are seen
//! without a restart. A cluster whose lock another command holds is skipped
//! until its next turn. SSH connections and cloud operations have
//! process-wide caps. With etcd state, any number of daemons share the
//! clusters: each claims its share under a lease (`state::etcd::Claims`),
//! takes over a dead daemon's clusters when a watch says their claims
//! ended, and acts on a scale request the moment its watch sees it. On
//! SIGTERM or SIGINT no pass starts and those in flight stop at their next
//! step, so the scripts they run on nodes end before their locks and claims
//! are given up; passes still running after `--drain-timeout` (or at a
//! second signal) are dropped, and a script they left on a node is stopped
//! there when its connection closes (`bootstrap/shell.rs`). Whatever was half
//! done is found and finished by the next run, as after any crash.

mod backups;
mod metrics;
mod providers;
mod runner;
mod schedule;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::Rng;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

pub use metrics::Metrics;

use crate::bootstrap::ssh_slots;
use crate::session::Session;
#[cfg(feature = "etcd")]
use crate::state::etcd::Claims;
use crate::state::OffWorkers;
use crate::state::Wake;
use provision_provider::CallLimit;
use runner::{reconcile_cluster, Outcome, PassEnd};
use schedule::Schedule;

/// How often the store's list of clusters is read at most.
const LISTING_EVERY: Duration = Duration::from_secs(5);

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub interval: Duration,
    /// One pass of every cluster, then exit.
    pub once: bool,
    /// Where to serve Prometheus metrics; `None` serves none.
    pub metrics_addr: Option<SocketAddr>,
    /// Clusters reconciled at once.
    pub workers: usize,
    /// SSH connections open at once, all clusters together.
    pub ssh_connections: usize,
    /// Cloud operations in flight at once, all clusters together.
    pub cloud_operations: usize,
    /// With etcd state: how long this daemon's claims outlive it.
    #[cfg_attr(
        not(feature = "etcd"),
        expect(dead_code, reason = "only etcd state has claims")
    )]
    pub lease_ttl: Duration,
    /// On SIGTERM, how long passes may take to stop at their next step.
    pub drain: Duration,
}

/// What every worker shares.
struct Shared {
    session: Session,
    metrics: Arc<Metrics>,
    providers: providers::Providers,
    /// The daemon's share of the clusters when several share etcd; `None`
    /// (SQLite) is every cluster.
    #[cfg(feature = "etcd")]
    claims: Option<Claims>,
    backups: backups::Backups,
}

/// Runs the daemon on `session`'s clusters until SIGTERM or SIGINT (or,
/// with `once`, one pass of each).
pub async fn run(mut session: Session, options: DaemonOptions) -> Result<()> {
    if !ssh_slots::set_limit(options.ssh_connections) {
        warn!("the SSH connection cap was set before the daemon started; keeping it");
    }
    // Hundreds of passes share a few runtime workers: store calls leave theirs.
    session.store = Arc::new(OffWorkers(session.store));
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = options.metrics_addr {
        metrics::serve(addr, metrics.clone())
            .await
            .with_context(|| format!("serving metrics on {addr}"))?;
    }
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    info!(
        interval = ?options.interval,
        workers = options.workers,
        ssh_connections = ssh_slots::limit(),
        cloud_operations = options.cloud_operations,
        state = %session.store.location(),
        "daemon started"
    );
    let calls = CallLimit::new(options.cloud_operations);
    #[cfg(feature = "etcd")]
    let claims = session
        .etcd
        .as_ref()
        .map(|etcd| Claims::new(etcd, options.lease_ttl));
    #[cfg(feature = "etcd")]
    if let Some(c) = &claims {
        info!(daemon = c.id(), lease_ttl = ?options.lease_ttl, "sharing the clusters with any other daemon on this etcd");
    }
    let shared = Arc::new(Shared {
        session,
        metrics,
        providers: providers::Providers::new(calls.clone()),
        #[cfg(feature = "etcd")]
        claims,
        backups: backups::Backups::default(),
    });
    #[cfg(feature = "etcd")]
    let resign = shared.clone();
    let stop = shared.session.stop.clone();
    let run = async {
        if options.once {
            run_once(shared, &options, &calls).await
        } else {
            run_schedule(shared, &options, &calls).await;
            Ok(())
        }
    };
    tokio::pin!(run);
    let result = tokio::select! {
        result = &mut run => result,
        signal = stop_signal(&mut term, &mut int) => {
            info!(
                signal,
                drain = ?options.drain,
                "stopping: no pass starts; passes in flight stop at their next step (the script running on a node ends first)"
            );
            stop.ask();
            tokio::select! {
                _ = &mut run => info!("every pass stopped"),
                _ = tokio::time::sleep(options.drain) => warn!(
                    drain = ?options.drain,
                    "passes still running at the end of the drain time: dropped (a script they ran on a node is stopped there once its connection closes, and holds the node's lock until then); the next run finishes what is half done"
                ),
                again = stop_signal(&mut term, &mut int) => warn!(
                    signal = again,
                    "a second signal: passes dropped (a script they ran on a node is stopped there once its connection closes); the next run finishes what is half done"
                ),
            }
            Ok(())
        }
    };
    // The other daemons take this one's clusters at once, not after the TTL.
    #[cfg(feature = "etcd")]
    if let Some(claims) = &resign.claims {
        claims.resign().await;
    }
    result
}

/// The name of the next stopping signal received.
async fn stop_signal(
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> &'static str {
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Counts of one round (an interval of the daemon's life), logged at its end.
#[derive(Default)]
struct Round {
    outcomes: Vec<Outcome>,
    /// Nodes the passes of the round set out to replace.
    remediations: usize,
    /// The latest start of a pass behind its due time.
    most_late: Duration,
    /// The passes' wall times added up: with `cpu`, what a pass spends
    /// waiting (on SSH, the cloud, the store) against what it computes.
    pass_time: Duration,
    cpu: Duration,
    ssh_opened: u64,
    cloud_calls: u64,
    started: Option<Instant>,
}

impl Round {
    fn begin(calls: &CallLimit) -> Round {
        Round {
            cpu: cpu_time(),
            ssh_opened: ssh_slots::opened(),
            cloud_calls: calls.calls(),
            started: Some(Instant::now()),
            ..Round::default()
        }
    }

    fn finished(&mut self, ended: PassEnd, took: Duration) {
        self.outcomes.push(ended.outcome);
        self.remediations += ended.remediations;
        self.pass_time += took;
    }

    fn count(&self, outcome: Outcome) -> usize {
        self.outcomes.iter().filter(|o| **o == outcome).count()
    }

    fn log(&self, number: u64, clusters: usize, running: usize, calls: &CallLimit) {
        info!(
            round = number,
            clusters,
            reconciled = self.outcomes.len(),
            running,
            failed = self.count(Outcome::Failed),
            busy = self.count(Outcome::Busy),
            destroying = self.count(Outcome::Destroying),
            degraded = self.count(Outcome::Degraded),
            remediations = self.remediations,
            most_late_ms = self.most_late.as_millis() as u64,
            pass_ms_mean = self
                .pass_time
                .checked_div(self.outcomes.len() as u32)
                .unwrap_or_default()
                .as_millis() as u64,
            seconds = format!(
                "{:.2}",
                self.started
                    .map(|s| s.elapsed().as_secs_f64())
                    .unwrap_or(0.0)
            ),
            cpu_ms = cpu_time().saturating_sub(self.cpu).as_millis() as u64,
            rss_kib = rss_kib(),
            ssh_opened = ssh_slots::opened() - self.ssh_opened,
            ssh_open = ssh_slots::in_use(),
            cloud_calls = calls.calls() - self.cloud_calls,
            "round done"
        );
    }
}

/// One pass of every cluster this daemon owns, `workers` at a time; an
/// error when any failed.
async fn run_once(shared: Arc<Shared>, options: &DaemonOptions, calls: &CallLimit) -> Result<()> {
    let round = Round::begin(calls);
    // As a scheduled daemon: with etcd state, only this daemon's share of
    // the clusters (all of them when no other daemon runs), so a pass of
    // `--once` never doubles another daemon's.
    let (all, names) = list_owned(&shared)
        .await
        .context("reading the state store")?;
    if names.len() < all.len() {
        info!(
            passed = names.len(),
            clusters = all.len(),
            "other daemons own the rest of the clusters: passing this daemon's share"
        );
    }
    let count = names.len();
    shared.metrics.set_clusters(count as u64);
    let workers = Arc::new(Semaphore::new(options.workers.max(1)));
    let mut tasks = JoinSet::new();
    for name in names {
        let permit = workers.clone().acquire_owned().await.expect("never closed");
        if shared.session.stop.asked() {
            break;
        }
        let shared = shared.clone();
        tasks.spawn(async move {
            let started = Instant::now();
            let ended = reconcile_cluster(&shared, &name).await;
            drop(permit);
            (ended, started.elapsed())
        });
    }
    let mut round = round;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((ended, took)) => round.finished(ended, took),
            Err(e) => {
                error!(error = %e, "a cluster's pass panicked");
                round.outcomes.push(Outcome::Failed);
            }
        }
    }
    round.log(1, count, 0, calls);
    let failed = round.count(Outcome::Failed);
    if failed > 0 {
        anyhow::bail!("{failed} cluster(s) did not converge in this pass (see the log and `provision status NAME --events`)");
    }
    Ok(())
}

/// Runs every cluster on its own schedule until the process is stopped.
async fn run_schedule(shared: Arc<Shared>, options: &DaemonOptions, calls: &CallLimit) {
    let workers = Arc::new(Semaphore::new(options.workers.max(1)));
    let mut schedule = Schedule::new(options.interval);
    let mut tasks: JoinSet<(String, Instant, PassEnd)> = JoinSet::new();
    let mut clusters = 0;
    let mut next_listing = Instant::now();
    let mut round = Round::begin(calls);
    let mut round_no: u64 = 1;
    let mut next_round = Instant::now() + options.interval;
    // Cluster records and claims that change in etcd wake the loop.
    #[cfg(feature = "etcd")]
    let mut wakes = match &shared.claims {
        Some(claims) => claims.watch(),
        None => tokio::sync::mpsc::unbounded_channel::<Wake>().1,
    };
    #[cfg(not(feature = "etcd"))]
    let mut wakes = tokio::sync::mpsc::unbounded_channel::<Wake>().1;
    loop {
        if shared.session.stop.asked() {
            // No pass starts; the running ones stop at their next step.
            while tasks.join_next().await.is_some() {}
            return;
        }
        let now = Instant::now();
        if now >= next_listing {
            match list_owned(&shared).await {
                Ok((all, owned)) => {
                    schedule.sync(&owned, now);
                    clusters = all.len();
                    shared.metrics.set_clusters(owned.len() as u64);
                    let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
                    shared.metrics.keep_clusters(&refs);
                }
                Err(e) => {
                    // Nothing is acted on while the state cannot be read.
                    schedule.sync(&[], now);
                    error!(
                        error = format!("{e:#}"),
                        "cannot read the state store: no pass runs until it can be read"
                    );
                }
            }
            next_listing = now + LISTING_EVERY.min(options.interval);
        }
        // Start what is due while workers are free.
        for name in schedule.due(now) {
            let Ok(permit) = workers.clone().try_acquire_owned() else {
                break;
            };
            round.most_late = round.most_late.max(schedule.lateness(&name, now));
            schedule.started(&name);
            let shared = shared.clone();
            tasks.spawn(async move {
                let started = Instant::now();
                let ended = reconcile_cluster(&shared, &name).await;
                drop(permit);
                (name, started, ended)
            });
        }
        let wake = [Some(next_listing), Some(next_round), schedule.next_due()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_round)
            .max(Instant::now() + Duration::from_millis(10));
        tokio::select! {
            Some(done) = tasks.join_next() => match done {
                Ok((name, started, ended)) => {
                    // ±10 % jitter so clusters (or daemons) do not move in lockstep.
                    let jitter = rand::thread_rng().gen_range(0.9..1.1);
                    let now = Instant::now();
                    if ended.outcome == Outcome::Busy {
                        // A person's command holds it (a scale request just
                        // written, often): look again soon, not an interval on.
                        schedule.retry_soon(&name, now);
                    } else {
                        let requeue = ended.look_again_in.map(|wait| now + wait);
                        schedule.finished(&name, started, now, jitter, requeue);
                    }
                    round.finished(ended, started.elapsed());
                }
                Err(e) => error!(error = %e, "a cluster's pass panicked"),
            },
            Some(woken) = wakes.recv() => match woken {
                Wake::Changed(name) => {
                    if !schedule.due_now(&name, Instant::now()) {
                        next_listing = Instant::now();
                    }
                }
                Wake::Relist => next_listing = Instant::now(),
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
            () = shared.session.stop.wait() => {}
        }
        if Instant::now() >= next_round {
            round.log(round_no, clusters, schedule.running(), calls);
            round = Round::begin(calls);
            round_no += 1;
            next_round += options.interval;
        }
    }
}

/// Every cluster in the store, and those this daemon reconciles: all of
/// them, or with etcd its claimed share.
async fn list_owned(shared: &Shared) -> Result<(Vec<String>, Vec<String>)> {
    let all = shared.session.store.cluster_names()?;
    #[cfg(feature = "etcd")]
    let owned = match &shared.claims {
        Some(claims) => claims.claim(&all).await?,
        None => all.clone(),
    };
    #[cfg(not(feature = "etcd"))]
    let owned = all.clone();
    Ok((all, owned))
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
