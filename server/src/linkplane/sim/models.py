"""moto model subclasses that carry the state AWS has and moto lacks.

``ec2_actions`` and ``elbv2_actions`` create these instead of moto's own classes and store them
in moto's backends, so every moto code path that lists, filters or tags them keeps working;
``world`` advances their states lazily. The attribute names are the snake_case of the botocore
shape members, which is how moto's serializer finds them.
"""

import dataclasses
import datetime
from collections.abc import Callable

from moto.ec2.models.vpc_service_configuration import VPCServiceConfiguration
from moto.ec2.models.vpcs import VPCEndPoint
from moto.elbv2.models import FakeLoadBalancer
from moto.moto_api._internal import mock_random

from linkplane.sim import zones

# Interface endpoint states, with AWS's wire spelling (camelCase; AWS is inconsistent).
PENDING_ACCEPTANCE = "pendingAcceptance"
PENDING = "pending"
AVAILABLE = "available"
REJECTED = "rejected"
DELETING = "deleting"
DELETED = "deleted"
FAILED = "failed"
EXPIRED = "expired"
PARTIAL = "partial"

# States an endpoint can be forced into through the admin API (AWS gives no way to cause them).
INJECTABLE_STATES = frozenset({FAILED, EXPIRED, PARTIAL})

# States in which a connection still blocks deleting its endpoint service.
LIVE_CONNECTION_STATES = frozenset({PENDING_ACCEPTANCE, PENDING, AVAILABLE, PARTIAL})

# States whose endpoints count against the per-VPC endpoint quota.
QUOTA_STATES = frozenset({PENDING_ACCEPTANCE, PENDING, AVAILABLE, PARTIAL, DELETING})

# The Route53 hosted zone AWS uses for vpce DNS names; random for Regions not listed here.
_VPCE_HOSTED_ZONES = {
    "us-east-1": "Z7HUB22UULQXV",
    "us-east-2": "ZC8PG0KIFKBRI",
    "us-west-1": "Z12I86A8N7VCZO",
    "us-west-2": "Z1YSA3EXCYUU9Z",
    "eu-west-1": "Z38GZ743OKFT7T",
    "eu-central-1": "Z273ZU8SZ5RJPC",
}


def vpce_hosted_zone_id(region: str) -> str:
    return _VPCE_HOSTED_ZONES.get(region, "Z" + mock_random.get_random_hex(12).upper())


@dataclasses.dataclass
class PrivateDnsVerification:
    """The TXT record AWS asks the provider to publish before it trusts a private DNS name."""

    name: str
    value: str
    state: str = "pendingVerification"


class SimServiceConfiguration(VPCServiceConfiguration):
    """An endpoint service with a lifecycle (Pending → Available) and real DNS verification."""

    def __init__(
        self,
        *,
        load_balancers: list[FakeLoadBalancer],
        region: str,
        acceptance_required: bool,
        private_dns_name: str | None,
        supported_regions: list[str],
        supported_ip_address_types: list[str],
        ec2_backend: object,
        ready_at: float,
        client_token: str | None,
    ) -> None:
        super().__init__(
            load_balancers=load_balancers,
            region=region,
            acceptance_required=acceptance_required,
            private_dns_name=private_dns_name or "",
            supported_regions=supported_regions,
            ec2_backend=ec2_backend,
        )
        # AWS service ids carry 17 hex digits (moto uses 8); names derive from the id.
        self.id = f"vpce-svc-{mock_random.get_random_hex(length=17)}"
        self.service_name = f"com.amazonaws.vpce.{region}.{self.id}"
        self.endpoint_dns_name = f"{self.id}.{region}.vpce.amazonaws.com"
        self.service_state = "Pending"
        self.ready_at = ready_at
        self.client_token = client_token
        self.supported_ip_address_types = supported_ip_address_types
        self.region_name = region
        self.dns_verification: PrivateDnsVerification | None = None
        # Supported Regions besides the home Region: name → simulated time it turns Available.
        self.remote_regions: dict[str, float] = {
            name: ready_at for name in supported_regions if name != region
        }
        # The simulated clock (set by ec2_actions), so Describe shows per-Region states.
        self.now: Callable[[], float] = lambda: ready_at
        self.set_load_balancers(load_balancers)
        self.set_private_dns_name(private_dns_name)

    def set_load_balancers(self, load_balancers: list[FakeLoadBalancer]) -> None:
        # AWS derives a service's AZs from its NLBs' subnets; keep them unique and ordered.
        zones = {subnet.availability_zone for lb in load_balancers for subnet in lb.subnets}
        self.availability_zones = sorted(zones)

    def set_private_dns_name(self, name: str | None) -> None:
        # moto annotates str, but None is what makes the serializer omit the field, as AWS does.
        self.private_dns_name = name  # type: ignore[assignment]
        if not name:
            self.dns_verification = None
            return
        domain = name.removeprefix("*.")
        token = mock_random.get_random_string(length=20, lower_case=True)
        self.dns_verification = PrivateDnsVerification(
            name=f"_{token}.{domain}",
            value=f"vpce:{mock_random.get_random_string(length=20)}",
        )

    @property
    def availability_zone_ids(self) -> list[str]:
        """The AZ ids behind the owner's zone names (what other accounts compare by)."""
        found = (
            zones.zone_id(self.owner, self.region_name, name) for name in self.availability_zones
        )
        return [zone for zone in found if zone is not None]

    @property
    def private_dns_name_configuration(self) -> dict[str, str]:
        if self.dns_verification is None:
            return {}
        return {
            "State": self.dns_verification.state,
            "Type": "TXT",
            "Value": self.dns_verification.value,
            "Name": self.dns_verification.name,
        }

    @property
    def owner(self) -> str:
        return str(self.ec2_backend.account_id)

    def region_state(self, region: str, now: float) -> str | None:
        """The service's state as seen from ``region`` (None: not offered there)."""
        if region == self.region_name:
            return str(self.service_state)
        ready_at = self.remote_regions.get(region)
        if ready_at is None:
            return None
        return "Available" if self.service_state == "Available" and ready_at <= now else "Pending"

    @property
    def supported_regions(self) -> list[dict[str, str]]:
        return self.supported_regions_at(self.now())

    def supported_regions_at(self, now: float) -> list[dict[str, str]]:
        """AWS's SupportedRegions: the home Region first, then each remote one with its state."""
        regions = [self.region_name, *sorted(self.remote_regions)]
        return [{"Region": r, "ServiceState": self.region_state(r, now) or ""} for r in regions]


