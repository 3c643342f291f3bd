#!/usr/bin/env python3
"""The EC2 test cloud's bridge: gives moto's instances bodies.

moto implements the EC2 API but its instances are records only. This bridge
polls moto and, for each pending or running instance in the bridged subnet,
runs a node container at the instance's private IP on a Docker network whose
subnet is the moto subnet's, with the key pair's public key installed for
root and for the image's login user (with sudo) the way cloud-init would:
`ubuntu` on the default (prepared, Docker installed) image, `admin` on the
bare Debian AMI registered at setup (no Docker, as Debian's own AMIs). An
instance's public IPv4 reaches it only through the NAT router
(node_bodies.NatRouter), as through a VPC's internet gateway. A stopped or
terminated instance's container is removed, and its public address unmapped.
Each body's security groups are enforced on its packets (firewall.py), a
change to a group's rules within a poll.

    ec2_bridge.py setup --endpoint URL --dir DIR   # users, VPC, subnet, network; then auth on
    ec2_bridge.py run --dir DIR                    # the polling loop
"""

import argparse
import json
import os
import pathlib
import sys
import time
import urllib.request

import boto3

from ec2_public import PUBLIC_CIDR, PUBLIC_NETWORK
from firewall import Allow, Enforcer, ipv4, protocol_number
from node_bodies import BARE_IMAGE, NatRouter, docker, run_options, start_body

REGION = "us-east-1"
BACKUP_BUCKET = "provision-backups"
VPC_CIDR = "10.77.0.0/16"
SUBNET_CIDR = "10.77.1.0/24"
NETWORK = "provision-ec2-test"
LABEL = "provision-test-cloud=ec2"
IMAGE = os.environ.get("PROVISION_NODE_IMAGE", "provision/node:bookworm")
LIVE = {"pending", "running"}
# Debian's AMIs are named debian-12-amd64-<date>; their login user is admin.
BARE_AMI_NAME = "debian-12-amd64-20261101-bare"


def router():
    return NatRouter("provision-ec2-router", PUBLIC_NETWORK, PUBLIC_CIDR, LABEL, IMAGE)

def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def client(profile_dir, profile):
    os.environ["AWS_CONFIG_FILE"] = str(profile_dir / "config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(profile_dir / "credentials")
    return boto3.Session(profile_name=profile).client("ec2")


def setup(endpoint, directory):
    directory.mkdir(parents=True, exist_ok=True)
    aws = directory / "aws"
    aws.mkdir(exist_ok=True)
    boot = dict(endpoint_url=endpoint, region_name=REGION,
                aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam = boto3.client("iam", **boot)
    ec2 = boto3.client("ec2", **boot)
    examples = pathlib.Path(__file__).resolve().parents[2] / "examples"
    policy = examples / "ec2-iam-policy.json"
    # Backups to S3: a user holding exactly the example policy, and its bucket.
    s3_policy = examples / "s3-backup-iam-policy.json"
    # us-east-1 takes no LocationConstraint (S3 refuses one naming it).
    boto3.client("s3", **boot).create_bucket(Bucket=BACKUP_BUCKET)
    keys = {}
    for user, document in [
        ("provision-test", policy.read_text()),
        ("provision-backup", s3_policy.read_text()),
        ("bridge", json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}]})),
    ]:
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName=user, PolicyDocument=document)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
    vpc = ec2.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=SUBNET_CIDR)["Subnet"]["SubnetId"]
    bare_ami = ec2.register_image(
        Name=BARE_AMI_NAME, Description="Debian 12 (bookworm), no Docker",
        Architecture="x86_64", RootDeviceName="/dev/xvda", VirtualizationType="hvm",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}])["ImageId"]
    # From here on moto checks every request's signature and policy.
    urllib.request.urlopen(urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
        headers={"Content-Type": "text/plain"})).read()

    # A profile whose secret is wrong, for the tests of refused credentials.
    keys["provision-wrong"] = (keys["provision-test"][0], "not-the-secret")
    config, credentials = [], []
    for user, (key_id, secret) in keys.items():
        config += [f"[profile {user}]", f"region = {REGION}", f"endpoint_url = {endpoint}", ""]
        credentials += [f"[{user}]", f"aws_access_key_id = {key_id}",
                        f"aws_secret_access_key = {secret}", ""]
    (aws / "config").write_text("\n".join(config))
    (aws / "credentials").write_text("\n".join(credentials))
    os.chmod(aws / "credentials", 0o600)

    docker("network", "rm", NETWORK, check=False)
    docker("network", "create", "--subnet", SUBNET_CIDR, "--label", LABEL, NETWORK)
    router().start()
    (directory / "env").write_text(
        f"export AWS_CONFIG_FILE={aws / 'config'}\n"
        f"export AWS_SHARED_CREDENTIALS_FILE={aws / 'credentials'}\n"
        "export AWS_EC2_METADATA_DISABLED=true\n"
        f"export PROVISION_EC2_ENDPOINT={endpoint}\n"
        "export PROVISION_EC2_PROFILE=provision-test\n"
        f"export PROVISION_EC2_SUBNET={subnet}\n"
        f"export PROVISION_EC2_BARE_AMI={bare_ami}\n"
        f"export PROVISION_EC2_VPC={vpc}\n"
        "export PROVISION_S3_PROFILE=provision-backup\n"
        f"export PROVISION_S3_BUCKET={BACKUP_BUCKET}\n")
    print(f"endpoint {endpoint}\nsubnet {subnet}\nprofile provision-test\nenv {directory / 'env'}")


