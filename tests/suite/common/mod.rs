//! Helpers for integration tests that drive the real `provision` binary
//! against the local Docker engine.

pub mod ec2;
pub mod etcd;
pub mod etcd_tls;
pub mod firewall;
pub mod openstack;
pub mod standins;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_provision");

/// A private state directory and a unique cluster name; destroys the
/// cluster when dropped so a failed test leaves nothing behind.
pub struct Cluster {
    pub name: String,
    dir: std::sync::Arc<tempfile::TempDir>,
    /// Extra environment of every `provision` run (a test cloud's settings).
    env: Vec<(String, String)>,
    /// `--state` when not the SQLite file in `dir` (an etcd URL).
    state_url: Option<String>,
    /// Whether dropping this handle destroys the cluster (a second
    /// machine's handle does not).
    owner: bool,
}

impl Cluster {
    pub fn new(prefix: &str) -> Cluster {
        require_docker();
        Cluster {
            name: unique_name(prefix),
            dir: std::sync::Arc::new(tempfile::tempdir().expect("tempdir")),
            env: Vec::new(),
            state_url: None,
            owner: true,
        }
    }

    /// A cluster whose state is in etcd at `url`; its local files (logs,
    /// the ssh_config copies) under its own directory.
    pub fn on_etcd(prefix: &str, url: &str) -> Cluster {
        let mut c = Cluster::new(prefix);
        let data = c.dir().join("xdg").display().to_string();
        c.state_url = Some(url.to_string());
        c.env = vec![("XDG_DATA_HOME".into(), data)];
        c
    }

    /// Another handle on the same cluster, as a second machine has it: the
    /// same state, its own local directory.
    pub fn other_machine(&self) -> Cluster {
        let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
        let data = dir.path().join("xdg").display().to_string();
        let mut env: Vec<(String, String)> = self
            .env
            .iter()
            .filter(|(k, _)| k != "XDG_DATA_HOME")
            .cloned()
            .collect();
        env.push(("XDG_DATA_HOME".into(), data));
        Cluster {
            name: self.name.clone(),
            dir,
            env,
            state_url: self.state_url.clone(),
            owner: false,
        }
    }

    /// The same, with `env` set for every run.
    pub fn with_env(mut self, env: &[(String, String)]) -> Cluster {
        self.env = env.to_vec();
        self
    }

    /// A handle on the same cluster name in a SQLite file of its own (an
    /// import's target); dropping it destroys nothing.
    pub fn on_sqlite_elsewhere(&self) -> Cluster {
        Cluster {
            name: self.name.clone(),
            dir: std::sync::Arc::new(tempfile::tempdir().expect("tempdir")),
            env: Vec::new(),
            state_url: None,
            owner: false,
        }
    }

