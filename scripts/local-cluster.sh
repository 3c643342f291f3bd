#!/usr/bin/env bash
# One command from a fresh machine to a running local Docker Swarm:
# prepares the host, builds provision, and creates the cluster.
#
#   sudo scripts/local-cluster.sh [provision swarm flags…]
#   e.g. sudo scripts/local-cluster.sh --name demo --managers 3 --workers 5
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/host-setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/provision-target}"
cargo build --release --bin provision
if [ "$#" -eq 0 ]; then
  set -- --name demo --managers 1 --workers 2
fi
"$CARGO_TARGET_DIR/release/provision" swarm "$@"
