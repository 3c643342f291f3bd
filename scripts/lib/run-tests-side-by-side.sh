#!/usr/bin/env bash
# Runs the workspace's tests LANES units at a time (longest first), each
# with --test-threads=2, and prints each unit's output whole when it ends: a
# unit is a test binary, or a module of the integration suite.
# Most of a cluster test's time is waiting for nodes (boots, joins,
# timeouts), so two units side by side use the two cores better than one
# after another. Tests that share a test cloud's fault switches take their
# turn with a lock across processes (tests/suite/common/openstack.rs).
#
#   scripts/lib/run-tests-side-by-side.sh LANES LOG
#
# Expects the build done (cargo test --no-run, with the same flags) and
# CARGO_TARGET_DIR set; exits non-zero when any unit fails. LOG gets every
# unit's output, for the closing count.
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

# Units of work, one a line: package dir, executable, libtest arguments. The
# integration suite (one binary) is split by module: the long ones first,
# each on its own (seconds in a warm run: mesos_standins 476, fault_matrix
# 303, cloud_firewalls 170, openstack_cloud 155, quorum_recovery 131,
# heal_daemon 107, kubernetes_standins 96, ec2_cloud 70), then the rest of
# it in one run, then every other test binary whole. ec2_contract runs on
# its own too: its driver reads the EC2 test cloud's settings from the
# environment, which it sets for its whole process.
order="mesos_standins fault_matrix cloud_firewalls openstack_cloud quorum_recovery heal_daemon kubernetes_standins ec2_cloud etcd_daemons backup_swarm crash_safety local_swarm ec2_contract"
python3 - "$order" "$logs/binaries" >"$logs/queue" <<'PY'
import re, subprocess, sys
order = sys.argv[1].split()
suite, others = [], []
for line in open(sys.argv[2]):
    d, exe = line.rstrip("\n").split("\t")
    (suite if re.search(r"/suite-[0-9a-f]+$", exe) else others).append((d, exe))
for d, exe in suite:
    listed = subprocess.run([exe, "--list", "--format", "terse"], capture_output=True,
                            text=True, check=True, cwd=d).stdout
    modules = {l.split("::")[0] for l in listed.splitlines() if l.endswith(": test")}
    alone = [m for m in order if m in modules]
    for m in alone:
        print(f"{d}\t{exe}\t{m}::")
    if modules - set(alone):
        print(f"{d}\t{exe}\t" + " ".join(f"--skip {m}::" for m in alone))
for d, exe in others:
    print(f"{d}\t{exe}\t")
PY

# shellcheck disable=SC2317  # run by xargs, through bash -c
run_one() {
  local dir exe args log rc=0
  IFS=$'\t' read -r dir exe args <<<"$1"
  log="$(mktemp "$logs/unit.XXXXXX")"
  # shellcheck disable=SC2086  # the arguments are words: filters, --skip
  (cd "$dir" && "$exe" --test-threads=2 $args) >"$log" 2>&1 || rc=$?
  # One unit's output at a time, whole.
  {
    flock 9
    echo "     Ran $exe${args:+ $args} (exit $rc)"
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
