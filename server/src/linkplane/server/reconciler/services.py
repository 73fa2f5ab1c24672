"""The Service reconciler: NLB → endpoint service → permissions → private DNS → connections.

Each pass reads the spec from Postgres and the truth from AWS, then takes every step that is
due, idempotently: objects are found by their `linkplane:uid` tag (or by their deterministic
ELBv2 name) before anything is created, and created with a deterministic ClientToken and the
tag in the same call. Teardown follows AWS's order: reject live connections, delete the
endpoint service, wait until it is gone, then delete the managed NLB and its target groups.

No mutation is re-issued blindly: every Modify (service configuration, permissions, the NLB's
IP address type) is planned as typed `Change`s and asked of a `stalls.MutationGuard` first, so
a change AWS accepts but never reflects stalls with a `Stalled` condition and backs off instead
of looping. Private DNS verification is asked again at a bounded, growing interval while the
name is not verified, and at once when a provider calls VerifyServicePrivateDns.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from linkplane.server.aws import calls, loadbalancers
from linkplane.server.aws import services as aws_services
from linkplane.server.domain import acceptance, specs, states
from linkplane.server.protocol import converters
from linkplane.server.reconciler import engine, failures, labels, progress, stalls
from linkplane.server.reconciler.workspace import Workspace
from linkplane.server.storage import (
    audit,
    changes,
    decisions,
    inventory,
    leases,
    models,
    operations,
    records,
)
from linkplane.server.storage.database import Session

log = structlog.get_logger("linkplane.reconciler.services")
KIND = "service"

VERIFY_DNS = "verify-dns"
"""The Operation verb of VerifyServicePrivateDns (api/provider.py starts it, this settles it)."""

DNS_RECHECK_BASE = 12.0
"""First automatic DNS re-check after this many transitional intervals (5 s → 1 min)."""

DNS_RECHECK_CAP = 12.0
"""Re-checks grow to at most this many resync intervals apart (300 s → 1 h)."""


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


@dataclass(frozen=True)
class Change:
    """One field of a planned mutation: what AWS reports, what the spec wants, and the
    parameters of the call that moves it."""

    field: str
    wanted: object
    observed: object
    params: Mapping[str, Any]


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
    target: Target, arns: Sequence[str], observed: aws_services.EndpointServiceConfiguration
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
        decision = self.book.guard.before(
            action=action,
            field=change.field,
            wanted=change.wanted,
            observed=change.observed,
            now=self.now,
        )
        if isinstance(decision, stalls.Stalled):
            self.stalled.append(decision)
            log.warning(
                "service.mutation_stalled",
                field=change.field,
                wanted=decision.wanted,
                observed=decision.observed,
                attempts=decision.attempts,
            )
            return False
        return True


# ---- the reconciler ---------------------------------------------------------------------------


class ServiceReconciler:
    kind = KIND
    model = models.Service

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def urgent(self) -> Any:
        # Decisions recorded by AcceptServiceConnections while this worker held the lease.
        return decisions.waiting()

    async def record_failure(
        self, lease: leases.Lease, error: failures.Failure, attempts: int
    ) -> None:
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Service, lease)
            await failures.record(session, row, error, kind=KIND, settle=progress.settle_service)

    async def reconcile(self, lease: leases.Lease) -> engine.Pass:
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Service, lease)
            spec = specs.service_from_json(row.spec)
            snapshot = Snapshot(
                uid=str(row.uid),
                name=row.name,
                generation=row.generation,
                deleting=row.delete_time is not None,
                force=row.force_delete,
            )
            status = dict(row.status or {})
            verify_requests = [
                op.id for op in await operations.open_for(session, row.uid) if op.verb == VERIFY_DNS
            ]
        account = await self.ws.account(spec.provider_account)
        ctx = self.ws.context(account, spec.region, fence=self.ws.fence(models.Service, lease))
        if snapshot.deleting:
            return await self._teardown(lease, ctx, spec, snapshot)
        work = Work(status=status, book=Bookkeeping.load(status), now=time.time())
        return await self._converge(lease, ctx, spec, snapshot, work, verify_requests)

    # ---- converge --------------------------------------------------------------------------

    async def _converge(
        self,
        lease: leases.Lease,
        ctx: calls.Context,
        spec: specs.ServiceSpec,
        snap: Snapshot,
        work: Work,
        verify_requests: list[str],
    ) -> engine.Pass:
        status = work.status
        transitional = self.ws.timing.transitional_seconds
        target = Target.of(spec, ctx.region)
        lbs = await self._ensure_load_balancers(ctx, spec, snap, target, work)
        status["network_load_balancer_arns"] = lbs.arns
        progress.set_condition(
            status,
            "LoadBalancerReady",
            lbs.ready,
            "Active" if lbs.ready else "Provisioning",
            lbs.message,
            snap.generation,
        )
        if not lbs.ready:
            stalls.set_stalled_condition(status, work.stalled, snap.generation)
            work.book.save(status)
            await self._write(
                lease,
                status,
                state=None,
                converged=False,
                progress_message=lbs.message,
                stalled=work.stalled,
            )
            return engine.Pass(stalls.soonest_retry(work.stalled, transitional))

        observed = await aws_services.find_configuration(ctx, snap.uid)
        if observed is None:
            observed = await self._create_endpoint_service(ctx, spec, snap, target, lbs.arns)
        service_id = observed.service_id
        await self._apply_tags(ctx, spec, observed, work)
        changed = await self._apply_configuration(ctx, target, lbs.arns, observed, work)
        changed |= await self._apply_permissions(ctx, target, service_id, work)
        if changed:
            observed = await aws_services.find_configuration(ctx, snap.uid) or observed
        changed |= await self._settle_load_balancer_ip_type(ctx, target, lbs, observed, work)
        dns = await self._verify_private_dns(ctx, spec, observed, snap, work, verify_requests)
        if dns.asked:
            observed = await aws_services.find_configuration(ctx, snap.uid) or observed
        self._describe_private_dns(spec, observed, status, snap)

        status.update(
            service_id=service_id,
            service_name=observed.service_name,
            base_endpoint_dns_names=list(observed.base_endpoint_dns_names),
            availability_zones=list(observed.availability_zones),
        )
        connections = (
            await aws_services.describe_connections(ctx, service_id) if observed.available else []
        )
        if await self._decide(lease, ctx, spec, service_id, connections):
            connections = await aws_services.describe_connections(ctx, service_id)
        counts = _connection_counts(connections)
        status["connection_counts"] = counts
        status.pop("last_aws_error", None)
        stalls.set_stalled_condition(status, work.stalled, snap.generation)
        converged = observed.available and not changed and not work.stalled
        if converged:
            reason, message = "Available", "the endpoint service matches the spec"
        elif work.stalled:
            reason, message = "Stalled", "; ".join(s.message() for s in work.stalled)
        else:
            reason = "Converging"
            message = f"endpoint service is {observed.state or 'being created'}"
        progress.set_condition(status, "Ready", converged, reason, message, snap.generation)
        work.book.save(status)
        await self._write(
            lease,
            status,
            state="ACTIVE" if converged else None,
            converged=converged,
            progress_message="active" if converged else message,
            service_id=service_id,
            service_name=observed.service_name,
            connections=connections,
            dns_answered=dns.answered,
            dns_unanswerable=dns.unanswerable,
            stalled=work.stalled,
        )
        if not converged or counts["pending_acceptance"] + counts["pending"]:
            delay = transitional
        else:
            delay = self.ws.timing.resync_seconds
        if work.stalled and observed.available and not changed:
            # Only stalled changes are left: look again when the guard lets one go, not at
            # the transitional pace (each pass costs Describe calls for nothing).
            retry = min(s.retry_after for s in work.stalled)
            delay = max(transitional, min(self.ws.timing.resync_seconds, retry))
        if dns.answered and (dns.recheck_in is not None):
            # A person waits on VerifyServicePrivateDns: follow AWS's answer closely.
            delay = min(delay, transitional)
        if dns.recheck_in is not None:
            delay = min(delay, max(dns.recheck_in, transitional))
        return engine.Pass(delay)

    async def _create_endpoint_service(
        self,
        ctx: calls.Context,
        spec: specs.ServiceSpec,
        snap: Snapshot,
        target: Target,
        arns: list[str],
    ) -> aws_services.EndpointServiceConfiguration:
        extra: dict[str, Any] = {}
        if target.private_dns_name:
            extra["PrivateDnsName"] = target.private_dns_name
        if spec.supported_ip_address_types:
            extra["SupportedIpAddressTypes"] = sorted(target.supported_ip_address_types)
        if target.supported_regions:
            extra["SupportedRegions"] = sorted(target.supported_regions)
        created = await aws_services.create_endpoint_service(
            ctx,
            uid=snap.uid,
            generation=snap.generation,
            name=snap.name,
            network_load_balancer_arns=arns,
            acceptance_required=target.acceptance_required,
            labels=spec.labels,
            **extra,
        )
        return aws_services.EndpointServiceConfiguration.from_aws(created, ctx.region)

    async def _ensure_load_balancers(
        self,
        ctx: calls.Context,
        spec: specs.ServiceSpec,
        snap: Snapshot,
        target: Target,
        work: Work,
    ) -> LoadBalancers:
        managed = spec.load_balancer.managed
        if managed is None:
            return await self._check_adopted(ctx, spec.load_balancer.adopted_arns, target)
        lb = await loadbalancers.ensure_managed_load_balancer(
            ctx,
            uid=snap.uid,
            resource_name=snap.name,
            spec=managed,
            labels=spec.labels,
            ip_address_type=target.load_balancer_ip_address_type,
            register_targets=work.book.targets_generation != snap.generation,
        )
        work.book.targets_generation = snap.generation
        if target.wants_ipv6 and not lb.dual_stack:
            # Before the endpoint service is asked for IPv6, which AWS refuses otherwise.
            change = Change(
                LB_IP_TYPE_FIELD,
                loadbalancers.DUALSTACK,
                lb.ip_address_type,
                {"IpAddressType": loadbalancers.DUALSTACK},
            )
            if work.allowed("SetIpAddressType", change):
                await loadbalancers.set_ip_address_type(ctx, lb.arn, loadbalancers.DUALSTACK)
                lb = await loadbalancers.find_network_load_balancer(ctx, lb.name) or lb
        elif target.wants_ipv6:
            work.book.guard.clear(LB_IP_TYPE_FIELD)
        ready = lb.active and (lb.dual_stack or not target.wants_ipv6)
        if ready:
            message = "the NLB is active"
        elif not lb.active:
            message = f"waiting for the NLB ({lb.state})"
        else:
            message = "waiting for the NLB to become dual-stack"
        return LoadBalancers([lb.arn], ready, message, lb)

    async def _check_adopted(
        self, ctx: calls.Context, arns: list[str], target: Target
    ) -> LoadBalancers:
        lbs = await loadbalancers.describe_load_balancers(ctx, arns)
        not_network = [lb.arn for lb in lbs if lb.type != "network"]
        if not_network:
            raise failures.PermanentError(
                "NotANetworkLoadBalancer",
                f"endpoint services need Network Load Balancers: {', '.join(not_network)}",
                action="DescribeLoadBalancers",
            )
        ipv4_only = [lb.arn for lb in lbs if not lb.dual_stack]
        if target.wants_ipv6 and ipv4_only:
            # linkplane never changes an adopted NLB; AWS would refuse the IPv6 Modify.
            raise failures.PermanentError(
                "LoadBalancerNotDualStack",
                "supported_ip_address_types asks for IPV6, which needs dual-stack NLBs, but "
                f"these adopted NLBs are IPv4-only: {', '.join(ipv4_only)}; make them "
                "dual-stack (SetIpAddressType dualstack) or drop IPV6",
                action="DescribeLoadBalancers",
            )
        ready = all(lb.active for lb in lbs)
        return LoadBalancers(
            list(arns),
            ready,
            "adopted load balancers are active" if ready else "waiting for adopted NLBs",
            None,
        )

    async def _apply_tags(
        self,
        ctx: calls.Context,
        spec: specs.ServiceSpec,
        observed: aws_services.EndpointServiceConfiguration,
        work: Work,
    ) -> None:
        """Labels follow onto the endpoint service's tags, behind the guard like any change
        (tags are not part of the service's readiness: the next pass checks them)."""
        current = labels.user_tags(observed.raw)
        if current == spec.labels:
            work.book.guard.clear(TAGS_FIELD)
            return
        if work.allowed("CreateTags", Change(TAGS_FIELD, dict(spec.labels), current, {})):
            await labels.sync_ec2_tags(ctx, observed.service_id, observed.raw, spec.labels)

    async def _apply_configuration(
        self,
        ctx: calls.Context,
        target: Target,
        arns: Sequence[str],
        observed: aws_services.EndpointServiceConfiguration,
        work: Work,
    ) -> bool:
        planned = plan_configuration(target, arns, observed)
        pending = {c.field for c in planned}
        for name in CONFIGURATION_FIELDS:
            if name not in pending:
                work.book.guard.clear(name)
        params: dict[str, Any] = {}
        for change in planned:
            if work.allowed("ModifyVpcEndpointServiceConfiguration", change):
                params.update(change.params)
        if not params:
            return False
        await aws_services.modify_configuration(ctx, observed.service_id, **params)
        return True

    async def _apply_permissions(
        self, ctx: calls.Context, target: Target, service_id: str, work: Work
    ) -> bool:
        current = await aws_services.allowed_principals(ctx, service_id)
        wanted = target.allowed_principals
        if current == wanted:
            work.book.guard.clear(PERMISSIONS_FIELD)
            return False
        add, remove = sorted(wanted - current), sorted(current - wanted)
        change = Change(
            PERMISSIONS_FIELD,
            sorted(wanted),
            sorted(current),
            {"AddAllowedPrincipals": add, "RemoveAllowedPrincipals": remove},
        )
        if not work.allowed("ModifyVpcEndpointServicePermissions", change):
            return False
        await aws_services.modify_permissions(ctx, service_id, add=add, remove=remove)
        return True

    async def _settle_load_balancer_ip_type(
        self,
        ctx: calls.Context,
        target: Target,
        lbs: LoadBalancers,
        observed: aws_services.EndpointServiceConfiguration,
        work: Work,
    ) -> bool:
        """A managed NLB goes back to IPv4 once the service no longer offers IPv6 (not
        before: AWS keeps a dual-stack NLB while the service supports IPv6)."""
        lb = lbs.managed
        if lb is None or target.wants_ipv6:
            return False
        if not lb.dual_stack:
            work.book.guard.clear(LB_IP_TYPE_FIELD)
            return False
        if "ipv6" in observed.supported_ip_address_types:
            return False
        change = Change(
            LB_IP_TYPE_FIELD,
            loadbalancers.IPV4,
            lb.ip_address_type,
            {"IpAddressType": loadbalancers.IPV4},
        )
        if not work.allowed("SetIpAddressType", change):
            return False
        await loadbalancers.set_ip_address_type(ctx, lb.arn, loadbalancers.IPV4)
        return True

    async def _verify_private_dns(
        self,
        ctx: calls.Context,
        spec: specs.ServiceSpec,
        observed: aws_services.EndpointServiceConfiguration,
        snap: Snapshot,
        work: Work,
        verify_requests: list[str],
    ) -> DnsOutcome:
        """Ask AWS to look for the TXT record: at once for a new generation or a person's
        request, then at a growing interval while it is not verified."""
        schedule = work.book.dns
        record = observed.private_dns
        if not spec.private_dns_name:
            work.book.dns = DnsSchedule()
            return DnsOutcome(False, None, [], verify_requests)
        if record is None:
            # AWS has not reported the name's record yet; requests wait for it.
            return DnsOutcome(False, None, [], [])
        new_requests = [r for r in verify_requests if r not in schedule.sent]
        fresh_generation = schedule.generation != snap.generation
        due = fresh_generation or work.now >= schedule.next_at
        asked = False
        if not record.verified and (due or new_requests):
            await aws_services.start_private_dns_verification(ctx, observed.service_id)
            asked = True
            schedule.attempts = 0 if fresh_generation or new_requests else schedule.attempts + 1
            schedule.generation = snap.generation
            schedule.next_at = work.now + self._dns_recheck_delay(schedule.attempts)
        schedule.sent = list(verify_requests)
        recheck_in = None if record.verified else schedule.next_at - work.now
        return DnsOutcome(asked, recheck_in, list(verify_requests), [])

    def _dns_recheck_delay(self, attempts: int) -> float:
        base = DNS_RECHECK_BASE * self.ws.timing.transitional_seconds
        cap = DNS_RECHECK_CAP * self.ws.timing.resync_seconds
        return float(min(cap, base * 2 ** min(attempts, 30)))

    def _describe_private_dns(
        self,
        spec: specs.ServiceSpec,
        observed: aws_services.EndpointServiceConfiguration,
        status: dict[str, Any],
        snap: Snapshot,
    ) -> None:
        record = observed.private_dns
        if not spec.private_dns_name or record is None:
            status.pop("private_dns_verification", None)
            return
        status["private_dns_verification"] = {
            "txt_record_name": record.name,
            "txt_record_value": record.value,
            "state": record.state,
        }
        progress.set_condition(
            status,
            "PrivateDnsVerified",
            record.verified,
            record.state.title().replace("_", ""),
            "the private DNS name is verified"
            if record.verified
            else f"create TXT {record.name} = {record.value} in the domain's DNS; linkplane "
            "asks AWS to verify it again periodically (or now: VerifyServicePrivateDns)",
            snap.generation,
        )

    async def _decide(
        self,
        lease: leases.Lease,
        ctx: calls.Context,
        spec: specs.ServiceSpec,
        service_id: str,
        connections: list[aws_services.EndpointConnection],
    ) -> bool:
        """Apply people's decisions, then the policy's; record each with who, when and why."""
        by_id = {c.endpoint_id: c for c in connections}
        async with self.ws.db.transaction() as session:
            requested = await decisions.pending(session, lease.uid)
            plan = [
                Decision(d.endpoint_id, d.verdict, d.actor, d.reason, False, d.id)
                for d in requested
            ]
        if any(d.endpoint_id not in by_id for d in plan):
            # A person may decide on an endpoint the consumer created after this pass described
            # the service's connections (the API admits linkplane's own pending Connections
            # before the inventory shows them): look again, now that the decision is stored,
            # rather than refuse it as unknown.
            fresh = await aws_services.describe_connections(ctx, service_id)
            by_id = {c.endpoint_id: c for c in fresh}
        plan += _policy_decisions(spec, by_id, {d.endpoint_id for d in plan})
        if not plan:
            return False
        outcomes: dict[str, Outcome] = {}
        for verdict, call in (
            ("ACCEPTED", aws_services.accept_connections),
            ("REJECTED", aws_services.reject_connections),
        ):
            ids = [
                d.endpoint_id
                for d in plan
                if d.verdict == verdict
                and d.endpoint_id in by_id
                and by_id[d.endpoint_id].state in states.DECIDABLE[verdict]
            ]
            if ids:
                _, refused = await call(ctx, service_id, ids)
                for item in refused:
                    outcomes[item.resource_id] = Outcome(item.code, item.error.message)
        decided: list[str] = []
        async with self.ws.db.transaction() as session:
            await leases.load(session, models.Service, lease)
            for decision in plan:
                outcome = _refusal(decision, by_id, outcomes)
                if decision.request_row is not None:
                    await decisions.mark_applied(
                        session, decision.request_row, outcome.to_json() if outcome else {}
                    )
                if outcome is not None:
                    continue
                await _record_decision(session, lease.uid, decision)
                decided.append(decision.endpoint_id)
                log.info(
                    "service.decision",
                    service=str(lease.uid),
                    endpoint=decision.endpoint_id,
                    verdict=decision.verdict,
                    actor=decision.actor,
                    automatic=decision.automatic,
                )
            if decided:
                await leases.poke_decided_connections(session, lease.uid, decided)
        return True

    async def _write(
        self,
        lease: leases.Lease,
        status: dict[str, Any],
        *,
        state: str | None,
        converged: bool,
        progress_message: str,
        service_id: str | None = None,
        service_name: str | None = None,
        connections: list[aws_services.EndpointConnection] | None = None,
        dns_answered: Sequence[str] = (),
        dns_unanswerable: Sequence[str] = (),
        stalled: Sequence[stalls.Stalled] = (),
    ) -> None:
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Service, lease)
            before = (row.state, row.status, row.reconciling, row.observed_generation)
            row.status = status
            if state is not None:
                row.state = state
            elif row.state in {"ACTIVE", "FAILED"}:
                row.state = "UPDATING"
            if converged:
                row.observed_generation = lease.generation
            row.reconciling = not converged or row.generation != lease.generation
            if service_id:
                row.service_id = service_id
                row.service_name = service_name
            if connections is not None:
                await inventory.store_observed(session, row, connections)
            if before != (row.state, row.status, row.reconciling, row.observed_generation):
                row.revision += 1
                records.mark_updated(row)
                await changes.notify(session, kind=KIND, name=row.name, uid=str(row.uid))
            await progress.set_progress(session, row.uid, progress_message)
            await records.write_back(session, row)
            await progress.settle_service(session, row)
            await _settle_verification(session, row, dns_answered, dns_unanswerable)
            if stalled:
                await _fail_stalled(session, row, stalled)

    # ---- teardown --------------------------------------------------------------------------

    async def _teardown(
        self, lease: leases.Lease, ctx: calls.Context, spec: specs.ServiceSpec, snap: Snapshot
    ) -> engine.Pass:
        transitional = self.ws.timing.transitional_seconds
        observed = await aws_services.find_configuration(ctx, snap.uid)
        if observed is not None:
            service_id = observed.service_id
            connections = await aws_services.describe_endpoint_connections(ctx, service_id)
            live = aws_services.live_connection_ids(connections)
            if live and not snap.force:
                await self._note(
                    lease,
                    "DeleteBlocked",
                    f"{len(live)} live connections; delete with force to reject them",
                )
                return engine.Pass(transitional)
            if live:
                await aws_services.reject_connections(ctx, service_id, live)
                async with self.ws.db.transaction() as session:
                    await leases.load(session, models.Service, lease)
                    for endpoint_id in live:
                        await _record_decision(
                            session,
                            lease.uid,
                            Decision(
                                endpoint_id,
                                "REJECTED",
                                "policy:force-delete",
                                "service deleted with force",
                                True,
                            ),
                        )
            # Raises ExistingVpcEndpointConnections (retryable) while rejections settle.
            await aws_services.delete_endpoint_service(ctx, service_id)
            if await aws_services.find_endpoint_service_by_uid(ctx, snap.uid) is not None:
                await self._note(lease, "Deleting", "waiting for the endpoint service to go")
                return engine.Pass(transitional)
        managed = spec.load_balancer.managed
        if managed is not None and not await loadbalancers.delete_managed_load_balancer(
            ctx, uid=snap.uid, spec=managed
        ):
            await self._note(lease, "Deleting", "waiting for the NLB to go")
            return engine.Pass(transitional)
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Service, lease)
            await progress.finish_deletion(session, row, KIND)
        log.info("service.deleted", service=snap.name)
        return engine.Pass(0)

    async def _note(self, lease: leases.Lease, reason: str, message: str) -> None:
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Service, lease)
            status = dict(row.status or {})
            progress.set_condition(status, "Ready", False, reason, message, row.generation)
            if status != row.status:
                row.status = status
                row.revision += 1
                records.mark_updated(row)
                await changes.notify(session, kind=KIND, name=row.name, uid=str(row.uid))
            await progress.set_progress(session, row.uid, message)


