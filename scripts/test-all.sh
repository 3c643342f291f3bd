#!/usr/bin/env bash
# The whole test suite, from a fresh machine: prepares the host (Docker,
# debootstrap, the node image), starts the test clouds (moto + bridge for
# EC2; Keystone + the simulated Nova/Neutron/Glance for OpenStack), checks
# formatting and lints, then runs the unit tests and the integration tests
# that form real Swarm clusters.
#
#   scripts/test-all.sh     (as root; from a user's shell it runs itself through sudo)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/root.sh
. scripts/lib/root.sh
become_root "$@"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/provision-target}"
# shellcheck source=scripts/lib/build-tools.sh
. scripts/lib/build-tools.sh
ensure_build_tools
cargo fmt --all -- --check
# One build for lints and tests: clippy-driver compiles the workspace's own
# crates for the tests (lints as errors, as `cargo clippy --all-targets -- -D
# warnings`), instead of `cargo clippy` checking every dependency a second time.
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)"
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-Dwarnings__CLIPPY_HACKERY__"
# The build (a lint fails it, before any test runs) goes on while the host
# is prepared: packages, dockerd, the node images and the test clouds are
# mostly downloads and disk, so a fresh machine waits for the longer of the
# two, not for both. --timings: the report of what the build spent.
build_log="$(mktemp)"
log=""
build=""
cleanup() {
  # A host set-up that failed leaves no build running behind it.
  if [ -n "$build" ]; then kill "$build" 2>/dev/null || true; fi
  scripts/test-clouds/ec2 down >/dev/null 2>&1 || true
  scripts/test-clouds/openstack down >/dev/null 2>&1 || true
  rm -f "$build_log" "$log"
}
trap cleanup EXIT
cargo test --workspace --all-targets --no-run --timings >"$build_log" 2>&1 &
build=$!
scripts/host-setup.sh
# The etcd state backend's tests run a 3-member etcd (Debian's etcd-server).
command -v etcd >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null; }
# The bare image (no Docker, as a cloud image ships) that one test per cloud boots.
# shellcheck source=scripts/lib/node-image.sh
. scripts/lib/node-image.sh
ensure_node_image "${PROVISION_BARE_IMAGE:-provision/node-bare:bookworm}" --bare
scripts/test-clouds/ec2 up
scripts/test-clouds/openstack up
echo "host ready after ${SECONDS}s; waiting for the build"
build_status=0
wait "$build" || build_status=$?
build=""
cat "$build_log"
[ "$build_status" -eq 0 ] || exit "$build_status"
echo "build and host ready after ${SECONDS}s (build report: $CARGO_TARGET_DIR/cargo-timings/cargo-timing.html)"
# Rendered bootstrap scripts are shellchecked inside the tests.
log="$(mktemp)"
status=0
# Tests that inject a fault each record a row of the fault matrix here.
rm -rf "$CARGO_TARGET_DIR/tmp/fault-matrix"
# Two units (test binaries, or modules of the integration suite) side by
# side, two tests each (see the script).
scripts/lib/run-tests-side-by-side.sh "${PROVISION_TEST_LANES:-2}" "$log" || status=$?
echo "Fault matrix (fault → what happened → nodes replaced → left over):"
scripts/fault-matrix.sh || status=1
echo "tests finished after ${SECONDS}s"
# README's first command builds the local cloud alone (no default features):
# it must build and lint clean too. Last, as its binary takes the tests'
# place in target/debug; its dependencies are the tests' own.
echo "the local-only build (scripts/build.sh --local-only), linted:"
# (pipefail: a failed build fails the pipeline)
cargo build --bin provision --no-default-features 2>&1 | tail -n 20 || status=1
# What it was built without, it refuses by name, saying what to build.
local_only="$CARGO_TARGET_DIR/debug/provision"
for refused in "swarm --name x --cloud ec2 --dry-run" "swarm --name x --cloud openstack --dry-run" \
  "--state etcd://127.0.0.1:2379/x list"; do
  # shellcheck disable=SC2086 # the words of the command line
  if out=$("$local_only" $refused 2>&1) || ! grep -q "built without .*scripts/build.sh" <<<"$out"; then
    echo "provision $refused (the local-only build): not refused by name: $out" >&2
    status=1
  fi
done
# One closing line for the whole run (cargo ends on the last crate's own count).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
