//! Helpers for integration tests that drive the real `provision` binary
//! against the local Docker engine.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_provision");

/// A private state directory and a unique cluster name; destroys the
/// cluster when dropped so a failed test leaves nothing behind.
pub struct Cluster {
    pub name: String,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub fn new(prefix: &str) -> Cluster {
        require_docker();
        let name = format!("{prefix}-{:06x}", rand::random::<u32>() & 0xff_ffff);
        Cluster {
            name,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--state").arg(self.state());
        c.stdin(Stdio::null());
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
        let _ = self.cmd().args(["destroy", &self.name, "--yes"]).output();
        // Whatever destroy could not reach (a test that failed early).
        for kind in ["container", "volume", "network"] {
            let ids = docker(&[
                kind,
                "ls",
                "-q",
                "--filter",
                &format!("label=provision.cluster={}", self.name),
            ]);
            for id in ids.split_whitespace() {
                let _ = Command::new("docker").args([kind, "rm", "-f", id]).output();
            }
        }
    }
}

/// Fails (not skips) when Docker is not there: these tests are the point.
/// Set PROVISION_SKIP_DOCKER_TESTS=1 to skip them knowingly.
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
        "Docker is not running: run `sudo scripts/host-setup.sh` (or set PROVISION_SKIP_DOCKER_TESTS=1)"
    );
}

pub fn skip_docker_tests() -> bool {
    if std::env::var("PROVISION_SKIP_DOCKER_TESTS").as_deref() == Ok("1") {
        eprintln!("skipped: PROVISION_SKIP_DOCKER_TESTS=1");
        return true;
    }
    false
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
