"""An interface endpoint's network side: its subnets and AZs, security groups, ENIs with
addresses by IP address type, and its endpoint-specific DNS names.

Shared by CreateVpcEndpoint and ModifyVpcEndpoint (``ec2_endpoints``): the checks AWS makes
on subnets (one per AZ, the VPC's own, an AZ the service offers by AZ id), the requester-managed
ENIs it creates, readdresses and releases, and the DNS entries that follow the subnets.
"""

from collections.abc import Iterable

from moto.ec2 import exceptions as ec2_errors
from moto.ec2.models import EC2Backend
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.ec2.models.subnets import Subnet
from moto.ec2.responses import EC2Response
from moto.moto_api._internal import mock_random

from linkplane.sim import addressing, models, world, zones
from linkplane.sim import ec2_common as common


def subnets_of(
    response: EC2Response, backend: EC2Backend, vpc_id: str, prefix: str = ""
) -> tuple[list[Subnet], dict[str, tuple[str | None, str | None]]]:
    """The endpoint's subnets (SubnetIds or SubnetConfigurations) and any fixed IPv4/IPv6."""
    subnet_ids: list[str] = list(response._get_param(f"{prefix}SubnetIds", []))
    fixed_ips: dict[str, tuple[str | None, str | None]] = {}
    for configuration in response._get_param("SubnetConfigurations", []) if not prefix else []:
        subnet_id = configuration.get("SubnetId")
        if subnet_id and subnet_id not in subnet_ids:
            subnet_ids.append(subnet_id)
        if subnet_id and (configuration.get("Ipv4") or configuration.get("Ipv6")):
            fixed_ips[subnet_id] = (configuration.get("Ipv4"), configuration.get("Ipv6"))
    subnets = [backend.get_subnet(subnet_id) for subnet_id in subnet_ids]
    seen_zones: set[str] = set()
    for subnet in subnets:
        if subnet.vpc_id != vpc_id:
            raise ec2_errors.InvalidParameter(
                f"The subnet ID '{subnet.id}' does not belong to the VPC '{vpc_id}'."
            )
        if subnet.availability_zone in seen_zones:
            raise ec2_errors.InvalidParameter(
                "Found another VPC endpoint subnet in the availability zone of "
                f"{subnet.id}. VPC endpoint subnets should be in different availability zones "
                "supported by the VPC endpoint service."
            )
        seen_zones.add(subnet.availability_zone)
    return subnets, fixed_ips


def check_zones(caller: common.Caller, target: common.Target, subnets: Iterable[Subnet]) -> None:
    """Each subnet's AZ must be one of the service's, compared by AZ id (names differ per
    account)."""
    if target.service is None:
        return
    service = target.service
    offered = {
        zones.zone_id(service.owner, service.region_name, name)
        for name in service.availability_zones
    }
    for subnet in subnets:
        if zones.zone_id(caller.account, caller.region, subnet.availability_zone) not in offered:
            raise ec2_errors.InvalidParameter(
                f"The VPC endpoint service {target.name} does not support the availability "
                f"zone of the subnet: {subnet.id}."
            )


def security_groups(
    response: EC2Response, backend: EC2Backend, vpc_id: str, name: str = "SecurityGroupIds"
) -> list[str]:
    group_ids: list[str] = list(response._get_param(name, []))
    for group_id in group_ids:
        if backend.get_security_group_from_id(group_id) is None:
            raise ec2_errors.EC2ClientError(
                "InvalidGroup.NotFound", f"The security group '{group_id}' does not exist"
            )
    if not group_ids and name == "SecurityGroupIds":
        # AWS attaches the VPC's default security group when none is given.
        default = backend.get_default_security_group(vpc_id)
        if default is not None:
            group_ids = [default.id]
    return group_ids


