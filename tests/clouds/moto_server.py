#!/usr/bin/env python3
"""moto's server, with public IPv4 addresses from the test cloud's own
documentation range instead of moto's random 54.214.x.y (real AWS
addresses: traffic to one could leave this machine).

    moto_server.py -H 127.0.0.1 -p 5005     # moto_server's own options

API latency, for the create bench (scripts/bench/create-vs-ansible.py):
    curl -X POST 'http://127.0.0.1:5005/__provision/latency?ms=100'
makes every later request wait that long before moto answers it, as a
region's round trip does (0 turns it off).
"""

import itertools
import json
import sys
import time
from urllib.parse import parse_qs, parse_qsl, quote, urlsplit

import moto.server as moto_server

from moto.ec2.models import elastic_network_interfaces
from moto.iam import access_control
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.elastic_network_interfaces import NetworkInterfaceBackend
from moto.ec2.models.instances import Instance
from moto.ec2.models.subnets import Subnet
from moto.server import main

from ec2_public import PUBLIC_CIDR, public_pool

# Handed out in turn, as AWS does not hand a just-released address straight back.
_addresses = itertools.cycle(public_pool())


def random_public_ip():
    return next(_addresses)


elastic_network_interfaces.random_public_ip = random_public_ip


# moto checks a signature over the request's query as werkzeug hands it on,
# already decoded (`prefix=web/`), while SigV4 signs it encoded (`web%2F`,
# as real S3 and botocore do it): every list with a `/` in its prefix is
# refused as SignatureDoesNotMatch (seen with boto3 as well; moto 5.2.1,
# `IAMRequestBase._create_aws_request`). The query is encoded again before
# the check, so the test cloud is as strict as S3, not stricter.
_create_aws_request = access_control.IAMRequestBase._create_aws_request


def _create_aws_request_encoded(self):
    parts = urlsplit(self._path)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)
        self._path = f"{parts.path}?{query}"
    return _create_aws_request(self)


access_control.IAMRequestBase._create_aws_request = _create_aws_request_encoded


# IAM grants some S3 operations under another action's name (S3 API
# reference, each operation's "Permissions"): the multipart upload's calls
# as the object write they are, listings as s3:ListBucket, a HEAD as the
# GET. moto 5.2.6 checks them under their operation names, which no IAM
# action has, so no policy could grant them.
_S3_IAM_ACTIONS = {
    "s3:CreateMultipartUpload": "s3:PutObject",
    "s3:UploadPart": "s3:PutObject",
    "s3:CompleteMultipartUpload": "s3:PutObject",
    "s3:ListParts": "s3:ListMultipartUploadParts",
    "s3:ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "s3:ListObjects": "s3:ListBucket",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjectVersions": "s3:ListBucketVersions",
    "s3:HeadBucket": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "s3:DeleteObjects": "s3:DeleteObject",
}
_s3_request_init = access_control.S3IAMRequest.__init__


def _s3_request_init_iam_action(self, *args, **kwargs):
    _s3_request_init(self, *args, **kwargs)
    self._action = _S3_IAM_ACTIONS.get(self._action, self._action)


access_control.S3IAMRequest.__init__ = _s3_request_init_iam_action


# EC2 refuses a private address that an interface in the subnet holds
# already (RunInstances, CreateNetworkInterface: "InvalidIPAddress.InUse",
# EC2 API reference, error codes); moto hands it out twice.
class AddressInUse(EC2ClientError):
    def __init__(self, address):
        super().__init__("InvalidIPAddress.InUse", f"Address {address} is in use.")


_create_network_interface = NetworkInterfaceBackend.create_network_interface


def _create_network_interface_once(self, subnet, private_ip_address, *args, **kwargs):
    wanted = private_ip_address[0] if isinstance(private_ip_address, list) else private_ip_address
    if wanted:
        for eni in self.enis.values():
            if eni.subnet.id == subnet.id and eni.private_ip_address == wanted:
                raise AddressInUse(wanted)
    return _create_network_interface(self, subnet, private_ip_address, *args, **kwargs)


NetworkInterfaceBackend.create_network_interface = _create_network_interface_once


# RunInstances with PrivateIpAddress: moto's subnet raises a bare
# Exception("IP already in use") for an address it still counts as taken
# (a 500 the SDK retries, then "Unknown"); EC2 answers
# InvalidIPAddress.InUse.
_request_ip = Subnet.request_ip


def _request_ip_as_ec2(self, ip, instance):
    if ip in self._subnet_ips:
        raise AddressInUse(ip)
    return _request_ip(self, ip, instance)


Subnet.request_ip = _request_ip_as_ec2

# A terminated instance's private address is free again (its
# delete-on-termination interface is gone); moto forgets it only when the
# instance object is garbage-collected (Instance.__del__), so an address
# asked for right after a termination was refused or not, by chance (CI
# saw a restore at a terminated manager's address fail so).
_terminate = Instance.terminate


def _terminate_and_free(self):
    state = _terminate(self)
    subnet = self.ec2_backend.get_subnet(self.subnet_id) if self.subnet_id else None
    if subnet is not None:
        for ip in list(self._private_ips):
            if subnet._subnet_ips.get(ip) is self:
                subnet.del_subnet_ip(ip)
    return state


Instance.terminate = _terminate_and_free

_latency = {"ms": 0}


class _WithLatency(moto_server.DomainDispatcherApplication):
    """moto's WSGI application, with the bench's latency before each request."""

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/__provision/latency":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            if environ.get("REQUEST_METHOD") == "POST" and "ms" in query:
                _latency["ms"] = max(0, int(query["ms"][0]))
            body = json.dumps({"latency_ms": _latency["ms"]}).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        if _latency["ms"]:
            time.sleep(_latency["ms"] / 1000.0)
        return super().__call__(environ, start_response)


moto_server.DomainDispatcherApplication = _WithLatency

if __name__ == "__main__":
    print(f"public IPv4 addresses from {PUBLIC_CIDR}", flush=True)
    sys.exit(main())
