"""Seeding a ready-made network into an account: a dual-stack VPC, one subnet per AZ, one route
table per subnet and a security group (optionally IPv6-only subnets too).

Tests, benchmarks and the server's dev mode need consumer and provider networks before any
PrivateLink call makes sense; ``server.seed_network()`` and ``POST /_sim/seed-network`` both
land here and write straight into moto's backend (no throttling, no request log).

Zones are picked by AZ **id** (``use1-az1``, ``use1-az2``, …), like a careful operator does:
every account calls them by its own names (``zones``), and seeding by id is what makes a
provider's and a consumer's networks share their zones.
"""

import dataclasses
import ipaddress

from moto.ec2.models import ec2_backends

from linkplane.sim import world, zones


@dataclasses.dataclass(frozen=True)
class NetworkOptions:
    """What to seed beyond the IPv4 basics (every field has a default that suits most tests)."""

    dual_stack: bool = True
    """Give the VPC an Amazon-provided IPv6 /56 and every subnet a /64 (dual-stack subnets)."""
    ipv6_only_subnets: bool = False
    """Also create one IPv6-only subnet per AZ (``ipv6_only_subnet_ids``); needs dual_stack."""
    dns_hostnames: bool = True
    """The VPC's enableDnsHostnames (enableDnsSupport is always on), which private DNS needs."""


def seed_network(
    sim: world.World,
    account_id: str,
    region: str,
    cidr: str = "10.0.0.0/16",
    azs: int = 2,
    options: NetworkOptions | None = None,
) -> dict[str, object]:
    """Create a VPC with ``azs`` subnets (one per AZ, /24s carved from ``cidr``), a route table
    per subnet and a security group in ``account_id``/``region``; return their ids.

    Keys: ``vpc_id``, ``subnet_ids``, ``security_group_id``, ``availability_zones`` (this
    account's names), ``az_ids``, ``route_table_ids`` (one per subnet, same order),
    ``main_route_table_id``, ``ipv6_cidr_block`` (None unless dual-stack),
    ``subnet_ipv6_cidr_blocks``, ``ipv6_only_subnet_ids`` (empty unless asked for).
    """
    opts = options or NetworkOptions()
    if azs < 1:
        raise ValueError(f"azs must be at least 1, got {azs}")
    if opts.ipv6_only_subnets and not opts.dual_stack:
        raise ValueError("IPv6-only subnets need a dual-stack VPC (dual_stack=True)")
    network = ipaddress.ip_network(cidr)
    new_prefix = max(network.prefixlen + 1, 24) if network.prefixlen < 28 else network.prefixlen
    blocks = network.subnets(new_prefix=new_prefix)
    with sim.lock:
        backend = ec2_backends[account_id][region]
        zone_ids = sorted(
            zone.zone_id
            for zone in backend.describe_availability_zones()
            if zone.zone_type == "availability-zone"
        )
        if azs > len(zone_ids):
            raise ValueError(
                f"{region} has only {len(zone_ids)} availability zones, asked for {azs}"
            )
        zone_ids = zone_ids[:azs]
        zone_names = [str(zones.zone_name(account_id, region, zone)) for zone in zone_ids]
        vpc = backend.create_vpc(cidr, amazon_provided_ipv6_cidr_block=opts.dual_stack)
        vpc.enable_dns_support = True
        vpc.enable_dns_hostnames = opts.dns_hostnames
        ipv6_blocks = None
        vpc_ipv6 = None
        if opts.dual_stack:
            vpc_ipv6 = str(vpc.ipv6_cidr_block_association_set[0]["ipv6CidrBlock"])
            ipv6_blocks = ipaddress.IPv6Network(vpc_ipv6).subnets(new_prefix=64)
        main_table = next(
            table
            for table in backend.route_tables.values()
            if table.vpc_id == vpc.id and table.main_association_id is not None
        )
        subnet_ids: list[str] = []
        subnet_ipv6: list[str] = []
        route_table_ids: list[str] = []
        for name in zone_names:
            ipv6_block = str(next(ipv6_blocks)) if ipv6_blocks is not None else None
            subnet = backend.create_subnet(
                vpc.id, str(next(blocks)), ipv6_cidr_block=ipv6_block, availability_zone=name
            )
            subnet_ids.append(subnet.id)
            if ipv6_block:
                subnet_ipv6.append(ipv6_block)
            table = backend.create_route_table(vpc.id)
            backend.associate_route_table(table.id, subnet_id=subnet.id)
            route_table_ids.append(table.id)
        ipv6_only: list[str] = []
        if opts.ipv6_only_subnets and ipv6_blocks is not None:
            for name in zone_names:
                subnet = backend.create_subnet(
                    vpc.id,
                    None,  # type: ignore[arg-type]  # moto takes None for "no IPv4 range"
                    ipv6_cidr_block=str(next(ipv6_blocks)),
                    availability_zone=name,
                    ipv6_native=True,
                )
                ipv6_only.append(subnet.id)
        group = backend.create_security_group(
            f"linkplane-sim-{vpc.id}", "seeded by linkplane-sim", vpc_id=vpc.id
        )
        return {
            "vpc_id": vpc.id,
            "subnet_ids": subnet_ids,
            "security_group_id": group.id,
            "availability_zones": zone_names,
            "az_ids": zone_ids,
            "route_table_ids": route_table_ids,
            "main_route_table_id": main_table.id,
            "ipv6_cidr_block": vpc_ipv6,
            "subnet_ipv6_cidr_blocks": subnet_ipv6,
            "ipv6_only_subnet_ids": ipv6_only,
        }
