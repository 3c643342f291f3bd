"""The EC2 test cloud's internet: where its public IPv4 addresses live.

198.51.100.0/24 is a documentation range (RFC 5737) this machine uses for
nothing else (192.0.2.0/24 is its own uplink, 203.0.113.0/24 where the
package mirrors resolve); the EC2 test cloud has the lower half, the
OpenStack one the upper.
"""

from node_bodies import public_pool as _pool

PUBLIC_CIDR = "198.51.100.0/25"
PUBLIC_NETWORK = "provision-ec2-internet"


def public_pool():
    return _pool(PUBLIC_CIDR)
