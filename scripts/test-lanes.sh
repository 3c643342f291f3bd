#!/usr/bin/env bash
# Runs the test binaries cargo built, in lanes side by side (most tests wait
# on containers, sshd and the test clouds rather than on the two cores), and
# prints each binary's whole output once it ends, so lanes never interleave.
# A lane takes the next binary from one queue: the longest first (the order
# below, measured in CI), then the rest as cargo listed them. Tests that use
# a shared test cloud's global state take turns across binaries
# (tests/common/openstack.rs).
#
#   scripts/test-lanes.sh LIST LOG
#     LIST  lines "name<TAB>directory<TAB>executable" (scripts/test-all.sh
#           writes it from cargo's JSON)
#     LOG   every binary's output is appended here as well
#   PROVISION_TEST_LANES  how many lanes (default 2)
#
# Exit status: 0 when every binary passed.
set -uo pipefail
list=$1 log=$2
lanes=${PROVISION_TEST_LANES:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Longest first (CI on 942f9d8: 480 s, 290 s, 155 s, 143 s, 128 s, 109 s ...).
longest=(mesos_standins fault_matrix cloud_firewalls openstack_cloud quorum_recovery
  kubernetes_standins heal_daemon ec2_cloud etcd_daemons local_swarm backup_swarm crash_safety)
for name in "${longest[@]}"; do
  grep -P "^\Q$name\E\t" "$list" || true
done >"$work/queue"
for name in "${longest[@]}"; do printf '%s\t\n' "$name"; done >"$work/known"
grep -vF -f "$work/known" "$list" >>"$work/queue" || true
touch "$work/failed"

# The next line of the queue, taken out of it under a lock.
take() {
  (
    flock 9
    line=$(head -n 1 "$work/queue")
    [ -n "$line" ] || exit 1
    sed -i 1d "$work/queue"
    printf '%s\n' "$line"
  ) 9>"$work/queue.lock"
}

lane() {
  local line name dir exe out rc start
  while line=$(take); do
    IFS=$'\t' read -r name dir exe <<<"$line"
    out="$work/$name.out"
    start=$SECONDS
    (cd "$dir" && "$exe" --test-threads=2) >"$out" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] || printf '%s\n' "$name" >>"$work/failed"
    (
      flock 9
      {
        echo "     Running $name ($exe)"
        cat "$out"
        echo "     $name: exit $rc after $((SECONDS - start)) s"
      } | tee -a "$log"
    ) 9>"$work/print.lock"
  done
}

for _ in $(seq "$lanes"); do lane & done
wait
if [ -s "$work/failed" ]; then
  echo "failed test binaries: $(tr '\n' ' ' <"$work/failed")"
  exit 1
fi
