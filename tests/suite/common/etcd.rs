//! A real etcd cluster on loopback for the tests of the shared state:
//! Debian's `etcd-server` (3.4), three members by default, each its own
//! process on free ports with its data under a temporary directory, so a
//! member can be killed and started again as a real one would be.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Etcd {
    dir: tempfile::TempDir,
    members: Vec<Member>,
}

struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

/// `count` distinct ports the system had free a moment ago.
fn free_ports(count: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    while ports.len() < count {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

impl Etcd {
    /// Starts `count` members and waits until the cluster is healthy. A
    /// port found free can be taken by another test's process before etcd
    /// binds it (the member then exits): a cluster that does not become
    /// healthy is started again on new ports, twice at most.
    pub fn start(count: usize) -> Etcd {
        assert!(
            Command::new("etcd").arg("--version").output().is_ok(),
            "etcd is not installed: apt-get install etcd-server etcd-client (scripts/test-all.sh does)"
        );
        let mut attempt = 1;
        loop {
            let etcd = Etcd::launch(count);
            match etcd.health(Duration::from_secs(60)) {
                Ok(()) => return etcd,
                Err(why) if attempt < 3 => {
                    eprintln!("etcd did not start (attempt {attempt}), again on new ports: {why}");
                    attempt += 1;
                }
                Err(why) => panic!("{why}"),
            }
        }
    }

    /// `count` members on new ports, started.
    fn launch(count: usize) -> Etcd {
        let ports = free_ports(2 * count);
        let members: Vec<Member> = (0..count)
            .map(|i| Member {
                name: format!("m{i}"),
                client: ports[2 * i],
                peer: ports[2 * i + 1],
                child: None,
            })
            .collect();
        let mut etcd = Etcd {
            dir: tempfile::tempdir().unwrap(),
            members,
        };
        for i in 0..count {
            etcd.start_member(i);
        }
        etcd
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts member `i` (again, on its data: a restart after a kill).
    pub fn start_member(&mut self, i: usize) {
        let initial = self.initial_cluster();
        let data = self.dir.path().join(&self.members[i].name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(
                self.dir
                    .path()
                    .join(format!("{}.log", self.members[i].name)),
            )
            .unwrap();
        let m = &mut self.members[i];
        let client = format!("http://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let child = Command::new("etcd")
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "provision-test"])
            // Loopback is quick: elections in well under a second.
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        m.child = Some(child);
    }

    /// `kill -9` of member `i`.
    pub fn kill_member(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn kill_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill_member(i);
        }
    }

    pub fn start_all(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                self.start_member(i);
            }
        }
        self.wait_healthy(Duration::from_secs(60));
    }

    /// Every member's client URL, comma-separated, as etcdctl takes them.
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `--state` for this cluster under `prefix`.
    pub fn state_url(&self, prefix: &str) -> String {
        let hosts: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client))
            .collect();
        format!("etcd://{}/{prefix}", hosts.join(","))
    }

    /// `etcdctl ARGS` against the members that run; stdout.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints()))
            .args(["--dial-timeout=2s", "--command-timeout=5s"])
            .args(args)
            .output()
            .expect("etcdctl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The value of `key`, if it is there.
    pub fn get(&self, key: &str) -> Option<String> {
        let out = self.etcdctl(&["get", key, "--print-value-only"]);
        let value = out.trim_end_matches('\n');
        (!value.is_empty()).then(|| value.to_string())
    }

    /// Keys under `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.etcdctl(&["get", prefix, "--prefix", "--keys-only"])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn wait_healthy(&self, limit: Duration) {
        if let Err(why) = self.health(limit) {
            panic!("{why}");
        }
    }

    /// Waits up to `limit` until every running member is healthy; what
    /// etcdctl and the members' logs said, if they never were.
    fn health(&self, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let out = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={}", self.endpoints()))
                .args(["--dial-timeout=1s", "endpoint", "health", "--cluster"])
                .output()
                .expect("etcdctl");
            let running = self.members.iter().filter(|m| m.child.is_some()).count();
            let healthy = String::from_utf8_lossy(&out.stdout)
                .lines()
                .chain(String::from_utf8_lossy(&out.stderr).lines())
                .filter(|l| l.contains("is healthy"))
                .count();
            if healthy >= running && running > 0 {
                return Ok(());
            }
            if started.elapsed() >= limit {
                let logs: String = self
                    .members
                    .iter()
                    .map(|m| {
                        let log = std::fs::read_to_string(
                            self.dir.path().join(format!("{}.log", m.name)),
                        )
                        .unwrap_or_default();
                        let tail: Vec<&str> = log.lines().rev().take(5).collect();
                        format!(
                            "\n--- {} (client {}, peer {}):\n{}",
                            m.name,
                            m.client,
                            m.peer,
                            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                        )
                    })
                    .collect();
                return Err(format!(
                    "etcd not healthy after {limit:?}: {}{}{logs}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill_all();
    }
}
