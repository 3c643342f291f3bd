//! Packets through a test cloud's enforced security groups: a listener on
//! a node, and whether a connection to it opens from the test host (as from
//! the internet, through the NAT router) or from another node.

use std::process::Command;
use std::time::{Duration, Instant};

/// The test cloud's container that is the node at `private` (a server's
/// or an instance's body), by its address on the cloud's private network.
pub fn body_at(cloud_label: &str, private: &str) -> String {
    let names = super::docker(&[
        "ps",
        "--filter",
        &format!("label=provision-test-cloud={cloud_label}"),
        "--format",
        "{{.Names}}",
    ]);
    names
        .lines()
        .find(|name| {
            let ips = super::docker(&[
                "inspect",
                "-f",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                name,
            ]);
            ips.split_whitespace().any(|ip| ip == private)
        })
        .unwrap_or_else(|| panic!("no {cloud_label} body at {private}"))
        .to_string()
}

/// A TCP listener on `port` of a node (Debian's busybox-static, copied in:
/// the node images have no nc).
pub fn listen(body: &str, port: u16) {
    super::docker(&[
        "cp",
        "/bin/busybox",
        &format!("{body}:/usr/local/bin/busybox"),
    ]);
    super::docker(&[
        "exec",
        "-d",
        body,
        "busybox",
        "nc",
        "-ll",
        "-p",
        &port.to_string(),
        "-e",
        "true",
    ]);
}

/// Whether a TCP connection to `address:port` opens within 2 s: from the
/// test host when `from` is None, else from inside that body.
pub fn opens(from: Option<&str>, address: &str, port: u16) -> bool {
    let probe = format!("exec 3<>/dev/tcp/{address}/{port}");
    let mut cmd = match from {
        None => Command::new("timeout"),
        Some(body) => {
            let mut c = Command::new("docker");
            c.args(["exec", body, "timeout"]);
            c
        }
    };
    cmd.args(["2", "bash", "-c", &probe])
        .output()
        .expect("a connection attempt")
        .status
        .success()
}

/// Waits up to `limit` for `opens` to answer `want`; whether it did.
pub fn becomes(from: Option<&str>, address: &str, port: u16, want: bool, limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        if opens(from, address, port) == want {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
