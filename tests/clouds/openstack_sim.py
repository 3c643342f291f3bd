#!/usr/bin/env python3
"""The OpenStack test cloud's Nova, Neutron and Glance.

A simulator of the calls provision's driver makes, answering as the
OpenStack API reference defines them (compute 2.1-2.79, network v2.0,
image v2), behind a real Keystone: every request's X-Auth-Token is checked
with Keystone, and the services are in Keystone's catalog. Each server is a
node container on a Docker network whose subnet is the simulated network's,
with the keypair installed for root and the image's login user as cloud-init
would. A floating IP is NAT, as Neutron's router does it: the router
container (node_bodies.NatRouter) holds it on the "public" Docker network
(198.51.100.128/25, a documentation range) and translates it to the fixed
address; the server's own interface has the fixed address only. Images:
`debian-12` (Docker installed) and `debian-12-genericcloud` (bare, as
Debian publishes it: no Docker, cloud-init still running after sshd is up).

Faults, set through the control port (127.0.0.1:8700, no auth):
    POST /faults {"latency_ms": 50, "error_rate": 0.2, "error_codes": [500, 503, 429],
                  "servers_fail": 1}        # the next N created servers go to ERROR
    POST /faults {"late_posts": 1}          # the next N POSTs are carried out, then
                                            # answered 504 (a gateway that gave up
                                            # waiting on Nova, which went on)
    POST /faults {"hide_servers": ["web-worker-1"]}  # left out of the next listing
                                            # each (Nova skips servers of a down cell)
    POST /faults {"user_sessions_after_s": 5}   # servers booted from now on allow
                                            # logins other than root 5 s after boot:
                                            # sshd answers meanwhile and refuses the
                                            # login user (node_bodies.BOOT)
    POST /servers/<id>/error {"message": "..."}   # a running server fails
    POST /zones/<name> {"down": true}       # every compute host of the zone fails:
                                            # its servers go to ERROR, it is listed
                                            # unavailable, and a server built there
                                            # goes to ERROR (No valid host)
    POST /security-group-rules {"security_group_id": ID, "remove_port": 2377,
                                "add": {"protocol": "tcp", ...}}   # an operator's hand
    POST /servers/<id>/status {"status": "REBOOT", "seconds": 90}  # a transitional
                                            # status for a while, then back
    POST /quota {"instances": 3, "cores": 20, "ram": 51200, "floatingip": 10}
    POST /images {"name": "...", "body": "docker image", "login_user": "debian"}
                                            # an image an operator uploaded
    GET /calls, POST /calls/reset             # requests counted per call
    POST /bench/servers {"servers": [{"id", "name", "metadata", "address"}]}
                                            # the daemon scale bench's servers: ACTIVE,
                                            # with no container body, their fixed
                                            # address given (127.x.y.z, where the
                                            # bench's one sshd answers for all)
    GET /state                                # what exists, for the tests

    openstack_sim.py setup --dir DIR   # users, projects, catalog, clouds.yaml
    openstack_sim.py run --dir DIR     # serve
"""

import argparse
import datetime
import hashlib
import http.server
import ipaddress
import json
import os
import pathlib
import random
import re
import socketserver
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from firewall import ANY, Allow, Enforcer, ipv4, protocol_number
from node_bodies import BARE_IMAGE, NatRouter, docker, run_options, start_body

KEYSTONE = os.environ.get("PROVISION_KEYSTONE_URL", "http://127.0.0.1:5000")
HOST = "127.0.0.1"
PORTS = {"compute": 8774, "network": 9696, "image": 9292}
CONTROL_PORT = 8700
REGION = "RegionOne"
NODE_IMAGE = os.environ.get("PROVISION_NODE_IMAGE", "provision/node:bookworm")
# The availability zones Nova offers here (`GET /os-availability-zone`). A
# server asked for in another is refused as nova/compute/api.py refuses it:
# InvalidRequest "The requested availability zone is not available" (400).
ZONES = os.environ.get("PROVISION_OPENSTACK_ZONES", "nova,az-1,az-2,az-3").split(",")
LABEL = "provision-test-cloud=openstack"
PRIVATE = {"name": "private", "docker": "provision-os-private", "cidr": "10.78.1.0/24"}
PUBLIC = {"name": "public", "docker": "provision-os-public", "cidr": "198.51.100.128/25"}
NOVA_MAX = "2.79"
PROJECT = "provision"
USER = "provision"
PASSWORD = "provision-test-password"