def containers():
    """Instance id → (container name, public address or "-") of the bodies."""
    out = docker("ps", "-a", "--filter", f"label={LABEL}", "--filter", "label=ec2.instance-id",
                 "--format",
                 '{{.Label "ec2.instance-id"}} {{.Names}} {{.Label "ec2.public-ip"}}').stdout
    bodies = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            bodies[fields[0]] = (fields[1], fields[2] if len(fields) > 2 else "")
    return bodies


def remove(nat, body):
    name, public_ip = body
    docker("rm", "-f", "-v", name, check=False)
    if public_ip:
        nat.unmap(public_ip)


def start(ec2, nat, instance, options, bare_ami):
    iid = instance["InstanceId"]
    public_key = ""
    if instance.get("KeyName"):
        pairs = ec2.describe_key_pairs(KeyNames=[instance["KeyName"]], IncludePublicKey=True)
        public_key = pairs["KeyPairs"][0].get("PublicKey", "")
    user_data = ""
    attr = ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")
    if attr.get("UserData", {}).get("Value"):
        import base64
        user_data = base64.b64decode(attr["UserData"]["Value"]).decode(errors="replace")
    ip = instance["PrivateIpAddress"]
    public_ip = instance.get("PublicIpAddress", "")
    bare = instance.get("ImageId") == bare_ami
    body, login_user = (BARE_IMAGE, "admin") if bare else (IMAGE, "ubuntu")
    # An AMI a test registered names its body (tags provision-test:body and
    # provision-test:login-user).
    tags = {}
    if not bare:
        try:
            images = ec2.describe_images(ImageIds=[instance["ImageId"]]).get("Images", [])
            tags = {t["Key"]: t["Value"] for i in images for t in i.get("Tags", [])}
        except Exception as e:  # an AMI moto no longer lists: the default body
            log(f"{iid}: image {instance.get('ImageId')}: {e}")
    if "provision-test:body" in tags:
        body = tags["provision-test:body"]
        login_user = tags.get("provision-test:login-user", login_user)
    error = start_body(f"ec2-{iid}", "ip-" + ip.replace(".", "-"), NETWORK, ip,
                       [LABEL, f"ec2.instance-id={iid}", f"ec2.public-ip={public_ip}"],
                       login_user, public_key, user_data,
                       options, body, first_boot=bare)
    if error:
        log(f"{iid}: docker run failed: {error}")
        return
    if public_ip:
        nat.map(public_ip, ip, NETWORK)
    log(f"{iid}: body started at {ip}" + (f", public {public_ip} by NAT" if public_ip else "")
        + (" (bare image)" if bare else ""))


