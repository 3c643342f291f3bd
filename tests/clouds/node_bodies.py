"""Node containers that stand in for cloud machines (shared by the test
clouds' bridges): run options for a systemd + dockerd node on this engine,
and a boot script that installs the login user and key as cloud-init would.
"""

import subprocess

IMAGE_ENV = "PROVISION_NODE_IMAGE"
DEFAULT_IMAGE = "provision/node:bookworm"

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
mkdir -p /var/lib/cloud/instance
printf '%s' "$USER_DATA" > /var/lib/cloud/instance/user-data.txt
unset PUBLIC_KEY USER_DATA
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
               options, image):
    """Runs a node container; returns docker's error text, or None."""
    label_args = [a for label in labels for a in ("--label", label)]
    result = docker("run", "-d", "--name", name, "--hostname", hostname,
                    "--network", network, "--ip", ip, *label_args,
                    "-e", f"LOGIN_USER={login_user}",
                    "-e", f"PUBLIC_KEY={public_key}", "-e", f"USER_DATA={user_data}",
                    *options, "--entrypoint", "/bin/sh", image, "-c", BOOT, check=False)
    if result.returncode != 0:
        docker("rm", "-f", "-v", name, check=False)
        return result.stderr.strip()
    return None
