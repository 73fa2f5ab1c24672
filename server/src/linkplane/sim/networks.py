"""Seeding a ready-made network (VPC, one subnet per AZ, a security group) into an account.

Tests, benchmarks and the server's dev mode need consumer and provider networks before any
PrivateLink call makes sense; ``server.seed_network()`` and ``POST /_sim/seed-network`` both
land here and write straight into moto's backend (no throttling, no request log).
"""

import ipaddress

from moto.ec2.models import ec2_backends

from linkplane.sim import world


def seed_network(
    sim: world.World, account_id: str, region: str, cidr: str = "10.0.0.0/16", azs: int = 2
) -> dict[str, object]:
    """Create a VPC with ``azs`` subnets (one per AZ, /24s carved from ``cidr``) and a
    security group in ``account_id``/``region``; return their ids and the AZ names and ids."""
    if azs < 1:
        raise ValueError(f"azs must be at least 1, got {azs}")
    network = ipaddress.ip_network(cidr)
    new_prefix = max(network.prefixlen + 1, 24) if network.prefixlen < 28 else network.prefixlen
    blocks = network.subnets(new_prefix=new_prefix)
    with sim.lock:
        backend = ec2_backends[account_id][region]
        zones = [
            zone
            for zone in backend.describe_availability_zones()
            if zone.zone_type == "availability-zone"
        ]
        if azs > len(zones):
            raise ValueError(f"{region} has only {len(zones)} availability zones, asked for {azs}")
        zones = sorted(zones, key=lambda zone: zone.name)[:azs]
        vpc = backend.create_vpc(cidr)
        subnet_ids = [
            backend.create_subnet(vpc.id, str(next(blocks)), availability_zone=zone.name).id
            for zone in zones
        ]
        group = backend.create_security_group(
            f"linkplane-sim-{vpc.id}", "seeded by linkplane-sim", vpc_id=vpc.id
        )
        return {
            "vpc_id": vpc.id,
            "subnet_ids": subnet_ids,
            "security_group_id": group.id,
            "availability_zones": [zone.name for zone in zones],
            "az_ids": [zone.zone_id for zone in zones],
        }
