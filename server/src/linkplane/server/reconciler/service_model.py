"""The Service reconciler's typed working data and its configuration plan.

What a pass read of the Service row (`Snapshot`), what it keeps between passes in the status
(`Bookkeeping`, `DnsSchedule`), what the spec asks of AWS (`Target`), the `Change`s that move
AWS there (`plan_configuration`), and what the steps hand back (`LoadBalancers`, `DnsOutcome`,
`Decision`, `Outcome`, `Work`). Pure: no AWS calls, no database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from linkplane.server.aws import endpoint_services, loadbalancers
from linkplane.server.domain import acceptance, specs
from linkplane.server.reconciler import stalls
from linkplane.server.reconciler.stalls import Change

# One logger for all the Service reconciler's events, whichever of its modules logs them, so
# that one filter on the logger name finds a Service's whole pass.
log = structlog.get_logger("linkplane.reconciler.services")


# ---- typed working data ----------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What a pass read from the Service row before talking to AWS."""

    uid: str
    name: str
    generation: int
    deleting: bool
    force: bool


@dataclass
class DnsSchedule:
    """When linkplane asks AWS to verify the private DNS name again (kept in the status)."""

    generation: int | None = None
    """The spec generation of the last request; a new generation asks at once."""
    attempts: int = 0
    """Automatic re-checks since the last generation change or person's request."""
    next_at: float = 0.0
    """Epoch seconds of the next automatic re-check."""
    sent: list[str] = field(default_factory=list)
    """VerifyServicePrivateDns operations whose request went to AWS (open ones only)."""

    @classmethod
    def load(cls, status: Mapping[str, Any]) -> DnsSchedule:
        raw = status.get("dns_verification")
        if not isinstance(raw, Mapping):
            # Rows written before the schedule existed kept only the generation asked for.
            earlier = status.get("dns_verification_requested")
            return cls(generation=int(earlier) if earlier is not None else None)
        generation = raw.get("generation")
        return cls(
            generation=int(generation) if generation is not None else None,
            attempts=int(raw.get("attempts", 0)),
            next_at=float(raw.get("next_at", 0.0)),
            sent=[str(s) for s in raw.get("sent", [])],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "attempts": self.attempts,
            "next_at": self.next_at,
            "sent": list(self.sent),
        }


@dataclass
class Bookkeeping:
    """The reconciler's private memory between passes, stored in the status JSON (the API
    does not show it)."""

    targets_generation: int | None
    """The generation whose targets were last registered with the managed NLB."""
    dns: DnsSchedule
    guard: stalls.MutationGuard

    @classmethod
    def load(cls, status: Mapping[str, Any]) -> Bookkeeping:
        targets = status.get("targets_generation")
        return cls(
            targets_generation=int(targets) if targets is not None else None,
            dns=DnsSchedule.load(status),
            guard=stalls.MutationGuard.load(status),
        )

    def save(self, status: dict[str, Any]) -> None:
        if self.targets_generation is not None:
            status["targets_generation"] = self.targets_generation
        status.pop("dns_verification_requested", None)
        if self.dns.generation is None and not self.dns.sent:
            status.pop("dns_verification", None)
        else:
            status["dns_verification"] = self.dns.to_json()
        self.guard.save(status)


@dataclass(frozen=True)
class Target:
    """What the spec asks of AWS, in AWS's terms (lower-case IP types, permission ARNs)."""

    acceptance_required: bool
    private_dns_name: str
    supported_ip_address_types: frozenset[str]
    supported_regions: frozenset[str]
    """Other Regions only: the home Region is always supported."""
    allowed_principals: frozenset[str]

    @classmethod
    def of(cls, spec: specs.ServiceSpec, home_region: str) -> Target:
        principals = {acceptance.permission_principal(p) for p in spec.allowed_principals}
        # Consumers named in accept rules must be able to see the service too.
        principals |= {
            acceptance.permission_principal(r.principal)
            for r in spec.acceptance_policy.accept_rules
            if acceptance.account_of(r.principal) is not None
        }
        return cls(
            acceptance_required=acceptance.acceptance_required(spec),
            private_dns_name=spec.private_dns_name,
            supported_ip_address_types=frozenset(
                t.lower() for t in spec.supported_ip_address_types or ["ipv4"]
            ),
            supported_regions=frozenset(spec.supported_regions) - {home_region},
            allowed_principals=frozenset(principals),
        )

    @property
    def wants_ipv6(self) -> bool:
        return "ipv6" in self.supported_ip_address_types

    @property
    def load_balancer_ip_address_type(self) -> str:
        """An endpoint service can offer IPv6 only from a dual-stack NLB."""
        return loadbalancers.DUALSTACK if self.wants_ipv6 else loadbalancers.IPV4