    /// Another cluster in the same state store (as one daemon sees them).
    pub fn sharing(prefix: &str, other: &Cluster) -> Cluster {
        Cluster {
            name: unique_name(prefix),
            dir: other.dir.clone(),
            env: other.env.clone(),
            state_url: other.state_url.clone(),
            owner: true,
        }
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    /// `docker node ls` on a manager: (hostname, status) pairs.
    pub fn swarm_nodes(&self, manager: &str) -> Vec<(String, String)> {
        self.ssh(
            manager,
            &[
                "docker",
                "node",
                "ls",
                "--format",
                "{{.Hostname}} {{.Status}}",
            ],
        )
        .lines()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(h, s)| (h.to_string(), s.to_string()))
        })
        .collect()
    }

    /// Names of the nodes `status --output json` lists, with their health.
    pub fn status_nodes(&self) -> Vec<(String, String)> {
        self.status_json()["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| {
                (
                    n["name"].as_str().unwrap().to_string(),
                    n["health"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    pub fn events(&self) -> String {
        self.ok(&["status", &self.name, "--events"])
    }

    /// The cluster's events as `NODE  MESSAGE` lines, read from the state
    /// file without the cluster lock: `status` takes the lock to refresh,
    /// so polling it would make a command started meanwhile find the
    /// cluster busy.
    pub fn recorded_events(&self) -> String {
        let script = "import sqlite3, sys\n\
            c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
            for node, message in c.execute('SELECT node, message FROM events WHERE cluster = ? ORDER BY seq', (sys.argv[2],)):\n\
            \x20   print(f'{node or \"-\"}  {message}')";
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(self.state())
            .arg(&self.name)
            .output()
            .expect("python3");
        assert!(out.status.success(), "{}", output_text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every row of every table of the state file, read-only: two dumps
    /// are equal when nothing in state changed.
    pub fn state_dump(&self) -> String {
        let script = "import sqlite3, sys\n\
            c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
            for (t,) in c.execute(\"SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name\"):\n\
            \x20   for row in sorted(map(repr, c.execute(f'SELECT * FROM \"{t}\"'))):\n\
            \x20       print(t, row)";
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(self.state())
            .output()
            .expect("python3");
        assert!(out.status.success(), "{}", output_text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        match &self.state_url {
            Some(url) => c.arg("--state").arg(url),
            None => c.arg("--state").arg(self.state()),
        };
        c.stdin(Stdio::null());
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs `provision ARGS` and returns its output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run provision")
    }

    /// Runs `provision ARGS` and fails the test with its output unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "provision {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `provision COE --name NAME --image IMAGE --managers M --workers W` on
    /// a stand-in image; its output and log, failing the test unless it succeeds.
    pub fn create_on(&self, coe: &str, image: &str, managers: &str, workers: &str) -> String {
        let out = self
            .cmd()
            .args([coe, "--name", &self.name, "--image", image])
            .args(["--managers", managers, "--workers", workers])
            .output()
            .unwrap();
        let text = output_text(&out);
        assert!(out.status.success(), "provision {coe} failed:\n{text}");
        text
    }

    pub fn spawn_create(&self, args: &[&str]) -> Child {
        self.cmd()
            .arg("swarm")
            .arg("--name")
            .arg(&self.name)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn provision")
    }

    /// Writes `template` (YAML) into the cluster's directory and runs
    /// `provision swarm --name NAME --template IT` with `extra` arguments;
    /// fails the test unless it succeeds.
    pub fn create_from_template(&self, template: &str, extra: &[&str]) -> String {
        let path = self.dir().join("template.yaml");
        std::fs::write(&path, template).unwrap();
        let mut args = vec![
            "swarm",
            "--name",
            &self.name,
            "--template",
            path.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.ok(&args)
    }

    /// `provision swarm --name NAME --managers M --workers W`; fails the test unless it succeeds.
    pub fn create(&self, managers: u32, workers: u32) -> String {
        let (m, w) = (managers.to_string(), workers.to_string());
        self.ok(&[
            "swarm",
            "--name",
            &self.name,
            "--managers",
            &m,
            "--workers",
            &w,
        ])
    }

    /// `provision ssh NAME NODE -- CMD…`, output as text; fails on error.
    pub fn ssh(&self, node: &str, command: &[&str]) -> String {
        let mut args = vec!["ssh", self.name.as_str(), node, "--"];
        args.extend_from_slice(command);
        self.ok(&args)
    }

    pub fn status_json(&self) -> serde_json::Value {
        let out = self.ok(&["status", &self.name, "--output", "json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status JSON: {e}\n{out}"))
    }

    /// A node's private address, as `status --output json` gives it.
    pub fn private_address(&self, node: &str) -> String {
        self.status_json()["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == node)
            .unwrap_or_else(|| panic!("no node {node}"))["private_address"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn manager(&self) -> String {
        format!("{}-manager-1", self.name)
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir
            .path()
            .join("clusters")
            .join(&self.name)
            .join("logs")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.owner {
            return;
        }
        let _ = self.cmd().args(["destroy", &self.name, "--yes"]).output();
        // Whatever destroy could not reach (a test that failed early).
        for kind in ["container", "volume", "network"] {
            let filter = format!("label=provision.cluster={}", self.name);
            let mut args = vec![kind, "ls", "-q", "--filter", filter.as_str()];
            // Stopped containers too (a test that killed one and failed).
            if kind == "container" {
                args.insert(2, "-a");
            }
            let ids = docker(&args);
            for id in ids.split_whitespace() {
                let _ = Command::new("docker").args([kind, "rm", "-f", id]).output();
            }
        }
    }
}

fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// A `provision daemon` in the background, stopped (SIGTERM) when dropped.
pub struct Daemon {
    pub child: Child,
    pub metrics_port: u16,
    log: PathBuf,
}

impl Daemon {
    pub fn start(c: &Cluster, interval: &str) -> Daemon {
        Daemon::start_with(c, interval, &[])
    }

    /// A daemon with more arguments (`--scripts-dir DIR`).
    pub fn start_with(c: &Cluster, interval: &str, extra: &[&str]) -> Daemon {
        let metrics_port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let log = std::fs::File::create(c.dir().join("daemon.log")).unwrap();
        let child = c
            .cmd()
            .args([
                "daemon",
                "--interval",
                interval,
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start daemon");
        Daemon {
            child,
            metrics_port,
            log: c.dir().join("daemon.log"),
        }
    }

    /// GET /metrics over plain TCP.
    pub fn metrics(&self) -> String {
        self.try_metrics().expect("metrics port")
    }

    /// GET /metrics, `None` while the daemon does not serve them yet.
    pub fn try_metrics(&self) -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }

    /// What the daemon has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM; returns whether it exited cleanly within `limit`.
    pub fn stop(&mut self, limit: Duration) -> bool {
        // SAFETY: signalling our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failed test shows what the daemon was doing.
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            // Without the gRPC/HTTP/2 frames a `-v` daemon logs.
            let noise = [
                "node phase",
                "Connection{",
                "updating from discover",
                "service.ready",
            ];
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| !noise.iter().any(|n| l.contains(n)))
                .collect();
            eprintln!(
                "--- daemon log (last 80 lines) ---\n{}",
                lines[lines.len().saturating_sub(80)..].join("\n")
            );
        }
    }
}

/// Fails (not skips) when Docker is not there: these tests are the point,
/// and a test that passes without running proves nothing. The one check
/// every Docker test goes through (its fixture calls it).
pub fn require_docker() {
    let ok = Command::new("docker")
        .args(["info"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "Docker is not running: run `sudo scripts/host-setup.sh`; without Docker, \
         `cargo test --lib` runs the unit and in-process controller tests"
    );
}

/// `docker ARGS` stdout; panics if docker cannot run at all.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything on the engine carrying the cluster's name label.
pub fn leftovers(cluster: &str) -> Vec<String> {
    let filter = format!("label=provision.cluster={cluster}");
    let mut found = Vec::new();
    for kind in ["container", "volume", "network"] {
        let mut args = vec![kind, "ls", "-q", "--filter", filter.as_str()];
        if kind == "container" {
            args.insert(2, "-a");
        }
        for id in docker(&args).split_whitespace() {
            found.push(format!("{kind} {id}"));
        }
    }
    found
}

pub fn containers(cluster: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("label=provision.cluster={cluster}"),
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// Cuts `node` off the network (`cut`) or lets it back: its own firewall
/// drops every packet but loopback's, so it keeps its address, as in a
/// real partition (a `docker network disconnect` and `connect` hands out a
/// new address, which is another fault).
pub fn partition(node: &str, cut: bool) {
    let op = if cut { "-I" } else { "-D" };
    for (chain, dir) in [("INPUT", "-i"), ("OUTPUT", "-o")] {
        let out = Command::new("docker")
            .args([
                "exec", node, "iptables", op, chain, "!", dir, "lo", "-j", "DROP",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "iptables {op} {chain} on {node}: {}",
            output_text(&out)
        );
    }
}

/// Loads the busybox image of [`busybox_image_tar`] on each of `nodes`
/// (there is no registry), through `provision ssh`.
pub fn load_busybox(c: &Cluster, nodes: &[String]) {
    let tar = busybox_image_tar(c.dir());
    for node in nodes {
        let status = c
            .cmd()
            .args(["ssh", &c.name, node, "--", "docker", "load"])
            .stdin(std::fs::File::open(&tar).unwrap())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "docker load on {node}");
    }
}

/// `kill -9` of a child (a `provision` under test), reaped.
pub fn kill9(child: &mut Child) {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// Polls `check` every second until it returns true or `limit` passes.
pub fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A busybox image made from Debian's busybox-static, saved as a tar.
pub fn busybox_image_tar(dir: &Path) -> PathBuf {
    let root = dir.join("busybox-root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("/bin/busybox (apt-get install busybox-static)");
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    let image = "provision-test/busybox:latest";
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -c . | docker import - {image} >/dev/null",
            root.display()
        ))
        .status()
        .unwrap();
    assert!(status.success(), "docker import busybox");
    let tar = dir.join("busybox.tar");
    let status = Command::new("docker")
        .args(["save", "-o", tar.to_str().unwrap(), image])
        .status()
        .unwrap();
    assert!(status.success(), "docker save busybox");
    tar
}

/// A command's standard output, then its standard error (provision's log).
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A test cloud of `scripts/test-clouds/NAME`: started with `up` unless
/// `status` shows each of `running`, then its directory and the variables
/// of the env file `up` wrote.
pub fn start_test_cloud(name: &str, running: &[&str]) -> (PathBuf, Vec<(String, String)>) {
    require_docker();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/test-clouds")
        .join(name);
    let status = Command::new(&script)
        .arg("status")
        .output()
        .expect("test cloud status");
    let text = String::from_utf8_lossy(&status.stdout);
    if !running.iter().all(|r| text.contains(r)) {
        let up = Command::new(&script)
            .arg("up")
            .output()
            .expect("test cloud up");
        assert!(
            up.status.success(),
            "scripts/test-clouds/{name} up failed:\n{}{}",
            String::from_utf8_lossy(&up.stdout),
            String::from_utf8_lossy(&up.stderr)
        );
    }
    let dir = std::env::var("PROVISION_TEST_CLOUD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/var/tmp/provision-test-clouds"))
        .join(name);
    let env_file = std::fs::read_to_string(dir.join("env")).expect("the test cloud's env file");
    let env = env_file
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (dir, env)
}

/// Nodes `docker node ls` on the first manager reports Ready (through sudo:
/// the clouds' login users are not root).
pub fn ready_swarm_nodes(c: &Cluster) -> usize {
    let nodes = c.ssh(
        &c.manager(),
        &["sudo", "docker", "node", "ls", "--format", "{{.Status}}"],
    );
    nodes.lines().filter(|s| *s == "Ready").count()
}

/// (name, private address, public address) of each node in `status
/// --output json`.
pub fn node_addresses(status: &serde_json::Value) -> Vec<(String, String, String)> {
    status["nodes"]
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

/// A cluster reached over public (NAT) addresses forms on its private ones:
/// every node's SSH address is its public one, in `public_range`; the
/// public address is on no interface of the node; Swarm advertises each
/// node's private address; and no rendered script on a node holds a public
/// address. Returns (node, private, public) per node.
pub fn assert_swarm_on_private_addresses(
    c: &Cluster,
    public_range: &str,
) -> Vec<(String, String, String)> {
    let status = c.status_json();
    let nodes = node_addresses(&status);
    for n in status["nodes"].as_array().unwrap() {
        assert_eq!(n["ssh_address"], n["public_address"], "SSH over NAT: {n}");
        assert!(
            n["public_address"]
                .as_str()
                .unwrap()
                .starts_with(public_range),
            "public addresses from the test cloud's range: {n}"
        );
    }
    let publics: Vec<&str> = nodes.iter().map(|(_, _, p)| p.as_str()).collect();
    for (node, private, public) in &nodes {
        let interfaces = c.ssh(node, &["ip", "-4", "-o", "addr", "show"]);
        assert!(
            interfaces.contains(&format!(" {private}/")),
            "{node}: {interfaces}"
        );
        assert!(
            !interfaces.contains(public.as_str()),
            "{node} holds its NAT address: {interfaces}"
        );
        let advertised = c.ssh(
            node,
            &["sudo", "docker", "info", "--format", "{{.Swarm.NodeAddr}}"],
        );
        assert_eq!(advertised.trim(), private, "{node} advertises");
        let scripts = c.ssh(
            node,
            &["sudo", "sh", "-c", "cat /var/lib/provision/scripts/*"],
        );
        for p in &publics {
            assert!(
                !scripts.contains(p),
                "{node}: a script holds public address {p}"
            );
        }
    }
    let managers = c.ssh(&c.manager(), &["sudo", "docker", "node", "ls", "-q"]);
    for id in managers.lines() {
        let addr = c.ssh(
            &c.manager(),
            &[
                "sudo",
                "docker",
                "node",
                "inspect",
                id,
                "--format",
                "{{.Status.Addr}} {{if .ManagerStatus}}{{.ManagerStatus.Addr}}{{end}}",
            ],
        );
        for a in addr.split_whitespace() {
            let host = a.rsplit_once(':').map_or(a, |(h, _)| h);
            assert!(
                nodes.iter().any(|(_, private, _)| private == host),
                "docker node inspect shows {a}, not a private address: {nodes:?}"
            );
        }
    }
    nodes
}

/// The bare node image: Debian as a cloud image ships it, without Docker
/// (`scripts/node-image/build.sh --bare`).
pub const BARE_IMAGE: &str = "provision/node-bare:bookworm";

/// A Swarm formed from the bare image: Docker was installed by provision's
/// script (it says so in each node's log), every node is Ready, and the
/// first boot's cloud-init (where the test cloud runs its stand-in) was
/// waited for before apt ran.
pub fn assert_formed_from_bare_image(c: &Cluster, nodes: usize, waits_for_cloud_init: bool) {
    assert_eq!(ready_swarm_nodes(c), nodes);
    let logs: Vec<_> = std::fs::read_dir(c.log_dir())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(logs.len(), nodes);
    for log in &logs {
        assert!(
            log.contains("installing docker.io from the distribution"),
            "{log}"
        );
        assert!(log.contains("is running"), "{log}");
        if waits_for_cloud_init {
            let waited = log.find("waiting for cloud-init to finish first boot");
            let installed = log.find("installing docker.io");
            assert!(waited.is_some() && waited < installed, "{log}");
        }
    }
}

/// One row of the fault matrix: a fault injected, what the run did, how many
/// nodes were replaced, and what was left over. Written where
/// `scripts/test-all.sh` collects the rows into the table it prints.
pub struct FaultRow<'a> {
    /// Orders the table (`01`, `02`…).
    pub id: &'a str,
    pub fault: &'a str,
    pub happened: String,
    pub remediations: String,
    pub left_over: String,
}

pub fn record_fault_row(row: FaultRow) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault-matrix");
    std::fs::create_dir_all(&dir).unwrap();
    let cell = |s: &str| s.replace(['\t', '\n', '|'], " ");
    let line = [row.fault, &row.happened, &row.remediations, &row.left_over]
        .map(cell)
        .join("\t");
    std::fs::write(dir.join(format!("{}.tsv", row.id)), format!("{line}\n")).unwrap();
    eprintln!("fault matrix row {}: {line}", row.id);
}

/// `retiring: unhealthy` events: the nodes the health policy replaced.
pub fn remediations_in(events: &str) -> usize {
    events.matches("retiring: unhealthy").count()
}

/// A 1+1 Swarm on a cloud whose login user is not root: a config marks
/// the state, a backup is taken into `dir` (with --force: one manager).
pub fn back_up_marked_swarm(c: &Cluster, dir: &str, marker: &str) {
    c.ssh(
        &c.manager(),
        &[
            "sudo",
            "sh",
            "-c",
            &format!("echo hi | docker config create {marker} -"),
        ],
    );
    c.ok(&["backup", &c.name, "--to", dir, "--force"]);
}

/// After `provision restore --from dir` of a [`back_up_marked_swarm`]:
/// its new manager (index 2) has the old one's `address`, the marker
/// config is back, and both nodes are Ready with no Down entry left.
pub fn assert_restored_swarm(c: &Cluster, dir: &str, address: &str, marker: &str) {
    c.ok(&["restore", &c.name, "--from", dir]);
    let restored = format!("{}-manager-2", c.name);
    assert_eq!(c.private_address(&restored), address);
    let configs = c.ssh(
        &restored,
        &["sudo", "docker", "config", "ls", "--format", "{{.Name}}"],
    );
    assert!(configs.contains(marker), "{configs}");
    let nodes = c.ssh(
        &restored,
        &["sudo", "docker", "node", "ls", "--format", "{{.Status}}"],
    );
    assert_eq!(
        nodes.lines().filter(|l| *l == "Ready").count(),
        2,
        "{nodes}"
    );
    assert_eq!(nodes.lines().count(), 2, "no Down entry left: {nodes}");
}
