#!/usr/bin/env bash
# Builds the node image that local clusters run: a Debian root filesystem with
# systemd, sshd and Docker, imported into the local Docker engine.
#
#   scripts/node-image/build.sh [--bare] [IMAGE] [SUITE]
#
# IMAGE defaults to provision/node:bookworm, SUITE to bookworm. Needs root,
# debootstrap and a running Docker engine. `provision` runs this same script
# (shipped inside the binary) when the image is missing.
#
# --bare builds what a distribution's cloud image is (systemd, sshd, sudo,
# curl, no Docker), provision/node-bare:bookworm by default, so the test
# clouds boot a machine whose Docker the bootstrap scripts must install.
set -euo pipefail

packages=systemd,systemd-sysv,dbus,openssh-server,iproute2,procps,ca-certificates,curl,sudo,kmod
if [ "${1:-}" = --bare ]; then
  shift
  default_image=${PROVISION_BARE_IMAGE:-provision/node-bare:bookworm}
else
  packages=$packages,docker.io,iptables
  default_image=${PROVISION_NODE_IMAGE:-provision/node:bookworm}
fi

image="${1:-$default_image}"
suite="${2:-${PROVISION_NODE_SUITE:-bookworm}}"
mirror="${PROVISION_DEBIAN_MIRROR:-}"

die() { echo "error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "building the node image needs root (debootstrap): run it as root, or with sudo"
command -v debootstrap >/dev/null || die "debootstrap is not installed: apt-get install debootstrap"
command -v docker >/dev/null || die "the docker CLI is not installed: apt-get install docker.io"
docker info >/dev/null 2>&1 || die "Docker is not running: start it (systemctl start docker, or dockerd &)"

# The image's format: raised when a change here matters to nodes already
# built (2: Ed25519 host key only), so set-up scripts rebuild an older one.
version=2

rootfs="$(mktemp -d /var/tmp/provision-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT

echo "step: debootstrap $suite (a few minutes)"
# shellcheck disable=SC2086
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" $mirror

echo "step: configure"
# Each node makes its own SSH host key on first boot: baked keys would be
# shared by every node built from this image. Only an Ed25519 key: it is the
# one provision records and connects with, and it takes milliseconds, where
# `ssh-keygen -A`'s RSA-3072 key took 0.4-0.6 s of CPU per node, in front of
# sshd, and a 1+16 create boots 17 nodes at once on two cores.
rm -f "$rootfs"/etc/ssh/ssh_host_*
mkdir -p "$rootfs/etc/systemd/system/ssh.service.d"
cat > "$rootfs/etc/systemd/system/ssh.service.d/provision-hostkeys.conf" <<'UNIT'
[Service]
# Reset Debian's list: its `sshd -t` check would fail before the key exists.
ExecStartPre=
ExecStartPre=/bin/sh -c 'test -s /etc/ssh/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key'
ExecStartPre=/usr/sbin/sshd -t
UNIT
mkdir -p "$rootfs/root/.ssh" && chmod 700 "$rootfs/root/.ssh"
cat > "$rootfs/etc/ssh/sshd_config.d/provision.conf" <<'CONF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
CONF
# Units that cannot work inside a container only slow the boot down.
for unit in systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
            sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
            systemd-remount-fs.service getty.target console-getty.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
ln -sf /lib/systemd/system/ssh.service "$rootfs/etc/systemd/system/multi-user.target.wants/ssh.service"
echo 'provision-node' > "$rootfs/etc/hostname"
: > "$rootfs/etc/machine-id"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

echo "step: docker import $image"
tar -C "$rootfs" -c . | docker import \
  --change 'CMD ["/sbin/init"]' \
  --change 'ENV container=docker' \
  --change "LABEL org.provision.node-image=$version" \
  - "$image" >/dev/null
echo "step: done $image"
