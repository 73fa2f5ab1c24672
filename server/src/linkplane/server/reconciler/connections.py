"""The Connection reconciler: pre-flight checks, the VPC endpoint, and its lifecycle.

A Connection is an *interface* endpoint (ENIs in subnets; any endpoint service: a linkplane
Service, another provider's service name, an AWS service such as SQS; cross-region) or a
*gateway* endpoint (routes in route tables; S3 and DynamoDB in the VPC's region).

Before creating, it checks what would otherwise fail later inside AWS: the target service is
visible to the consumer (in its own region, for a cross-region connection), every subnet's AZ
(by AZ id, which is the same in every account, unlike AZ names) is one the service offers, the
IP address type is one the service and the subnets support, and the VPC has room under its
endpoint quota (read from Service Quotas). The endpoint is found by its `linkplane:uid` tag
before it is ever created; if it vanishes out of band, the next pass notices, says so in a
condition, and creates a new one under a new incarnation number (so the ClientToken changes
and AWS does not hand back the deleted one).

Once the endpoint is available the spec is applied by diff with ModifyVpcEndpoint, each field
through the mutation guard (`stalls`): a change AWS accepts but does not reflect is retried a
few times, then reported as `Stalled` and retried with backoff, never in a loop.

Its working data is typed: the `Target` of this pass, the observed `aws_endpoints.Endpoint`,
the `Change`s of the plan and the private `Bookkeeping` kept in the status JSON.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from linkplane.server.aws import calls, quotas, tags
from linkplane.server.aws import endpoints as aws_endpoints
from linkplane.server.aws import errors as aws_errors
from linkplane.server.domain import acceptance, specs, states
from linkplane.server.domain import endpoints as kinds
from linkplane.server.reconciler import engine, failures, labels, progress, stalls
from linkplane.server.reconciler.workspace import Workspace
from linkplane.server.storage import changes, leases, models, records

log = structlog.get_logger("linkplane.reconciler.connections")
KIND = "connection"
VISIBILITY_GRACE_STEPS = (1, 1, 2, 4, 4)
"""The visibility grace, in transitional intervals: a service the consumer cannot see yet (the
provider's permission still propagating), or an endpoint a Describe does not show right after
its create, is looked at again after 1, 1, 2, 4 and 4 transitional intervals, then believed.
With the default 5 s interval that is 5, 5, 10, 20, 20 s (60 s in all, about what AWS takes to
propagate an endpoint service permission); a time-scaled simulator test with 0.2 s waits 2.4 s."""
VISIBILITY_GRACE_ATTEMPTS = len(VISIBILITY_GRACE_STEPS)
MODIFY = "ModifyVpcEndpoint"
FIRST_CLAIM = 1
"""The fencing token of a row's first lease (rows start at 0; every claim adds one)."""
# Endpoint states that no longer count against the VPC's quota.
NOT_COUNTED = {"deleted", "deleting", "rejected", "failed", "expired"}
# Endpoint types the per-VPC quota (L-29B6F2EB) counts.
QUOTA_COUNTED_TYPES = ["Interface", "GatewayLoadBalancer"]
# The policy AWS gives an endpoint created without one, and restores on ResetPolicy.
DEFAULT_ENDPOINT_POLICY: dict[str, Any] = {
    "Version": "2008-10-17",
    "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}],
}
# The DNS records that go with each endpoint IP address type.
DNS_RECORD_IP_TYPE = {"ipv4": "ipv4", "dualstack": "dualstack", "ipv6": "ipv6"}


class EndpointSnapshots:
    """One DescribeVpcEndpoints per (account, region) serves many connections' status checks
    and quota pre-flights.

    Hundreds of endpoints waiting to become available would otherwise each poll AWS every few
    seconds: 200 pending endpoints at a 5 s interval are 40 Describe calls a second, twice the
    20/s that AWS allows an account for all of EC2's non-mutating calls. A snapshot of every
    endpoint in the account and region, at most `ttl` old, answers them all: which endpoint
    carries a connection's `linkplane:uid` tag, and how many endpoints count against each VPC's
    quota. Only "found" answers are trusted: a missing endpoint is confirmed by a direct call
    (unless no earlier pass can have created it), a pass that just changed its endpoint reads it
    directly (`Bookkeeping.fresh_read`), and a VPC the snapshot shows full is counted again
    directly. Endpoints this process created since a snapshot was asked count for their VPC
    until a snapshot shows them (`created`), so back-to-back creates see each other.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._taken: dict[tuple[str, str | None, str], Snapshot] = {}
        self._locks: dict[tuple[str, str | None, str], asyncio.Lock] = {}
        # Endpoints created here, per account: (monotonic time, VPC id, endpoint id).
        self._created: dict[tuple[str, str | None, str], list[tuple[float, str, str]]] = {}

    async def find(self, ctx: calls.Context, uid: str) -> Sighting:
        """The endpoint tagged `uid` in a snapshot at most `ttl` old, and when it was asked."""
        snapshot = await self._snapshot(ctx)
        return Sighting(snapshot.by_uid.get(uid), snapshot.asked)

    async def counted_in_vpc(self, ctx: calls.Context, vpc_id: str) -> int:
        """Endpoints counting against `vpc_id`'s quota: a snapshot at most `ttl` old, plus the
        ones this process created since that snapshot was asked and it does not show."""
        snapshot = await self._snapshot(ctx)
        since = sum(
            1
            for when, vpc, endpoint_id in self._created.get(self._key(ctx), [])
            if vpc == vpc_id and when >= snapshot.asked and endpoint_id not in snapshot.ids
        )
        return snapshot.counted_by_vpc.get(vpc_id, 0) + since

    def created(self, ctx: calls.Context, vpc_id: str, endpoint_id: str) -> None:
        """Record an endpoint created in `vpc_id` that counts against its quota."""
        self._created.setdefault(self._key(ctx), []).append((time.monotonic(), vpc_id, endpoint_id))

    @staticmethod
    def _key(ctx: calls.Context) -> tuple[str, str | None, str]:
        return (ctx.account.account_id, ctx.account.role_arn, ctx.region)

    async def _snapshot(self, ctx: calls.Context) -> Snapshot:
        key = self._key(ctx)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # concurrent passes wait for one refresh instead of each calling AWS
            snapshot = self._taken.get(key)
            if snapshot is not None and time.monotonic() - snapshot.asked <= self.ttl:
                return snapshot
            # The snapshot is as old as its request, not its answer: under load a Describe
            # of hundreds of endpoints takes seconds, and an accept during it is not in it.
            asked = time.monotonic()
            found = await ctx.collect("ec2", "DescribeVpcEndpoints", "VpcEndpoints")
            snapshot = Snapshot.of(asked, found)
            self._taken[key] = snapshot
            # Creates older than the request are in this snapshot (or gone since).
            created = self._created.get(key)
            if created:
                self._created[key] = [entry for entry in created if entry[0] >= asked]
            return snapshot


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Every endpoint of an account and region, as one DescribeVpcEndpoints saw them."""

    asked: float
    """When the request left (monotonic)."""
    by_uid: dict[str, dict[str, Any]]
    """The oldest live endpoint tagged with each `linkplane:uid`."""
    counted_by_vpc: dict[str, int]
    """Live endpoints of the types the per-VPC quota counts, per VPC."""
    ids: frozenset[str]

    @classmethod
    def of(cls, asked: float, found: list[dict[str, Any]]) -> Snapshot:
        by_uid: dict[str, dict[str, Any]] = {}
        counted: dict[str, int] = {}
        ordered = sorted(
            found, key=lambda e: (str(e.get("CreationTimestamp", "")), e["VpcEndpointId"])
        )
        for endpoint in ordered:
            owner = tags.tag_value(endpoint, tags.UID_KEY)
            state = aws_endpoints.normalize_state(endpoint.get("State"))
            if owner and state not in aws_endpoints.GONE_STATES:
                by_uid.setdefault(owner, endpoint)
            if _counts_against_quota(endpoint):
                vpc_id = str(endpoint.get("VpcId", ""))
                counted[vpc_id] = counted.get(vpc_id, 0) + 1
        return cls(asked, by_uid, counted, frozenset(str(e["VpcEndpointId"]) for e in found))


def _counts_against_quota(endpoint: dict[str, Any]) -> bool:
    return (
        endpoint.get("VpcEndpointType") in QUOTA_COUNTED_TYPES
        and str(endpoint.get("State", "")).lower() not in NOT_COUNTED
    )


@dataclasses.dataclass(frozen=True)
class Sighting:
    """An endpoint as a snapshot saw it, and when that snapshot's request left (monotonic)."""

    endpoint: dict[str, Any] | None
    asked: float


class Recent:
    """Answers that do not change from one connection to the next, kept for `ttl` seconds.

    Pre-flight asks the same questions for every connection to a service (is it visible, in
    which AZs) and for every connection in a VPC (which AZ is each subnet in). Keeping the
    answers for a while removes two AWS calls per connection in a large rollout. Only answers
    are kept, never failures, and concurrent askers share one call.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._values: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._locks: dict[tuple[Any, ...], asyncio.Lock] = {}

    async def get(self, key: tuple[Any, ...], fetch: Callable[[], Awaitable[Any]]) -> Any:
        async with self._locks.setdefault(key, asyncio.Lock()):
            taken, value = self._values.get(key, (-1e18, None))
            if time.monotonic() - taken <= self.ttl:
                return value
            value = await fetch()
            if value:
                self._values[key] = (time.monotonic(), value)
            return value


# ---- typed working data ---------------------------------------------------------------------


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
class Change:
    """One field of the endpoint to change with ModifyVpcEndpoint."""

    field: str
    wanted: object
    observed: object
    params: dict[str, Any]
    """The ModifyVpcEndpoint parameters that make the change."""


@dataclasses.dataclass
class Plan:
    """What one pass wants to change on an available endpoint."""

    changes: list[Change] = dataclasses.field(default_factory=list)
    settled: list[str] = dataclasses.field(default_factory=list)
    """Fields that AWS shows as wanted (their stall bookkeeping is cleared)."""

    def compare(self, field: str, wanted: object, observed: object, params: dict[str, Any]) -> None:
        if wanted == observed:
            self.settled.append(field)
        else:
            self.changes.append(Change(field, wanted, observed, params))


@dataclasses.dataclass(frozen=True)
class Applied:
    """What applying a plan did: how many fields went to AWS, which are stalled."""

    sent: int
    stalled: list[stalls.Stalled]


@dataclasses.dataclass(frozen=True)
class NetworkInterface:
    """One ENI of an interface endpoint, as reported in the status."""

    network_interface_id: str
    subnet_id: str
    availability_zone: str
    private_ip_address: str
    ipv6_addresses: list[str]


def _permanent(code: str, message: str, action: str = "") -> failures.PermanentError:
    return failures.PermanentError(code, message, action=action or None)


def _is_default_policy(policy: object) -> bool:
    """Whether an endpoint's policy is AWS's default (or absent: services without policies)."""
    if policy in ("", None):
        return True
    if not isinstance(policy, dict):
        return False
    # The Version AWS writes into its default has varied; the grant is what matters.
    return bool(policy.get("Statement") == DEFAULT_ENDPOINT_POLICY["Statement"])


def _canonical_policy(document: str) -> object:
    """A policy as data, so AWS's re-formatting of the JSON is not a difference."""
    try:
        parsed: object = json.loads(document)
    except ValueError:
        return document
    return parsed


def unsupported_region(
    service: str, consumer_region: str, offered: list[str]
) -> failures.PermanentError:
    """linkplane's own permanent error for a consumer region the service does not serve."""
    return _permanent(
        "UnsupportedRegion",
        f"{service} does not support consumers in {consumer_region}; it supports "
        f"{', '.join(offered) if offered else 'only its own region'} (the provider must add "
        f"{consumer_region} to its supported regions)",
        "DescribeVpcEndpointServices",
    )


def check_region(spec: specs.ConnectionSpec, target: Target) -> None:
    """A linkplane Service serves its own region and its ``supported_regions``, nothing else."""
    if target.linkplane is None or not target.cross_region:
        return
    offered = target.linkplane.spec.supported_regions
    if spec.region in offered:
        return
    home = [target.region] if target.region not in offered else []
    raise unsupported_region(
        f"service {target.linkplane.name} ({target.service_name})", spec.region, home + offered
    )


def check_ip_type(
    spec: specs.ConnectionSpec,
    target: Target,
    detail: ServiceDetail,
    subnets: list[Subnet],
) -> None:
    """An IPv6 or dual-stack endpoint needs a service that offers IPv6 and subnets with it."""
    wanted = spec.ip_address_type
    if wanted not in {"ipv6", "dualstack"}:
        return
    offered = [t.lower() for t in detail.ip_address_types]
    if offered and "ipv6" not in offered:
        raise _permanent(
            "UnsupportedIpAddressType",
            f"ip_address_type {wanted} needs a service that supports IPv6; "
            f"{target.service_name} supports {', '.join(detail.ip_address_types)}",
            "DescribeVpcEndpointServices",
        )
    for subnet in subnets:
        if not subnet.has_ipv6:
            raise _permanent(
                "SubnetWithoutIpv6",
                f"ip_address_type {wanted} needs subnets with an IPv6 CIDR; subnet "
                f"{subnet.subnet_id} has none",
                "DescribeSubnets",
            )
        if wanted == "dualstack" and not subnet.has_ipv4:
            raise _permanent(
                "SubnetWithoutIpv4",
                f"ip_address_type dualstack needs subnets with IPv4 and IPv6 CIDRs; subnet "
                f"{subnet.subnet_id} is IPv6-only",
                "DescribeSubnets",
            )
        if wanted == "ipv6" and subnet.has_ipv4:
            raise _permanent(
                "SubnetNotIpv6Only",
                f"ip_address_type ipv6 needs IPv6-only subnets; subnet {subnet.subnet_id} "
                "has IPv4 too (use dualstack)",
                "DescribeSubnets",
            )


class ConnectionReconciler:
    kind = KIND
    model = models.Connection

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.snapshots = EndpointSnapshots(ttl=workspace.timing.transitional_seconds)
        self.recent = Recent(ttl=workspace.timing.resync_seconds)
        self.quotas = quotas.QuotaCache()

    def urgent(self) -> Any:
        return None

    async def record_failure(
        self, lease: leases.Lease, error: failures.Failure, attempts: int
    ) -> None:
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Connection, lease)
            await failures.record(session, row, error, kind=KIND, settle=progress.settle_connection)

    async def reconcile(self, lease: leases.Lease) -> engine.Pass:
        began = time.monotonic()
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Connection, lease)
            spec = specs.connection_from_json(row.spec)
            status = dict(row.status or {})
            deleting = row.delete_time is not None
            name, uid, attempts = row.name, str(row.uid), row.attempts
            linkplane: LinkplaneService | None = None
            missing_service = False
            if spec.service:
                service_row = await records.get(session, models.Service, spec.service)
                if service_row is None:
                    missing_service = True
                else:
                    service_status = dict(service_row.status or {})
                    linkplane = LinkplaneService(
                        name=service_row.name,
                        service_name=service_row.service_name or "",
                        deleted=service_row.delete_time is not None,
                        spec=specs.service_from_json(service_row.spec),
                        private_dns_state=str(
                            (service_status.get("private_dns_verification") or {}).get("state")
                            or ""
                        ),
                    )
        account = await self.ws.account(spec.consumer_account)
        ctx = self.ws.context(account, spec.region, fence=self.ws.fence(models.Connection, lease))
        book = Bookkeeping.load(status)
        if deleting:
            return await self._delete(lease, ctx, uid)

        if missing_service or (linkplane is not None and linkplane.deleted):
            # The provider deleted the service (with force, it rejected this connection
            # first): report what AWS says about the endpoint (REJECTED), not an error.
            # Only with no endpoint left is there nothing to observe.
            found = await aws_endpoints.find_endpoint_by_uid(ctx, uid)
            if found is None:
                raise _permanent("TargetServiceGone", f"service {spec.service} no longer exists")
            progress.set_condition(
                status,
                "TargetService",
                False,
                "TargetServiceGone",
                f"service {spec.service} is deleted or being deleted",
                lease.generation,
            )
            orphan = Target(
                service_name=str(status.get("resolved_service_name") or ""),
                region=spec.service_region or spec.region,
                cross_region=spec.cross_region,
                linkplane=None,
            )
            endpoint = aws_endpoints.Endpoint.parse(found)
            return await self._observe(lease, ctx, spec, status, book, endpoint, orphan, None)
        if linkplane is not None and not linkplane.service_name:
            await self._write(
                lease,
                status,
                "CREATING",
                converged=False,
                message=f"waiting for {spec.service} to be published",
            )
            return engine.Pass(self.ws.timing.transitional_seconds)
        # A linkplane Service lives in its own region: a connection that does not name the
        # service region still reaches it there (cross-region when that is not the VPC's).
        service_region = spec.service_region or (
            linkplane.spec.region if linkplane is not None and linkplane.spec.region else ""
        )
        target = Target(
            service_name=linkplane.service_name if linkplane is not None else spec.service_name,
            region=service_region or spec.region,
            cross_region=bool(service_region) and service_region != spec.region,
            linkplane=linkplane,
        )
        status["resolved_service_name"] = target.service_name

        found = await self._find(
            ctx,
            uid,
            book,
            attempts,
            began=began,
            sleeps_when_pending=linkplane is not None,
            first_claim=lease.token == FIRST_CLAIM,
        )
        if found is None:
            if book.endpoint_id:
                # It existed and is gone, and nobody here deleted it: drift. Record it and move
                # to a new incarnation before creating, so a crash here cannot reuse the token
                # of the endpoint that was deleted.
                book.incarnation += 1
                progress.set_condition(
                    status,
                    "Drift",
                    True,
                    "EndpointDeletedOutOfBand",
                    f"endpoint {book.endpoint_id} was deleted outside linkplane; recreating",
                    lease.generation,
                )
                log.warning("connection.drift", connection=name, endpoint=book.endpoint_id)
                book.endpoint_id = ""
                book.save(status)
                await self._write(
                    lease,
                    status,
                    "CREATING",
                    converged=False,
                    message="recreating the endpoint deleted out of band",
                )
            detail = await self._preflight(ctx, spec, target, attempts)
            created = await self._create(ctx, spec, target, detail, uid, name, book, lease)
            log.info("connection.created", connection=name, endpoint=created.endpoint_id)
            if not spec.gateway:
                self.snapshots.created(ctx, spec.vpc_id, created.endpoint_id)
            # Store the endpoint id before anyone can decide on it: the Service pokes its
            # connections by endpoint id when it accepts, and a poke that finds no row is lost.
            # The next pass reads the endpoint directly, after this commit, so an accept that
            # happened before it is seen then.
            book.endpoint_id = created.endpoint_id
            book.fresh_read = True
            book.save(status)
            status.pop("last_aws_error", None)
            await self._write(
                lease,
                status,
                "CREATING",
                converged=False,
                endpoint_id=created.endpoint_id,
                message=f"created endpoint {created.endpoint_id}; reading its state",
            )
            await self._poke(spec.service)
            return engine.Pass(0)
        endpoint = aws_endpoints.Endpoint.parse(found)
        status.pop("last_aws_error", None)
        if await labels.sync_ec2_tags(ctx, endpoint.endpoint_id, endpoint.raw, spec.labels):
            log.info("connection.tags_synced", connection=name)
        return await self._observe(lease, ctx, spec, status, book, endpoint, target, attempts)

    async def _find(
        self,
        ctx: calls.Context,
        uid: str,
        book: Bookkeeping,
        attempts: int,
        *,
        began: float,
        sleeps_when_pending: bool,
        first_claim: bool,
    ) -> dict[str, Any] | None:
        """This connection's endpoint: direct read after a change, else the snapshot.

        A pass that finds its endpoint pending acceptance and `sleeps_when_pending` (a linkplane
        Service pokes it with the verdict) confirms it with a direct read when the snapshot was
        asked for before the pass began: the poke that woke it may have followed an accept that
        the snapshot does not show, and the pass would then sleep a full resync (a lost wake-up,
        issue 8). A direct read costs one endpoint; refreshing the snapshot for every such pass
        would cost all of them, back to back.

        A snapshot that does not show the endpoint is confirmed by a search by tag, unless this
        is the connection's `first_claim`: no earlier pass (of this process or one that crashed)
        can have created an endpoint for it, so there is nothing the snapshot could have missed.
        A crash after the create makes the next pass a later claim, which searches and adopts.
        """
        if book.fresh_read and book.endpoint_id:
            # Right after a create, NotFound means "not visible yet" (eventual consistency),
            # not drift: concluding drift would create a second endpoint. A few retries, then
            # it is believed (an endpoint deleted out of band at once).
            try:
                found = await aws_endpoints.describe_endpoint(
                    ctx, book.endpoint_id, recently_created=attempts < VISIBILITY_GRACE_ATTEMPTS
                )
            except aws_errors.AwsError as error:
                if aws_errors.is_not_found(error) and error.retryable:
                    error.requeue_after = self._grace_delay(attempts)
                raise
            book.fresh_read = False
            if (
                found is not None
                and tags.tag_value(found, tags.UID_KEY) == uid
                and aws_endpoints.normalize_state(found.get("State"))
                not in aws_endpoints.GONE_STATES
            ):
                return found
        sighting = await self.snapshots.find(ctx, uid)
        found = sighting.endpoint
        if (
            found is not None
            and sleeps_when_pending
            and sighting.asked < began
            and aws_endpoints.normalize_state(found.get("State")) == "PendingAcceptance"
        ):
            found = await aws_endpoints.describe_endpoint(ctx, str(found["VpcEndpointId"]))
        if found is None and not first_claim:
            # A snapshot can predate an endpoint created a moment ago: ask AWS directly
            # before concluding it is missing (and creating, or reporting drift).
            found = await aws_endpoints.find_endpoint_by_uid(ctx, uid)
        return found

    async def _create(
        self,
        ctx: calls.Context,
        spec: specs.ConnectionSpec,
        target: Target,
        detail: ServiceDetail,
        uid: str,
        name: str,
        book: Bookkeeping,
        lease: leases.Lease,
    ) -> aws_endpoints.Endpoint:
        extra: dict[str, Any] = {}
        if spec.policy_document:
            extra["PolicyDocument"] = spec.policy_document
        generation = book.token_generation(lease.generation)
        if spec.gateway:
            created = await aws_endpoints.create_gateway_endpoint(
                ctx,
                uid=uid,
                generation=generation,
                name=name,
                vpc_id=spec.vpc_id,
                service_name=target.service_name,
                route_table_ids=spec.route_table_ids,
                labels=spec.labels,
                **extra,
            )
            return aws_endpoints.Endpoint.parse(created)
        if spec.ip_address_type:
            extra["IpAddressType"] = spec.ip_address_type
            extra["DnsOptions"] = {"DnsRecordIpType": DNS_RECORD_IP_TYPE[spec.ip_address_type]}
        if target.cross_region:
            extra["ServiceRegion"] = target.region
        created = await aws_endpoints.create_endpoint(
            ctx,
            uid=uid,
            generation=generation,
            name=name,
            vpc_id=spec.vpc_id,
            service_name=target.service_name,
            subnet_ids=spec.subnet_ids,
            security_group_ids=spec.security_group_ids,
            labels=spec.labels,
            # AWS services need no acceptance: their private DNS can be on from the start.
            # Endpoint services get it once accepted (and verified), by ModifyVpcEndpoint.
            private_dns_enabled=bool(
                spec.private_dns_enabled and target.aws_service and detail.private_dns_name
            ),
            **extra,
        )
        return aws_endpoints.Endpoint.parse(created)

    # ---- pre-flight -------------------------------------------------------------------------

    async def _service_detail(
        self, ctx: calls.Context, target: Target, attempts: int, *, gateway: bool = False
    ) -> ServiceDetail:
        """The target as the consumer's account sees it; ServiceNotVisible when it cannot."""
        who = (ctx.account.account_id, ctx.account.role_arn, ctx.region)
        params: dict[str, Any] = {"ServiceNames": [target.service_name]}
        if target.cross_region:
            # Without ServiceRegions AWS only lists services of the caller's own region.
            params["ServiceRegions"] = [target.region]

        async def describe() -> list[dict[str, Any]]:
            try:
                response = await ctx.call("ec2", "DescribeVpcEndpointServices", **params)
            except aws_errors.AwsError as error:
                if error.retryable:
                    raise
                return []
            found: list[dict[str, Any]] = [
                d
                for d in response.get("ServiceDetails", [])
                if d.get("ServiceName") == target.service_name
            ]
            return found

        key = (*who, "service", target.service_name, target.region)
        details: list[dict[str, Any]] = await self.recent.get(key, describe)
        if (
            not details
            and target.cross_region
            and target.linkplane is None
            and await self._visible_at_home(ctx, target)
        ):
            # Visible to this account in the service's own region, hidden from the consumer's:
            # the service does not support that region (AWS does not list the regions a
            # service supports to consumers, only whether it serves theirs). A linkplane
            # Service's regions are in its spec (`check_region`); one AWS is still adding
            # is waited for like a permission.
            raise unsupported_region(target.service_name, ctx.region, [])
        if not details:
            # Permissions granted by the provider take a moment to be seen: retry a few times
            # before calling it permanent.
            where = f" in {target.region}" if target.cross_region else ""
            message = (
                f"{target.service_name}{where} is not visible to account "
                f"{ctx.account.account_id}: ask the provider to allow it"
            )
            if attempts < VISIBILITY_GRACE_ATTEMPTS:
                raise failures.TemporaryError(
                    "ServiceNotVisible",
                    message,
                    action="DescribeVpcEndpointServices",
                    delay=self._grace_delay(attempts),
                )
            raise _permanent("ServiceNotVisible", message, "DescribeVpcEndpointServices")
        return ServiceDetail.parse(details, "Gateway" if gateway else "Interface")

    def _grace_delay(self, attempts: int) -> float:
        """When to look again during the visibility grace (see VISIBILITY_GRACE_STEPS)."""
        step = VISIBILITY_GRACE_STEPS[min(attempts, VISIBILITY_GRACE_ATTEMPTS - 1)]
        return step * self.ws.timing.transitional_seconds

    async def _visible_at_home(self, ctx: calls.Context, target: Target) -> bool:
        """Whether the consumer's account sees ``target`` from the service's own region."""
        home = dataclasses.replace(ctx, region=target.region)
        try:
            response = await home.call(
                "ec2", "DescribeVpcEndpointServices", ServiceNames=[target.service_name]
            )
        except aws_errors.AwsError as error:
            if error.retryable:
                raise
            return False
        return any(
            d.get("ServiceName") == target.service_name for d in response.get("ServiceDetails", [])
        )

    async def _subnets(self, ctx: calls.Context, spec: specs.ConnectionSpec) -> list[Subnet]:
        who = (ctx.account.account_id, ctx.account.role_arn, ctx.region)

        async def describe() -> list[dict[str, Any]]:
            response = await ctx.call("ec2", "DescribeSubnets", SubnetIds=spec.subnet_ids)
            found: list[dict[str, Any]] = response.get("Subnets", [])
            return found

        raw: list[dict[str, Any]] = await self.recent.get(
            (*who, "subnets", *sorted(spec.subnet_ids)), describe
        )
        return [Subnet.parse(s) for s in raw]

    async def _preflight(
        self, ctx: calls.Context, spec: specs.ConnectionSpec, target: Target, attempts: int
    ) -> ServiceDetail:
        """Fail clearly now instead of with an AWS error later; returns the service detail."""
        # Before visibility: AWS hides a service from the regions it does not support, so the
        # visibility check would only say "not visible" (and retry for permissions).
        check_region(spec, target)
        detail = await self._service_detail(ctx, target, attempts, gateway=spec.gateway)
        if spec.gateway:
            await self._check_gateway(ctx, spec, target, detail)
            return detail
        if detail.service_types and "Interface" not in detail.service_types:
            raise _permanent(
                "InterfaceEndpointNotSupported",
                f"{target.service_name} offers only {', '.join(detail.service_types)} "
                "endpoints; set endpoint_type accordingly",
                "DescribeVpcEndpointServices",
            )
        subnets = await self._subnets(ctx, spec)
        if detail.zones and not target.cross_region:
            # A cross-region endpoint's ENIs are in the consumer's region: the service's AZs
            # (in its own region) say nothing about them.
            supported = set(detail.zone_ids)
            if not supported:
                zones = (
                    await ctx.call("ec2", "DescribeAvailabilityZones", ZoneNames=list(detail.zones))
                ).get("AvailabilityZones", [])
                supported = {str(z.get("ZoneId")) for z in zones}
            for subnet in subnets:
                if subnet.zone_id not in supported:
                    raise _permanent(
                        "UnsupportedAvailabilityZone",
                        f"subnet {subnet.subnet_id} is in {subnet.zone} ({subnet.zone_id}); "
                        f"{target.service_name} is offered in {', '.join(sorted(detail.zones))}",
                        "DescribeVpcEndpointServices",
                    )
        check_ip_type(spec, target, detail, subnets)
        await self._check_quota(ctx, spec)
        return detail

    async def _check_quota(self, ctx: calls.Context, spec: specs.ConnectionSpec) -> None:
        """Room for one more interface endpoint in the VPC: from the account's snapshot, and
        from one filtered Describe only when the snapshot shows the VPC full (it may hold
        endpoints deleted since). AWS enforces the quota on the create itself, so a snapshot
        that misses another client's endpoint made since costs AWS's error, not a leak."""
        quota = await self.quotas.vpc_endpoints_per_vpc(ctx)
        if await self.snapshots.counted_in_vpc(ctx, spec.vpc_id) < quota.value:
            return
        # One page is enough: the answer only needs to know whether `quota` live endpoints
        # exist, and no VPC holds more than the maximum page (1,000) of them.
        response = await ctx.call(
            "ec2",
            "DescribeVpcEndpoints",
            Filters=[
                {"Name": "vpc-id", "Values": [spec.vpc_id]},
                {"Name": "vpc-endpoint-type", "Values": QUOTA_COUNTED_TYPES},
            ],
            MaxResults=1000,
        )
        live = [
            e
            for e in response.get("VpcEndpoints", [])
            if str(e.get("State", "")).lower() not in NOT_COUNTED
        ]
        if len(live) >= quota.value:
            raise _permanent(
                "VpcEndpointQuota",
                f"VPC {spec.vpc_id} already has {len(live)} interface endpoints (quota "
                f"{quota.value}, {quota.source}); request a quota increase for L-29B6F2EB or "
                "use another VPC",
                "DescribeVpcEndpoints",
            )

    async def _check_gateway(
        self,
        ctx: calls.Context,
        spec: specs.ConnectionSpec,
        target: Target,
        detail: ServiceDetail,
    ) -> None:
        if detail.service_types and "Gateway" not in detail.service_types:
            raise _permanent(
                "GatewayEndpointNotSupported",
                f"{target.service_name} does not offer gateway endpoints",
                "DescribeVpcEndpointServices",
            )
        try:
            tables = (
                await ctx.call("ec2", "DescribeRouteTables", RouteTableIds=spec.route_table_ids)
            ).get("RouteTables", [])
        except aws_errors.AwsError as error:
            if error.retryable:
                raise
            raise _permanent(
                "RouteTableNotFound", f"route tables {spec.route_table_ids}: {error.message}"
            ) from error
        for table in tables:
            if table.get("VpcId") != spec.vpc_id:
                raise _permanent(
                    "RouteTableInAnotherVpc",
                    f"route table {table.get('RouteTableId')} belongs to {table.get('VpcId')}, "
                    f"not {spec.vpc_id}",
                    "DescribeRouteTables",
                )

    # ---- observe and converge ---------------------------------------------------------------

    async def _observe(
        self,
        lease: leases.Lease,
        ctx: calls.Context,
        spec: specs.ConnectionSpec,
        status: dict[str, Any],
        book: Bookkeeping,
        endpoint: aws_endpoints.Endpoint,
        target: Target,
        attempts: int | None,
    ) -> engine.Pass:
        """Report the endpoint; once available, apply the spec by diff (guarded).

        ``attempts`` is None when the target is gone: then nothing is changed, only reported.
        """
        aws_state = states.normalise_endpoint_state(endpoint.state)
        state = states.CONNECTION_STATE_OF_ENDPOINT.get(aws_state, "FAILED")
        applied = Applied(0, [])
        if aws_state == "AVAILABLE" and attempts is not None:
            applied = await self._converge(ctx, spec, status, endpoint, target, attempts, lease)
            if applied.sent:
                book.fresh_read = True
        book.endpoint_id = endpoint.endpoint_id
        book.save(status)
        status["dns_entries"] = [dataclasses.asdict(d) for d in endpoint.dns_entries]
        status["network_interfaces"] = [
            dataclasses.asdict(n) for n in await self._interfaces(ctx, endpoint, status)
        ]
        if endpoint.last_error is not None:
            status["last_aws_error"] = {
                "code": endpoint.last_error.code,
                "message": endpoint.last_error.message,
                "action": "CreateVpcEndpoint",
                "retryable": False,
                "time": progress.now_iso(),
            }
        accepted = aws_state in {"PENDING", "AVAILABLE", "PARTIAL"}
        progress.set_condition(
            status,
            "Accepted",
            accepted if aws_state != "PENDING_ACCEPTANCE" else None,
            {"PENDING_ACCEPTANCE": "AwaitingProvider", "REJECTED": "Rejected"}.get(
                aws_state, "Accepted" if accepted else aws_state.title()
            ),
            f"the endpoint is {aws_state.lower()}",
            lease.generation,
        )
        changing = applied.sent > 0
        ready = aws_state == "AVAILABLE" and not changing and not applied.stalled
        if ready:
            reason, message = "Available", "the endpoint carries traffic"
        elif aws_state == "AVAILABLE" and applied.stalled:
            reason, message = "Stalled", "AWS does not reflect a change; see the Stalled condition"
        elif aws_state == "AVAILABLE":
            reason, message = "Updating", "the endpoint is being modified"
        else:
            reason = aws_state.title().replace("_", "")
            message = f"the endpoint is {aws_state.lower()}"
        progress.set_condition(status, "Ready", ready, reason, message, lease.generation)
        linkplane = target.linkplane
        # PENDING_ACCEPTANCE settles the create (a person decides, maybe much later), except
        # when the target's policy is about to reject this consumer: then the Operation waits
        # for that decision and fails with it, instead of reporting success a moment earlier.
        awaiting_policy = (
            aws_state == "PENDING_ACCEPTANCE"
            and linkplane is not None
            and acceptance.decide(
                linkplane.spec.acceptance_policy, ctx.account.account_id, {}
            ).verdict
            == "REJECTED"
        )
        # A stalled field settles the Operation too (it fails with the Stalled condition's
        # message, see progress.settle_connection): waiting for it could take hours.
        settled = not awaiting_policy and (
            ready
            or bool(applied.stalled and not changing)
            or aws_state in {"PENDING_ACCEPTANCE", "REJECTED", "FAILED", "EXPIRED"}
        )
        await self._write(
            lease,
            status,
            state,
            converged=settled,
            reconciling=not ready and aws_state == "AVAILABLE",
            endpoint_id=endpoint.endpoint_id,
            message={
                "PENDING_ACCEPTANCE": "waiting for the provider to accept the connection",
                "PROVISIONING": "accepted; AWS is provisioning the endpoint",
                "AVAILABLE": "available" if ready else f"available; {message}",
            }.get(state, f"endpoint is {aws_state.lower()}"),
        )
        resync = self.ws.timing.resync_seconds
        if changing:
            return engine.Pass(self.ws.timing.transitional_seconds)
        if applied.stalled:
            return engine.Pass(stalls.soonest_retry(applied.stalled, resync))
        if ready or aws_state in {"REJECTED", "FAILED", "EXPIRED"}:
            return engine.Pass(self.ws.timing.resync_delay())
        if aws_state == "PENDING_ACCEPTANCE" and linkplane is not None:
            # A linkplane Service pokes this Connection when it decides; polling fast here
            # only loads AWS and the database (hundreds of requests waiting for a person).
            return engine.Pass(self.ws.timing.resync_delay())
        return engine.Pass(self.ws.timing.transitional_seconds)

    async def _converge(
        self,
        ctx: calls.Context,
        spec: specs.ConnectionSpec,
        status: dict[str, Any],
        endpoint: aws_endpoints.Endpoint,
        target: Target,
        attempts: int,
        lease: leases.Lease,
    ) -> Applied:
        """Plan the differences, pass each through the mutation guard, send one Modify."""
        plan = await self._plan(ctx, spec, status, endpoint, target, attempts, lease.generation)
        guard = stalls.MutationGuard.load(status)
        for field in plan.settled:
            guard.clear(field)
        params: dict[str, Any] = {}
        stalled: list[stalls.Stalled] = []
        now = time.time()
        for change in plan.changes:
            decision = guard.before(
                action=MODIFY,
                field=change.field,
                wanted=change.wanted,
                observed=change.observed,
                now=now,
            )
            if isinstance(decision, stalls.Stalled):
                stalled.append(decision)
                log.warning(
                    "connection.stalled",
                    endpoint=endpoint.endpoint_id,
                    field=change.field,
                    wanted=decision.wanted,
                    observed=decision.observed,
                    retry_after=round(decision.retry_after, 1),
                )
            else:
                params.update(change.params)
        stalls.set_stalled_condition(status, stalled, lease.generation)
        guard.save(status)
        if params:
            await ctx.call("ec2", MODIFY, VpcEndpointId=endpoint.endpoint_id, **params)
        return Applied(sent=len(plan.changes) - len(stalled), stalled=stalled)

    async def _plan(
        self,
        ctx: calls.Context,
        spec: specs.ConnectionSpec,
        status: dict[str, Any],
        endpoint: aws_endpoints.Endpoint,
        target: Target,
        attempts: int,
        generation: int,
    ) -> Plan:
        plan = Plan()
        if spec.policy_document:
            plan.compare(
                "PolicyDocument",
                _canonical_policy(spec.policy_document),
                _canonical_policy(endpoint.policy_document),
                {"PolicyDocument": spec.policy_document},
            )
        else:
            # No policy wanted means AWS's default (full access), not whatever policy was set
            # last: an emptied policy_document is ResetPolicy.
            observed = _canonical_policy(endpoint.policy_document or "")
            plan.compare(
                "PolicyDocument",
                DEFAULT_ENDPOINT_POLICY,
                DEFAULT_ENDPOINT_POLICY if _is_default_policy(observed) else observed,
                {"ResetPolicy": True},
            )
        if spec.gateway:
            wanted_tables, current_tables = set(spec.route_table_ids), set(endpoint.route_table_ids)
            plan.compare(
                "RouteTableIds",
                sorted(wanted_tables),
                sorted(current_tables),
                {
                    k: v
                    for k, v in (
                        ("AddRouteTableIds", sorted(wanted_tables - current_tables)),
                        ("RemoveRouteTableIds", sorted(current_tables - wanted_tables)),
                    )
                    if v
                },
            )
            return plan
        wanted_subnets, current_subnets = set(spec.subnet_ids), set(endpoint.subnet_ids)
        plan.compare(
            "SubnetIds",
            sorted(wanted_subnets),
            sorted(current_subnets),
            {
                k: v
                for k, v in (
                    ("AddSubnetIds", sorted(wanted_subnets - current_subnets)),
                    ("RemoveSubnetIds", sorted(current_subnets - wanted_subnets)),
                )
                if v
            },
        )
        if spec.security_group_ids:
            wanted_groups = set(spec.security_group_ids)
            current_groups = set(endpoint.security_group_ids)
            plan.compare(
                "SecurityGroupIds",
                sorted(wanted_groups),
                sorted(current_groups),
                {
                    k: v
                    for k, v in (
                        ("AddSecurityGroupIds", sorted(wanted_groups - current_groups)),
                        ("RemoveSecurityGroupIds", sorted(current_groups - wanted_groups)),
                    )
                    if v
                },
            )
        if spec.ip_address_type:
            wanted_ip = (spec.ip_address_type, DNS_RECORD_IP_TYPE[spec.ip_address_type])
            # AWS reports DnsOptions for every interface endpoint; a backend that leaves it
            # out has nothing to compare, so only the address type counts there.
            observed_ip = (
                endpoint.ip_address_type,
                endpoint.dns_record_ip_type or wanted_ip[1],
            )
            if wanted_ip != observed_ip:
                # Check before asking AWS, for the same clear error as at creation.
                detail = await self._service_detail(ctx, target, attempts)
                check_ip_type(spec, target, detail, await self._subnets(ctx, spec))
            plan.compare(
                "IpAddressType",
                list(wanted_ip),
                list(observed_ip),
                {"IpAddressType": wanted_ip[0], "DnsOptions": {"DnsRecordIpType": wanted_ip[1]}},
            )
        wanted_dns = await self._private_dns_wanted(ctx, spec, status, target, attempts, generation)
        plan.compare(
            "PrivateDnsEnabled",
            wanted_dns,
            endpoint.private_dns_enabled,
            {"PrivateDnsEnabled": wanted_dns},
        )
        return plan

    async def _private_dns_wanted(
        self,
        ctx: calls.Context,
        spec: specs.ConnectionSpec,
        status: dict[str, Any],
        target: Target,
        attempts: int,
        generation: int,
    ) -> bool:
        """Whether private DNS should be on now: wanted, and usable.

        AWS reports ``PrivateDnsEnabled`` as the setting itself, so asking for it where it
        cannot take effect (a service without a private DNS name, or one not verified yet)
        either fails or is never reflected. It is usable for an AWS service that has a
        private name (SQS's ``sqs.<region>.amazonaws.com``) and for an endpoint service whose
        name the provider verified; otherwise the ``PrivateDns`` condition says what it waits for.
        """
        if not spec.private_dns_enabled:
            if any(c.get("type") == "PrivateDns" for c in status.get("conditions", [])):
                progress.set_condition(
                    status, "PrivateDns", False, "NotRequested", "private DNS is off", generation
                )
            return False
        usable, reason, why = True, "Enabled", "the service's private DNS name resolves in the VPC"
        linkplane = target.linkplane
        if linkplane is not None:
            if not linkplane.spec.private_dns_name:
                usable, reason = False, "NoPrivateDnsName"
                why = f"{linkplane.name} has no private DNS name"
            elif not linkplane.private_dns_verified:
                usable, reason = False, "AwaitingVerification"
                why = f"{linkplane.spec.private_dns_name} is not verified by the provider yet"
        else:
            detail = await self._service_detail(ctx, target, attempts)
            if not detail.private_dns_name:
                usable, reason = False, "NoPrivateDnsName"
                why = f"{target.service_name} has no private DNS name"
            elif not target.aws_service and not detail.private_dns_verified:
                usable, reason = False, "AwaitingVerification"
                why = f"{detail.private_dns_name} is not verified by the provider yet"
        progress.set_condition(status, "PrivateDns", usable, reason, why, generation)
        return usable

    async def _interfaces(
        self, ctx: calls.Context, endpoint: aws_endpoints.Endpoint, status: dict[str, Any]
    ) -> list[NetworkInterface]:
        ids = list(endpoint.network_interface_ids)
        if not ids:
            return []
        known = [
            NetworkInterface(
                network_interface_id=str(n.get("network_interface_id", "")),
                subnet_id=str(n.get("subnet_id", "")),
                availability_zone=str(n.get("availability_zone", "")),
                private_ip_address=str(n.get("private_ip_address", "")),
                ipv6_addresses=[str(a) for a in n.get("ipv6_addresses") or []],
            )
            for n in status.get("network_interfaces") or []
        ]
        # An ENI keeps its subnet and primary IP for life, but gains IPv6 addresses when the
        # endpoint's IP address type changes: ask again when the ENIs or the type changed.
        ip_type = f"{endpoint.ip_address_type}/{endpoint.dns_record_ip_type}"
        if (
            sorted(ids) == sorted(n.network_interface_id for n in known)
            and status.get("interfaces_ip_type") == ip_type
        ):
            return known
        try:
            found = (
                await ctx.call("ec2", "DescribeNetworkInterfaces", NetworkInterfaceIds=ids)
            ).get("NetworkInterfaces", [])
        except aws_errors.AwsError as error:
            if aws_errors.is_not_found(error):
                return []
            raise
        status["interfaces_ip_type"] = ip_type
        return [
            NetworkInterface(
                network_interface_id=str(n.get("NetworkInterfaceId", "")),
                subnet_id=str(n.get("SubnetId", "")),
                availability_zone=str(n.get("AvailabilityZone", "")),
                private_ip_address=str(n.get("PrivateIpAddress", "")),
                ipv6_addresses=[str(a.get("Ipv6Address", "")) for a in n.get("Ipv6Addresses", [])],
            )
            for n in sorted(found, key=lambda n: str(n.get("SubnetId", "")))
        ]

    # ---- delete -----------------------------------------------------------------------------

    async def _delete(self, lease: leases.Lease, ctx: calls.Context, uid: str) -> engine.Pass:
        owned = [
            aws_endpoints.Endpoint.parse(e)
            for e in await aws_endpoints.find_endpoints_by_uid(ctx, uid)
        ]
        remaining = [e.endpoint_id for e in owned if e.state != "Deleted"]
        deletable = [e.endpoint_id for e in owned if e.state not in aws_endpoints.GONE_STATES]
        if deletable:
            failures = await aws_endpoints.delete_endpoints(ctx, deletable)
            if failures:
                raise failures[0]
        if remaining:
            await self._write(
                lease,
                None,
                "DELETING",
                converged=False,
                message=f"waiting for {len(remaining)} endpoint(s) to be deleted",
            )
            return engine.Pass(self.ws.timing.transitional_seconds)
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Connection, lease)
            service = specs.connection_from_json(row.spec).service
            await progress.finish_deletion(session, row, KIND)
        await self._poke(service)
        return engine.Pass(0)

    async def _poke(self, service: str) -> None:
        """Have the target Service look at its connections now (decide, refresh inventory)."""
        if not service:
            return
        async with self.ws.db.transaction() as session:
            await leases.poke_service(session, service)

    async def _write(
        self,
        lease: leases.Lease,
        status: dict[str, Any] | None,
        state: str,
        *,
        converged: bool,
        message: str,
        reconciling: bool = False,
        endpoint_id: str | None = None,
    ) -> None:
        """Store this pass's findings. ``converged`` records the generation as observed (its
        operations may finish); ``reconciling`` keeps the flag up even so (a stalled field)."""
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Connection, lease)
            before = (row.state, row.status, row.reconciling, row.observed_generation)
            if status is not None:
                row.status = status
            if row.delete_time is None or state == "DELETING":
                row.state = state
            if converged:
                row.observed_generation = lease.generation
            row.reconciling = reconciling or not converged or row.generation != lease.generation
            if endpoint_id:
                row.endpoint_id = endpoint_id
            if before != (row.state, row.status, row.reconciling, row.observed_generation):
                row.revision += 1
                records.mark_updated(row)
                await changes.notify(session, kind=KIND, name=row.name, uid=str(row.uid))
            await progress.set_progress(session, row.uid, message)
            await records.write_back(session, row)
            await progress.settle_connection(session, row)