CONFIGURATION_FIELDS = (
    "configuration.acceptance_required",
    "configuration.network_load_balancer_arns",
    "configuration.private_dns_name",
    "configuration.supported_ip_address_types",
    "configuration.supported_regions",
)
PERMISSIONS_FIELD = "permissions.allowed_principals"
LB_IP_TYPE_FIELD = "load_balancer.ip_address_type"
TAGS_FIELD = "tags"


def plan_configuration(
    target: Target, arns: Sequence[str], observed: endpoint_services.EndpointServiceConfiguration
) -> list[Change]:
    """The ModifyVpcEndpointServiceConfiguration changes that make AWS match the target."""
    planned: list[Change] = []
    if observed.acceptance_required != target.acceptance_required:
        planned.append(
            Change(
                CONFIGURATION_FIELDS[0],
                target.acceptance_required,
                observed.acceptance_required,
                {"AcceptanceRequired": target.acceptance_required},
            )
        )
    planned += _set_change(
        CONFIGURATION_FIELDS[1],
        frozenset(arns),
        observed.network_load_balancer_arns,
        "AddNetworkLoadBalancerArns",
        "RemoveNetworkLoadBalancerArns",
    )
    if target.private_dns_name != observed.private_dns_name:
        planned.append(
            Change(
                CONFIGURATION_FIELDS[2],
                target.private_dns_name,
                observed.private_dns_name,
                {"PrivateDnsName": target.private_dns_name}
                if target.private_dns_name
                else {"RemovePrivateDnsName": True},
            )
        )
    planned += _set_change(
        CONFIGURATION_FIELDS[3],
        target.supported_ip_address_types,
        observed.supported_ip_address_types,
        "AddSupportedIpAddressTypes",
        "RemoveSupportedIpAddressTypes",
    )
    planned += _set_change(
        CONFIGURATION_FIELDS[4],
        target.supported_regions,
        observed.supported_regions,
        "AddSupportedRegions",
        "RemoveSupportedRegions",
    )
    return planned


def _set_change(
    name: str, wanted: frozenset[str], observed: frozenset[str], add_key: str, remove_key: str
) -> list[Change]:
    if wanted == observed:
        return []
    params: dict[str, Any] = {}
    if add := sorted(wanted - observed):
        params[add_key] = add
    if remove := sorted(observed - wanted):
        params[remove_key] = remove
    return [Change(name, sorted(wanted), sorted(observed), params)]


@dataclass(frozen=True)
class LoadBalancers:
    """The outcome of the load-balancer step."""

    arns: list[str]
    ready: bool
    message: str
    managed: loadbalancers.LoadBalancer | None


@dataclass(frozen=True)
class DnsOutcome:
    """The outcome of the private DNS step."""

    asked: bool
    """StartVpcEndpointServicePrivateDnsVerification went out this pass."""
    recheck_in: float | None
    """Seconds until the next automatic re-check; None when none is due (verified, or no
    private DNS name)."""
    answered: list[str]
    """VerifyServicePrivateDns operations to settle from the state AWS reports now."""
    unanswerable: list[str]
    """VerifyServicePrivateDns operations for a service that no longer has a private name."""


@dataclass(frozen=True)
class Decision:
    """A verdict on one endpoint connection, to send to AWS and record."""

    endpoint_id: str
    verdict: str
    actor: str
    reason: str
    automatic: bool
    request_row: int | None = None
    """The ConnectionDecision row of a person's request; None for the policy's own."""


@dataclass(frozen=True)
class Outcome:
    """Why AWS (or linkplane) refused a decision on one endpoint."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass
class Work:
    """What one converge pass learned along the way."""

    status: dict[str, Any]
    book: Bookkeeping
    now: float
    stalled: list[stalls.Stalled] = field(default_factory=list)

    def allowed(self, action: str, change: Change) -> bool:
        """Ask the guard; a stalled change is remembered for the condition and the requeue."""
        return self.book.guard.admit(
            action,
            change,
            now=self.now,
            stalled=self.stalled,
            log=log,
            event="service.mutation_stalled",
        )
