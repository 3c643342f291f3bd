//! The node image with recording stand-ins for kubeadm, kubelet, kubectl,
//! the package installs and the Mesos images' pulls (tests/standins), built
//! once per test binary.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

pub const STANDIN_IMAGE: &str = "provision-test/standins:bookworm";

/// Builds the stand-in image from the node image (which must exist:
/// scripts/host-setup.sh builds it) and returns its name.
pub fn standin_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        super::require_docker();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins");
        let ctx = tempfile::tempdir().unwrap();
        let copy = Command::new("cp")
            .arg("-r")
            .args(["Dockerfile", "kubelet.service", "bin", "lib", "www"].map(|f| src.join(f)))
            .arg(ctx.path())
            .status()
            .unwrap();
        assert!(copy.success());
        // busybox-static (scripts/host-setup.sh installs it) serves the API server.
        std::fs::copy("/bin/busybox", ctx.path().join("busybox"))
            .expect("/bin/busybox (Debian busybox-static)");
        save_mesos_images(&src.join("mesos"), &ctx.path().join("mesos-images.tar"));
        let out = Command::new("docker")
            .args(["build", "-q", "-t", STANDIN_IMAGE])
            .arg(ctx.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "building {STANDIN_IMAGE}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    STANDIN_IMAGE
}

/// The Mesos stand-in image (tests/standins/mesos), saved under the names
/// of the default ZooKeeper, mesos-master, mesos-agent and Marathon images
/// for the stand-in `docker pull` to load.
fn save_mesos_images(src: &Path, tar: &Path) {
    let ctx = tempfile::tempdir().unwrap();
    let copy = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cp -r {}/. {}",
            src.display(),
            ctx.path().display()
        ))
        .status()
        .unwrap();
    assert!(copy.success());
    std::fs::copy("/bin/busybox", ctx.path().join("busybox")).expect("/bin/busybox");
    let docker = |args: &[&str]| {
        let out = Command::new("docker").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let image = "provision-test/mesos-standin:latest";
    docker(&["build", "-q", "-t", image, ctx.path().to_str().unwrap()]);
    let m = provision::spec::MesosSettings::default();
    let names = [
        m.zookeeper_image,
        m.master_image,
        m.agent_image,
        m.marathon_image,
    ];
    for name in &names {
        docker(&["tag", image, name]);
    }
    let mut save = vec!["save", "-o", tar.to_str().unwrap()];
    save.extend(names.iter().map(String::as_str));
    docker(&save);
    for name in &names {
        docker(&["rmi", name]);
    }
}

/// `/var/log/standin.log` of a node: (time, program and arguments) of each
/// recorded call.
pub fn standin_calls(c: &super::Cluster, node: &str) -> Vec<(f64, String)> {
    c.ssh(node, &["cat", "/var/log/standin.log"])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(t, rest)| (t.parse().unwrap(), rest.to_string()))
        .collect()
}