# ---- helpers -----------------------------------------------------------------------------------


def _policy_decisions(
    spec: specs.ServiceSpec,
    by_id: Mapping[str, aws_services.EndpointConnection],
    decided_by_people: set[str],
) -> list[Decision]:
    """The acceptance policy's verdicts, oldest request first (limits count in that order)."""
    plan: list[Decision] = []
    live_by_owner: Counter[str] = Counter(
        c.owner for c in by_id.values() if c.state in {"PENDING", "AVAILABLE", "PARTIAL"}
    )
    for connection in sorted(by_id.values(), key=lambda c: str(c.create_time or "")):
        if connection.endpoint_id in decided_by_people:
            continue
        if connection.state == "PENDING_ACCEPTANCE":
            ruling = acceptance.decide(spec.acceptance_policy, connection.owner, live_by_owner)
            if ruling.verdict is not None:
                plan.append(
                    Decision(
                        connection.endpoint_id,
                        ruling.verdict,
                        ruling.rule,
                        "acceptance policy",
                        True,
                    )
                )
                if ruling.verdict == "ACCEPTED":
                    live_by_owner[connection.owner] += 1
        elif (
            spec.acceptance_policy.reevaluate_existing
            and connection.state in states.LIVE_ENDPOINT_STATES
            and not acceptance.still_allowed(spec, connection.owner)
        ):
            plan.append(
                Decision(
                    connection.endpoint_id,
                    "REJECTED",
                    "policy:reevaluate",
                    "no longer allowed",
                    True,
                )
            )
    return plan


