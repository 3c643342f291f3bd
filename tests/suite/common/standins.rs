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
        // socat (scripts/host-setup.sh installs it; the node image has its
        // libraries) puts TLS in front of it, as kube-apiserver serves.
        std::fs::copy("/usr/bin/socat", ctx.path().join("socat"))
            .expect("/usr/bin/socat (Debian socat)");
        // The Kubernetes stand-in keeps its state in a real etcd.
        std::fs::create_dir(ctx.path().join("etcd")).unwrap();
        for bin in ["etcd", "etcdctl"] {
            std::fs::copy(format!("/usr/bin/{bin}"), ctx.path().join("etcd").join(bin))
                .expect("/usr/bin/etcd, /usr/bin/etcdctl (Debian etcd-server, etcd-client)");
        }
        save_mesos_images(&src.join("mesos"), &ctx.path().join("mesos-images.tar"));
        let before = image_id(STANDIN_IMAGE);
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
        // The saved images differ each build, so each is a new 1.3 GB image:
        // the one it replaced goes (unless a container still uses it), or
        // every run of the suite would leave one behind.
        if let Some(old) = before.filter(|old| Some(old) != image_id(STANDIN_IMAGE).as_ref()) {
            let _ = Command::new("docker").args(["image", "rm", &old]).output();
        }
    });
    STANDIN_IMAGE
}

/// The id of image `name`, when there is one.
fn image_id(name: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Id}}", name])
        .output()
        .ok()?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !id.is_empty()).then_some(id)
}

/// The images the Mesos scripts pull, saved under their default names for
/// the stand-in `docker pull` to load: ZooKeeper is the real one (Debian's
/// package, tests/standins/zookeeper); mesos-master, mesos-agent and
/// Marathon are the busybox stand-in (tests/standins/mesos), the master's
/// with mesosphere's `CMD ["--registry=in_memory"]`.
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
    let image = "provision-test/mesos-standin:latest";
    docker(&["build", "-q", "-t", image, ctx.path().to_str().unwrap()]);
    let master = tempfile::tempdir().unwrap();
    std::fs::write(
        master.path().join("Dockerfile"),
        format!("FROM {image}\nCMD [\"--registry=in_memory\"]\n"),
    )
    .unwrap();
    let master_image = "provision-test/mesos-master-standin:latest";
    docker(&[
        "build",
        "-q",
        "-t",
        master_image,
        master.path().to_str().unwrap(),
    ]);
    let m = provision::spec::MesosSettings::default();
    let tags = [
        (zookeeper_image(), m.zookeeper_image.as_str()),
        (master_image, m.master_image.as_str()),
        (image, m.agent_image.as_str()),
        (image, m.marathon_image.as_str()),
    ];
    for (from, name) in tags {
        docker(&["tag", from, name]);
    }
    let mut save = vec!["save", "-o", tar.to_str().unwrap()];
    save.extend(tags.iter().map(|(_, name)| *name));
    docker(&save);
    for (_, name) in tags {
        docker(&["rmi", name]);
    }
}

/// Real ZooKeeper (Debian's zookeeper 3.8) in an image started as the
/// official one is, built on the bare node image (built first if missing).
fn zookeeper_image() -> &'static str {
    let image = "provision-test/zookeeper:latest";
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bare = super::BARE_IMAGE;
    let have = |name: &str| {
        Command::new("docker")
            .args(["image", "inspect", name])
            .output()
            .unwrap()
            .status
            .success()
    };
    if !have(bare) {
        let built = Command::new(repo.join("scripts/node-image/build.sh"))
            .arg("--bare")
            .status()
            .unwrap();
        assert!(built.success(), "building {bare}");
    }
    docker(&[
        "build",
        "-q",
        "-t",
        image,
        "--build-arg",
        &format!("BASE={bare}"),
        repo.join("tests/standins/zookeeper").to_str().unwrap(),
    ]);
    image
}

fn docker(args: &[&str]) {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