def router():
    return NatRouter("provision-os-router", PUBLIC["docker"], PUBLIC["cidr"], LABEL, NODE_IMAGE)


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def public(record):
    """A record without the simulator's own `_` fields."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


# ---------------------------------------------------------------- setup


def keystone(method, path, token=None, body=None):
    req = urllib.request.Request(KEYSTONE + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("X-Auth-Token", token)
    with urllib.request.urlopen(req) as r:
        text = r.read()
        return r.headers, (json.loads(text) if text else None)


def password_token(user, password, project):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
    headers, answer = keystone("POST", "/v3/auth/tokens", body=body)
    return headers["X-Subject-Token"], answer["token"]


def setup(directory, admin_password):
    admin, _ = password_token("admin", admin_password, "admin")
    _, p = keystone("POST", "/v3/projects", admin, {"project": {"name": PROJECT, "domain_id": "default"}})
    project_id = p["project"]["id"]
    _, u = keystone("POST", "/v3/users", admin, {"user": {
        "name": USER, "password": PASSWORD, "domain_id": "default", "default_project_id": project_id}})
    user_id = u["user"]["id"]
    _, roles = keystone("GET", "/v3/roles?name=member", admin)
    role_id = roles["roles"][0]["id"]
    keystone("PUT", f"/v3/projects/{project_id}/users/{user_id}/roles/{role_id}", admin)
    urls = {"compute": f"http://{HOST}:{PORTS['compute']}/v2.1",
            "network": f"http://{HOST}:{PORTS['network']}",
            "image": f"http://{HOST}:{PORTS['image']}"}
    names = {"compute": "nova", "network": "neutron", "image": "glance"}
    for kind, url in urls.items():
        _, s = keystone("POST", "/v3/services", admin, {"service": {"type": kind, "name": names[kind]}})
        for interface in ("public", "internal"):
            keystone("POST", "/v3/endpoints", admin, {"endpoint": {
                "service_id": s["service"]["id"], "interface": interface, "url": url,
                "region_id": REGION}})
    user_token, _ = password_token(USER, PASSWORD, PROJECT)
    _, cred = keystone("POST", f"/v3/users/{user_id}/application_credentials", user_token,
                       {"application_credential": {"name": "provision-test"}})
    cred = cred["application_credential"]
    auth = {"auth_url": f"{KEYSTONE}/v3", "username": USER, "password": PASSWORD,
            "project_name": PROJECT, "user_domain_name": "Default",
            "project_domain_name": "Default"}
    clouds = {"clouds": {
        "provision-test": {"auth": auth, "region_name": REGION, "interface": "public"},
        "provision-test-appcred": {
            "auth_type": "v3applicationcredential", "region_name": REGION,
            "auth": {"auth_url": f"{KEYSTONE}/v3", "application_credential_id": cred["id"],
                     "application_credential_secret": cred["secret"]}},
        "provision-wrong": {"auth": dict(auth, password="not-the-password"),
                            "region_name": REGION},
    }}
    (directory / "clouds.yaml").write_text(json.dumps(clouds, indent=2))
    os.chmod(directory / "clouds.yaml", 0o600)
    (directory / "service.json").write_text(json.dumps({"admin_password": admin_password,
                                                        "project_id": project_id}))
    os.chmod(directory / "service.json", 0o600)
    docker("network", "rm", PRIVATE["docker"], check=False)
    docker("network", "create", "--subnet", PRIVATE["cidr"], "--label", LABEL, PRIVATE["docker"])
    router().start()  # makes the public network
    (directory / "env").write_text(
        f"export OS_CLIENT_CONFIG_FILE={directory / 'clouds.yaml'}\n"
        "export PROVISION_OS_CLOUD=provision-test\n"
        f"export PROVISION_OS_CONTROL=http://{HOST}:{CONTROL_PORT}\n")
    print(f"clouds.yaml {directory / 'clouds.yaml'}\ncloud provision-test\nenv {directory / 'env'}")


# ---------------------------------------------------------------- state


class ApiError(Exception):
    def __init__(self, status, body):
        super().__init__(status)
        self.status = status
        self.body = body


def nova_error(status, kind, message):
    return ApiError(status, {kind: {"code": status, "message": message}})


def neutron_error(status, kind, message):
    return ApiError(status, {"NeutronError": {"type": kind, "message": message, "detail": ""}})


class Cloud:
    def __init__(self, directory):
        self.directory = directory
        self.lock = threading.RLock()
        self.calls = {}
        self.faults = {"latency_ms": 0, "error_rate": 0.0, "error_codes": [500, 503, 429],
                       "servers_fail": 0, "injected": 0, "late_posts": 0, "late_answered": 0,
                       "hide_servers": [], "user_sessions_after_s": 0}
        # Zones whose compute hosts are all down.
        self.zones_down = set()
        self.quota = {"instances": 10, "cores": 20, "ram": 51200, "floatingip": 10}
        self.tokens = {}
        self.service_token = None
        self.project_id = None
        self.flavors = {}
        for fid, name, vcpus, ram, disk in [("1", "m1.tiny", 1, 512, 1), ("2", "m1.small", 1, 2048, 20),
                                            ("3", "m1.medium", 2, 4096, 40)]:
            self.flavors[fid] = {"id": fid, "name": name, "vcpus": vcpus, "ram": ram, "disk": disk}
        self.images = {}
        for name, user, body in [("debian-12", "debian", NODE_IMAGE),
                                 ("debian-12-genericcloud", "debian", BARE_IMAGE)]:
            iid = str(uuid.uuid5(uuid.NAMESPACE_URL, name))
            self.images[iid] = {"id": iid, "name": name, "login_user": user, "body": body,
                                "created_at": now()}
        self.networks, self.subnets = {}, {}
        for net, external in ((PRIVATE, False), (PUBLIC, True)):
            nid = str(uuid.uuid5(uuid.NAMESPACE_URL, "net-" + net["name"]))
            sid = str(uuid.uuid5(uuid.NAMESPACE_URL, "subnet-" + net["name"]))
            self.networks[nid] = {"id": nid, "name": net["name"], "external": external,
                                  "subnets": [sid], "docker": net["docker"],
                                  "created_at": now()}
            hosts = list(ipaddress.ip_network(net["cidr"]).hosts())
            self.subnets[sid] = {"id": sid, "network_id": nid, "cidr": net["cidr"],
                                 "free": [str(h) for h in hosts[9:]]}
        self.servers, self.ports, self.keypairs = {}, {}, {}
        self.server_groups, self.security_groups, self.floatingips = {}, {}, {}
        self.options = None
        self.router = router()
        self.router.attach(PRIVATE["docker"])
        self.firewall = Enforcer(self.router, log)
        self.router_private = self.router.address_on(PRIVATE["docker"])

    # -- accounting and faults

    def count(self, service, method, path):
        key = f"{service} {method} {re.sub(r'[0-9a-f]{8}-[0-9a-f-]{27}', '{id}', path)}"
        with self.lock:
            self.calls[key] = self.calls.get(key, 0) + 1

    def take_late_post(self):
        with self.lock:
            if self.faults["late_posts"] > 0:
                self.faults["late_posts"] -= 1
                self.faults["late_answered"] += 1
                return True
        return False

    def maybe_fault(self):
        f = self.faults
        if f["latency_ms"]:
            time.sleep(f["latency_ms"] / 1000.0)
        if f["error_rate"] and random.random() < f["error_rate"]:
            code = random.choice(f["error_codes"])
            with self.lock:
                f["injected"] += 1
            if code == 429:
                raise ApiError(429, {"overLimit": {"code": 429, "message": "Rate limit exceeded.",
                                                    "retryAfter": "0"}})
            raise ApiError(code, {"computeFault": {"code": code,
                                                   "message": "injected fault: service unavailable"}})

    # -- security groups on packets (firewall.py)

    def port_allows(self, port):
        """What a port lets in: each IPv4 ingress rule of its groups, as
        Neutron's security group API defines a rule (a null protocol or port
        range is any; a rule with neither remote_ip_prefix nor
        remote_group_id admits every source; remote_group_id admits the
        fixed addresses of the ports in that group). A port with
        port_security_enabled false is not filtered."""
        if not port.get("port_security_enabled", True):
            return [Allow(None, None, ANY)]
        allows = []
        for gid in port["security_groups"]:
            for r in (self.security_groups.get(gid) or {}).get("security_group_rules", []):
                if r.get("direction") != "ingress" or (r.get("ethertype") or "IPv4") != "IPv4":
                    continue
                lo, hi = r.get("port_range_min"), r.get("port_range_max")
                ports = None if lo is None and hi is None else (
                    lo if lo is not None else hi, hi if hi is not None else lo)
                if r.get("remote_group_id"):
                    sources = [f"{ip['ip_address']}/32" for p in self.ports.values()
                               if r["remote_group_id"] in p["security_groups"]
                               for ip in p["fixed_ips"] if ipv4(ip["ip_address"])]
                elif r.get("remote_ip_prefix"):
                    sources = [r["remote_ip_prefix"]] if ipv4(r["remote_ip_prefix"]) else []
                else:
                    sources = [ANY]
                protocol = protocol_number(r.get("protocol"))
                allows += [Allow(protocol, ports, source) for source in sources]
        return allows

    def observe_firewall(self):
        """Every server with a body: its container, address, what its port
        lets in, and the router (which filters what it forwards itself)."""
        with self.lock:
            desired = {}
            for s in self.servers.values():
                if not s.get("has_body") or s.get("deleting"):
                    continue
                port = self.ports[s["ports"][0]]
                desired[f"os-{s['id']}"] = (port["fixed_ips"][0]["ip_address"],
                                            self.port_allows(port), [self.router_private])
            return desired

    def enforce_firewall(self):
        self.firewall.apply(self.observe_firewall)

    # -- auth

    def check_token(self, token):
        if not token:
            raise ApiError(401, {"error": {"code": 401, "title": "Unauthorized",
                                           "message": "The request you have made requires authentication."}})
        cached = self.tokens.get(token)
        if cached and cached[1] > time.time():
            return cached[0]
        for attempt in range(2):
            if not self.service_token:
                admin = json.loads((self.directory / "service.json").read_text())["admin_password"]
                self.service_token, _ = password_token("admin", admin, "admin")
            req = urllib.request.Request(KEYSTONE + "/v3/auth/tokens", headers={
                "X-Auth-Token": self.service_token, "X-Subject-Token": token})
            try:
                with urllib.request.urlopen(req) as r:
                    body = json.loads(r.read())
                project = body["token"].get("project", {}).get("id")
                self.tokens[token] = (project, time.time() + 300)
                return project
            except urllib.error.HTTPError as e:
                if e.code == 401 and attempt == 0:
                    self.service_token = None
                    continue
                raise ApiError(401, {"error": {"code": 401, "title": "Unauthorized",
                                               "message": "The request you have made requires authentication."}})

    # -- views (as the API reference shows them)

    def flavor_view(self, f, microversion, detail=True):
        links = [{"rel": "self", "href": f"http://{HOST}:{PORTS['compute']}/v2.1/flavors/{f['id']}"}]
        if not detail:
            return {"id": f["id"], "name": f["name"], "links": links}
        view = {"id": f["id"], "name": f["name"], "vcpus": f["vcpus"], "ram": f["ram"],
                "disk": f["disk"], "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": False,
                "swap": 0 if microversion >= (2, 75) else "", "rxtx_factor": 1.0,
                "os-flavor-access:is_public": True, "links": links}
        if microversion >= (2, 55):
            view["description"] = None
        if microversion >= (2, 61):
            view["extra_specs"] = {}
        return view

    def server_view(self, s, microversion):
        addresses = {}
        for pid in s["ports"]:
            port = self.ports.get(pid)
            if not port:
                continue
            net = self.networks[port["network_id"]]
            entries = addresses.setdefault(net["name"], [])
            for ip in port["fixed_ips"]:
                entries.append({"version": 4, "addr": ip["ip_address"], "OS-EXT-IPS:type": "fixed",
                                "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
            for fip in self.floatingips.values():
                if fip["port_id"] == pid:
                    entries.append({"version": 4, "addr": fip["floating_ip_address"],
                                    "OS-EXT-IPS:type": "floating",
                                    "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
        f = self.flavors[s["flavor_id"]]
        if microversion >= (2, 47):
            flavor = {"vcpus": f["vcpus"], "ram": f["ram"], "disk": f["disk"], "ephemeral": 0,
                      "swap": 0, "original_name": f["name"], "extra_specs": {}}
        else:
            flavor = {"id": f["id"], "links": [{"rel": "bookmark", "href": f"http://{HOST}:{PORTS['compute']}/flavors/{f['id']}"}]}
        status = s["status"]
        forced = s.get("forced_status")
        if forced and forced[1] > time.time():
            status = forced[0]
        view = {
            "id": s["id"], "name": s["name"], "status": status,
            "tenant_id": s["project_id"], "user_id": s["user_id"], "metadata": s["metadata"],
            "hostId": hashlib.sha224((s["project_id"] + "host1").encode()).hexdigest(),
            "image": {"id": s["image_id"], "links": [{"rel": "bookmark", "href": f"http://{HOST}:{PORTS['compute']}/images/{s['image_id']}"}]},
            "flavor": flavor, "created": s["created"], "updated": s["updated"],
            "addresses": addresses, "accessIPv4": "", "accessIPv6": "",
            "links": [{"rel": "self", "href": f"http://{HOST}:{PORTS['compute']}/v2.1/servers/{s['id']}"}],
            "OS-DCF:diskConfig": "MANUAL", "progress": 0 if status != "ACTIVE" else 100,
            "OS-EXT-AZ:availability_zone": s["availability_zone"], "config_drive": "",
            "key_name": s["key_name"], "OS-SRV-USG:launched_at": s.get("launched_at"),
            "OS-SRV-USG:terminated_at": None,
            "security_groups": [{"name": n} for n in s["security_groups"]],
            "OS-EXT-STS:task_state": "deleting" if s.get("deleting") else None,
            "OS-EXT-STS:vm_state": {"ACTIVE": "active", "BUILD": "building", "ERROR": "error"}.get(status, "active"),
            "OS-EXT-STS:power_state": 1 if status == "ACTIVE" else 0,
            "os-extended-volumes:volumes_attached": [],
        }
        if microversion >= (2, 19):
            view["description"] = None
        if microversion >= (2, 26):
            view["tags"] = []
        if s.get("fault"):
            view["fault"] = s["fault"]
        return view

    def network_view(self, n):
        return {"id": n["id"], "name": n["name"], "admin_state_up": True, "status": "ACTIVE",
                "subnets": n["subnets"], "shared": False, "router:external": n["external"],
                "project_id": self.project_id or "", "tenant_id": self.project_id or "",
                "availability_zone_hints": [], "availability_zones": ["nova"],
                "created_at": n["created_at"], "updated_at": n["created_at"], "description": "",
                "ipv4_address_scope": None, "ipv6_address_scope": None, "l2_adjacency": True,
                "mtu": 1450, "port_security_enabled": True, "qos_policy_id": None,
                "revision_number": 1, "tags": [], "is_default": False}

    def port_view(self, p):
        return public(p)

    def sg_view(self, g):
        return dict(g, security_group_rules=list(g["security_group_rules"]))

    def image_view(self, i):
        return {"id": i["id"], "name": i["name"], "status": "active", "visibility": "public",
                "protected": False, "os_hidden": False, "checksum": hashlib.md5(i["id"].encode()).hexdigest(),
                "os_hash_algo": "sha512", "os_hash_value": hashlib.sha512(i["id"].encode()).hexdigest(),
                "container_format": "bare", "disk_format": "qcow2", "size": 536870912,
                "virtual_size": 2147483648, "min_disk": 0, "min_ram": 0, "owner": self.project_id or "",
                "created_at": i["created_at"], "updated_at": i["created_at"], "tags": [],
                "file": f"/v2/images/{i['id']}/file", "self": f"/v2/images/{i['id']}",
                "schema": "/v2/schemas/image"}

    def fip_view(self, f):
        return public(f)

    # -- resources

    def allocate_ip(self, network_id, wanted=None):
        subnet = self.subnets[self.networks[network_id]["subnets"][0]]
        if wanted is not None:
            # Nova's create with networks[].fixed_ip (API reference, "Create
            # Server"): an address of the subnet that no port holds, else 400
            # (FixedIpAlreadyInUse, InvalidFixedIpAddress are badRequest in
            # nova/api/openstack/compute/servers.py).
            if wanted in subnet["free"]:
                subnet["free"].remove(wanted)
                return subnet["id"], wanted
            holder = next((p["device_id"] for p in self.ports.values()
                           if any(f["ip_address"] == wanted for f in p["fixed_ips"])), None)
            if holder is not None:
                raise nova_error(400, "badRequest",
                                 f"Fixed IP address {wanted} is already in use on instance {holder}.")
            raise nova_error(400, "badRequest",
                             f"Fixed IP {wanted} is not a valid ip address for network {network_id}.")
        if not subnet["free"]:
            raise neutron_error(409, "IpAddressGenerationFailure",
                                f"No more IP addresses available on network {network_id}.")
        return subnet["id"], subnet["free"].pop(0)

    def release_ip(self, subnet_id, ip):
        self.subnets[subnet_id]["free"].append(ip)

    def make_port(self, network_id, device_id, security_groups, name="", fixed_ip=None):
        subnet_id, ip = self.allocate_ip(network_id, fixed_ip)
        pid = str(uuid.uuid4())
        mac = "fa:16:3e:%02x:%02x:%02x" % tuple(random.randrange(256) for _ in range(3))
        self.ports[pid] = {
            "id": pid, "name": name, "network_id": network_id, "device_id": device_id,
            "device_owner": "compute:nova", "mac_address": mac, "admin_state_up": True,
            "status": "ACTIVE", "fixed_ips": [{"subnet_id": subnet_id, "ip_address": ip}],
            "security_groups": security_groups, "project_id": self.project_id,
            "tenant_id": self.project_id, "description": "", "allowed_address_pairs": [],
            "extra_dhcp_opts": [], "binding:vnic_type": "normal", "port_security_enabled": True,
            "tags": [], "created_at": now(), "updated_at": now(), "revision_number": 1,
        }
        return pid

    def used(self):
        live = [s for s in self.servers.values()]
        return {"instances": len(live),
                "cores": sum(self.flavors[s["flavor_id"]]["vcpus"] for s in live),
                "ram": sum(self.flavors[s["flavor_id"]]["ram"] for s in live)}

    def boot(self, sid):
        """Gives a new server its body, then ACTIVE (or ERROR with a fault)."""
        with self.lock:
            s = self.servers.get(sid)
            if not s:
                return
            fail = self.faults["servers_fail"] > 0
            if fail:
                self.faults["servers_fail"] -= 1
            fail = fail or s["availability_zone"] in self.zones_down
            port = self.ports[s["ports"][0]]
            ip = port["fixed_ips"][0]["ip_address"]
            keypair = self.keypairs.get(s["key_name"] or "", {})
            image = self.images[s["image_id"]]
            user_sessions_after = self.faults["user_sessions_after_s"]
        if fail:
            self.set_error(sid, "No valid host was found. There are not enough hosts available.", 500)
            return
        if self.options is None:
            self.options = run_options(NODE_IMAGE)
        error = start_body(f"os-{sid}", s["name"], PRIVATE["docker"], ip,
                           [LABEL, f"openstack.server-id={sid}"], image["login_user"],
                           keypair.get("public_key", ""), s.get("user_data", ""),
                           self.options, image["body"], first_boot=image["body"] == BARE_IMAGE,
                           user_sessions_after_s=user_sessions_after)
        if error:
            log(f"{sid}: docker run failed: {error}")
            self.set_error(sid, f"Build of instance {sid} aborted: {error[:200]}", 500)
            return
        with self.lock:
            s = self.servers.get(sid)
            if s is None or s.get("deleting"):
                return
            s["has_body"] = True
        # Filtered before it answers as ACTIVE, as a port is bound with its
        # security groups before Nova reports the server up.
        self.enforce_firewall()
        with self.lock:
            s = self.servers.get(sid)
            if s is None or s.get("deleting"):
                return
            s["status"], s["updated"], s["launched_at"] = "ACTIVE", now(), now()
            for fip in self.floatingips.values():
                if fip["port_id"] in s["ports"]:
                    self.connect_fip(fip)
        log(f"{sid}: {s['name']} ACTIVE at {ip}")

    def add_bodyless(self, servers):
        """Servers for the daemon scale bench: ACTIVE at once, no body; each
        one's port has the address given (no subnet allocation)."""
        project = json.loads((self.directory / "service.json").read_text())["project_id"]
        private = next(n for n in self.networks.values() if not n["external"])
        image_id = next(iid for iid, i in self.images.items() if i["name"] == "debian-12")
        for b in servers:
            sid = b["id"]
            pid = str(uuid.uuid4())
            self.ports[pid] = {
                "id": pid, "name": "", "network_id": private["id"], "device_id": sid,
                "device_owner": "compute:nova", "mac_address": "fa:16:3e:00:00:00",
                "admin_state_up": True, "status": "ACTIVE",
                "fixed_ips": [{"subnet_id": private["subnets"][0], "ip_address": b["address"]}],
                "security_groups": [], "project_id": project,
                "tenant_id": project, "description": "", "allowed_address_pairs": [],
                "extra_dhcp_opts": [], "binding:vnic_type": "normal",
                "port_security_enabled": True, "tags": [], "created_at": now(),
                "updated_at": now(), "revision_number": 1,
            }
            self.servers[sid] = {
                "id": sid, "name": b["name"], "status": "ACTIVE", "flavor_id": "2",
                "image_id": image_id, "key_name": None, "metadata": b["metadata"],
                "ports": [pid], "project_id": project, "user_id": "u",
                "created": now(), "updated": now(), "created_seq": time.time(),
                "availability_zone": "nova", "security_groups": ["default"],
                "user_data": "", "launched_at": now(), "bodyless": True,
            }

    def set_error(self, sid, message, code):
        with self.lock:
            s = self.servers.get(sid)
            if not s:
                return False
            s["status"], s["updated"] = "ERROR", now()
            s["fault"] = {"code": code, "message": message, "created": now()}
        docker("kill", f"os-{sid}", check=False)
        log(f"{sid}: ERROR: {message}")
        return True

    def connect_fip(self, fip):
        port = self.ports.get(fip["port_id"])
        if port and self.servers.get(port["device_id"], {}).get("status") == "ACTIVE":
            network = self.networks[port["network_id"]]["docker"]
            self.router.map(fip["floating_ip_address"], port["fixed_ips"][0]["ip_address"], network)

    def disconnect_fip(self, fip):
        self.router.unmap(fip["floating_ip_address"])

    def finish_delete(self, sid):
        docker("rm", "-f", "-v", f"os-{sid}", check=False)
        with self.lock:
            s = self.servers.pop(sid, None)
            if not s:
                return
            for pid in s["ports"]:
                port = self.ports.pop(pid, None)
                if port and not s.get("bodyless"):
                    for ip in port["fixed_ips"]:
                        self.release_ip(ip["subnet_id"], ip["ip_address"])
                for fip in self.floatingips.values():
                    if fip["port_id"] == pid:
                        self.disconnect_fip(fip)
                        fip.update(port_id=None, fixed_ip_address=None, router_id=None, status="DOWN")
            for g in self.server_groups.values():
                if sid in g["members"]:
                    g["members"].remove(sid)
        # Its address leaves every remote group that admitted it.
        self.enforce_firewall()
        log(f"{sid}: deleted")


