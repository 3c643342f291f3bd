#!/usr/bin/env bash
# Runs the workspace's test binaries LANES at a time (longest first), each
# with --test-threads=2, and prints each binary's output whole when it ends.
# Most of a cluster test's time is waiting for nodes (boots, joins,
# timeouts), so two binaries side by side use the two cores better than one
# after another. Tests that share a test cloud's fault switches take their
# turn with a lock across binaries (tests/common/openstack.rs).
#
#   scripts/lib/run-tests-side-by-side.sh LANES LOG
#
# Expects the build done (cargo test --no-run, with the same flags) and
# CARGO_TARGET_DIR set; exits non-zero when any binary fails. LOG gets every
# binary's output, for the closing count.
set -euo pipefail
lanes="$1"
all_log="$2"
cd "$(dirname "$0")/../.."
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

# The test executables and the package each belongs to (a test runs in its
# package's directory, as under cargo test), from cargo's own build report.
cargo test --workspace --no-run --message-format=json 2>/dev/null | python3 -c '
import json, os, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(os.path.dirname(m["manifest_path"]) + "\t" + m["executable"])
' >"$logs/binaries"

# Longest first (seconds in a warm run: mesos_standins 476, fault_matrix 303,
# cloud_firewalls 170, openstack_cloud 155, quorum_recovery 131, heal_daemon
# 107, kubernetes_standins 96, ec2_cloud 70), then the rest as cargo lists them.
order="mesos_standins fault_matrix cloud_firewalls openstack_cloud quorum_recovery heal_daemon kubernetes_standins ec2_cloud etcd_daemons backup_swarm crash_safety local_swarm"
{
  for name in $order; do
    grep -P "/${name}-[0-9a-f]+$" "$logs/binaries" || true
  done
  for name in $order; do echo "/${name}-"; done >"$logs/ordered"
  grep -v -F -f "$logs/ordered" "$logs/binaries" || true
} >"$logs/queue"

# shellcheck disable=SC2317  # run by xargs, through bash -c
run_one() {
  local dir="${1%%$'\t'*}" exe="${1#*$'\t'}"
  local name log rc=0
  name="$(basename "$exe")"
  log="$logs/$name.log"
  (cd "$dir" && "$exe" --test-threads=2) >"$log" 2>&1 || rc=$?
  # One binary's output at a time, whole.
  {
    flock 9
    echo "     Ran $exe (exit $rc)"
    cat "$log"
    cat "$log" >>"$all_log"
  } 9>>"$logs/print.lock"
  return "$rc"
}
export -f run_one
export logs all_log

status=0
# shellcheck disable=SC2016  # $1 is bash -c's own argument
tr '\n' '\0' <"$logs/queue" | xargs -0 -P "$lanes" -I{} bash -c 'run_one "$1"' _ {} || status=$?
# Doc tests are not binaries of their own: cargo runs them.
cargo test --workspace --doc 2>&1 | tee -a "$all_log" || status=$?
exit "$status"
