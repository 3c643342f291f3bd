"""Security groups as packet filters, shared by the test clouds.

A real cloud's security group is a filter on packets, not a record:
- Neutron's iptables firewall driver (neutron/agent/linux/iptables_firewall.py)
  gives each port an ingress chain: RELATED,ESTABLISHED → RETURN, one RETURN
  per rule of the port's groups (protocol, port range, `remote_ip_prefix`,
  or `remote_group_id` as an ipset of the member ports' fixed addresses),
  then the `sg-fallback` chain's DROP. Egress is left open here (provision
  never narrows it; every group Neutron makes allows all egress).
- EC2 security groups are stateful allow-lists (EC2 User Guide, "Security
  group rules": "responses to allowed inbound traffic are allowed to flow
  out … regardless of outbound rules"; a rule names a CIDR or another group,
  whose members' private addresses it admits).

Both are enforced here in two places, each seeing the packet's real source:
- On the server: a chain in the node container's own network namespace
  (entered from the host with nsenter, using the host's iptables), hooked
  at the start of mangle PREROUTING for the node's interfaces, so it sees
  every packet that arrives at the port before the node's own Docker or
  kube-proxy rules can accept or DNAT it. Traffic from the edge router
  passes: the router already filtered it against its original source.
- On the edge router (node_bodies.NatRouter): traffic to a public address
  is DNATed, then checked in FORWARD against the destination server's rules
  with the client's own address (the router masquerades afterwards, so the
  server could not tell the client from the router).

A change to rules, groups or members applies to running servers at once:
the test cloud calls `Enforcer.apply` after each.
"""

import ipaddress
import subprocess
import threading
from typing import NamedTuple, Optional

from node_bodies import docker

NODE_CHAIN = "provision-sg"
EDGE_CHAIN = "provision-edge"
ANY = "0.0.0.0/0"
# neutron-lib's IP_PROTOCOL_MAP names iptables knows, and EC2's IpProtocol names.
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "ipip": 4, "gre": 47, "esp": 50, "ah": 51,
             "sctp": 132, "udplite": 136, "dccp": 33, "igmp": 2, "vrrp": 112}
# iptables loads the port match itself only for a named protocol.
PORTED = {6: "tcp", 17: "udp", 132: "sctp", 136: "udplite", 33: "dccp"}


class Allow(NamedTuple):
    """One thing a port lets in: an IP protocol (None: any), a port range
    (None: every port) and a source CIDR."""
    protocol: Optional[int]
    ports: Optional[tuple]
    source: str


def protocol_number(name):
    """A rule's protocol as a number; None for any (Neutron's null or "any",
    EC2's "-1")."""
    if name is None or str(name).lower() in ("any", "-1", "all"):
        return None
    text = str(name).lower()
    if text.isdigit():
        return int(text)
    return PROTOCOLS[text]


def ipv4(cidr):
    return ipaddress.ip_network(cidr, strict=False).version == 4


def match(allow):
    """iptables match arguments for an Allow."""
    args = []
    if allow.source != ANY:
        args += ["-s", allow.source]
    if allow.protocol is not None:
        name = PORTED.get(allow.protocol)
        args += ["-p", name or str(allow.protocol)]
        if allow.ports and name:
            lo, hi = allow.ports
            args += ["--dport", f"{lo}:{hi}" if lo != hi else str(lo)]
        elif allow.ports and allow.protocol == 1 and allow.ports[0] is not None:
            args += ["--icmp-type", str(allow.ports[0])]
    return " ".join(args)


def rule(*parts):
    """One iptables rule from its non-empty parts."""
    return " ".join(p for p in parts if p)


def node_rules(allows, trusted):
    """The ingress chain of one server (Neutron's per-port chain)."""
    lines = ["-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"]
    lines += [rule("-s", f"{ip}/32", "-j RETURN") for ip in sorted(trusted)]
    lines += [rule(match(a), "-j RETURN") for a in sorted(set(allows), key=str)]
    lines.append("-j DROP")
    return lines


def edge_rules(servers):
    """The edge router's chain: for each private address, what may reach
    it from outside; anything else translated to it is dropped."""
    lines = ["-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"]
    for ip in sorted(servers):
        lines += [rule("-d", f"{ip}/32", match(a), "-j ACCEPT")
                  for a in sorted(set(servers[ip]), key=str)]
    lines.append("-j DROP")
    return lines


def restore_input(table, chain, lines):
    # With --noflush, a chain declared in the input is flushed and refilled
    # in one commit: no moment without the filter.
    body = "".join(f"-A {chain} {line}\n" for line in lines)
    return f"*{table}\n:{chain} - [0:0]\n{body}COMMIT\n"


def hook(table, builtin, selector, chain):
    return (f"iptables -w -t {table} -C {builtin} {selector} -j {chain} 2>/dev/null || "
            f"iptables -w -t {table} -I {builtin} 1 {selector} -j {chain}")


class Enforcer:
    """Applies each server's rules and the edge's, only where they changed."""

    def __init__(self, router, log):
        self.router, self.log = router, log
        self.lock = threading.Lock()
        self.applied = {}   # container → (pid, rules)
        self.edge = None

    @staticmethod
    def apply_node(pid, rules):
        """Sets one server's chain in its network namespace; the error text, or None."""
        script = "iptables-restore -w --noflush && " + hook("mangle", "PREROUTING", "-i eth+", NODE_CHAIN)
        result = subprocess.run(["nsenter", "-t", pid, "-n", "sh", "-ec", script],
                                input=restore_input("mangle", NODE_CHAIN, rules),
                                capture_output=True, text=True)
        return None if result.returncode == 0 else (result.stderr.strip() or "failed")

    def apply(self, observe):
        """`observe()` returns container name → (private address, [Allow],
        [trusted addresses]) for every running server. It is called under
        this enforcer's lock, so rules observed later are never overwritten
        by rules observed earlier."""
        with self.lock:
            desired = observe()
            # One look at every body's process: a body started again is a
            # new network namespace, whose chain is set anew.
            pids = {}
            if desired:
                out = docker("inspect", "-f", "{{.Name}} {{.State.Pid}}", *desired, check=False).stdout
                for line in out.splitlines():
                    name, _, pid = line.partition(" ")
                    pids[name.lstrip("/")] = pid
            for name, (_, allows, trusted) in desired.items():
                pid = pids.get(name, "0")
                rules = node_rules(allows, trusted)
                if pid == "0" or self.applied.get(name) == (pid, rules):
                    continue
                error = self.apply_node(pid, rules)
                if error is None:
                    self.applied[name] = (pid, rules)
                else:
                    self.log(f"{name}: firewall not applied: {error}")
            for name in [n for n in self.applied if n not in desired]:
                del self.applied[name]
            edge = edge_rules({ip: allows for ip, allows, _ in desired.values()})
            if edge != self.edge:
                text = restore_input("filter", EDGE_CHAIN, edge)
                script = (f"iptables-restore -w --noflush <<'RULES'\n{text}RULES\n"
                          + hook("filter", "FORWARD", "-m conntrack --ctstate DNAT", EDGE_CHAIN))
                result = self.router.exec(script, check=False)
                if result.returncode != 0:
                    self.log(f"edge firewall not applied: {result.stderr.strip()}")
                else:
                    self.edge = edge
