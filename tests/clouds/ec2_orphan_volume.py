#!/usr/bin/env python3
"""Makes an EBS volume with a cluster's tag and no instance, as an AMI whose
root volume has DeleteOnTermination=false leaves one behind; prints its id.
Uses the bridge's credentials, not the driver's.

    ec2_orphan_volume.py DIR CLUSTER_ID
"""

import os
import pathlib
import sys

import boto3

directory = pathlib.Path(sys.argv[1])
os.environ["AWS_CONFIG_FILE"] = str(directory / "aws" / "config")
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(directory / "aws" / "credentials")
ec2 = boto3.Session(profile_name="bridge").client("ec2")
zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
volume = ec2.create_volume(
    AvailabilityZone=zone, Size=8,
    TagSpecifications=[{"ResourceType": "volume", "Tags": [
        {"Key": "provision:cluster", "Value": sys.argv[2]}]}])
print(volume["VolumeId"])
