//! The OpenStack test cloud (Keystone + simulated Nova/Neutron/Glance) as
//! the tests use it: started once if it is not running, read from the env
//! file `scripts/test-clouds/openstack up` writes, and driven through the
//! simulator's control port (faults, quotas, call counts, state).

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

pub struct OpenStackCloud {
    pub dir: PathBuf,
    /// OS_CLIENT_CONFIG_FILE, for `provision` runs.
    pub env: Vec<(String, String)>,
    control: String,
}

/// A test's turn on the OpenStack test cloud: this process's tests in turn,
/// and other test binaries' run at the same time (two `cargo test --test`
/// side by side), by an exclusive flock on one file of the shared target
/// directory.
pub struct Turn {
    _in_process: MutexGuard<'static, ()>,
    _across_processes: std::fs::File,
}

impl Turn {
    fn take() -> Turn {
        static TURN: Mutex<()> = Mutex::new(());
        let in_process = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("openstack-cloud.turn");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // SAFETY: flock on a descriptor this File owns; released when it closes.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(
            locked,
            0,
            "flock {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        Turn {
            _in_process: in_process,
            _across_processes: file,
        }
    }
}

/// The running test cloud, held by this test alone: faults and quotas are
/// the simulator's global state, so tests that use it take turns.
pub fn openstack_cloud() -> (Turn, &'static OpenStackCloud) {
    static CLOUD: OnceLock<OpenStackCloud> = OnceLock::new();
    let turn = Turn::take();
    let cloud = CLOUD.get_or_init(|| {
        let (dir, env) =
            super::start_test_cloud("openstack", &["keystone: running", "sim: running"]);
        let control = env
            .iter()
            .find(|(k, _)| k == "PROVISION_OS_CONTROL")
            .map(|(_, v)| v.clone())
            .expect("PROVISION_OS_CONTROL in the env file");
        OpenStackCloud { dir, env, control }
    });
    cloud.reset();
    (turn, cloud)
}

impl OpenStackCloud {
    fn control(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-fsS", "-X", method, "-H", "Content-Type: application/json"])
            .args(["--data", body])
            .arg(format!("{}{path}", self.control))
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "control {method} {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("control JSON")
    }

    /// No faults, the default quotas, counts at zero.
    pub fn reset(&self) {
        self.faults(
            r#"{"latency_ms": 0, "error_rate": 0.0, "servers_fail": 0, "injected": 0,
                "late_posts": 0, "late_answered": 0, "hide_servers": [],
                "user_sessions_after_s": 0}"#,
        );
        self.quota(r#"{"instances": 10, "cores": 20, "ram": 51200, "floatingip": 10}"#);
        for zone in ["nova", "az-1", "az-2", "az-3"] {
            self.zone_down(zone, false);
        }
        self.reset_calls();
    }

    /// Every compute host of `zone` fails (`down`) or is back: its servers
    /// go to ERROR, and one built there meanwhile too. Returns the ids of
    /// the servers it failed.
    pub fn zone_down(&self, zone: &str, down: bool) -> Vec<String> {
        let body = serde_json::json!({ "down": down }).to_string();
        let v = self.control("POST", &format!("/zones/{zone}"), &body);
        let ids = v["servers"].as_array().cloned().unwrap_or_default();
        if !down {
            return Vec::new();
        }
        ids.iter()
            .map(|i| i.as_str().unwrap().to_string())
            .collect()
    }

    pub fn faults(&self, json: &str) -> serde_json::Value {
        self.control("POST", "/faults", json)
    }

    /// An image an operator uploaded: its servers' bodies run the local
    /// Docker image `body`, logging in as `login_user`.
    pub fn add_image(&self, name: &str, body: &str, login_user: &str) {
        let json = serde_json::json!({ "name": name, "body": body, "login_user": login_user });
        self.control("POST", "/images", &json.to_string());
    }

    pub fn quota(&self, json: &str) {
        self.control("POST", "/quota", json);
    }

    pub fn reset_calls(&self) {
        self.control("POST", "/calls/reset", "{}");
    }

    /// Requests the simulator answered since the last reset: (total, per call).
    pub fn calls(&self) -> (u64, serde_json::Value) {
        let v = self.control("GET", "/calls", "");
        (v["total"].as_u64().unwrap(), v["calls"].clone())
    }

    pub fn state(&self) -> serde_json::Value {
        self.control("GET", "/state", "")
    }

    /// The cluster's servers as the simulator holds them, but those Nova is
    /// deleting: a DELETE is answered at once and the server goes in the
    /// background, as in Nova, so a command that deleted one may return
    /// before it is gone.
    pub fn servers(&self, cluster_id: &str) -> Vec<serde_json::Value> {
        self.all_servers(cluster_id)
            .into_iter()
            .filter(|s| s["deleting"] != true)
            .collect()
    }

    /// The cluster's servers, those being deleted too.
    pub fn all_servers(&self, cluster_id: &str) -> Vec<serde_json::Value> {
        self.state()["servers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["metadata"]["provision-cluster"] == cluster_id)
            .cloned()
            .collect()
    }

    /// The cluster's security group (`provision-<cluster id>`) as the
    /// simulator holds it now.
    pub fn security_group(&self, cluster_id: &str) -> serde_json::Value {
        let name = format!("provision-{cluster_id}");
        self.state()["security_groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("no security group {name}"))
    }

    /// Puts a server in ERROR with Nova's fault `message`.
    pub fn fail_server(&self, id: &str, message: &str) {
        let body = serde_json::json!({ "message": message }).to_string();
        self.control("POST", &format!("/servers/{id}/error"), &body);
    }

    /// What an operator does by hand to a security group: `json` as the
    /// simulator's control takes it (`remove_port`, `add`).
    pub fn edit_rules(&self, json: &str) -> serde_json::Value {
        self.control("POST", "/security-group-rules", json)
    }

    /// Nova reports the server in `status` (REBOOT, MIGRATING…) for `seconds`.
    pub fn force_status(&self, id: &str, status: &str, seconds: u64) {
        let body = serde_json::json!({ "status": status, "seconds": seconds }).to_string();
        self.control("POST", &format!("/servers/{id}/status"), &body);
    }

    /// A floating IP allocated outside provision: (id, address).
    pub fn foreign_floating_ip(&self) -> (String, String) {
        let v = self.control(
            "POST",
            "/floatingips",
            r#"{"description": "not provision's"}"#,
        );
        (
            v["id"].as_str().unwrap().into(),
            v["floating_ip_address"].as_str().unwrap().into(),
        )
    }

    /// Node containers of these server ids.
    pub fn bodies(&self, server_ids: &[String]) -> Vec<String> {
        let out = super::docker(&[
            "ps",
            "-a",
            "--filter",
            "label=provision-test-cloud=openstack",
            "--format",
            "{{.Names}}",
        ]);
        out.lines()
            .filter(|n| server_ids.iter().any(|id| n.ends_with(id.as_str())))
            .map(str::to_string)
            .collect()
    }

    pub fn clouds_yaml(&self) -> PathBuf {
        self.dir.join("clouds.yaml")
    }
}
