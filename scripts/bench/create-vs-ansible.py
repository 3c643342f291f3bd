#!/usr/bin/env python3
"""Create-speed bench (run by hand, not in CI): `provision swarm` against the
same node containers started in parallel and driven by ansible-playbook, and
against the critical path the nodes' own clocks allow.

    scripts/bench/create-vs-ansible.py                # 1+2 1+4 1+8 1+16
    scripts/bench/create-vs-ansible.py 8 16 --runs 2
    PROVISION_BIN=target/release/provision scripts/bench/create-vs-ansible.py 8

For each 1+N, one after the other on an otherwise idle machine:

1. provision: `provision swarm --managers 1 --workers N` on the local cloud,
   timed from the command's start to its exit (it exits once every node is
   Ready in `docker node ls`).
2. containers + Ansible: N+1 containers of the node image, created and
   started in parallel with the flags provision gave its own (read back
   with `docker inspect`), the cluster's key put in root's authorized_keys
   before start as provision does; then ansible-playbook (ansible-core from
   PyPI, in its own venv; forks = nodes, `raw` module, linear strategy):
   wait for SSH, make sure Docker runs, `swarm init` on the manager, fetch
   the token, join the workers; timed from the first `docker create` until
   `docker node ls` lists every node Ready.
3. the critical path, from the Ansible run's nodes (one kernel clock): from
   the first `docker create` to the end of the slowest chain, where each
   node's chain starts when it became usable (its journal: sshd listening
   and the Docker engine answering, whichever was later), the manager's
   goes on with `swarm init`, and each worker's with `swarm join` once it
   was usable and the manager's init was done; init and join as long as
   they took on the nodes. No tool can be faster: it is what remains with
   no wait and no overhead.

An untimed 1+1 provision run comes first (the flags for the Ansible run's
containers; warm caches for both sides). Each timed side then starts once
the CPUs have been 85% idle for two seconds (a teardown goes on loading the
engine after `docker rm` returns), and the two sides take turns at going
first.

It prints the three times and the two ratios per size, and provision's
ratio to its own nodes' critical path both ways: from when each node was
usable ("own crit") and from its sshd alone ("sshd crit", the bound the
bench first used; no tool reaches it when sshd listens before the engine). Ratios are what
count on this noisy 2-core machine; run sizes more than once (--runs).

On a test cloud (`--cloud openstack` or `--cloud ec2`, after
`scripts/test-clouds/<cloud> up`), for each 1+N and each API latency
injected (`--latency-ms 0 100`: the OpenStack simulator's faults, or the
EC2 test cloud's moto wrapper), it times `provision swarm` on the cloud,
counts the cloud API calls the driver made (its debug log: each request,
retries included) and gives them per node, and computes the critical path
from provision's own nodes: from the command's start to the end of the
slowest chain, each node's chain starting when it became usable (sshd and
the engine, from the journal of the container that is its body: the cloud's
create call, its scheduling and the boot are in it), then `swarm init` and each join as long
as they took in provision's log. No Ansible run there (its cloud modules
are not installed here); the ratio is provision over that path.

    scripts/bench/create-vs-ansible.py --cloud openstack 2 8 --latency-ms 0 100
"""

import argparse
import json
import re
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = Path("/var/tmp/provision-bench-venv")
NETWORK = "provision-bench-ansible"
SUBNET = "10.251.0.0/24"


def sh(*args, check=True, capture=True, **kw):
    out = subprocess.run(args, check=False, capture_output=capture, text=True, **kw)
    if check and out.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def ansible_playbook():
    exe = VENV / "bin" / "ansible-playbook"
    if not exe.exists():
        print("installing ansible-core into", VENV, file=sys.stderr)
        sh(sys.executable, "-m", "venv", str(VENV))
        sh(str(VENV / "bin" / "pip"), "install", "-q", "ansible-core")
    return exe


def provision_bin():
    given = os.environ.get("PROVISION_BIN")
    if given:
        return given
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
    exe = Path(target) / "release" / "provision"
    if not exe.exists():
        print("building provision (release)", file=sys.stderr)
        sh("cargo", "build", "--release", "--bin", "provision", cwd=REPO, capture=False)
    return str(exe)


