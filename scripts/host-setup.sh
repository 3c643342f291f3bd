#!/usr/bin/env bash
# Prepares a Debian/Ubuntu host for provision's local cloud and its tests:
# installs what is missing, starts dockerd when nothing manages it, and
# builds the node image once. Safe to run again: each step checks first.
#
#   scripts/host-setup.sh        (as root; from a user's shell it runs itself through sudo)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/root.sh
. scripts/lib/root.sh
become_root "$@"

packages=()
command -v dockerd >/dev/null || packages+=(docker.io)
command -v debootstrap >/dev/null || packages+=(debootstrap)
command -v ssh >/dev/null || packages+=(openssh-client)
command -v shellcheck >/dev/null || packages+=(shellcheck)
dpkg -s busybox-static >/dev/null 2>&1 || packages+=(busybox-static)
# The Kubernetes stand-in's API server speaks TLS through socat.
command -v socat >/dev/null || packages+=(socat)
if [ "${#packages[@]}" -gt 0 ]; then
  echo "installing: ${packages[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi

# Each node container's systemd, logind, dbus and containerd hold about 8
# inotify instances, counted against one per-user limit of this kernel (128
# by default): past it a node's units fail with "Too many open files" and it
# never boots (seen here at 17 nodes and a few other containers). kind's
# known issues give the same cause and these values. Kept in
# /etc/sysctl.d so a reboot keeps them.
raise_sysctl() {
  local key=$1 want=$2 have
  have=$(sysctl -n "$key" 2>/dev/null || echo 0)
  if [ "$have" -ge "$want" ]; then return; fi
  if sysctl -qw "$key=$want"; then
    # Once: where nothing applies sysctl.d at boot, a later run raises it again.
    grep -qxF "$key = $want" /etc/sysctl.d/60-provision.conf 2>/dev/null \
      || echo "$key = $want" >>/etc/sysctl.d/60-provision.conf
    echo "raised $key from $have to $want"
  else
    echo "warning: cannot raise $key from $have to $want (read-only /proc/sys?): clusters of more than about $((have / 8 - 2)) local nodes will not boot" >&2
  fi
}
raise_sysctl fs.inotify.max_user_instances 512
raise_sysctl fs.inotify.max_user_watches 524288

if ! docker info >/dev/null 2>&1; then
  if [ -d /run/systemd/system ]; then
    systemctl start docker
  else
    # No systemd as PID 1 (containers, CI sandboxes): run dockerd ourselves.
    # A dockerd that was killed leaves its pid files behind, and a new one
    # refuses to start while they name a process that is gone.
    for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
      if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "removing stale $pidfile"
        rm -f "$pidfile"
      fi
    done
    echo "starting dockerd (log: /var/log/provision-dockerd.log)"
    nohup dockerd >/var/log/provision-dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    echo "dockerd did not start; the end of /var/log/provision-dockerd.log:" >&2
    tail -n 5 /var/log/provision-dockerd.log >&2 || true
    exit 1
  fi
fi

image="${PROVISION_NODE_IMAGE:-provision/node:bookworm}"
# shellcheck source=scripts/lib/node-image.sh
. scripts/lib/node-image.sh
ensure_node_image "$image"
echo "host ready: docker $(docker version --format '{{.Server.Version}}'), image $image"