def permission_allows(perm, members):
    """What one IpPermissions entry lets in (EC2 API reference,
    IpPermission): IpProtocol "-1" is every protocol and port; FromPort and
    ToPort are a tcp/udp port range, or an ICMP type and code (-1: all);
    IpRanges admit CIDRs, UserIdGroupPairs the private addresses of the
    referenced group's members."""
    protocol = protocol_number(perm.get("IpProtocol"))
    ports = None
    lo, hi = perm.get("FromPort"), perm.get("ToPort")
    if protocol is not None and lo is not None and lo != -1:
        ports = (lo, hi if hi not in (None, -1) else lo)
    sources = [r["CidrIp"] for r in perm.get("IpRanges", []) if ipv4(r["CidrIp"])]
    sources += [f"{ip}/32" for pair in perm.get("UserIdGroupPairs", [])
                for ip in members.get(pair.get("GroupId"), [])]
    return [Allow(protocol, ports, source) for source in sources]


def groups_of(instance):
    """An instance's security groups: those of its network interfaces (an
    instance launched with NetworkInterfaces lists none of its own)."""
    ids = {g["GroupId"] for g in instance.get("SecurityGroups", [])}
    ids |= {g["GroupId"] for eni in instance.get("NetworkInterfaces", []) for g in eni.get("Groups", [])}
    return sorted(ids)


def observe_firewall(ec2, instances, subnet, router_ip):
    """Container → (address, what its groups let in, [the router]) for each
    live instance of the bridged subnet."""
    groups = {}
    for page in ec2.get_paginator("describe_security_groups").paginate():
        for g in page["SecurityGroups"]:
            groups[g["GroupId"]] = g
    live = [i for i in instances.values()
            if i["State"]["Name"] in LIVE and i.get("SubnetId") == subnet and i.get("PrivateIpAddress")]
    members = {}
    for i in live:
        for g in groups_of(i):
            members.setdefault(g, []).append(i["PrivateIpAddress"])
    desired = {}
    for i in live:
        allows = [a for g in groups_of(i)
                  for perm in groups.get(g, {}).get("IpPermissions", [])
                  for a in permission_allows(perm, members)]
        desired[f"ec2-{i['InstanceId']}"] = (i["PrivateIpAddress"], allows, [router_ip])
    return desired


def bridge(directory):
    endpoint = (directory / "endpoint").read_text().strip()
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    ec2 = client(directory / "aws", "bridge")
    env = dict(l[len("export "):].split("=", 1) for l in (directory / "env").read_text().splitlines()
               if l.startswith("export "))
    subnet, bare_ami = env["PROVISION_EC2_SUBNET"], env["PROVISION_EC2_BARE_AMI"]
    options = run_options(IMAGE)
    nat = router()
    nat.attach(NETWORK)
    firewall = Enforcer(nat, log)
    router_ip = nat.address_on(NETWORK)
    log(f"bridging {endpoint} subnet {subnet} to docker network {NETWORK}")
    while True:
        try:
            instances = {}
            for page in ec2.get_paginator("describe_instances").paginate():
                for reservation in page["Reservations"]:
                    for i in reservation["Instances"]:
                        instances[i["InstanceId"]] = i
            have = containers()
            for iid, i in instances.items():
                live = i["State"]["Name"] in LIVE and i.get("SubnetId") == subnet
                if live and iid not in have:
                    start(ec2, nat, i, options, bare_ami)
                elif not live and iid in have:
                    remove(nat, have[iid])
                    log(f"{iid}: {i['State']['Name']}, body removed")
            for iid, body in have.items():
                if iid not in instances:
                    remove(nat, body)
                    log(f"{iid}: unknown to moto, body removed")
            firewall.apply(lambda: observe_firewall(ec2, instances, subnet, router_ip))
        except Exception as e:  # moto restarting, docker busy: try again
            log(f"poll failed: {e}")
        time.sleep(0.5)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("setup")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--dir", required=True, type=pathlib.Path)
    p = sub.add_parser("run")
    p.add_argument("--dir", required=True, type=pathlib.Path)
    args = parser.parse_args()
    if args.cmd == "setup":
        setup(args.endpoint, args.dir)
        (args.dir / "endpoint").write_text(args.endpoint)
    else:
        bridge(args.dir)


if __name__ == "__main__":
    sys.exit(main())