def run_provision(exe, state, workers):
    """`provision swarm` 1+workers on the local cloud: (seconds, the
    manager's `docker inspect`, the critical path of its own nodes, and the
    same path with each chain starting at its sshd alone)."""
    name = f"bench{workers}"
    env = dict(os.environ, PROVISION_LOG="info,provision=debug")
    t0_wall = time.time()
    t0 = time.monotonic()
    out = sh(exe, "--state", state, "swarm", "--name", name, "--managers", "1",
             "--workers", str(workers), capture=True, env=env)
    took = time.monotonic() - t0
    try:
        # The flags provision gave its nodes, for the Ansible run's containers.
        manager = json.loads(sh("docker", "inspect", f"{name}-manager-1").stdout)[0]
        nodes = [f"{name}-manager-1"] + [f"{name}-worker-{i}" for i in range(1, workers + 1)]
        own = own_critical_path(out.stderr, {n: usable_at(n) for n in nodes},
                                nodes[0], t0_wall)
        # The bound the bench first used: no tool reaches it when sshd
        # listens before the engine answers, but it shows what that costs.
        sshd = own_critical_path(out.stderr, {n: sshd_at(n) for n in nodes},
                                 nodes[0], t0_wall)
    finally:
        sh(exe, "--state", state, "destroy", name, "--yes")
    return took, manager, (own, sshd)


def own_critical_path(log, listening, manager, t0_wall):
    """The critical path of a provision run's own nodes, from the command's
    start: each node's chain from when it became usable (`usable_at`), the
    manager's then `swarm init`, each worker's its join once both it is
    usable and the init is done; init and joins as long as they took in the
    log."""
    init = script_spans(log, "swarm/init.sh", 'script="swarm/join-tokens.sh"')[manager]
    # A join's script ends with the node's report: the node is Ready after it.
    joins = script_spans(log, "swarm/join.sh", 'phase="ready"')
    initialised = listening[manager] + init
    ends = [max(initialised, listening[w]) + joins[w] for w in joins]
    return max(ends) - t0_wall


def settle(idle=0.85, most=60):
    """Waits until the CPUs were at least `idle` idle for two seconds in a
    row (at most `most` seconds; says so if they never were)."""
    def busy_idle():
        with open("/proc/stat") as f:
            cpu = [int(x) for x in f.readline().split()[1:]]
        return sum(cpu), cpu[3] + cpu[4]  # idle + iowait

    deadline = time.monotonic() + most
    calm = 0
    total, idle_then = busy_idle()
    while calm < 2:
        time.sleep(1)
        total_now, idle_now = busy_idle()
        share = (idle_now - idle_then) / max(1, total_now - total)
        total, idle_then = total_now, idle_now
        calm = calm + 1 if share >= idle else 0
        if time.monotonic() > deadline:
            print(f"the machine did not settle within {most}s (idle {share:.0%}); going on",
                  file=sys.stderr)
            return


def run_flags(inspect):
    """`docker create` flags equal to a provision node's."""
    hc, cfg = inspect["HostConfig"], inspect["Config"]
    flags = ["--stop-signal", cfg.get("StopSignal") or "SIGRTMIN+3"]
    for e in cfg.get("Env") or []:
        if e.startswith("container="):
            flags += ["-e", e]
    for path, opts in (hc.get("Tmpfs") or {}).items():
        flags += ["--tmpfs", f"{path}:{opts}" if opts else path]
    for opt in hc.get("SecurityOpt") or []:
        flags += ["--security-opt", opt]
    if hc.get("CgroupnsMode"):
        flags += ["--cgroupns", hc["CgroupnsMode"]]
    for bind in hc.get("Binds") or []:
        if not bind.endswith(":/var/lib/docker"):
            flags += ["-v", bind]
    if hc.get("Privileged"):
        flags.append("--privileged")
    for cap in hc.get("CapAdd") or []:
        flags += ["--cap-add", cap]
    for cap in hc.get("CapDrop") or []:
        flags += ["--cap-drop", cap]
    # Nothing masked or read-only under /proc and /sys (the API's empty
    # lists): the CLI's way to say it.
    if hc.get("MaskedPaths") == [] and hc.get("ReadonlyPaths") == []:
        flags += ["--security-opt", "systempaths=unconfined"]
    return flags, cfg["Image"]


PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    # The nodes have no Python: the usual wait for a fresh machine's SSH,
    # from the controller (its default 1 s poll).
    - wait_for: {host: "{{ inventory_hostname }}", port: 22, search_regex: OpenSSH, timeout: 300}
      delegate_to: localhost
    - raw: systemctl is-active --quiet docker || systemctl start docker; docker info >/dev/null
- hosts: manager
  gather_facts: false
  tasks:
    - raw: s=$(date +%s.%N); docker swarm init --advertise-addr {{ inventory_hostname }} >/dev/null; echo "$s $(date +%s.%N)"
      register: init
    - raw: docker swarm join-token -q worker
      register: token
