#!/usr/bin/env bash
# Builds the provision binary the way the test suite does (the same Cargo
# profile and CARGO_TARGET_DIR), so local-cluster.sh and scripts/test-all.sh
# share one build: whichever runs first, the other reuses it. Prints the
# binary's path on stdout; Cargo's progress goes to stderr.
#
#   scripts/build.sh [--timings]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/build-tools.sh
. scripts/lib/build-tools.sh
ensure_build_tools >&2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/provision-target}"
cargo build --bin provision "$@" >&2
echo "$CARGO_TARGET_DIR/debug/provision"