def _refusal(
    decision: Decision,
    by_id: Mapping[str, aws_services.EndpointConnection],
    outcomes: Mapping[str, Outcome],
) -> Outcome | None:
    """Why a decision was not applied, or None when it was."""
    connection = by_id.get(decision.endpoint_id)
    if connection is None:
        return Outcome(
            "EndpointNotFound", f"{decision.endpoint_id} is not connected to this service"
        )
    outcome = outcomes.get(decision.endpoint_id)
    if outcome is None and connection.state not in states.DECIDABLE[decision.verdict]:
        return Outcome("IncorrectState", f"{decision.endpoint_id} is {connection.state}")
    return outcome


def _connection_counts(connections: Sequence[aws_services.EndpointConnection]) -> dict[str, int]:
    """Connections by state; the buckets add up to the total."""
    counts = Counter(c.state for c in connections)
    buckets = {
        "pending_acceptance": counts["PENDING_ACCEPTANCE"],
        "pending": counts["PENDING"],
        "available": counts["AVAILABLE"],
        "rejected": counts["REJECTED"],
        "deleted": counts["DELETED"] + counts["DELETING"],
    }
    # Failed, expired, partial, and anything else AWS may report one day.
    buckets["failed"] = len(connections) - sum(buckets.values())
    buckets["total"] = len(connections)
    return buckets


