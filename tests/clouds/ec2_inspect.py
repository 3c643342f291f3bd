#!/usr/bin/env python3
"""Prints, as JSON, what the EC2 test cloud holds with a cluster's tag:
instances (with state and private IP), security groups (with their ingress
rules), placement groups, key pairs and volumes. Reads moto with the bridge's
credentials, independent of the driver under test.

    ec2_inspect.py DIR TAG=VALUE     e.g. provision:cluster=0123abcd
"""

import json
import os
import pathlib
import sys

import boto3

directory = pathlib.Path(sys.argv[1])
key, value = sys.argv[2].split("=", 1)
os.environ["AWS_CONFIG_FILE"] = str(directory / "aws" / "config")
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(directory / "aws" / "credentials")
ec2 = boto3.Session(profile_name="bridge").client("ec2")
tag = [{"Name": f"tag:{key}", "Values": [value]}]


def rule(p):
    return {
        "protocol": p["IpProtocol"],
        "from": p.get("FromPort"),
        "to": p.get("ToPort"),
        "cidrs": sorted(r["CidrIp"] for r in p.get("IpRanges", [])),
        "groups": sorted(g["GroupId"] for g in p.get("UserIdGroupPairs", [])),
    }


print(json.dumps({
    "instances": [
        {
            "id": i["InstanceId"],
            "state": i["State"]["Name"],
            "private_ip": i.get("PrivateIpAddress"),
            "client_token": i.get("ClientToken"),
            "image": i.get("ImageId"),
            "instance_type": i.get("InstanceType"),
            "subnet": i.get("SubnetId"),
            "user_data": ec2.describe_instance_attribute(
                InstanceId=i["InstanceId"], Attribute="userData"
            ).get("UserData", {}).get("Value"),
            "volume_sizes": [
                v["Size"]
                for v in ec2.describe_volumes(
                    VolumeIds=[m["Ebs"]["VolumeId"] for m in i.get("BlockDeviceMappings", []) if "Ebs" in m]
                )["Volumes"]
            ] if i.get("BlockDeviceMappings") else [],
            "delete_on_termination": [
                m["Ebs"].get("DeleteOnTermination") for m in i.get("BlockDeviceMappings", []) if "Ebs" in m
            ],
            "tags": {t["Key"]: t["Value"] for t in i.get("Tags", [])},
        }
        for r in ec2.describe_instances(Filters=tag)["Reservations"]
        for i in r["Instances"]
    ],
    "security_groups": [
        {"id": g["GroupId"], "vpc": g.get("VpcId"), "rules": [rule(p) for p in g["IpPermissions"]]}
        for g in ec2.describe_security_groups(Filters=tag)["SecurityGroups"]
    ],
    "key_pairs": [k["KeyName"] for k in ec2.describe_key_pairs(Filters=tag)["KeyPairs"]],
    "volumes": [
        {"id": v["VolumeId"], "state": v["State"],
         "attached_to": [a["InstanceId"] for a in v.get("Attachments", [])]}
        for v in ec2.describe_volumes(Filters=tag)["Volumes"]
    ],
}, indent=1))
