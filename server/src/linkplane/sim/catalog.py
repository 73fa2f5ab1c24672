"""AWS's own endpoint services (``com.amazonaws.<region>.sqs``, ``.s3``, ``.dynamodb``, …).

moto knows their names, types and private DNS names (``_collect_default_endpoint_services``);
this module turns that list into what a consumer's DescribeVpcEndpointServices shows in AWS
(AZ ids in the caller's own mapping, ServiceRegion, SupportedIpAddressTypes, no private DNS on
gateway services) and answers what CreateVpcEndpoint needs to know about a name: which endpoint
types it offers and which private DNS name it brings. AWS services accept every endpoint (no
acceptance) and offer IPv4 only here (which of them take IPv6 differs per service and Region).
"""

import dataclasses
from typing import Any

from moto.ec2.models.vpcs import VPCBackend

from linkplane.sim import zones

Json = dict[str, object]

# The account moto builds its default list in; the list is the same for every account.
_CATALOG_ACCOUNT = "123456789012"


@dataclasses.dataclass(frozen=True)
class AwsService:
    """One AWS service entry: a name may appear twice, once per endpoint type (S3)."""

    name: str
    service_type: str
    """``Interface`` or ``Gateway``."""
    service_id: str
    availability_zones: tuple[str, ...]
    base_dns_names: tuple[str, ...]
    private_dns_name: str | None
    """The name private DNS resolves (``sqs.us-east-1.amazonaws.com``); None for gateways."""
    region: str

    def detail(self, account: str) -> Json:
        """The ServiceDetail ``account`` sees (AZ ids in its own mapping)."""
        zone_ids = [zones.zone_id(account, self.region, name) for name in self.availability_zones]
        detail: Json = {
            "ServiceName": self.name,
            "ServiceId": self.service_id,
            "ServiceType": [{"ServiceType": self.service_type}],
            "ServiceRegion": self.region,
            "AvailabilityZones": list(self.availability_zones),
            "AvailabilityZoneIds": [zone for zone in zone_ids if zone is not None],
            "Owner": "amazon",
            "BaseEndpointDnsNames": list(self.base_dns_names),
            "VpcEndpointPolicySupported": True,
            "AcceptanceRequired": False,
            "ManagesVpcEndpoints": False,
            "Tags": [],
            "SupportedIpAddressTypes": ["ipv4"],
        }
        if self.private_dns_name:
            detail["PrivateDnsName"] = self.private_dns_name
            detail["PrivateDnsNames"] = [{"PrivateDnsName": self.private_dns_name}]
            detail["PrivateDnsNameVerificationState"] = "verified"
        return detail


def aws_services(region: str) -> list[AwsService]:
    """Every AWS service of ``region`` that takes interface or gateway endpoints."""
    found: list[AwsService] = []
    # moto annotates the entries dict[str, str]; they hold lists too.
    entries: list[dict[str, Any]] = list(
        VPCBackend._collect_default_endpoint_services(_CATALOG_ACCOUNT, region)
    )
    for entry in entries:
        types = [str(item["ServiceType"]) for item in entry.get("ServiceType", [])]
        name = str(entry["ServiceName"])
        for service_type in types:
            if service_type not in ("Interface", "Gateway"):
                continue
            private_name = entry.get("PrivateDnsName")
            found.append(
                AwsService(
                    name=name,
                    service_type=service_type,
                    service_id=str(entry.get("ServiceId", "")),
                    availability_zones=tuple(entry.get("AvailabilityZones", [])),
                    base_dns_names=tuple(entry.get("BaseEndpointDnsNames", [])),
                    private_dns_name=(
                        str(private_name) if private_name and service_type == "Interface" else None
                    ),
                    region=region,
                )
            )
    return found


def find(region: str, name: str) -> list[AwsService]:
    """The entries (one per endpoint type) of AWS service ``name`` in ``region``."""
    return [service for service in aws_services(region) if service.name == name]
