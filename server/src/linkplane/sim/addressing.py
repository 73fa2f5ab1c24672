"""IPv4, dual-stack and IPv6 endpoints: AWS's rules on subnets, services and DNS record types.

From the PrivateLink documentation ("IP address types"): an interface endpoint's
``IpAddressType`` is ``ipv4`` (its subnets need IPv4 ranges, the service must accept IPv4),
``dualstack`` (subnets need both IPv4 and IPv6 ranges, the service must accept both) or ``ipv6``
(subnets must be IPv6-only, the service must accept IPv6). ``DnsOptions.DnsRecordIpType`` picks
the records AWS publishes and must fit the address type; it defaults to the address type. The
ENIs get IPv6 addresses from their subnet's IPv6 CIDR when the type is dual-stack or IPv6.
"""

import ipaddress

from moto.ec2 import exceptions as ec2_errors
from moto.ec2.models.subnets import Subnet

IP_ADDRESS_TYPES = ("ipv4", "dualstack", "ipv6")
SERVICE_IP_ADDRESS_TYPES = ("ipv4", "ipv6")

# DnsRecordIpType values each endpoint IpAddressType allows.
_RECORD_TYPES = {
    "ipv4": ("ipv4", "service-defined"),
    "dualstack": ("ipv4", "dualstack", "ipv6", "service-defined"),
    "ipv6": ("ipv6", "service-defined"),
}


def subnet_ipv6_cidr(subnet: Subnet) -> str | None:
    """The subnet's associated IPv6 CIDR, if it has one."""
    for association in subnet.ipv6_cidr_block_associations.values():
        if association.get("ipv6CidrBlockState", {}).get("State") == "associated":
            return str(association["ipv6CidrBlock"])
    return None


def has_ipv4(subnet: Subnet) -> bool:
    return bool(subnet.cidr_block)


def check_ip_address_type(
    ip_address_type: str, subnets: list[Subnet], service_types: tuple[str, ...], service_name: str
) -> None:
    """AWS's ``InvalidParameter`` when the endpoint's subnets or service do not fit the type."""
    if ip_address_type not in IP_ADDRESS_TYPES:
        raise ec2_errors.EC2ClientError(
            "InvalidParameterValue",
            f"Value ({ip_address_type}) for parameter IpAddressType is invalid. "
            f"Valid values: {', '.join(IP_ADDRESS_TYPES)}",
        )
    needs = {"ipv4": ("ipv4",), "dualstack": ("ipv4", "ipv6"), "ipv6": ("ipv6",)}[ip_address_type]
    missing = [kind for kind in needs if kind not in service_types]
    if missing:
        raise ec2_errors.InvalidParameter(
            f"The VPC endpoint service {service_name} does not support the IP address type "
            f"{ip_address_type} (its supported IP address types: {', '.join(service_types)})."
        )
    for subnet in subnets:
        v4, v6 = has_ipv4(subnet), subnet_ipv6_cidr(subnet) is not None
        if ip_address_type == "ipv4" and not v4:
            raise ec2_errors.InvalidParameter(
                f"Subnet {subnet.id} has no IPv4 address range, which IpAddressType ipv4 requires."
            )
        if ip_address_type == "dualstack" and not (v4 and v6):
            raise ec2_errors.InvalidParameter(
                f"Subnet {subnet.id} must have both IPv4 and IPv6 address ranges for "
                "IpAddressType dualstack."
            )
        if ip_address_type == "ipv6" and (v4 or not v6):
            raise ec2_errors.InvalidParameter(
                f"Subnet {subnet.id} must be an IPv6-only subnet for IpAddressType ipv6."
            )


def allowed_record_types(ip_address_type: str) -> tuple[str, ...]:
    return _RECORD_TYPES.get(ip_address_type, ())


def dns_record_ip_type(requested: str | None, ip_address_type: str) -> str:
    """The DnsRecordIpType to use: the requested one if it fits, else the address type."""
    if requested is None:
        return ip_address_type
    allowed = _RECORD_TYPES[ip_address_type]
    if requested not in allowed:
        raise ec2_errors.InvalidParameter(
            f"DnsRecordIpType {requested} is not supported for IpAddressType "
            f"{ip_address_type} (allowed: {', '.join(allowed)})."
        )
    return requested


def next_ipv6(cidr: str, host: int) -> str:
    """The ``host``-th address AWS-style from ``cidr`` (skipping the reserved first four)."""
    network = ipaddress.IPv6Network(cidr)
    return str(network.network_address + 4 + host)


def check_fixed_ipv6(subnet: Subnet, address: str) -> None:
    cidr = subnet_ipv6_cidr(subnet)
    try:
        inside = cidr is not None and ipaddress.IPv6Address(address) in ipaddress.IPv6Network(cidr)
    except ValueError:
        inside = False
    if not inside:
        raise ec2_errors.InvalidParameter(
            f"The IPv6 address {address} is not in the IPv6 range of subnet {subnet.id}."
        )


# moto seam: DescribeSubnets' Ipv6CidrBlockState ------------------------------------------------

_original_association_set = Subnet.ipv6_cidr_block_association_set


def _association_set(subnet: Subnet) -> list[dict[str, object]]:
    # moto nests the stored {"State": …} dict inside another, which serializes as the string
    # "{'State': 'associated'}"; AWS answers {"State": "associated"}.
    return [
        {
            "ipv6CidrBlock": association["ipv6CidrBlock"],
            "associationId": association["associationId"],
            "ipv6CidrBlockState": association["ipv6CidrBlockState"],
        }
        for association in subnet.ipv6_cidr_block_associations.values()
        if association["ipv6CidrBlockState"]["State"] == "associated"
    ]


def install() -> None:
    Subnet.ipv6_cidr_block_association_set = property(_association_set)  # type: ignore[assignment,method-assign]


def uninstall() -> None:
    Subnet.ipv6_cidr_block_association_set = _original_association_set  # type: ignore[method-assign]
