"""The Connection reconciler: pre-flight checks, the interface endpoint, and its lifecycle.

Before creating, it checks what would otherwise fail later inside AWS: the target service is
visible to the consumer, every subnet's AZ (by AZ id, which is the same in every account,
unlike AZ names) is one the service offers, and the VPC has room under the 50-endpoint quota.
The endpoint is found by its `linkplane:uid` tag before it is ever created; if it vanishes
out of band, the next pass notices, says so in a condition, and creates a new one under a new
incarnation number (so the ClientToken changes and AWS does not hand back the deleted one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from sqlalchemy import func, update

from linkplane.server.aws import calls, tags
from linkplane.server.aws import endpoints as aws_endpoints
from linkplane.server.aws import errors as aws_errors
from linkplane.server.domain import acceptance, specs, states
from linkplane.server.reconciler import engine, labels, progress
from linkplane.server.reconciler.workspace import Workspace
from linkplane.server.storage import changes, leases, models, records

log = structlog.get_logger("linkplane.reconciler.connections")
KIND = "connection"
VPC_ENDPOINT_QUOTA = 50
VISIBILITY_GRACE_ATTEMPTS = 5
GONE = {"deleted", "deleting", "rejected", "failed", "expired"}


class EndpointSnapshots:
    """One DescribeVpcEndpoints per (account, region) serves many connections' status checks.

    Hundreds of endpoints waiting to become available would otherwise each poll AWS every few
    seconds: 200 pending endpoints at a 5 s interval are 40 Describe calls a second, twice the
    20/s that AWS allows an account for all of EC2's non-mutating calls. A snapshot of every
    linkplane-tagged endpoint in the account and region, at most `ttl` old, answers them all.
    Only "found" answers are trusted: a missing endpoint is confirmed by a direct call.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._taken: dict[tuple[str, str | None, str], tuple[float, dict[str, Any]]] = {}
        self._locks: dict[tuple[str, str | None, str], asyncio.Lock] = {}

    async def find(self, ctx: calls.Context, uid: str) -> dict[str, Any] | None:
        key = (ctx.account.account_id, ctx.account.role_arn, ctx.region)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # concurrent passes wait for one refresh instead of each calling AWS
            taken, by_uid = self._taken.get(key, (-1e18, {}))
            if time.monotonic() - taken > self.ttl:
                found = await ctx.collect(
                    "ec2",
                    "DescribeVpcEndpoints",
                    "VpcEndpoints",
                    Filters=[{"Name": "tag-key", "Values": [tags.UID_KEY]}],
                )
                by_uid = {}
                ordered = sorted(
                    found, key=lambda e: (str(e.get("CreationTimestamp", "")), e["VpcEndpointId"])
                )
                for endpoint in ordered:
                    owner = tags.tag_value(endpoint, tags.UID_KEY)
                    state = aws_endpoints.normalize_state(endpoint.get("State"))
                    if owner and state not in aws_endpoints.GONE_STATES:
                        by_uid.setdefault(owner, endpoint)
                self._taken[key] = (time.monotonic(), by_uid)
        return by_uid.get(uid)


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


def _permanent(code: str, message: str, action: str = "") -> aws_errors.AwsError:
    return aws_errors.AwsError(
        code, message, kind=aws_errors.Kind.INVALID, retryable=False, action=action or None
    )