async def _fail_stalled(
    session: Session, row: models.Service, stalled: Sequence[stalls.Stalled]
) -> None:
    """Publish/update operations fail when a change is stalled: the reconciler keeps trying
    with backoff, but the caller learns now rather than hours later (as for Connections)."""
    message = "; ".join(s.message() for s in stalled)
    for operation in await operations.open_for(session, row.uid):
        if operation.verb in {"publish", "update"}:
            await operations.finish(
                session,
                operation.id,
                error=progress.failure_status(
                    "STALLED", message, state=row.state, fields=",".join(s.field for s in stalled)
                ),
            )


async def _settle_verification(
    session: Session,
    row: models.Service,
    answered: Sequence[str],
    unanswerable: Sequence[str],
) -> None:
    """Finish VerifyServicePrivateDns operations that AWS has answered."""
    record = (row.status or {}).get("private_dns_verification") or {}
    state = record.get("state", "")
    for operation_id in unanswerable:
        await operations.finish(
            session,
            operation_id,
            error=progress.failure_status(
                "NO_PRIVATE_DNS_NAME",
                f"{row.name} has no private DNS name to verify",
                name=row.name,
            ),
        )
    for operation_id in answered:
        if state == "VERIFIED":
            await operations.finish(
                session, operation_id, response=converters.pack(converters.service(row))
            )
        elif state == "FAILED":
            name, value = record.get("txt_record_name", ""), record.get("txt_record_value", "")
            await operations.finish(
                session,
                operation_id,
                error=progress.failure_status(
                    "PRIVATE_DNS_NOT_VERIFIED",
                    f"AWS did not find TXT {name} = {value}; create it in the domain's DNS and "
                    "ask again (linkplane also re-checks periodically)",
                    name=row.name,
                    txt_record_name=str(name),
                    txt_record_value=str(value),
                ),
            )


async def _record_decision(session: Session, service_uid: uuid.UUID, decision: Decision) -> None:
    recorded = {
        "verdict": decision.verdict,
        "actor": decision.actor,
        "reason": decision.reason,
        "automatic": decision.automatic,
        "time": progress.now_iso(),
    }
    await inventory.record_decision(session, service_uid, decision.endpoint_id, recorded)
    service = await records.find(session, models.Service, service_uid)
    await audit.record(
        session,
        actor=decision.actor,
        action=f"Connection{decision.verdict.title()}",
        resource=f"{service.name}/serviceConnections/{decision.endpoint_id}"
        if service
        else decision.endpoint_id,
        resource_uid=service_uid,
        details={"reason": decision.reason, "automatic": decision.automatic},
    )