# ---------------------------------------------------------------- handlers


def microversion_of(headers):
    value = headers.get("OpenStack-API-Version") or ""
    m = re.match(r"compute\s+(\d+)\.(\d+)", value)
    if not m:
        m = re.match(r"(\d+)\.(\d+)", headers.get("X-OpenStack-Nova-API-Version") or "")
    if not m:
        return (2, 1)
    v = (int(m.group(1)), int(m.group(2)))
    top = tuple(int(x) for x in NOVA_MAX.split("."))
    if v > top or v < (2, 1):
        raise ApiError(406, {"computeFault": {"code": 406, "message": f"Version {v[0]}.{v[1]} is not supported by the API."}})
    return v


def compute(cloud, method, path, query, body, headers, project):
    mv = microversion_of(headers)
    parts = [p for p in path.split("/") if p]
    if parts[:1] != ["v2.1"]:
        raise nova_error(404, "itemNotFound", "Not found")
    parts = parts[1:]
    c = cloud
    with c.lock:
        if parts == ["flavors"] or parts == ["flavors", "detail"]:
            detail = parts == ["flavors", "detail"]
            return 200, {"flavors": paginate([c.flavor_view(f, mv, detail) for f in c.flavors.values()], query)}
        if len(parts) == 2 and parts[0] == "flavors":
            f = c.flavors.get(parts[1])
            if not f:
                raise nova_error(404, "itemNotFound", f"Flavor {parts[1]} could not be found.")
            return 200, {"flavor": c.flavor_view(f, mv)}
        if parts == ["os-availability-zone"] and method == "GET":
            return 200, {"availabilityZoneInfo": [
                {"zoneName": z, "zoneState": {"available": z not in c.zones_down}, "hosts": None}
                for z in ZONES]}
        if parts == ["os-keypairs"]:
            if method == "GET":
                listed = paginate(list(c.keypairs.values()), query, key="name")
                return 200, {"keypairs": [{"keypair": {k: v for k, v in kp.items() if k in ("name", "public_key", "fingerprint", "type")}} for kp in listed]}
            kp = body.get("keypair", {})
            name, key = kp.get("name"), kp.get("public_key")
            if not name or not key:
                raise nova_error(400, "badRequest", "Keypair data is invalid: name and public_key are required.")
            if name in c.keypairs:
                raise nova_error(409, "conflictingRequest", f"Key pair '{name}' already exists.")
            c.keypairs[name] = {"name": name, "public_key": key, "type": "ssh", "user_id": "u",
                                "fingerprint": hashlib.md5(key.encode()).hexdigest(),
                                "id": len(c.keypairs) + 1, "created_at": now(), "deleted": False,
                                "deleted_at": None, "updated_at": None}
            return (201 if mv >= (2, 2) else 200), {"keypair": {k: v for k, v in c.keypairs[name].items() if k in ("name", "public_key", "fingerprint", "type", "user_id")}}
        if len(parts) == 2 and parts[0] == "os-keypairs":
            name = urllib.parse.unquote(parts[1])
            if name not in c.keypairs:
                raise nova_error(404, "itemNotFound", f"Keypair {name} not found for user u")
            if method == "DELETE":
                del c.keypairs[name]
                return (204 if mv >= (2, 2) else 202), None
            return 200, {"keypair": c.keypairs[name]}
        if parts == ["os-server-groups"]:
            if method == "GET":
                return 200, {"server_groups": paginate(list(c.server_groups.values()), query)}
            g = body.get("server_group", {})
            policies = g.get("policies") or ([g["policy"]] if g.get("policy") else [])
            allowed = {"affinity", "anti-affinity"} | ({"soft-affinity", "soft-anti-affinity"} if mv >= (2, 15) else set())
            if len(policies) != 1 or policies[0] not in allowed:
                raise nova_error(400, "badRequest", f"Invalid input for field/attribute policies. Value: {policies}.")
            gid = str(uuid.uuid4())
            c.server_groups[gid] = {"id": gid, "name": g.get("name", ""), "policies": policies,
                                    "members": [], "metadata": {}, "project_id": project, "user_id": "u"}
            return 200, {"server_group": c.server_groups[gid]}
        if len(parts) == 2 and parts[0] == "os-server-groups":
            if parts[1] not in c.server_groups:
                raise nova_error(404, "itemNotFound", f"Instance group {parts[1]} could not be found.")
            del c.server_groups[parts[1]]
            return 204, None
        if parts == ["servers"] and method == "POST":
            return create_server(c, body, project, mv)
        if parts in (["servers"], ["servers", "detail"]):
            found = c.servers.values()
            if "name" in query:
                # A name anchored on a literal (what provision asks: "^web-",
                # "^web-worker-1$") is matched without a regex, so a listing
                # among the daemon-scale bench's 60,000 servers stays cheap.
                literal = re.fullmatch(r"\^([A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*)(-|\$)", query["name"])
                if literal and literal.group(2) == "-":
                    prefix = literal.group(1) + "-"
                    found = [s for s in found if s["name"].startswith(prefix)]
                elif literal:
                    found = [s for s in found if s["name"] == literal.group(1)]
                else:
                    found = [s for s in found if re.search(query["name"], s["name"])]
            found = sorted(found, key=lambda s: s["created_seq"])
            hidden = c.faults["hide_servers"]
            if hidden and parts == ["servers", "detail"]:
                listed = {s["name"] for s in found}
                found = [s for s in found if s["name"] not in hidden]
                c.faults["hide_servers"] = [n for n in hidden if n not in listed]
            if "marker" in query:
                ids = [s["id"] for s in found]
                if query["marker"] not in ids:
                    raise nova_error(400, "badRequest", f"marker [{query['marker']}] not found")
                found = found[ids.index(query["marker"]) + 1:]
            limit = min(int(query.get("limit", 1000)), 1000)
            page = found[:limit]
            if parts == ["servers"]:
                answer = {"servers": [{"id": s["id"], "name": s["name"], "links": []} for s in page]}
            else:
                answer = {"servers": [c.server_view(s, mv) for s in page]}
            if len(found) > limit:
                answer["servers_links"] = [{"rel": "next", "href": f"http://{HOST}:{PORTS['compute']}/v2.1/servers/detail?limit={limit}&marker={page[-1]['id']}"}]
            return 200, answer
        if len(parts) == 2 and parts[0] == "servers":
            s = c.servers.get(parts[1])
            if not s:
                raise nova_error(404, "itemNotFound", f"Instance {parts[1]} could not be found.")
            if method == "DELETE":
                # Nova api-ref, Delete Server: 204 at once; "Asynchronous
                # postconditions": the server shows task_state deleting, then
                # leaves the list once the compute node has deleted it.
                if not s.get("deleting"):
                    s["deleting"] = True
                    threading.Thread(target=c.finish_delete, args=(s["id"],), daemon=True).start()
                return 204, None
            return 200, {"server": c.server_view(s, mv)}
        if parts == ["limits"]:
            used = c.used()
            return 200, {"limits": {"rate": [], "absolute": {
                "maxTotalInstances": c.quota["instances"], "totalInstancesUsed": used["instances"],
                "maxTotalCores": c.quota["cores"], "totalCoresUsed": used["cores"],
                "maxTotalRAMSize": c.quota["ram"], "totalRAMUsed": used["ram"],
                "maxServerMeta": 128, "maxTotalKeypairs": 100, "maxServerGroups": 10,
                "maxServerGroupMembers": 10, "totalServerGroupsUsed": len(c.server_groups)}}}
    raise nova_error(404, "itemNotFound", "The resource could not be found.")