class ConnectionReconciler:
    kind = KIND
    model = models.Connection

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.snapshots = EndpointSnapshots(ttl=workspace.timing.transitional_seconds)
        self.recent = Recent(ttl=workspace.timing.resync_seconds)

    def urgent(self) -> Any:
        return None

    async def record_failure(
        self, lease: leases.Lease, error: aws_errors.AwsError, attempts: int
    ) -> None:
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Connection, lease)
            status = dict(row.status or {})
            status["last_aws_error"] = progress.aws_error_json(error)
            progress.set_condition(
                status,
                "Ready",
                None if error.retryable else False,
                "AwsRetrying" if error.retryable else error.code,
                str(error),
                row.generation,
            )
            row.status = status
            if not error.retryable and row.delete_time is None:
                row.state = "FAILED"
                row.reconciling = False
                row.observed_generation = row.generation
            row.revision += 1
            row.update_time = func.now()
            await progress.set_progress(
                session,
                row.uid,
                f"AWS said {error.code}; retrying" if error.retryable else f"failed: {error}",
            )
            await session.flush()
            await session.refresh(row)
            await progress.settle_connection(session, row)
            await changes.notify(session, kind=KIND, name=row.name, uid=str(row.uid))

    async def reconcile(self, lease: leases.Lease) -> engine.Pass:
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Connection, lease)
            spec = specs.connection_from_json(row.spec)
            status = dict(row.status or {})
            deleting = row.delete_time is not None
            name, uid, attempts = row.name, str(row.uid), row.attempts
            target = None
            if spec.service:
                target = await records.get(session, models.Service, spec.service)
                target_state = (
                    (
                        target.service_name or "",
                        target.delete_time is not None,
                        specs.service_from_json(target.spec),
                        dict(target.status or {}),
                    )
                    if target is not None
                    else None
                )
        account = await self.ws.account(spec.consumer_account)
        ctx = self.ws.context(account, spec.region)
        if deleting:
            return await self._delete(lease, ctx, uid)

        if spec.service:
            if target_state is None or target_state[1]:
                # The provider deleted the service (with force, it rejected this connection
                # first): report what AWS says about the endpoint (REJECTED), not an error.
                # Only with no endpoint left is there nothing to observe.
                orphan = await aws_endpoints.find_endpoint_by_uid(ctx, uid)
                if orphan is None:
                    raise _permanent(
                        "TargetServiceGone", f"service {spec.service} no longer exists"
                    )
                progress.set_condition(
                    status,
                    "TargetService",
                    False,
                    "TargetServiceGone",
                    f"service {spec.service} is deleted or being deleted",
                    lease.generation,
                )
                return await self._observe(lease, ctx, spec, status, orphan, None)
            service_name = target_state[0]
            if not service_name:
                await self._write(
                    lease,
                    status,
                    "CREATING",
                    converged=False,
                    message=f"waiting for {spec.service} to be published",
                )
                return engine.Pass(self.ws.timing.transitional_seconds)
        else:
            service_name = spec.service_name
        status["resolved_service_name"] = service_name

        endpoint = await self.snapshots.find(ctx, uid)
        if endpoint is None:
            # A snapshot can predate an endpoint created a moment ago: ask AWS directly
            # before concluding it is missing (and creating, or reporting drift).
            endpoint = await aws_endpoints.find_endpoint_by_uid(ctx, uid)
        if endpoint is None:
            if status.get("endpoint_id"):
                # It existed and is gone, and nobody here deleted it: drift. Record it and move
                # to a new incarnation before creating, so a crash here cannot reuse the token
                # of the endpoint that was deleted.
                status["incarnation"] = int(status.get("incarnation", 0)) + 1
                progress.set_condition(
                    status,
                    "Drift",
                    True,
                    "EndpointDeletedOutOfBand",
                    f"endpoint {status['endpoint_id']} was deleted outside linkplane; recreating",
                    lease.generation,
                )
                log.warning("connection.drift", connection=name, endpoint=status["endpoint_id"])
                status.pop("endpoint_id", None)
                await self._write(
                    lease,
                    status,
                    "CREATING",
                    converged=False,
                    message="recreating the endpoint deleted out of band",
                )
            await self._preflight(ctx, spec, service_name, attempts, target_state)
            extra: dict[str, Any] = {}
            if spec.ip_address_type:
                extra["IpAddressType"] = spec.ip_address_type
            if spec.policy_document:
                extra["PolicyDocument"] = spec.policy_document
            if spec.service_region and spec.service_region != spec.region:
                extra["ServiceRegion"] = spec.service_region
            endpoint = await aws_endpoints.create_endpoint(
                ctx,
                uid=uid,
                generation=int(status.get("incarnation", 0)) * 1_000_000 + lease.generation,
                name=name,
                vpc_id=spec.vpc_id,
                service_name=service_name,
                subnet_ids=spec.subnet_ids,
                security_group_ids=spec.security_group_ids,
                labels=spec.labels,
                private_dns_enabled=False,
                **extra,
            )
            log.info("connection.created", connection=name, endpoint=endpoint["VpcEndpointId"])
            await self._poke(spec.service)
        status.pop("last_aws_error", None)
        if await labels.sync_ec2_tags(ctx, endpoint["VpcEndpointId"], endpoint, spec.labels):
            log.info("connection.tags_synced", connection=name)
        return await self._observe(lease, ctx, spec, status, endpoint, target_state)

    async def _preflight(
        self,
        ctx: calls.Context,
        spec: specs.ConnectionSpec,
        service_name: str,
        attempts: int,
        target: Any,
    ) -> None:
        """Fail clearly now instead of with an AWS error later."""
        who = (ctx.account.account_id, ctx.account.role_arn, ctx.region)

        async def describe_service() -> list[dict[str, Any]]:
            try:
                response = await ctx.call(
                    "ec2", "DescribeVpcEndpointServices", ServiceNames=[service_name]
                )
            except aws_errors.AwsError as error:
                if error.retryable:
                    raise
                return []
            found: list[dict[str, Any]] = response.get("ServiceDetails", [])
            return found

        async def describe_subnets() -> list[dict[str, Any]]:
            response = await ctx.call("ec2", "DescribeSubnets", SubnetIds=spec.subnet_ids)
            found: list[dict[str, Any]] = response.get("Subnets", [])
            return found

        details = await self.recent.get((*who, "service", service_name), describe_service)
        if not details:
            # Permissions granted by the provider take a moment to be seen: retry a few times
            # before calling it permanent.
            visible = aws_errors.AwsError(
                "ServiceNotVisible",
                f"{service_name} is not visible to account {ctx.account.account_id}: ask the "
                "provider to allow it",
                kind=aws_errors.Kind.NOT_FOUND,
                retryable=attempts < VISIBILITY_GRACE_ATTEMPTS,
                action="DescribeVpcEndpointServices",
            )
            raise visible
        detail = details[0]
        service_zones = list(detail.get("AvailabilityZones", []))
        subnets = await self.recent.get(
            (*who, "subnets", *sorted(spec.subnet_ids)), describe_subnets
        )
        if service_zones:
            supported = set(detail.get("AvailabilityZoneIds") or [])
            if not supported:
                zones = (
                    await ctx.call("ec2", "DescribeAvailabilityZones", ZoneNames=service_zones)
                ).get("AvailabilityZones", [])
                supported = {z.get("ZoneId") for z in zones}
            for subnet in subnets:
                if subnet.get("AvailabilityZoneId") not in supported:
                    raise _permanent(
                        "UnsupportedAvailabilityZone",
                        f"subnet {subnet['SubnetId']} is in {subnet.get('AvailabilityZone')} "
                        f"({subnet.get('AvailabilityZoneId')}); {service_name} is offered in "
                        f"{', '.join(sorted(service_zones))}",
                        "DescribeVpcEndpointServices",
                    )
        if target is not None and spec.service_region and spec.service_region != spec.region:
            regions = target[2].supported_regions
            if spec.region not in regions:
                raise _permanent(
                    "UnsupportedRegion",
                    f"{spec.service} does not support consumers in {spec.region}",
                )
        existing = await ctx.collect(
            "ec2",
            "DescribeVpcEndpoints",
            "VpcEndpoints",
            Filters=[{"Name": "vpc-id", "Values": [spec.vpc_id]}],
        )
        live = [e for e in existing if str(e.get("State", "")).lower() not in GONE]
        if len(live) >= VPC_ENDPOINT_QUOTA:
            raise _permanent(
                "VpcEndpointQuota",
                f"VPC {spec.vpc_id} already has {len(live)} endpoints (quota "
                f"{VPC_ENDPOINT_QUOTA}); request a quota increase or use another VPC",
            )

    async def _observe(
        self,
        lease: leases.Lease,
        ctx: calls.Context,
        spec: specs.ConnectionSpec,
        status: dict[str, Any],
        endpoint: dict[str, Any],
        target: Any,
    ) -> engine.Pass:
        endpoint_id = endpoint["VpcEndpointId"]
        aws_state = states.normalise_endpoint_state(str(endpoint.get("State", "pending")))
        state = states.CONNECTION_STATE_OF_ENDPOINT.get(aws_state, "FAILED")
        changed = False
        if aws_state == "AVAILABLE":
            changed = await self._modify(ctx, spec, endpoint, target, status, lease.generation)
        status.update(
            endpoint_id=endpoint_id,
            dns_entries=[
                {"dns_name": d.get("DnsName", ""), "hosted_zone_id": d.get("HostedZoneId", "")}
                for d in endpoint.get("DnsEntries", [])
            ],
            network_interfaces=await self._interfaces(ctx, endpoint, status),
        )
        if endpoint.get("LastError"):
            status["last_aws_error"] = {
                "code": endpoint["LastError"].get("Code", ""),
                "message": endpoint["LastError"].get("Message", ""),
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
        ready = aws_state == "AVAILABLE" and not changed
        progress.set_condition(
            status,
            "Ready",
            ready,
            "Available" if ready else aws_state.title().replace("_", ""),
            "the endpoint carries traffic" if ready else f"the endpoint is {aws_state.lower()}",
            lease.generation,
        )
        # PENDING_ACCEPTANCE settles the create (a person decides, maybe much later), except
        # when the target's policy is about to reject this consumer: then the Operation waits
        # for that decision and fails with it, instead of reporting success a moment earlier.
        awaiting_policy = (
            aws_state == "PENDING_ACCEPTANCE"
            and target is not None
            and acceptance.decide(target[2].acceptance_policy, ctx.account.account_id, {}).verdict
            == "REJECTED"
        )
        settled = not awaiting_policy and (
            ready or aws_state in {"PENDING_ACCEPTANCE", "REJECTED", "FAILED", "EXPIRED"}
        )
        await self._write(
            lease,
            status,
            state,
            converged=settled and not changed,
            endpoint_id=endpoint_id,
            message={
                "PENDING_ACCEPTANCE": "waiting for the provider to accept the connection",
                "PROVISIONING": "accepted; AWS is provisioning the endpoint",
                "AVAILABLE": "available",
            }.get(state, f"endpoint is {aws_state.lower()}"),
        )
        if ready or aws_state in {"REJECTED", "FAILED", "EXPIRED"}:
            return engine.Pass(self.ws.timing.resync_seconds)
        if aws_state == "PENDING_ACCEPTANCE" and target is not None:
            # A linkplane Service pokes this Connection when it decides; polling fast here
            # only loads AWS and the database (hundreds of requests waiting for a person).
            return engine.Pass(self.ws.timing.resync_seconds)
        return engine.Pass(self.ws.timing.transitional_seconds)

    async def _modify(
        self,
        ctx: calls.Context,
        spec: specs.ConnectionSpec,
        endpoint: dict[str, Any],
        target: Any,
        status: dict[str, Any],
        generation: int,
    ) -> bool:
        """ModifyVpcEndpoint by diff; private DNS only once accepted (and verified)."""
        params: dict[str, Any] = {}
        current_subnets = set(endpoint.get("SubnetIds", []))
        if add := sorted(set(spec.subnet_ids) - current_subnets):
            params["AddSubnetIds"] = add
        if remove := sorted(current_subnets - set(spec.subnet_ids)):
            params["RemoveSubnetIds"] = remove
        current_groups = {g.get("GroupId") for g in endpoint.get("Groups", [])}
        if spec.security_group_ids:
            if add := sorted(set(spec.security_group_ids) - current_groups):
                params["AddSecurityGroupIds"] = add
            if remove := sorted(g for g in current_groups - set(spec.security_group_ids) if g):
                params["RemoveSecurityGroupIds"] = remove
        want_dns = spec.private_dns_enabled
        if want_dns and target is not None and target[2].private_dns_name:
            verification = (target[3].get("private_dns_verification") or {}).get("state")
            if verification != "VERIFIED":
                want_dns = False
                progress.set_condition(
                    status,
                    "PrivateDns",
                    False,
                    "AwaitingVerification",
                    f"{target[2].private_dns_name} is not verified by the provider yet",
                    generation,
                )
        if bool(endpoint.get("PrivateDnsEnabled")) != want_dns and (
            want_dns or endpoint.get("PrivateDnsEnabled")
        ):
            params["PrivateDnsEnabled"] = want_dns
        if spec.policy_document and endpoint.get("PolicyDocument") != spec.policy_document:
            params["PolicyDocument"] = spec.policy_document
        if not params:
            return False
        await ctx.call(
            "ec2", "ModifyVpcEndpoint", VpcEndpointId=endpoint["VpcEndpointId"], **params
        )
        return True

    async def _interfaces(
        self, ctx: calls.Context, endpoint: dict[str, Any], status: dict[str, Any]
    ) -> list[dict[str, Any]]:
        ids = list(endpoint.get("NetworkInterfaceIds", []))
        if not ids:
            return []
        known = list(status.get("network_interfaces") or [])
        if sorted(ids) == sorted(n.get("network_interface_id", "") for n in known):
            return known  # An ENI keeps its subnet and primary IP for life: no need to ask.
        try:
            found = (
                await ctx.call("ec2", "DescribeNetworkInterfaces", NetworkInterfaceIds=ids)
            ).get("NetworkInterfaces", [])
        except aws_errors.AwsError as error:
            if aws_errors.is_not_found(error):
                return []
            raise
        return [
            {
                "network_interface_id": n.get("NetworkInterfaceId", ""),
                "subnet_id": n.get("SubnetId", ""),
                "availability_zone": n.get("AvailabilityZone", ""),
                "private_ip_address": n.get("PrivateIpAddress", ""),
                "ipv6_addresses": [a.get("Ipv6Address", "") for a in n.get("Ipv6Addresses", [])],
            }
            for n in sorted(found, key=lambda n: n.get("SubnetId", ""))
        ]

    async def _delete(self, lease: leases.Lease, ctx: calls.Context, uid: str) -> engine.Pass:
        owned = await aws_endpoints.find_endpoints_by_uid(ctx, uid)
        remaining = [
            e["VpcEndpointId"] for e in owned if str(e.get("State", "")).lower() != "deleted"
        ]
        deletable = [
            e["VpcEndpointId"]
            for e in owned
            if str(e.get("State", "")).lower() not in {"deleted", "deleting"}
        ]
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
            await session.execute(
                update(models.Service)
                .where(models.Service.name == service)
                .values(next_reconcile_at=func.now())
            )

    async def _write(
        self,
        lease: leases.Lease,
        status: dict[str, Any] | None,
        state: str,
        *,
        converged: bool,
        message: str,
        endpoint_id: str | None = None,
    ) -> None:
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Connection, lease)
            before = (row.state, row.status, row.reconciling, row.observed_generation)
            if status is not None:
                row.status = status
            if row.delete_time is None or state == "DELETING":
                row.state = state
            if converged:
                row.observed_generation = lease.generation
            row.reconciling = not converged or row.generation != lease.generation
            if endpoint_id:
                row.endpoint_id = endpoint_id
            if before != (row.state, row.status, row.reconciling, row.observed_generation):
                row.revision += 1
                row.update_time = func.now()
                await changes.notify(session, kind=KIND, name=row.name, uid=str(row.uid))
            await progress.set_progress(session, row.uid, message)
            await session.flush()
            await session.refresh(row)
            await progress.settle_connection(session, row)
