"""Pre-flight: what would otherwise fail later inside AWS, checked before creating an endpoint.

The target service is visible to the consumer (in its own region, for a cross-region
connection), offers the endpoint type, every subnet's AZ (by AZ id, which is the same in every
account, unlike AZ names) is one the service offers, the IP address type is one the service and
the subnets support, gateway route tables are in the VPC, and the VPC has room under its
endpoint quota (read from Service Quotas). Each failure is linkplane's own `PermanentError`
naming the AWS action whose answer decided it; a service not visible yet is retried through
the visibility grace first.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

from linkplane.server.aws import calls, quotas
from linkplane.server.aws import errors as aws_errors
from linkplane.server.domain import specs, states
from linkplane.server.reconciler import failures
from linkplane.server.reconciler.connection_model import ServiceDetail, Subnet, Target
from linkplane.server.reconciler.endpoint_snapshots import QUOTA_COUNTED_TYPES, EndpointSnapshots
from linkplane.server.reconciler.workspace import Timing

VISIBILITY_GRACE_STEPS = (1, 1, 2, 4, 4)
"""The visibility grace, in transitional intervals: a service the consumer cannot see yet (the
provider's permission still propagating), or an endpoint a Describe does not show right after
its create, is looked at again after 1, 1, 2, 4 and 4 transitional intervals, then believed.
With the default 5 s interval that is 5, 5, 10, 20, 20 s (60 s in all, about what AWS takes to
propagate an endpoint service permission); a time-scaled simulator test with 0.2 s waits 2.4 s."""
VISIBILITY_GRACE_ATTEMPTS = len(VISIBILITY_GRACE_STEPS)


def grace_delay(attempts: int, interval: float) -> float:
    """When to look again during the visibility grace (see VISIBILITY_GRACE_STEPS)."""
    step = VISIBILITY_GRACE_STEPS[min(attempts, VISIBILITY_GRACE_ATTEMPTS - 1)]
    return step * interval


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


def _permanent(code: str, message: str, action: str = "") -> failures.PermanentError:
    return failures.PermanentError(code, message, action=action or None)


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


class Preflight:
    """The checks that need AWS, with the answers they share across connections: the
    account's endpoint snapshots, the quota cache, and `Recent` answers about services and
    subnets."""

    def __init__(self, snapshots: EndpointSnapshots, timing: Timing) -> None:
        self.snapshots = snapshots
        self.timing = timing
        self.recent = Recent(ttl=timing.resync_seconds)
        self.quotas = quotas.QuotaCache()

    async def service_detail(
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
            and await _visible_at_home(ctx, target)
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
                    delay=grace_delay(attempts, self.timing.transitional_seconds),
                )
            raise _permanent("ServiceNotVisible", message, "DescribeVpcEndpointServices")
        return ServiceDetail.parse(details, "Gateway" if gateway else "Interface")

    async def subnets(self, ctx: calls.Context, spec: specs.ConnectionSpec) -> list[Subnet]:
        who = (ctx.account.account_id, ctx.account.role_arn, ctx.region)

        async def describe() -> list[dict[str, Any]]:
            response = await ctx.call("ec2", "DescribeSubnets", SubnetIds=spec.subnet_ids)
            found: list[dict[str, Any]] = response.get("Subnets", [])
            return found

        raw: list[dict[str, Any]] = await self.recent.get(
            (*who, "subnets", *sorted(spec.subnet_ids)), describe
        )
        return [Subnet.parse(s) for s in raw]

    async def check(
        self, ctx: calls.Context, spec: specs.ConnectionSpec, target: Target, attempts: int
    ) -> ServiceDetail:
        """Fail clearly now instead of with an AWS error later; returns the service detail."""
        # Before visibility: AWS hides a service from the regions it does not support, so the
        # visibility check would only say "not visible" (and retry for permissions).
        check_region(spec, target)
        detail = await self.service_detail(ctx, target, attempts, gateway=spec.gateway)
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
        subnets = await self.subnets(ctx, spec)
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
            if states.counts_against_quota(e.get("State"))
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


async def _visible_at_home(ctx: calls.Context, target: Target) -> bool:
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