def create_server(c, body, project, mv):
    s = body.get("server") or {}
    for field in ("name", "flavorRef"):
        if not s.get(field):
            raise nova_error(400, "badRequest", f"Invalid input for field/attribute server. Value: {field} is a required property")
    flavor = c.flavors.get(s["flavorRef"])
    if not flavor:
        raise nova_error(400, "badRequest", f"Flavor {s['flavorRef']} could not be found.")
    image_id = s.get("imageRef")
    if image_id not in c.images:
        raise nova_error(400, "badRequest", f"Image {image_id} could not be found.")
    if s.get("availability_zone") and s["availability_zone"] not in ZONES:
        raise nova_error(400, "badRequest", "The requested availability zone is not available")
    if s.get("key_name") and s["key_name"] not in c.keypairs:
        raise nova_error(400, "badRequest", f"Invalid key_name provided.")
    used = c.used()
    for res, need in (("instances", 1), ("cores", flavor["vcpus"]), ("ram", flavor["ram"])):
        if used[res] + need > c.quota[res]:
            raise nova_error(403, "forbidden",
                             f"Quota exceeded for {res}: Requested {need}, but already used {used[res]} of {c.quota[res]} {res}.")
    networks = s.get("networks") or []
    if networks in ("auto", "none") or not networks:
        private = [n for n in c.networks.values() if not n["external"]]
        networks = [{"uuid": private[0]["id"]}]
    groups = []
    for g in s.get("security_groups") or [{"name": "default"}]:
        match = [x for x in c.security_groups.values() if x["name"] == g["name"] or x["id"] == g["name"]]
        if g["name"] != "default" and not match:
            raise nova_error(400, "badRequest", f"Security group {g['name']} not found for project {project}.")
        groups.append((g["name"], [m["id"] for m in match]))
    hints = body.get("os:scheduler_hints") or {}
    if hints.get("group") and hints["group"] not in c.server_groups:
        raise nova_error(400, "badRequest", f"Invalid server group {hints['group']}.")
    meta = s.get("metadata") or {}
    if any(not isinstance(v, str) for v in meta.values()) or len(meta) > 128:
        raise nova_error(400, "badRequest", "Invalid input for field/attribute metadata.")
    user_data = ""
    if s.get("user_data"):
        import base64
        try:
            user_data = base64.b64decode(s["user_data"], validate=True).decode(errors="replace")
        except Exception:
            raise nova_error(400, "badRequest", "User data needs to be valid base 64.")
    sid = str(uuid.uuid4())
    ports = []
    for n in networks:
        if "port" in n:
            raise nova_error(400, "badRequest", "the simulator creates ports itself; pass networks by uuid")
        if n.get("uuid") not in c.networks:
            raise nova_error(400, "badRequest", f"Network {n.get('uuid')} could not be found.")
        ports.append(c.make_port(n["uuid"], sid, [i for _, ids in groups for i in ids],
                                 fixed_ip=n.get("fixed_ip")))
    c.servers[sid] = {
        "id": sid, "name": s["name"], "status": "BUILD", "flavor_id": flavor["id"], "image_id": image_id,
        "key_name": s.get("key_name"), "metadata": meta, "ports": ports, "project_id": project,
        "user_id": "u", "created": now(), "updated": now(), "created_seq": time.time(),
        "availability_zone": s.get("availability_zone") or "nova",
        "security_groups": [name for name, _ in groups], "user_data": user_data,
    }
    if hints.get("group"):
        c.server_groups[hints["group"]]["members"].append(sid)
    threading.Thread(target=c.boot, args=(sid,), daemon=True).start()
    return 202, {"server": {"id": sid, "links": [], "OS-DCF:diskConfig": "MANUAL",
                            "security_groups": [{"name": n} for n, _ in groups],
                            "adminPass": uuid.uuid4().hex[:12]}}


