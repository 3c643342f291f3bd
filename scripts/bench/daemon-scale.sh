#!/usr/bin/env bash
# The daemon scale bench (run by hand, not in CI): the real `provision
# daemon` watching N converged Swarm clusters of M nodes.
#
#   scripts/bench/daemon-scale.sh                 # 10x20 100x20 1000x20
#   scripts/bench/daemon-scale.sh 100x20 --rounds 6 --interval 30s
#   PROVISION_BIN=/var/tmp/provision-release/release/provision scripts/bench/daemon-scale.sh 1000x20
#   scripts/bench/daemon-scale.sh 3000x20 --etcd --daemons 3 --interval 60s
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
# With --etcd the state is moved (`state export`, `state import`) into a
# one-member etcd the bench starts on 127.0.0.1:23790, fencing's cost per
# write is measured (benches/daemon_scale/fence_cost.rs), and --daemons K
# runs K daemons that share the clusters through their claims.
#
# For each size it prints: one `--once` pass over every cluster, then the
# steady state of the scheduled daemons per interval. A row per daemon: wall
# time, passes, its CPU (all, and per pass), a pass's mean wall time (what it
# does not spend on CPU it waits: SSH, the cloud, the store), SSH
# connections, cloud operations, peak RSS, how late the latest pass started,
# and remediations (which must be 0: every node is healthy). Then a line for
# the interval: the host's CPU split into the daemons' and the harness's
# (sshd and the stand-ins it runs, the simulator, Keystone, etcd), its idle
# share, cloud requests, etcd writes (revisions; a converged pass should
# write none), and which side bounds the interval.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib/root.sh
. scripts/lib/root.sh
become_root "$@"

sizes=()
rounds=4
interval=30s
workers=32
etcd=false
daemons=1
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --interval) interval=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --etcd) etcd=true; shift ;;
    --daemons) daemons=$2; shift 2 ;;
    *x*) sizes+=("$1"); shift ;;
    *) echo "usage: $0 [NxM ...] [--rounds R] [--interval 30s] [--workers W] [--etcd [--daemons K]]" >&2; exit 2 ;;
  esac
