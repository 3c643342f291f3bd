#!/usr/bin/env bash
# One command from a fresh machine to a running local Docker Swarm: prepares
# the host (packages, dockerd, the node image) in the background while
# provision builds, then creates the cluster and says how long it all took.
#
#   scripts/local-cluster.sh [provision swarm flags…]
#   e.g. scripts/local-cluster.sh --name demo --managers 3 --workers 5
#
# Run it as root; from a user's shell it runs itself again through sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/root.sh
. scripts/lib/root.sh
become_root "$@"
started=$(date +%s)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/provision-target}"

setup_log=/var/log/provision-host-setup.log
echo "preparing the host in the background (log: $setup_log) while provision builds"
scripts/host-setup.sh >"$setup_log" 2>&1 &
setup=$!
# The local cloud alone: the other clouds' SDKs are most of a fresh build
# (scripts/build.sh without --local-only builds them too).
if ! binary=$(scripts/build.sh --local-only); then
  kill "$setup" 2>/dev/null || true
  exit 1
fi
if ! wait "$setup"; then
  echo "host set-up failed; the end of $setup_log:" >&2
  tail -n 20 "$setup_log" >&2
  exit 1
fi
tail -n 1 "$setup_log"

if [ "$#" -eq 0 ]; then
  set -- --name demo --managers 1 --workers 2
fi
"$binary" swarm "$@"
echo "fresh machine to cluster: $(( $(date +%s) - started )) s (provision is $binary)"