def paginate(items, query, key="id"):
    """Neutron's, Glance's and Nova's `marker` and `limit`."""
    if "marker" in query:
        ids = [i[key] for i in items]
        if query["marker"] not in ids:
            raise ApiError(400, {"NeutronError": {"type": "BadRequest", "message": f"marker {query['marker']} not found", "detail": ""}})
        items = items[ids.index(query["marker"]) + 1:]
    if "limit" in query:
        items = items[:int(query["limit"])]
    return items


def filtered(items, query, fields):
    out = []
    for item in items:
        if all(str(item.get(f)) == query[f] if not isinstance(item.get(f), bool)
               else str(item.get(f)).lower() == query[f].lower()
               for f in fields if f in query):
            out.append(item)
    return paginate(out, query)


def network(cloud, method, path, query, body, headers, project):
    parts = [p for p in path.split("/") if p]
    if parts[:1] != ["v2.0"]:
        raise neutron_error(404, "HTTPNotFound", "The resource could not be found.")
    parts = [p[:-5] if p.endswith(".json") else p for p in parts[1:]]
    c = cloud
    with c.lock:
        if parts == ["networks"]:
            views = [c.network_view(n) for n in c.networks.values()]
            return 200, {"networks": filtered(views, query, ["id", "name", "router:external", "shared"])}
        if len(parts) == 2 and parts[0] == "networks":
            n = c.networks.get(parts[1])
            if not n:
                raise neutron_error(404, "NetworkNotFound", f"Network {parts[1]} could not be found.")
            return 200, {"network": c.network_view(n)}
        if parts == ["ports"]:
            views = [c.port_view(p) for p in c.ports.values()]
            return 200, {"ports": filtered(views, query, ["id", "device_id", "network_id", "name"])}
        if len(parts) == 2 and parts[0] == "ports":
            p = c.ports.get(parts[1])
            if not p:
                raise neutron_error(404, "PortNotFound", f"Port {parts[1]} could not be found.")
            return 200, {"port": c.port_view(p)}
        if parts == ["security-groups"]:
            if method == "GET":
                views = [c.sg_view(g) for g in c.security_groups.values()]
                return 200, {"security_groups": filtered(views, query, ["id", "name"])}
            g = body.get("security_group", {})
            gid = str(uuid.uuid4())
            rules = [{"id": str(uuid.uuid4()), "security_group_id": gid, "direction": "egress",
                      "ethertype": e, "protocol": None, "port_range_min": None, "port_range_max": None,
                      "remote_ip_prefix": None, "remote_group_id": None, "description": "",
                      "project_id": project, "tenant_id": project} for e in ("IPv4", "IPv6")]
            c.security_groups[gid] = {"id": gid, "name": g.get("name", ""), "description": g.get("description", ""),
                                      "project_id": project, "tenant_id": project, "stateful": True,
                                      "security_group_rules": rules, "tags": [], "created_at": now(),
                                      "updated_at": now(), "revision_number": 1}
            return 201, {"security_group": c.sg_view(c.security_groups[gid])}
        if len(parts) == 2 and parts[0] == "security-groups":
            g = c.security_groups.get(parts[1])
            if not g:
                raise neutron_error(404, "SecurityGroupNotFound", f"Security group {parts[1]} does not exist")
            if method == "DELETE":
                if any(parts[1] in p["security_groups"] for p in c.ports.values()):
                    raise neutron_error(409, "SecurityGroupInUse", f"Security Group {parts[1]} in use.")
                del c.security_groups[parts[1]]
                return 204, None
            return 200, {"security_group": c.sg_view(g)}
        if parts == ["security-group-rules"] and method == "POST":
            r = dict(body.get("security_group_rule", {}))
            g = c.security_groups.get(r.get("security_group_id"))
            if not g:
                raise neutron_error(404, "SecurityGroupNotFound", f"Security group {r.get('security_group_id')} does not exist")
            if r.get("direction") not in ("ingress", "egress"):
                raise neutron_error(400, "HTTPBadRequest", "Invalid input for direction.")
            if r.get("remote_group_id") and r["remote_group_id"] not in c.security_groups:
                raise neutron_error(404, "SecurityGroupNotFound", f"Security group {r['remote_group_id']} does not exist")
            # neutron-lib's IP_PROTOCOL_MAP names (or a number 0-255); port
            # ranges only for the protocols that have ports, else 400
            # SecurityGroupInvalidProtocolForPortRange (neutron
            # securitygroups_db._validate_port_range, and its unit tests).
            proto = r.get("protocol")
            names = {"ah", "dccp", "egp", "esp", "gre", "hopopt", "icmp", "igmp", "ip", "ipip", "ipv6-encap",
                     "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts", "ipv6-route", "ospf",
                     "pgm", "rsvp", "sctp", "tcp", "udp", "udplite", "vrrp"}
            if proto is not None and proto not in names and not (str(proto).isdigit() and int(proto) <= 255):
                raise neutron_error(400, "SecurityGroupRuleInvalidProtocol",
                                    f"Security group rule protocol {proto} not supported.")
            has_ports = r.get("port_range_min") is not None or r.get("port_range_max") is not None
            if has_ports and proto not in ("tcp", "udp", "udplite", "sctp", "dccp", "6", "17", "33", "132", "136"):
                raise neutron_error(400, "SecurityGroupInvalidProtocolForPortRange",
                                    f"Invalid protocol {proto} for port range, only supported for TCP, UDP, UDPLITE, SCTP and DCCP.")
            keys = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix", "remote_group_id")
            rule = {k: r.get(k) for k in keys}
            rule.setdefault("ethertype", "IPv4")
            for existing in g["security_group_rules"]:
                if all(existing.get(k) == rule.get(k) for k in keys):
                    raise neutron_error(409, "SecurityGroupRuleExists", f"Security group rule already exists. Rule id is {existing['id']}.")
            rule.update(id=str(uuid.uuid4()), security_group_id=g["id"], description=r.get("description", ""),
                        project_id=project, tenant_id=project)
            g["security_group_rules"].append(rule)
            return 201, {"security_group_rule": rule}
        if len(parts) == 2 and parts[0] == "security-group-rules" and method == "DELETE":
            # api-ref: DELETE /v2.0/security-group-rules/{id}, 204; 404
            # SecurityGroupRuleNotFound for an unknown id.
            for g in c.security_groups.values():
                kept = [r for r in g["security_group_rules"] if r["id"] != parts[1]]
                if len(kept) != len(g["security_group_rules"]):
                    g["security_group_rules"] = kept
                    return 204, None
            raise neutron_error(404, "SecurityGroupRuleNotFound", f"Security group rule {parts[1]} does not exist")
        if parts == ["floatingips"]:
            if method == "GET":
                views = [c.fip_view(f) for f in c.floatingips.values()]
                return 200, {"floatingips": filtered(views, query, ["id", "description", "port_id", "floating_network_id", "floating_ip_address"])}
            f = body.get("floatingip", {})
            net = c.networks.get(f.get("floating_network_id"))
            if not net or not net["external"]:
                raise neutron_error(404, "ExternalGatewayForFloatingIPNotFound", f"External network {f.get('floating_network_id')} is not reachable.")
            if len(c.floatingips) + 1 > c.quota["floatingip"]:
                raise neutron_error(409, "OverQuota", "Quota exceeded for resources: ['floatingip'].")
            port = c.ports.get(f.get("port_id") or "")
            if f.get("port_id") and not port:
                raise neutron_error(404, "PortNotFound", f"Port {f['port_id']} could not be found.")
            subnet_id, ip = c.allocate_ip(net["id"])
            fid = str(uuid.uuid4())
            c.floatingips[fid] = {
                "id": fid, "floating_ip_address": ip, "floating_network_id": net["id"], "_subnet": subnet_id,
                "port_id": port["id"] if port else None, "router_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "router")) if port else None,
                "fixed_ip_address": port["fixed_ips"][0]["ip_address"] if port else None,
                "status": "ACTIVE" if port else "DOWN", "description": f.get("description", ""),
                "project_id": project, "tenant_id": project, "tags": [], "dns_domain": "", "dns_name": "",
                "port_forwardings": [], "qos_policy_id": None, "revision_number": 1,
                "created_at": now(), "updated_at": now()}
            if port:
                c.connect_fip(c.floatingips[fid])
            return 201, {"floatingip": c.fip_view(c.floatingips[fid])}
        if len(parts) == 2 and parts[0] == "floatingips":
            f = c.floatingips.get(parts[1])
            if not f:
                raise neutron_error(404, "FloatingIPNotFound", f"Floating IP {parts[1]} could not be found")
            if method == "DELETE":
                c.disconnect_fip(f)
                c.release_ip(f["_subnet"], f["floating_ip_address"])
                del c.floatingips[parts[1]]
                return 204, None
            if method == "PUT":
                new = body.get("floatingip", {})
                if "port_id" in new:
                    c.disconnect_fip(f)
                    port = c.ports.get(new["port_id"] or "")
                    f.update(port_id=port["id"] if port else None,
                             fixed_ip_address=port["fixed_ips"][0]["ip_address"] if port else None,
                             status="ACTIVE" if port else "DOWN")
                    if port:
                        c.connect_fip(f)
                if "description" in new:
                    f["description"] = new["description"]
            return 200, {"floatingip": c.fip_view(f)}
    raise neutron_error(404, "HTTPNotFound", "The resource could not be found.")