- hosts: workers
  gather_facts: false
  tasks:
    - raw: s=$(date +%s.%N); docker swarm join --token {{ hostvars[groups['manager'][0]].token.stdout | trim }} {{ groups['manager'][0] }}:2377 >/dev/null; echo "$s $(date +%s.%N)"
      register: join
    - debug: {msg: "join {{ join.stdout | trim }}"}
- hosts: manager
  gather_facts: false
  tasks:
    - debug: {msg: "init {{ init.stdout | trim }}"}
"""


def run_ansible(playbook_exe, flags, image, workers, work):
    key = work / "id_ed25519"
    if not key.exists():
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    sh("docker", "network", "rm", NETWORK, check=False)
    sh("docker", "network", "create", "--subnet", SUBNET, NETWORK)
    names = ["bench-a-manager"] + [f"bench-a-worker-{i}" for i in range(1, workers + 1)]
    addresses = {n: f"10.251.0.{10 + i}" for i, n in enumerate(names)}
    keys = work / "keys.tar"
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(f"{d}/root/.ssh", mode=0o700)
        shutil.copy(f"{key}.pub", f"{d}/root/.ssh/authorized_keys")
        os.chmod(f"{d}/root/.ssh/authorized_keys", 0o600)
        sh("tar", "-C", d, "--owner=0", "--group=0", "-cf", str(keys), "root")

    t0 = time.monotonic()
    t0_wall = time.time()
    procs = []
    for n in names:
        # In parallel, as a person's script with `&` would.
        procs.append(subprocess.Popen([sys.executable, __file__, "--start-one", n,
                                       addresses[n], str(keys), image, json.dumps(flags)]))
    for p in procs:
        if p.wait() != 0:
            sys.exit("starting a bench container failed")
    inventory = work / "inventory.ini"
    inventory.write_text(
        "[manager]\n" + addresses[names[0]] + "\n[workers]\n"
        + "\n".join(addresses[n] for n in names[1:]) + "\n[all:vars]\nansible_user=root\n"
        f"ansible_ssh_private_key_file={key}\n"
        "ansible_ssh_common_args=-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null\n")
    playbook = work / "swarm.yml"
    playbook.write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_FORKS=str(len(names)),
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_PYTHON_INTERPRETER="auto_silent")
    try:
        out = sh(str(playbook_exe), "-i", str(inventory), str(playbook), env=env)
        while True:
            ready = sh("docker", "exec", names[0], "docker", "node", "ls", "--format",
                       "{{.Status}}", check=False).stdout.split()
            if len(ready) == len(names) and all(s == "Ready" for s in ready):
                break
            time.sleep(0.1)
        took = time.monotonic() - t0
        return took, critical_path(names, out.stdout, t0_wall)
    finally:
        for n in names:
            sh("docker", "rm", "-f", "-v", n, check=False)
            sh("docker", "volume", "rm", "-f", f"{n}-docker", check=False)
        sh("docker", "network", "rm", NETWORK, check=False)


def start_one(name, address, keys, image, flags):
    sh("docker", "volume", "rm", "-f", f"{name}-docker", check=False)
    sh("docker", "create", "--name", name, "--hostname", name, "--network", NETWORK,
       "--ip", address, "-v", f"{name}-docker:/var/lib/docker", *json.loads(flags), image)
    subprocess.run(["docker", "cp", "-", f"{name}:/"], stdin=open(keys, "rb"), check=True,
                   capture_output=True)
    sh("docker", "start", name)


def journal_first(name, pattern, what):
    """When `pattern` first appeared in the journal of `name` (unix seconds)."""
    lines = sh("docker", "exec", name, "journalctl", "-o", "short-unix", "--no-pager",
               "-g", pattern, check=False).stdout.splitlines()
    stamps = [float(l.split()[0]) for l in lines if l and l[0].isdigit()]
    if not stamps:
        sys.exit(f"{name}: no '{pattern}' in its journal ({what})")
    return min(stamps)


def sshd_at(name):
    """When sshd on `name` started listening (unix seconds), its journal."""
    return journal_first(name, "Server listening", "sshd")


def usable_at(name):
    """When `name` could first be told anything (unix seconds, its journal):
    its sshd listening and its Docker engine answering, whichever came
    later. The node images start the engine at boot; with the image's
    Ed25519-only host key, sshd often listens before the engine does, and a
    swarm init or join cannot start before the engine answers."""
    return max(sshd_at(name), journal_first(name, "API listen on", "dockerd"))


def critical_path(names, playbook_output, t0_wall):
    """From the first `docker create` to the end of the slowest chain: each
    node's chain starts when it became usable (`usable_at`; the engine's
    start of the containers one after another is in it), the manager's is
    then `swarm init`, each worker's `swarm join` once both it is usable
    and the manager's init is done; init and join durations as timed on the
    nodes themselves (one kernel clock)."""
    spans = {"init": [], "join": []}
    for kind, a, b in re.findall(r'"msg": "(init|join) ([0-9.]+) ([0-9.]+)"', playbook_output):
        spans[kind].append(float(b) - float(a))
    if not spans["init"] or len(spans["join"]) != len(names) - 1:
        sys.exit("the playbook printed no init/join times:\n" + playbook_output)
    listening = {n: usable_at(n) for n in names}
    initialised = listening[names[0]] + spans["init"][0]
    # Joins are matched to workers by when they were usable: the bound is the
    # same whichever worker had which join time, up to that pairing.
    ends = [max(initialised, at) + join
            for at, join in zip(sorted(listening[n] for n in names[1:]), sorted(spans["join"]))]
    return max(ends) - t0_wall


TEST_CLOUDS = Path(os.environ.get("PROVISION_TEST_CLOUD_DIR", "/var/tmp/provision-test-clouds"))
# The EC2 test cloud's default AMI (tests/suite/common/ec2.rs): Docker installed.
EC2_AMI = "ami-785db401"
TIME = r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z"


def test_cloud_env(cloud):
    """The environment `scripts/test-clouds/<cloud> up` wrote (its env file)."""
    path = TEST_CLOUDS / cloud / "env"
    if not path.exists():
        sys.exit(f"the {cloud} test cloud is not up: run scripts/test-clouds/{cloud} up")
    env = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^export ([A-Z0-9_]+)=(.*)$", line.strip())
        if m:
            env[m.group(1)] = m.group(2).strip("'\"")
    return env


def set_latency(cloud, env, ms):
    import urllib.request
    if cloud == "openstack":
        req = urllib.request.Request("http://127.0.0.1:8700/faults", method="POST",
                                     data=json.dumps({"latency_ms": ms}).encode(),
                                     headers={"Content-Type": "application/json"})
    else:
        req = urllib.request.Request(f"{env['PROVISION_EC2_ENDPOINT']}/__provision/latency?ms={ms}",
                                     method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()


def cloud_create_args(cloud, env):
    if cloud == "openstack":
        return ["--cloud", "openstack", "--os-cloud", "provision-test"]
    return ["--cloud", "ec2", "--template", str(REPO / "scripts/test-clouds/ec2-swarm.yaml"),
            "--profile", env["PROVISION_EC2_PROFILE"], "--subnet", env["PROVISION_EC2_SUBNET"],
            "--image", EC2_AMI]


def log_time(line):
    m = re.match(TIME, line)
    if not m:
        return None
    import datetime
    return datetime.datetime.fromisoformat(m.group(1)[:26]).replace(
        tzinfo=datetime.timezone.utc).timestamp()


def script_spans(log, script, until):
    """Per node, from the log line that starts `script` on it to its first
    later line that matches `until` (a script's start, or a phase): how long
    it took there."""
    starts, spans = {}, {}
    for line in log.splitlines():
        t = log_time(line)
        m = re.search(r'node="?([\w-]+)"?', line)
        if t is None or not m:
            continue
        node = m.group(1)
        started = re.search(r'script="([^"]+)"', line)
        if started and started.group(1) == script:
            starts[node] = t
        elif node in starts and node not in spans and until in line:
            spans[node] = t - starts[node]
    return spans


def run_on_cloud(exe, state, cloud, env, workers):
    """provision swarm 1+workers on the test cloud: (seconds, cloud calls,
    critical path seconds)."""
    name = f"bench{workers}{cloud[:2]}"
    run_env = dict(os.environ, **env,
                   PROVISION_LOG="info,provision=debug,provision_provider_openstack=debug,"
                                 "provision_provider_ec2=debug")
    t0_wall = time.time()
    t0 = time.monotonic()
    out = sh(exe, "--state", state, "swarm", "--name", name, "--managers", "1",
             "--workers", str(workers), *cloud_create_args(cloud, env), env=run_env, check=False)
    took = time.monotonic() - t0
    try:
        if out.returncode != 0:
            sys.exit(f"provision swarm on {cloud} failed:\n{out.stderr[-3000:]}")
        log = out.stderr
        calls = sum(1 for l in log.splitlines() if f"{cloud} api call" in l)
        status = json.loads(sh(exe, "--state", state, "status", name, "--output", "json",
                               env=run_env).stdout)
        prefix = "os-" if cloud == "openstack" else "ec2-"
        listening = {n["name"]: usable_at(prefix + n["machine_id"]) for n in status["nodes"]}
        manager = next(n["name"] for n in status["nodes"] if n["role"] == "manager")
        return took, calls, own_critical_path(log, listening, manager, t0_wall)
    finally:
        sh(exe, "--state", state, "destroy", name, "--yes", env=run_env, check=False)


def main_cloud(args):
    exe = provision_bin()
    env = test_cloud_env(args.cloud)
    rows = []
    with tempfile.TemporaryDirectory(prefix="provision-bench-") as d:
        state = str(Path(d) / "state.db")
        try:
            for latency in args.latency_ms:
                set_latency(args.cloud, env, latency)
                for n in args.workers:
                    for run in range(args.runs):
                        p, calls, cp = run_on_cloud(exe, state, args.cloud, env, n)
                        rows.append((n, latency, run + 1, p, calls, cp))
                        print(f"{args.cloud} 1+{n} latency {latency} ms run {run + 1}: provision "
                              f"{p:.1f}s, {calls} cloud calls, critical path {cp:.1f}s",
                              file=sys.stderr)
        finally:
            set_latency(args.cloud, env, 0)
    print(f"{'cloud':<10} {'cluster':<8} {'latency':>8} {'run':>3} {'provision':>10} "
          f"{'calls':>6} {'calls/node':>10} {'critical':>9} {'prov/crit':>10}")
    for n, latency, run, p, calls, cp in rows:
        print(f"{args.cloud:<10} 1+{n:<6} {latency:>6}ms {run:>3} {p:>9.1f}s {calls:>6} "
              f"{calls / (n + 1):>10.1f} {cp:>8.1f}s {p / cp:>10.2f}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--start-one":
        start_one(*sys.argv[2:7])
        return
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workers", nargs="*", type=int, default=[2, 4, 8, 16])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--cloud", choices=["local", "openstack", "ec2"], default="local")
    parser.add_argument("--latency-ms", type=int, nargs="+", default=[0, 100],
                        help="API latencies injected on a test cloud, one run set each")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (Docker, the node image)")
    if args.cloud != "local":
        main_cloud(args)
        return
    exe = provision_bin()
    playbook_exe = ansible_playbook()
    rows = []
    with tempfile.TemporaryDirectory(prefix="provision-bench-") as d:
        work = Path(d)
        state = str(work / "state.db")
        # An untimed run first: the flags provision gives its nodes, for the
        # Ansible run's, and caches warm for whichever side goes first.
        settle()
        _, manager, _ = run_provision(exe, state, 1)
        flags, image = run_flags(manager)
        pairs = 0
        for n in args.workers:
            for run in range(args.runs):
                # Each side starts on a settled engine (a teardown of 17
                # containers goes on loading it after `docker rm` returns),
                # and the sides take turns at going first.
                def provision_side():
                    settle()
                    return run_provision(exe, state, n)

                def ansible_side():
                    settle()
                    return run_ansible(playbook_exe, flags, image, n, work)

                if pairs % 2 == 0:
                    p, _, (own, sshd) = provision_side()
                    a, cp = ansible_side()
                else:
                    a, cp = ansible_side()
                    p, _, (own, sshd) = provision_side()
                pairs += 1
                rows.append((n, run + 1, p, a, cp, own, sshd))
                print(f"1+{n} run {run + 1}: provision {p:.1f}s, containers+Ansible {a:.1f}s, "
                      f"critical path {cp:.1f}s (of provision's own nodes {own:.1f}s)",
                      file=sys.stderr)
    print(f"{'cluster':<8} {'run':>3} {'provision':>10} {'ansible':>9} {'critical':>9} "
          f"{'prov/ans':>9} {'prov/crit':>10} {'own crit':>9} {'prov/own':>9}"
          f" {'sshd crit':>10} {'prov/sshd':>10}")
    for n, run, p, a, cp, own, sshd in rows:
        print(f"1+{n:<6} {run:>3} {p:>9.1f}s {a:>8.1f}s {cp:>8.1f}s {p / a:>9.2f} {p / cp:>10.2f}"
              f" {own:>8.1f}s {p / own:>9.2f} {sshd:>9.1f}s {p / sshd:>10.2f}")


if __name__ == "__main__":
    main()
