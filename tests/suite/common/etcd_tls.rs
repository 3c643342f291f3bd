//! One etcd member that requires TLS with client certificates and a user
//! with a password, as a team's etcd should run (docs/operations/state-and-etcd.md): a CA,
//! server and client certificates made here with openssl.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SecureEtcd {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

pub const USER: &str = "ops";
pub const PASSWORD: &str = "s3cret-pw";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key and a certificate `name` signed by the CA in `dir`.
fn signed(dir: &Path, name: &str, cn: &str, ext: &str) {
    openssl(dir, &["genrsa", "-out", &format!("{name}.key"), "2048"]);
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

impl SecureEtcd {
    pub fn start() -> SecureEtcd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(d, &["genrsa", "-out", "ca.key", "2048"]);
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "ca.key",
                "-subj",
                "/CN=provision-test-ca",
                "-days",
                "2",
                "-out",
                "ca.pem",
            ],
        );
        signed(
            d,
            "server",
            "etcd",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
        );
        signed(
            d,
            "client",
            "provision-client",
            "extendedKeyUsage=clientAuth\n",
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let peer = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("https://127.0.0.1:{port}");
        let log = std::fs::File::create(d.join("etcd.log")).unwrap();
        let child = Command::new("etcd")
            .args(["--name", "s0"])
            .arg("--data-dir")
            .arg(d.join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
            ])
            .args(["--initial-cluster", &format!("s0=http://127.0.0.1:{peer}")])
            .arg("--cert-file")
            .arg(d.join("server.pem"))
            .arg("--key-file")
            .arg(d.join("server.key"))
            .arg("--trusted-ca-file")
            .arg(d.join("ca.pem"))
            .arg("--client-cert-auth")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        let etcd = SecureEtcd { dir, port, child };
        let started = Instant::now();
        while !etcd.etcdctl(&["endpoint", "health"]).contains("is healthy") {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "TLS etcd did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // A root user is needed before auth can be on; `ops` gets the
        // root role, as a team's operator account would get its own role.
        for args in [
            vec!["user", "add", "root:root-pw"],
            vec!["user", "grant-role", "root", "root"],
            vec!["user", "add", &format!("{USER}:{PASSWORD}")],
            vec!["user", "grant-role", USER, "root"],
            vec!["auth", "enable"],
        ] {
            etcd.etcdctl(&args);
        }
        etcd
    }

    /// etcdctl with the client certificate (and, after auth is on, root).
    pub fn etcdctl(&self, args: &[&str]) -> String {
        let d = self.dir.path();
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=https://127.0.0.1:{}", self.port))
            .arg(format!("--cacert={}", d.join("ca.pem").display()))
            .arg(format!("--cert={}", d.join("client.pem").display()))
            .arg(format!("--key={}", d.join("client.key").display()))
            .args(["--user", "root:root-pw", "--dial-timeout=2s"])
            .args(args)
            .output()
            .expect("etcdctl");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    pub fn state_url(&self, prefix: &str) -> String {
        format!("etcd://127.0.0.1:{}/{prefix}", self.port)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for SecureEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