def image(cloud, method, path, query, body, headers, project):
    parts = [p for p in path.split("/") if p]
    c = cloud
    with c.lock:
        if parts == ["v2", "images"]:
            found = [c.image_view(i) for i in c.images.values()]
            found = filtered(found, query, ["name", "id", "status", "visibility"])
            return 200, {"images": found, "first": "/v2/images", "schema": "/v2/schemas/images"}
        if len(parts) == 3 and parts[:2] == ["v2", "images"]:
            i = c.images.get(parts[2])
            if not i:
                return 404, None, f"No image found with ID {parts[2]}"
            return 200, c.image_view(i)
    return 404, None, "The resource could not be found."


def version_document(service):
    if service == "compute":
        base = f"http://{HOST}:{PORTS['compute']}/v2.1/"
        return 200, {"version": {"id": "v2.1", "status": "CURRENT", "version": NOVA_MAX,
                                 "min_version": "2.1", "updated": "2013-07-23T11:33:21Z",
                                 "links": [{"rel": "self", "href": base}],
                                 "media-types": [{"base": "application/json",
                                                  "type": "application/vnd.openstack.compute+json;version=2.1"}]}}
    if service == "network":
        return 200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
            {"rel": "self", "href": f"http://{HOST}:{PORTS['network']}/v2.0/"}]}]}
    return 300, {"versions": [{"id": f"v2.{n}", "status": "CURRENT" if n == 9 else "SUPPORTED", "links": [
        {"rel": "self", "href": f"http://{HOST}:{PORTS['image']}/v2/"}]} for n in (9, 8, 7)]}


