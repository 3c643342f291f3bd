#!/usr/bin/env bash
# The daemon scale bench (run by hand, not in CI): the real `provision
# daemon` watching N converged Swarm clusters of M nodes.
#
#   scripts/bench/daemon-scale.sh                 # 10x20 100x20 1000x20
#   scripts/bench/daemon-scale.sh 100x20 --rounds 6 --interval 30s
#   PROVISION_BIN=/var/tmp/provision-release/release/provision scripts/bench/daemon-scale.sh 1000x20
#
# The cloud is the OpenStack test cloud (real Keystone, simulated Nova)
# holding servers with no container body (`POST /bench/servers`). SSH is
# real: one OpenSSH server answers for every node, each node at its own
# 127.x.y.z address (the kernel delivers all of 127/8 to a socket on
# 0.0.0.0; a firewall rule keeps port 22 to loopback while the bench runs),
# and a stand-in `curl` (scripts/bench/standin-curl: the engine's API, as
# the Swarm scripts read it) answers each cluster's membership from a file. The clusters are seeded as a finished
# `provision swarm` leaves them (benches/daemon_scale/seed.rs).
#
# For each size it prints: one `--once` pass over every cluster (wall time,
# CPU, SSH connections, cloud operations and requests), then the steady
# state of the scheduled daemon per interval, peak RSS, and remediations
# (which must be 0: every node is healthy).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib/root.sh
. scripts/lib/root.sh
become_root "$@"

sizes=()
rounds=4
interval=30s
workers=32
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --interval) interval=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    *x*) sizes+=("$1"); shift ;;
    *) echo "usage: $0 [NxM ...] [--rounds R] [--interval 30s] [--workers W]" >&2; exit 2 ;;
  esac
done
((${#sizes[@]})) || sizes=(10x20 100x20 1000x20)

ROOT=${PROVISION_BENCH_DIR:-/var/tmp/provision-bench}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/provision-target}"
CONTROL=http://127.0.0.1:8700

if [[ ! -x /usr/sbin/sshd ]]; then
  echo "installing openssh-server (not started as a service)"
  # policy-rc.d 101: the package's scripts start no sshd on the host.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
# PROVISION_BIN: another build of provision to measure (a release build).
binary=${PROVISION_BIN:-$(scripts/build.sh | tail -1)}
cargo build -q --example daemon_scale_seed
seed="$CARGO_TARGET_DIR/debug/examples/daemon_scale_seed"

sshd_pid=
cleanup() {
  if [[ -n $sshd_pid ]]; then kill "$sshd_pid" 2>/dev/null || true; fi
  iptables -D INPUT -p tcp --dport 22 ! -i lo -j DROP 2>/dev/null || true
}
trap cleanup EXIT
iptables -I INPUT -p tcp --dport 22 ! -i lo -j DROP

json_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["fields"][sys.argv[2]])' "$1" "$2"; }
sim_requests() { curl -fsS "$CONTROL/calls" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'; }

printf '%-8s %-8s %6s %8s %9s %9s %8s %9s %9s %6s\n' size run wall_s cpu_ms ssh_open cloud_ops cloud_req rss_mib late_ms remed
for size in "${sizes[@]}"; do
  clusters=${size%x*}
  nodes=${size#*x}
  dir="$ROOT/$size"
  rm -rf "$dir"
  mkdir -p "$dir/bin"
  # A fresh cloud each size: no servers of the last one.
  scripts/test-clouds/openstack up >/dev/null
  # shellcheck disable=SC1091
  . /var/tmp/provision-test-clouds/openstack/env
  ssh-keygen -q -t ed25519 -N '' -f "$dir/ssh_host_ed25519_key"
  "$seed" --dir "$dir" --clusters "$clusters" --nodes "$nodes" \
    --host-key "$(cut -d' ' -f1-2 "$dir/ssh_host_ed25519_key.pub")" >/dev/null
  curl -fsS -X POST -H 'Content-Type: application/json' --data-binary "@$dir/servers.json" \
    "$CONTROL/bench/servers" >/dev/null
  cp scripts/bench/standin-docker "$dir/bin/docker"
  cp scripts/bench/standin-curl "$dir/bin/curl"
  # The nodes' shells start clean: bash run by sshd reads ~/.bashrc, and
  # this host's root may have a slow one (pyenv init: seconds a command).
  mkdir -p "$dir/home"
  : >"$dir/home/.bashrc"
  cat >"$dir/sshd_config" <<CONF
Port 22
ListenAddress 0.0.0.0
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
StrictModes no
# One sshd stands for every node: room for the daemon's handshakes at once.
MaxStartups 4000:30:8000
SetEnv PATH=$dir/bin:/usr/sbin:/usr/bin:/sbin:/bin PROVISION_BENCH_DIR=$dir HOME=$dir/home
LogLevel ERROR
CONF
  mkdir -p /run/sshd
  /usr/sbin/sshd -D -f "$dir/sshd_config" -E "$dir/sshd.log" &
  sshd_pid=$!
  sleep 1

  run_daemon() { # args: log file, daemon flags...; sets pid
    local log=$1
    shift
    "$binary" --state "$dir/state.db" --log-format json daemon --no-metrics \
      --workers "$workers" "$@" 2>"$log" &
    pid=$!
  }
  row() { # args: run label, round JSON line, peak RSS KiB, cloud requests
    printf '%-8s %-8s %6s %8s %9s %9s %8s %9s %9s %6s\n' "$size" "$1" \
      "$(json_field "$2" seconds)" "$(json_field "$2" cpu_ms)" "$(json_field "$2" ssh_opened)" \
      "$(json_field "$2" cloud_calls)" "$4" "$(($3 / 1024))" "$(json_field "$2" most_late_ms)" \
      "$(json_field "$2" remediations)"
  }

  # One pass over every cluster, as fast as the workers go.
  before=$(sim_requests)
  run_daemon "$dir/once.log" --once
  peak=0
  while kill -0 "$pid" 2>/dev/null; do
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    ((hwm > peak)) && peak=$hwm
    sleep 0.5
  done
  wait "$pid" || { echo "daemon --once failed, see $dir/once.log" >&2; tail -5 "$dir/once.log" >&2; exit 1; }
  line=$(grep '"round done"' "$dir/once.log" | tail -1)
  row once "$line" "$peak" $(($(sim_requests) - before))

  # The scheduled daemon: every cluster on its own timer.
  run_daemon "$dir/daemon.log" --interval "$interval"
  peak=0
  seen=0
  before=$(sim_requests)
  while ((seen < rounds)); do
    sleep 1
    kill -0 "$pid" || { echo "the daemon died, see $dir/daemon.log" >&2; exit 1; }
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    ((hwm > peak)) && peak=$hwm
    count=$(grep -c '"round done"' "$dir/daemon.log" || true)
    while ((seen < count)); do
      seen=$((seen + 1))
      line=$(grep '"round done"' "$dir/daemon.log" | sed -n "${seen}p")
      now=$(sim_requests)
      row "round$seen" "$line" "$peak" $((now - before))
      before=$now
    done
  done
  kill -TERM "$pid"
  wait "$pid" || true
  kill "$sshd_pid"
  wait "$sshd_pid" 2>/dev/null || true
  sshd_pid=
  grep -h '"level":"WARN"\|"level":"ERROR"' "$dir/once.log" "$dir/daemon.log" | head -3 >&2 || true
done