class SimVpcEndpoint(VPCEndPoint):
    """An interface endpoint whose state follows AWS's acceptance lifecycle."""

    def __init__(
        self,
        *,
        ec2_backend: object,
        endpoint_id: str,
        vpc_id: str,
        service_name: str,
        service: SimServiceConfiguration | None,
        subnet_ids: list[str],
        network_interface_ids: list[str],
        dns_entries: list[dict[str, str]],
        security_group_ids: list[str],
        tags: dict[str, str],
        private_dns_enabled: bool,
        policy_document: str | None,
        client_token: str | None,
        ip_address_type: str | None,
        state: str,
        endpoint_type: str = "Interface",
        route_table_ids: list[str] | None = None,
        dns_record_ip_type: str | None = None,
        service_region: str | None = None,
    ) -> None:
        super().__init__(
            ec2_backend,
            endpoint_id,
            vpc_id,
            service_name,
            endpoint_type,
            policy_document,
            list(route_table_ids or []),
            subnet_ids=subnet_ids,
            network_interface_ids=network_interface_ids,
            dns_entries=dns_entries,
            client_token=client_token,
            security_group_ids=security_group_ids,
            tags=tags,
            private_dns_enabled=private_dns_enabled,
        )
        self.state = state
        self.service = service
        self.ip_address_type = ip_address_type
        self.dns_options = {"DnsRecordIpType": dns_record_ip_type} if dns_record_ip_type else None
        self.service_region = service_region
        self.requester_managed = False
        # What AWS reports for a failed endpoint (set through the admin API's injected states).
        self.last_error: dict[str, str] | None = None
        self.failure_reason: str | None = None
        # The private DNS name this endpoint resolves when private DNS is on (None: none), the
        # private hosted zone AWS would create for it, and the endpoint-specific DNS entries.
        self.private_dns_name: str | None = None
        self.private_hosted_zone_id = "Z" + mock_random.get_random_hex(12).upper()
        self.base_dns_entries: list[dict[str, str]] = list(dns_entries)
        self.connection_id = f"vpce-con-{mock_random.get_random_hex(17)}"
        self.region_name = str(self.ec2_backend.region_name)
        # (next state, simulated time it is reached); None when the state is stable.
        self.transition: tuple[str, float] | None = None

    @property
    def vpc_endpoint_id(self) -> str:
        return str(self.id)

    @property
    def account_id(self) -> str:
        return str(self.ec2_backend.account_id)

    @property
    def creation_time(self) -> datetime.datetime:
        created: datetime.datetime = self.creation_timestamp
        return created

    def move_to(self, state: str, then: tuple[str, float] | None = None) -> None:
        self.state = state
        self.transition = then


class SimLoadBalancer(FakeLoadBalancer):
    """A load balancer that stays ``provisioning`` until its (simulated) time has come.

    moto activates a load balancer on its first Describe; AWS takes minutes. ``world`` flips
    ``state`` when ``ready_at`` passes, so ``activate`` must do nothing.
    """

    ready_at: float = 0.0

    def activate(self) -> None:
        return None