HANDLERS = {"compute": compute, "network": network, "image": image}


def make_handler(cloud, service):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def reply(self, status, body, text=None):
            data = b"" if body is None and text is None else (
                json.dumps(body).encode() if body is not None else text.encode())
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if text is None else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            if service == "compute":
                self.send_header("OpenStack-API-Version", "compute 2.1")
            self.end_headers()
            self.wfile.write(data)

        def handle_any(self, method):
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = url.path.rstrip("/") or "/"
            cloud.count(service, method, path)
            try:
                if method == "GET" and path in ("/", "/v2.1" if service == "compute" else "/"):
                    return self.reply(*version_document(service))
                cloud.maybe_fault()
                project = cloud.check_token(self.headers.get("X-Auth-Token"))
                cloud.project_id = cloud.project_id or project
                body = json.loads(raw) if raw else {}
                result = HANDLERS[service](cloud, method, path, query, body, self.headers, project)
                if service == "network" and method != "GET":
                    # A rule, group or port changed: running servers follow at once.
                    cloud.enforce_firewall()
                if method == "POST" and cloud.take_late_post():
                    return self.reply(504, {"computeFault": {"code": 504, "message": "injected fault: gateway timeout (the request was carried out)"}})
                if len(result) == 3:
                    return self.reply(result[0], None, result[2])
                return self.reply(*result)
            except ApiError as e:
                return self.reply(e.status, e.body)
            except json.JSONDecodeError:
                return self.reply(400, {"badRequest": {"code": 400, "message": "Malformed request body"}})
            except Exception as e:  # a simulator bug: say so, as a 500 would
                log(f"{service} {method} {path}: {e!r}")
                return self.reply(500, {"computeFault": {"code": 500, "message": f"simulator error: {e!r}"}})

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

        def do_PUT(self):
            self.handle_any("PUT")

        def do_DELETE(self):
            self.handle_any("DELETE")

    return Handler


