//! The node image with recording stand-ins for kubeadm, kubelet, kubectl
//! and the package installs (tests/standins), built once per test binary.

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
