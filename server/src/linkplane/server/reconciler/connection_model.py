"""The Connection reconciler's typed working data: what a pass reads and remembers.

The `Target` of this pass (and the linkplane Service behind it, if any), the target's
`ServiceDetail` and the consumer's `Subnet`s as pre-flight reads them, the private `Bookkeeping`
kept in the status JSON, and the `NetworkInterface`s reported in the status. The observed
endpoint itself is `aws_endpoints.Endpoint`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from linkplane.server.domain import endpoints as kinds
from linkplane.server.domain import specs


@dataclasses.dataclass(frozen=True)
class LinkplaneService:
    """A target Service published through linkplane, as the database has it this pass."""

    name: str
    service_name: str
    """AWS's name for it; empty until the Service is published."""
    deleted: bool
    spec: specs.ServiceSpec
    private_dns_state: str
    """The verification state of its private DNS name (``VERIFIED``, ...); empty if none."""

    @property
    def private_dns_verified(self) -> bool:
        return bool(self.spec.private_dns_name) and self.private_dns_state.upper() == "VERIFIED"


@dataclasses.dataclass(frozen=True)
class Target:
    """What a connection points at in this pass: a resolved AWS service name, and the
    linkplane Service behind it when there is one."""

    service_name: str
    region: str
    """The region the service lives in (the consumer's own unless cross-region)."""
    cross_region: bool
    linkplane: LinkplaneService | None

    @property
    def aws_service(self) -> str:
        """``sqs`` for ``com.amazonaws.<region>.sqs``; empty for endpoint services."""
        return kinds.aws_service(self.service_name)


@dataclasses.dataclass(frozen=True)
class ServiceDetail:
    """DescribeVpcEndpointServices' answer about the target, as the consumer sees it."""

    zones: tuple[str, ...]
    zone_ids: tuple[str, ...]
    service_types: tuple[str, ...]
    """``Interface`` and/or ``Gateway``."""
    ip_address_types: tuple[str, ...]
    private_dns_name: str
    private_dns_verified: bool
    owner: str

    @classmethod
    def parse(cls, details: list[dict[str, Any]], endpoint_type: str) -> ServiceDetail:
        """One service's details; AWS lists a name once per endpoint type it offers (S3 has
        an Interface and a Gateway entry): the entry of ``endpoint_type`` is read, and the
        types of all of them are kept."""

        def types_of(detail: dict[str, Any]) -> list[str]:
            return [str(t.get("ServiceType", "")) for t in detail.get("ServiceType") or ()]

        data = next((d for d in details if endpoint_type in types_of(d)), details[0])
        state = str(data.get("PrivateDnsNameVerificationState") or "")
        return cls(
            zones=tuple(data.get("AvailabilityZones") or ()),
            zone_ids=tuple(data.get("AvailabilityZoneIds") or ()),
            service_types=tuple(dict.fromkeys(t for d in details for t in types_of(d))),
            ip_address_types=tuple(data.get("SupportedIpAddressTypes") or ()),
            private_dns_name=str(data.get("PrivateDnsName") or ""),
            private_dns_verified=state.lower() == "verified",
            owner=str(data.get("Owner") or ""),
        )


@dataclasses.dataclass(frozen=True)
class Subnet:
    """What pre-flight needs to know about one of the consumer's subnets."""

    subnet_id: str
    zone: str
    zone_id: str
    has_ipv4: bool
    has_ipv6: bool

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Subnet:
        # A block being removed (or whose association failed) does not count; anything else
        # does (moto renders the state oddly, so only the known bad states are matched).
        ipv6 = [
            a
            for a in data.get("Ipv6CidrBlockAssociationSet") or ()
            if a.get("Ipv6CidrBlock")
            and not str((a.get("Ipv6CidrBlockState") or {}).get("State", ""))
            .lower()
            .startswith(("disassociat", "fail"))
        ]
        return cls(
            subnet_id=str(data.get("SubnetId", "")),
            zone=str(data.get("AvailabilityZone", "")),
            zone_id=str(data.get("AvailabilityZoneId", "")),
            has_ipv4=bool(data.get("CidrBlock")) and not data.get("Ipv6Native"),
            has_ipv6=bool(ipv6),
        )


@dataclasses.dataclass
class Bookkeeping:
    """What a connection remembers between passes besides its reported status.

    Stored in the status JSON under the same keys as always (``incarnation``,
    ``endpoint_id``) so rows written by earlier versions load.
    """

    incarnation: int = 0
    """Bumped when the endpoint was deleted out of band: part of the next ClientToken."""
    endpoint_id: str = ""
    """The endpoint linkplane created or adopted for this connection."""
    fresh_read: bool = False
    """The last pass created or changed the endpoint: read it directly, not from a snapshot."""

    @classmethod
    def load(cls, status: dict[str, Any]) -> Bookkeeping:
        return cls(
            incarnation=int(status.get("incarnation", 0)),
            endpoint_id=str(status.get("endpoint_id") or ""),
            fresh_read=bool(status.get("fresh_read", False)),
        )

    def save(self, status: dict[str, Any]) -> None:
        status["incarnation"] = self.incarnation
        if self.endpoint_id:
            status["endpoint_id"] = self.endpoint_id
        else:
            status.pop("endpoint_id", None)
        if self.fresh_read:
            status["fresh_read"] = True
        else:
            status.pop("fresh_read", None)

    def token_generation(self, generation: int) -> int:
        """The generation a create's ClientToken is derived from."""
        return self.incarnation * 1_000_000 + generation


@dataclasses.dataclass(frozen=True)
class NetworkInterface:
    """One ENI of an interface endpoint, as reported in the status."""

    network_interface_id: str
    subnet_id: str
    availability_zone: str
    private_ip_address: str
    ipv6_addresses: list[str]