def make_control(cloud):
    class Control(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length)) if length else {}

        def do_GET(self):
            with cloud.lock:
                if self.path == "/calls":
                    return self.reply(200, {"total": sum(cloud.calls.values()), "calls": cloud.calls})
                if self.path == "/state":
                    return self.reply(200, {
                        "servers": [{"id": s["id"], "name": s["name"], "status": s["status"],
                                     "deleting": bool(s.get("deleting")),
                                     "metadata": s["metadata"], "security_groups": s["security_groups"],
                                     "availability_zone": s["availability_zone"], "key_name": s["key_name"],
                                     "flavor": cloud.flavors[s["flavor_id"]]["name"],
                                     "image": cloud.images[s["image_id"]]["name"],
                                     "user_data": s["user_data"]}
                                    for s in cloud.servers.values()],
                        "ports": list(cloud.ports),
                        "keypairs": list(cloud.keypairs),
                        "server_groups": list(cloud.server_groups.values()),
                        "security_groups": [cloud.sg_view(g) for g in cloud.security_groups.values()],
                        "floatingips": [cloud.fip_view(f) for f in cloud.floatingips.values()],
                        "faults": cloud.faults, "quota": cloud.quota})
            self.reply(404, {"error": "unknown"})

        def do_POST(self):
            body = self.body()
            if self.path == "/calls/reset":
                with cloud.lock:
                    cloud.calls.clear()
                return self.reply(200, {})
            if self.path == "/faults":
                with cloud.lock:
                    cloud.faults.update(body)
                return self.reply(200, cloud.faults)
            if self.path == "/images":
                # An image an operator uploads: its servers' bodies run
                # `body` (a local Docker image), logging in as `login_user`.
                with cloud.lock:
                    iid = str(uuid.uuid5(uuid.NAMESPACE_URL, body["name"]))
                    cloud.images[iid] = {"id": iid, "name": body["name"], "body": body["body"],
                                         "login_user": body.get("login_user", "debian"),
                                         "created_at": now()}
                return self.reply(200, {"id": iid})
            if self.path.startswith("/zones/"):
                zone = self.path[len("/zones/"):]
                with cloud.lock:
                    if body.get("down"):
                        cloud.zones_down.add(zone)
                    else:
                        cloud.zones_down.discard(zone)
                    hit = [sid for sid, s in cloud.servers.items()
                           if s["availability_zone"] == zone and s["status"] != "ERROR"]
                if body.get("down"):
                    for sid in hit:
                        cloud.set_error(sid, f"Compute host of zone {zone} failed", 500)
                return self.reply(200, {"servers": hit})
            if self.path == "/quota":
                with cloud.lock:
                    cloud.quota.update(body)
                return self.reply(200, cloud.quota)
            if self.path == "/floatingips":  # one that exists before any cluster
                with cloud.lock:
                    net = next(n for n in cloud.networks.values() if n["external"])
                    subnet_id, ip = cloud.allocate_ip(net["id"])
                    fid = str(uuid.uuid4())
                    cloud.floatingips[fid] = {
                        "id": fid, "floating_ip_address": ip, "floating_network_id": net["id"],
                        "_subnet": subnet_id, "port_id": None, "router_id": None, "fixed_ip_address": None,
                        "status": "DOWN", "description": body.get("description", ""),
                        "project_id": cloud.project_id, "tenant_id": cloud.project_id, "tags": [],
                        "dns_domain": "", "dns_name": "", "port_forwardings": [], "qos_policy_id": None,
                        "revision_number": 1, "created_at": now(), "updated_at": now()}
                    return self.reply(201, {"id": fid, "floating_ip_address": ip})
            # What an operator does by hand to a security group's rules:
            # {"security_group_id": ..., "remove_port": 2377} removes the rules
            # of that port; {"security_group_id": ..., "add": {rule}} adds one.
            if self.path == "/security-group-rules":
                with cloud.lock:
                    g = cloud.security_groups.get(body.get("security_group_id"))
                    if not g:
                        return self.reply(404, {})
                    if "remove_port" in body:
                        g["security_group_rules"] = [r for r in g["security_group_rules"]
                                                     if r.get("port_range_min") != body["remove_port"]]
                    if "add" in body:
                        rule = dict(direction="ingress", ethertype="IPv4", port_range_max=None,
                                    remote_group_id=None, remote_ip_prefix=None, description="")
                        rule.update(body["add"], id=str(uuid.uuid4()), security_group_id=g["id"])
                        g["security_group_rules"].append(rule)
                    view = cloud.sg_view(g)
                cloud.enforce_firewall()
                return self.reply(200, view)
            if self.path == "/bench/servers":
                with cloud.lock:
                    cloud.add_bodyless(body.get("servers", []))
                return self.reply(200, {"servers": len(cloud.servers)})
            m = re.match(r"^/servers/([^/]+)/status$", self.path)
            if m:
                with cloud.lock:
                    s = cloud.servers.get(m.group(1))
                    if s:
                        s["forced_status"] = (body["status"], time.time() + float(body.get("seconds", 60)))
                return self.reply(200 if s else 404, {})
            m = re.match(r"^/servers/([^/]+)/error$", self.path)
            if m:
                ok = cloud.set_error(m.group(1), body.get("message", "Hypervisor failure"), body.get("code", 500))
                return self.reply(200 if ok else 404, {})
            self.reply(404, {"error": "unknown"})

    return Control


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def run(directory):
    cloud = Cloud(directory)
    servers = [Server((HOST, port), make_handler(cloud, service)) for service, port in PORTS.items()]
    servers.append(Server((HOST, CONTROL_PORT), make_control(cloud)))
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    log(f"serving compute :{PORTS['compute']} network :{PORTS['network']} image :{PORTS['image']} control :{CONTROL_PORT}")
    servers[0].serve_forever()


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("setup")
    p.add_argument("--dir", required=True, type=pathlib.Path)
    p.add_argument("--admin-password", required=True)
    p = sub.add_parser("run")
    p.add_argument("--dir", required=True, type=pathlib.Path)
    args = parser.parse_args()
    if args.cmd == "setup":
        setup(args.dir, args.admin_password)
    else:
        run(args.dir)


if __name__ == "__main__":
    sys.exit(main())
