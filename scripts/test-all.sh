#!/usr/bin/env bash
# The whole test suite, from a fresh machine: prepares the host (Docker,
# debootstrap, the node image), checks formatting and lints, then runs the
# unit tests and the integration tests that form real Swarm clusters.
#
#   sudo scripts/test-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/host-setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/provision-target}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Rendered bootstrap scripts are shellchecked inside the tests.
cargo test --workspace -- --test-threads=2
