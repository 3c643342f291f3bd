"""Node containers that stand in for cloud machines (shared by the test
clouds' bridges): run options for a systemd + dockerd node on this engine,
and a boot script that installs the login user and key as cloud-init would.
"""

import ipaddress
import os
import subprocess

IMAGE_ENV = "PROVISION_NODE_IMAGE"
DEFAULT_IMAGE = "provision/node:bookworm"
# Debian as a cloud image ships it: systemd, sshd, sudo, no Docker
# (scripts/node-image/build.sh --bare).
BARE_IMAGE = os.environ.get("PROVISION_BARE_IMAGE", "provision/node-bare:bookworm")

# Creates the image's login user as cloud-init does, then boots systemd.
BOOT = r"""
set -e
id "$LOGIN_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$LOGIN_USER"
echo "$LOGIN_USER ALL=(ALL) NOPASSWD:ALL" > /etc/sudoers.d/90-cloud-init-users
chmod 0440 /etc/sudoers.d/90-cloud-init-users
for home in /root "/home/$LOGIN_USER"; do
  mkdir -p "$home/.ssh"
  printf '%s\n' "$PUBLIC_KEY" > "$home/.ssh/authorized_keys"
  chmod 0700 "$home/.ssh"; chmod 0600 "$home/.ssh/authorized_keys"
done
chown -R "$LOGIN_USER:$LOGIN_USER" "/home/$LOGIN_USER/.ssh"
if [ "${USER_SESSIONS_AFTER_S:-0}" -gt 0 ]; then
  # A boot whose user sessions come late. systemd creates /run/nologin
  # early (tmpfiles.d/systemd-nologin.conf) and systemd-user-sessions
  # removes it; until then pam_nologin(8) (account stage of Debian's
  # /etc/pam.d/sshd) refuses every user but root, while sshd (not ordered
  # after it) may already answer: systemd issue 8228 shows sshd listening
  # before logins were allowed.
  mkdir -p /etc/systemd/system/systemd-user-sessions.service.d
  printf '[Service]\nExecStartPre=/bin/sleep %s\n' "$USER_SESSIONS_AFTER_S" \
    > /etc/systemd/system/systemd-user-sessions.service.d/late.conf
fi
# A Debian machine's hosts file names the machine itself 127.0.1.1, not
# its address as Docker's does (Debian Reference 5.1.1, "The hostname
# resolution"; cloud-init's templates/hosts.debian.tmpl writes the same
# line under manage_etc_hosts): a program that advertises what its
# hostname resolves to advertises loopback here too.
printf '127.0.0.1 localhost\n127.0.1.1 %s\n::1 localhost ip6-localhost ip6-loopback\n' "$(hostname)" > /etc/hosts
mkdir -p /var/lib/cloud/instance
printf '%s' "$USER_DATA" > /var/lib/cloud/instance/user-data.txt
unset PUBLIC_KEY USER_DATA
if [ "${FIRST_BOOT:-}" = 1 ]; then
  # A cloud image's first boot: cloud-init runs (here its package_update:
  # apt-get update, holding apt's lock) while sshd already answers, and
  # `cloud-init status --wait` blocks until it is done (cloud-init docs,
  # "cloud-init status": exit 0 done, 1 error, 2 degraded).
  cat > /usr/bin/cloud-init <<'STANDIN'
#!/bin/sh
# cloud-init stand-in of the test cloud: `status [--wait]` only.
[ "${1:-}" = status ] || { echo "cloud-init stand-in: only 'status' is implemented" >&2; exit 1; }
if [ "${2:-}" = --wait ]; then
  while [ ! -e /run/cloud-init/result.json ]; do printf .; sleep 1; done
  echo
fi
if [ -e /run/cloud-init/result.json ]; then echo "status: done"; else echo "status: running"; fi
STANDIN
  chmod 0755 /usr/bin/cloud-init
  cat > /etc/systemd/system/cloud-final.service <<'UNIT'
[Unit]
Description=cloud-init first boot stand-in (package_update)
After=network-online.target ssh.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'sleep 3; apt-get update -q || true; mkdir -p /run/cloud-init; echo "{}" > /run/cloud-init/result.json'
[Install]
WantedBy=multi-user.target
UNIT
  ln -sf /etc/systemd/system/cloud-final.service /etc/systemd/system/multi-user.target.wants/cloud-final.service
fi
exec /sbin/init
"""


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def run_options(image):
    """Docker run options a systemd + dockerd node needs on this engine."""
    cgroup = docker("info", "--format", "{{.CgroupVersion}}").stdout.strip()
    common = ["--tmpfs", "/run", "--tmpfs", "/run/lock", "-v", "/var/lib/docker"]
    if cgroup == "2":
        common += ["--cgroupns", "private"]
    else:
        common += ["-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"]
    probe = docker("run", "--rm", "--privileged", "--entrypoint", "/bin/true", image, check=False)
    if probe.returncode == 0:
        return common + ["--privileged"]
    return common + ["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
                     "--security-opt", "seccomp=unconfined",
                     "--security-opt", "apparmor=unconfined",
                     "--security-opt", "systempaths=unconfined"]