done
((${#sizes[@]})) || sizes=(10x20 100x20 1000x20)
if ((daemons > 1)) && ! $etcd; then
  echo "--daemons $daemons needs --etcd: daemons share clusters through their claims in etcd" >&2
  exit 2
fi

ROOT=${PROVISION_BENCH_DIR:-/var/tmp/provision-bench}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/provision-target}"
CONTROL=http://127.0.0.1:8700
ETCD=127.0.0.1:23790

if [[ ! -x /usr/sbin/sshd ]]; then
  echo "installing openssh-server (not started as a service)"
  # policy-rc.d 101: the package's scripts start no sshd on the host.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
if $etcd && ! command -v etcd >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null
fi
# PROVISION_BIN: another build of provision to measure (a release build).
binary=${PROVISION_BIN:-$(scripts/build.sh | tail -1)}
cargo build -q --example daemon_scale_seed --example fence_cost
seed="$CARGO_TARGET_DIR/debug/examples/daemon_scale_seed"
fence_cost="$CARGO_TARGET_DIR/debug/examples/fence_cost"

sshd_pid=
etcd_pid=
pids=()
cleanup() {
  for p in "${pids[@]}" $sshd_pid $etcd_pid; do kill "$p" 2>/dev/null || true; done
  iptables -D INPUT -p tcp --dport 22 ! -i lo -j DROP 2>/dev/null || true
}
trap cleanup EXIT
iptables -I INPUT -p tcp --dport 22 ! -i lo -j DROP

json_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["fields"][sys.argv[2]])' "$1" "$2"; }
sim_requests() { curl -fsS "$CONTROL/calls" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'; }
etcd_revision() {
  if $etcd; then
    etcdctl --endpoints "$ETCD" endpoint status -w json |
      python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])'
  else
    echo 0
  fi
}
# CPU in ms: the host's busy and idle time (/proc/stat), a process's own.
TICK_MS=$((1000 / $(getconf CLK_TCK)))
host_cpu() { awk -v t="$TICK_MS" '/^cpu / {print ($2+$3+$4+$7+$8+$9)*t, ($5+$6)*t}' /proc/stat; }
daemons_cpu() {
  local total=0 p
  for p in "${pids[@]}"; do
    total=$((total + $(awk -v t="$TICK_MS" '{print ($14+$15)*t}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
peak_rss() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

printf '%-8s %-7s %-6s %6s %6s %8s %7s %8s %8s %9s %7s %8s %5s\n' \
  size run daemon wall_s passes cpu_ms cpu/pass pass_ms ssh_open cloud_ops rss_mib late_ms remed
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
  state="$dir/state.db"
  if $etcd; then
    etcd --name bench --data-dir "$dir/etcd" \
      --listen-client-urls "http://$ETCD" --advertise-client-urls "http://$ETCD" \
      --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
      --initial-cluster bench=http://127.0.0.1:23800 --quota-backend-bytes 8589934592 \
      >"$dir/etcd.log" 2>&1 &
    etcd_pid=$!
    for _ in $(seq 50); do etcdctl --endpoints "$ETCD" endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
    started=$SECONDS
    "$binary" --state "$dir/state.db" state export --to "$dir/export.json" 2>/dev/null
    state="etcd://$ETCD/bench"
    "$binary" --state "$state" state import "$dir/export.json" >/dev/null 2>&1
    echo "$size: state moved into etcd in $((SECONDS - started)) s"
    echo "$size: fencing's cost per write: $("$fence_cost" "etcd://$ETCD/fence-cost" 2000)"
  fi
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

  start_daemons() { # args: log name, daemon flags...; sets pids
    local name=$1 k
    shift
    pids=()
    for ((k = 1; k <= daemons; k++)); do
      "$binary" --state "$state" --log-format json daemon --no-metrics \
        --workers "$workers" "$@" 2>"$dir/$name.$k.log" &
      pids+=($!)
    done
  }
  row() { # args: run label, daemon number, round JSON line, peak RSS KiB
    local passes cpu
    passes=$(json_field "$3" reconciled)
    cpu=$(json_field "$3" cpu_ms)
    printf '%-8s %-7s %-6s %6s %6s %8s %7s %8s %8s %9s %7s %8s %5s\n' "$size" "$1" "$2" \
      "$(json_field "$3" seconds)" "$passes" "$cpu" "$((cpu / (passes > 0 ? passes : 1)))" \
      "$(json_field "$3" pass_ms_mean)" "$(json_field "$3" ssh_opened)" \
      "$(json_field "$3" cloud_calls)" "$(($4 / 1024))" "$(json_field "$3" most_late_ms)" \
      "$(json_field "$3" remediations)"
  }
  # The interval's CPU split, cloud requests, etcd writes, and its bound.
  mark() { read -r m_busy m_idle < <(host_cpu); m_daemons=$(daemons_cpu); m_req=$(sim_requests); m_rev=$(etcd_revision); }
  interval_line() { # args: passes in the interval
    local busy idle d req rev harness total
    read -r busy idle < <(host_cpu)
    d=$(daemons_cpu)
    req=$(sim_requests)
    rev=$(etcd_revision)
    busy=$((busy - m_busy)) idle=$((idle - m_idle)) d=$((d - m_daemons))
    harness=$((busy - d)) total=$((busy + idle))
    ((total > 0)) || total=1
    local bound="none (idle $((100 * idle / total))%)"
    if ((100 * idle / total < 10)); then
      if ((harness > d)); then bound="CPU, the harness's"; else bound="CPU, the daemons'"; fi
    fi
    printf '%-8s   interval: passes=%s daemons_cpu_ms=%s harness_cpu_ms=%s idle=%s%% cloud_req=%s etcd_writes=%s (%s a pass) bound=%s\n' \
      "$size" "$1" "$d" "$harness" "$((100 * idle / total))" "$((req - m_req))" "$((rev - m_rev))" \
      "$(python3 -c "print(round($((rev - m_rev)) / max($1, 1), 3))")" "$bound"
    mark
  }

  # One pass over every cluster, as fast as the workers go (K daemons: each its claimed share).
  mark
  started=$SECONDS
  start_daemons once --once
  declare -A peaks=()
  while :; do
    alive=0
    for k in "${!pids[@]}"; do
      if kill -0 "${pids[$k]}" 2>/dev/null; then
        alive=1
        hwm=$(peak_rss "${pids[$k]}")
        ((hwm > ${peaks[$k]:-0})) && peaks[$k]=$hwm
      fi
    done
    ((alive)) || break
    sleep 0.5
  done
  passes=0
  for k in "${!pids[@]}"; do
    wait "${pids[$k]}" || { echo "daemon --once failed, see $dir/once.$((k + 1)).log" >&2; tail -5 "$dir/once.$((k + 1)).log" >&2; exit 1; }
    line=$(grep '"round done"' "$dir/once.$((k + 1)).log" | tail -1)
    row once "$((k + 1))" "$line" "${peaks[$k]:-0}"
    passes=$((passes + $(json_field "$line" reconciled)))
  done
  # The daemons are gone: their CPU is counted in the host's, not in /proc.
  for k in "${!pids[@]}"; do
    m_daemons=$((m_daemons - $(json_field "$(grep '"round done"' "$dir/once.$((k + 1)).log" | tail -1)" cpu_ms)))
  done
  echo "$size   once: all $passes clusters in $((SECONDS - started)) s"
  interval_line "$passes"

  # The scheduled daemons: every cluster on its own timer.
  start_daemons daemon --interval "$interval"
  peaks=()
  seen=0
  mark
  while ((seen < rounds)); do
    sleep 1
    for k in "${!pids[@]}"; do
      kill -0 "${pids[$k]}" || { echo "daemon $((k + 1)) died, see $dir/daemon.$((k + 1)).log" >&2; exit 1; }
      hwm=$(peak_rss "${pids[$k]}")
      ((hwm > ${peaks[$k]:-0})) && peaks[$k]=$hwm
    done
    # A round is reported once every daemon has logged it.
    count=$rounds
    for k in "${!pids[@]}"; do
      c=$(grep -c '"round done"' "$dir/daemon.$((k + 1)).log" || true)
      ((c < count)) && count=$c
    done
    while ((seen < count)); do
      seen=$((seen + 1))
      passes=0
      for k in "${!pids[@]}"; do
        line=$(grep '"round done"' "$dir/daemon.$((k + 1)).log" | sed -n "${seen}p")
        row "round$seen" "$((k + 1))" "$line" "${peaks[$k]:-0}"
        passes=$((passes + $(json_field "$line" reconciled)))
      done
      interval_line "$passes"
    done
  done
  kill -TERM "${pids[@]}"
  wait "${pids[@]}" || true
  pids=()
  kill "$sshd_pid"
  wait "$sshd_pid" 2>/dev/null || true
  sshd_pid=
  if [[ -n $etcd_pid ]]; then
    kill "$etcd_pid"
    wait "$etcd_pid" 2>/dev/null || true
    etcd_pid=
  fi
  grep -h '"level":"WARN"\|"level":"ERROR"' "$dir"/once.*.log "$dir"/daemon.*.log | head -3 >&2 || true
done
