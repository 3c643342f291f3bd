#!/usr/bin/env bash
# Backup-size bench (run by hand, not in CI): a backup of a local 1-manager
# Swarm whose state carries SIZE of random bytes, then a restore of it onto
# a new manager, each timed with /usr/bin/time -v: how long, and the most
# memory `provision` held (its peak resident set). The archive streams
# through (sealed as it arrives, spooled to disk, stored; on restore
# downloaded, checked and opened to disk, sent from there), so the peak
# should not grow with SIZE.
#
#   scripts/bench/backup-size.sh [SIZE_MIB]     # default 2048 (2 GiB)
#   PROVISION_BIN=/var/tmp/provision-target/release/provision scripts/bench/backup-size.sh 256
#
# Needs the host set up (scripts/host-setup.sh) and about 3 × SIZE free
# under /tmp and the backup directory. Prints one line per step.
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib="${1:-2048}"
bin="${PROVISION_BIN:-${CARGO_TARGET_DIR:-/var/tmp/provision-target}/debug/provision}"
[ -x "$bin" ] || { echo "no provision binary at $bin (build it, or set PROVISION_BIN)" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }
work="$(mktemp -d)"
name="bk-size-$$"
export PROVISION_STATE="$work/state/state.db"
cleanup() {
  "$bin" destroy "$name" --yes >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The peak resident set and wall time /usr/bin/time -v reported in FILE.
report() {
  local step=$1 file=$2
  local rss wall
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$file")
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$file")
  printf '%-8s %6s MiB of state: %8s wall, peak RSS %6d MiB\n' "$step" "$size_mib" "$wall" $((rss / 1024))
}

"$bin" swarm --cloud local --name "$name" --managers 1 --workers 0 >/dev/null 2>&1
manager="$name-manager-1"
ballast=/var/lib/docker/swarm/provision-bench-ballast
"$bin" ssh "$name" "$manager" -- sh -c "head -c $((size_mib * 1048576)) /dev/urandom > $ballast"
sum=$("$bin" ssh "$name" "$manager" -- sha256sum "$ballast")

/usr/bin/time -v "$bin" backup "$name" --to "$work/backups" --force >"$work/backup.out" 2>"$work/backup.time" \
  || { cat "$work/backup.out" "$work/backup.time" >&2; exit 1; }
report backup "$work/backup.time"
find "$work/backups" -type f -printf "  %s bytes  %f\n"

docker rm -f "$manager" >/dev/null
/usr/bin/time -v "$bin" restore "$name" --from "$work/backups" >"$work/restore.out" 2>"$work/restore.time" \
  || { cat "$work/restore.out" "$work/restore.time" >&2; exit 1; }
report restore "$work/restore.time"
restored=$("$bin" ssh "$name" "$name-manager-1" -- sha256sum "$ballast" 2>/dev/null \
  || "$bin" ssh "$name" "$name-manager-2" -- sha256sum "$ballast")
if [ "$restored" = "$sum" ]; then
  echo "restored state: the same $size_mib MiB (sha256 ${sum%% *})"
else
  echo "restored state differs: $restored, not $sum" >&2
  exit 1
fi