def start_body(name, hostname, network, ip, labels, login_user, public_key, user_data,
               options, image, first_boot=False, user_sessions_after_s=0):
    """Runs a node container; returns docker's error text, or None.
    `first_boot`: cloud-init still runs after sshd answers, as on a cloud image.
    `user_sessions_after_s`: logins other than root are refused that long
    after boot (see BOOT)."""
    label_args = [a for label in labels for a in ("--label", label)]
    result = docker("run", "-d", "--name", name, "--hostname", hostname,
                    "--network", network, "--ip", ip, *label_args,
                    "-e", f"LOGIN_USER={login_user}",
                    "-e", f"PUBLIC_KEY={public_key}", "-e", f"USER_DATA={user_data}",
                    "-e", f"FIRST_BOOT={1 if first_boot else 0}",
                    "-e", f"USER_SESSIONS_AFTER_S={int(user_sessions_after_s)}",
                    *options, "--entrypoint", "/bin/sh", image, "-c", BOOT, check=False)
    if result.returncode != 0:
        docker("rm", "-f", "-v", name, check=False)
        return result.stderr.strip()
    return None


def public_pool(cidr):
    """Addresses a test cloud hands out as public ones: .1 is the Docker
    gateway (this machine), .2 the NAT router, the rest of the first ten spare."""
    return [str(h) for h in list(ipaddress.ip_network(cidr).hosts())[9:]]


class NatRouter:
    """The test cloud's edge router: public addresses by 1:1 NAT, as real
    clouds give them.

    An EC2 public IPv4 or an OpenStack floating IP is not on the machine:
    the VPC's internet gateway (AWS docs, "Internet gateways": "the instance
    is not aware of its public IPv4 address") or the Neutron router
    (floating IPs are DNAT/SNAT in the router's namespace, Networking
    Guide "Floating IPs") translates it to the private address. So here a
    router container holds every public address on a Docker network that
    stands for the internet (a documentation range, created here, so
    nothing sent to it leaves the machine) and DNATs each to its machine's
    private address; the node's own interfaces show the private address only.
    """

    def __init__(self, name, public_network, public_cidr, label, image):
        self.name, self.public_network, self.label, self.image = name, public_network, label, image
        self.public_cidr = public_cidr
        hosts = list(ipaddress.ip_network(public_cidr).hosts())
        self.address = str(hosts[1])  # hosts[0] is the Docker gateway: this machine
        self.networks = set()

    def exec(self, script, check=True):
        return docker("exec", self.name, "sh", "-ec", script, check=check)

    def start(self):
        docker("rm", "-f", self.name, check=False)
        docker("network", "rm", self.public_network, check=False)
        docker("network", "create", "--subnet", self.public_cidr, "--label", self.label,
               self.public_network)
        docker("run", "-d", "--name", self.name, "--label", self.label,
               "--network", self.public_network, "--ip", self.address,
               "--cap-add", "NET_ADMIN", "--sysctl", "net.ipv4.ip_forward=1",
               "--entrypoint", "sleep", self.image, "infinity")
        # Replies from a machine go back through here (its default route is
        # its own network's gateway): masquerade what was translated.
        self.exec("iptables -t nat -A POSTROUTING -m conntrack --ctstate DNAT -j MASQUERADE")

    def stop(self):
        docker("rm", "-f", self.name, check=False)
        docker("network", "rm", self.public_network, check=False)

    def attach(self, network):
        """Connects the router to a private network it translates into."""
        if network not in self.networks:
            docker("network", "connect", network, self.name, check=False)
            self.networks.add(network)

    def address_on(self, network):
        """The router's own address on a private network it is attached to
        (the source of what it forwards there, after masquerading)."""
        return docker("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
                      self.name, check=False).stdout.strip()

    def map(self, public_ip, private_ip, network):
        self.attach(network)
        self.unmap(public_ip)
        self.exec(f"ip addr add {public_ip}/32 dev eth0\n"
                  f"iptables -t nat -A PREROUTING -d {public_ip} -j DNAT --to-destination {private_ip}")

    def unmap(self, public_ip):
        rules = self.exec("iptables -t nat -S PREROUTING", check=False).stdout.splitlines()
        for rule in rules:
            if f"-d {public_ip}/32 " in rule + " ":
                self.exec("iptables -t nat " + rule.replace("-A ", "-D ", 1), check=False)
        self.exec(f"ip addr del {public_ip}/32 dev eth0", check=False)
