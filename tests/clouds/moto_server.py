#!/usr/bin/env python3
"""moto's server, with public IPv4 addresses from the test cloud's own
documentation range instead of moto's random 54.214.x.y (real AWS
addresses: traffic to one could leave this machine).

    moto_server.py -H 127.0.0.1 -p 5005     # moto_server's own options
"""

import itertools
import sys

from moto.ec2.models import elastic_network_interfaces
from moto.server import main

from ec2_public import PUBLIC_CIDR, public_pool

# Handed out in turn, as AWS does not hand a just-released address straight back.
_addresses = itertools.cycle(public_pool())


def random_public_ip():
    return next(_addresses)


elastic_network_interfaces.random_public_ip = random_public_ip

if __name__ == "__main__":
    print(f"public IPv4 addresses from {PUBLIC_CIDR}", flush=True)
    sys.exit(main())