def create_eni(
    sim: world.World,
    backend: EC2Backend,
    subnet: Subnet,
    fixed: tuple[str | None, str | None] | None,
    group_ids: list[str],
    endpoint_id: str,
    ip_address_type: str,
) -> NetworkInterface:
    """A requester-managed ENI with addresses from the subnet's ranges, like AWS's: an IPv4
    unless the endpoint is IPv6-only, an IPv6 unless it is IPv4-only."""
    fixed_v4, fixed_v6 = fixed or (None, None)
    ip: str | None = None
    if ip_address_type != "ipv6":
        # moto books a subnet IP against an Instance; the endpoint id marks who holds it instead.
        if fixed_v4:
            subnet.request_ip(fixed_v4, endpoint_id)  # type: ignore[arg-type]
            ip = fixed_v4
        else:
            ip = subnet.get_available_subnet_ip(endpoint_id)  # type: ignore[arg-type]
    ipv6: list[str] = []
    if ip_address_type != "ipv4":
        ipv6 = [fixed_v6 or _next_ipv6(sim, subnet)]
        if fixed_v6:
            addressing.check_fixed_ipv6(subnet, fixed_v6)
    eni = backend.create_network_interface(
        subnet,
        # moto needs some IPv4 to build an ENI; an IPv6-only ENI has none, so it is cleared.
        ip or "0.0.0.0",  # noqa: S104 - a placeholder, never bound
        group_ids=group_ids,
        description=f"VPC Endpoint Interface {endpoint_id}",
        ipv6_addresses=ipv6,
    )
    if ip is None:
        eni.private_ip_address = None
        eni.private_ip_addresses = []
        eni.private_dns_name = None  # type: ignore[assignment]  # moto's str; AWS omits it
    eni.interface_type = "vpc_endpoint"
    eni.requester_managed = True
    return eni


def _next_ipv6(sim: world.World, subnet: Subnet) -> str:
    cidr = addressing.subnet_ipv6_cidr(subnet)
    if cidr is None:
        raise ec2_errors.InvalidParameter(f"Subnet {subnet.id} has no IPv6 address range.")
    host = sim.ipv6_hosts.get(subnet.id, 0)
    sim.ipv6_hosts[subnet.id] = host + 1
    return addressing.next_ipv6(cidr, host)


def dns_entries(
    endpoint_id: str, target: common.Target, subnets: Iterable[Subnet], region: str
) -> list[dict[str, str]]:
    """AWS's endpoint-specific names: one regional, then one per AZ of the endpoint."""
    base = f"{endpoint_id}-{mock_random.get_random_string(length=8, lower_case=True)}"
    if target.service is not None:
        domain = f"{target.service.id}.{region}.vpce.amazonaws.com"
    else:
        short_name = target.name.removeprefix(f"com.amazonaws.{region}.")
        domain = f"{short_name}.{region}.vpce.amazonaws.com"
    zone_id = models.vpce_hosted_zone_id(region)
    entries = [{"DnsName": f"{base}.{domain}", "HostedZoneId": zone_id}]
    zones_of_subnets = sorted({subnet.availability_zone for subnet in subnets})
    entries.extend(
        {"DnsName": f"{base}-{zone}.{domain}", "HostedZoneId": zone_id} for zone in zones_of_subnets
    )
    return entries


def release_subnet_eni(endpoint: models.SimVpcEndpoint, subnet_id: str) -> None:
    backend = endpoint.ec2_backend
    for eni_id in list(endpoint.network_interface_ids):
        eni = backend.enis.get(eni_id)
        if eni is not None and eni.subnet.id == subnet_id:
            backend.enis.pop(eni_id, None)
            if eni.private_ip_address:
                eni.subnet.del_subnet_ip(eni.private_ip_address)
            endpoint.network_interface_ids.remove(eni_id)
    endpoint.subnet_ids = [s for s in endpoint.subnet_ids or [] if s != subnet_id]


def readdress(sim: world.World, endpoint: models.SimVpcEndpoint, ip_address_type: str) -> None:
    """Give the endpoint's ENIs the addresses the new type needs (and drop the others)."""
    backend = endpoint.ec2_backend
    for eni_id in endpoint.network_interface_ids:
        eni = backend.enis.get(eni_id)
        if eni is None:
            continue
        subnet = eni.subnet
        if ip_address_type == "ipv4":
            eni.ipv6_addresses = []
        elif not eni.ipv6_addresses:
            eni.ipv6_addresses = [_next_ipv6(sim, subnet)]
        if ip_address_type == "ipv6" and eni.private_ip_address:
            subnet.del_subnet_ip(eni.private_ip_address)
            eni.private_ip_address = None
            eni.private_ip_addresses = []
        elif ip_address_type != "ipv6" and not eni.private_ip_address:
            ip = subnet.get_available_subnet_ip(endpoint.id)
            eni.private_ip_address = ip
            eni.private_ip_addresses = [{"Primary": True, "PrivateIpAddress": ip}]


def rebase_dns(endpoint: models.SimVpcEndpoint, subnets: list[Subnet]) -> list[dict[str, str]]:
    """The endpoint-specific names after a subnet change: same base, one name per AZ."""
    regional = endpoint.base_dns_entries[0]
    base, domain = regional["DnsName"].split(".", 1)
    zone_id = regional["HostedZoneId"]
    entries = [regional]
    entries.extend(
        {"DnsName": f"{base}-{zone}.{domain}", "HostedZoneId": zone_id}
        for zone in sorted({subnet.availability_zone for subnet in subnets})
    )
    return entries
