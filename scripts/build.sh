#!/usr/bin/env bash
# Builds the provision binary the way the test suite does (the same Cargo
# profile and CARGO_TARGET_DIR), so local-cluster.sh, scripts/test-all.sh and
# this share their dependencies' builds. Prints the binary's path on stdout;
# Cargo's progress goes to stderr.
#
#   scripts/build.sh [--local-only] [--timings]
#
# --local-only builds the local cloud alone (no ec2, openstack or etcd
# state: Cargo's default features off), in half the time of the whole
# binary; README's first command builds it so. A part left out is refused
# by name when asked for, saying to run this script without the flag.
set -euo pipefail
cd "$(dirname "$0")/.."
features=()
if [ "${1:-}" = --local-only ]; then
  shift
  features=(--no-default-features)
else
  # shellcheck source=scripts/lib/build-tools.sh
  . scripts/lib/build-tools.sh
  ensure_build_tools >&2
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/provision-target}"
cargo build --bin provision "${features[@]}" "$@" >&2
echo "$CARGO_TARGET_DIR/debug/provision"
