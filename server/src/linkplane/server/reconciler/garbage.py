"""Garbage collection: AWS objects tagged by linkplane whose resource no longer exists.

It also forgets request ids older than a week (AIP-155 retries come within minutes).

Normal deletion removes a resource's AWS objects before its row, so orphans come only from
the outside: a row deleted by hand, a restored database backup, an endpoint duplicated by a
create whose ClientToken AWS no longer honoured. Periodically, one replica at a time (a Postgres
advisory lock), the collector lists every object carrying the `linkplane:uid` tag in each
registered account and region and deletes those whose uid has no row — and, for a live
Connection, any endpoint other than the one it tracks. It reads AWS first and the rows after
(see ``_sweep_place``), so a resource created during a sweep never loses its new objects, and
a second sweeper (a replica whose lock connection dropped) does no harm.

One linkplane installation per AWS account: a second installation's objects would look like
orphans here. `LINKPLANE_GARBAGE_COLLECTION=false` turns the collector off.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog

from linkplane.server.aws import endpoint_services, tags
from linkplane.server.aws import errors as aws_errors
from linkplane.server.domain import specs, states
from linkplane.server.reconciler.workspace import Workspace
from linkplane.server.storage import garbage, requests

log = structlog.get_logger("linkplane.reconciler.garbage")
LOCK_KEY = 724109
# Endpoint service states (lower-cased) of a service going or gone: not garbage any more.
GONE_SERVICE_STATES = {"deleted", "deleting"}
TAG_KEY_FILTER = [{"Name": "tag-key", "Values": [tags.UID_KEY]}]


@dataclass
class Sweep:
    """What one pass found and removed."""

    endpoints: list[str] = field(default_factory=list)
    endpoint_services: list[str] = field(default_factory=list)
    load_balancers: list[str] = field(default_factory=list)


class Collector:
    def __init__(
        self,
        workspace: Workspace,
        *,
        interval_seconds: float,
        request_id_retention: timedelta = timedelta(days=7),
    ) -> None:
        self.ws = workspace
        self.interval = interval_seconds
        self.request_id_retention = request_id_retention
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="garbage-collector")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=grace_seconds)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("garbage.sweep_failed", error=str(exc))

    async def sweep(self) -> Sweep:
        """One pass over every registered account and region, under the advisory lock."""
        result = Sweep()
        async with garbage.exclusive(self.ws.db, LOCK_KEY) as locked:
            if not locked:
                return result
            async with self.ws.db.transaction() as session:
                expired = await requests.expire(session, older_than=self.request_id_retention)
            if expired:
                log.info("garbage.request_ids_expired", count=expired)
            for account_name, region in sorted(await self._places()):
                await self._sweep_place(account_name, region, result)
        if result.endpoints or result.endpoint_services or result.load_balancers:
            log.info("garbage.removed", **result.__dict__)
        return result

    async def _places(self) -> set[tuple[str, str]]:
        """Every (account, Region) to look in: where a Service or Connection lives, and each
        registered account's allowed Regions (or, without a limit, every Region in use)."""
        async with self.ws.db.transaction() as session:
            accounts = await garbage.accounts(session)
            services = await garbage.services(session)
            connections = await garbage.connections(session)
        places: set[tuple[str, str]] = set()
        in_use = {region for _, _, region in services} | {r for _, _, r, _ in connections}
        for account in accounts:
            allowed = specs.account_from_json(account.spec).allowed_regions
            for region in allowed or in_use:
                places.add((account.name, region))
        places |= {(account, region) for _, account, region in services}
        places |= {(account, region) for _, account, region, _ in connections}
        registered = {a.name for a in accounts}
        return {p for p in places if p[0] in registered}

    async def _sweep_place(self, account_name: str, region: str, result: Sweep) -> None:
        """Delete what AWS shows tagged here and no row owns. AWS is read first and the rows
        after: a row always exists before its objects are created and goes only after they
        are deleted, so an object seen in AWS whose row is missing from a later read is
        garbage, while a row read first could miss a resource created in between and doom
        its brand-new objects. The same order makes two sweeps at once harmless (a replica
        whose advisory lock's connection dropped, and the one that took the lock over)."""
        ctx = self.ws.context(await self.ws.account(account_name), region)
        endpoints = await ctx.collect(
            "ec2", "DescribeVpcEndpoints", "VpcEndpoints", Filters=TAG_KEY_FILTER
        )
        by_uid: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for endpoint in endpoints:
            if (
                states.normalise_endpoint_state(endpoint.get("State"))
                in states.GONE_ENDPOINT_STATES
            ):
                continue
            uid = tags.tag_value(endpoint, tags.UID_KEY)
            if uid and _is_uid(uid) and tags.tag_value(endpoint, tags.KIND_KEY) == "endpoint":
                by_uid[uid].append(endpoint)
        async with self.ws.db.transaction() as session:
            tracked = await garbage.tracked_endpoints(session, [uuid.UUID(u) for u in by_uid])
        doomed: list[str] = []
        for uid, owned in by_uid.items():
            if uuid.UUID(uid) not in tracked:
                doomed += [e["VpcEndpointId"] for e in owned]
            elif (kept := tracked[uuid.UUID(uid)]) and len(owned) > 1:
                doomed += [e["VpcEndpointId"] for e in owned if e["VpcEndpointId"] != kept]
        if doomed:
            await ctx.call("ec2", "DeleteVpcEndpoints", VpcEndpointIds=doomed)
            result.endpoints += doomed

        configurations = await ctx.collect(
            "ec2",
            "DescribeVpcEndpointServiceConfigurations",
            "ServiceConfigurations",
            Filters=TAG_KEY_FILTER,
        )
        live_services = await self._existing_services(configurations)
        for config in configurations:
            uid = tags.tag_value(config, tags.UID_KEY)
            if not uid or not _is_uid(uid) or uid in live_services:
                continue
            if str(config.get("ServiceState", "")).lower() in GONE_SERVICE_STATES:
                continue
            service_id = config["ServiceId"]
            connections = await endpoint_services.describe_endpoint_connections(ctx, service_id)
            live = endpoint_services.live_connection_ids(connections)
            if live:
                await endpoint_services.reject_connections(ctx, service_id, live)
            try:
                await endpoint_services.delete_endpoint_service(ctx, service_id)
            except aws_errors.AwsError as error:
                if not error.retryable:
                    raise
                continue  # rejections settle; the next sweep deletes it
            result.endpoint_services.append(service_id)

        load_balancers = await ctx.collect("elbv2", "DescribeLoadBalancers", "LoadBalancers")
        candidates = [
            lb["LoadBalancerArn"]
            for lb in load_balancers
            if lb.get("LoadBalancerName", "").startswith("lp-")
        ]
        for start in range(0, len(candidates), 20):
            batch = candidates[start : start + 20]
            described = await ctx.call("elbv2", "DescribeTags", ResourceArns=batch)
            descriptions = described.get("TagDescriptions", [])
            live_services = await self._existing_services(descriptions)
            for description in descriptions:
                uid = tags.tag_value(description, tags.UID_KEY)
                if uid and _is_uid(uid) and uid not in live_services:
                    try:
                        await ctx.call(
                            "elbv2",
                            "DeleteLoadBalancer",
                            LoadBalancerArn=description["ResourceArn"],
                        )
                    except aws_errors.AwsError as error:
                        if not error.retryable:
                            raise
                        continue  # still attached to a service being deleted
                    result.load_balancers.append(description["ResourceArn"])

    async def _existing_services(self, tagged: list[dict[str, Any]]) -> set[str]:
        """The uids tagged on these AWS objects that a Service row still has."""
        uids = {u for o in tagged if (u := tags.tag_value(o, tags.UID_KEY)) and _is_uid(u)}
        async with self.ws.db.transaction() as session:
            found = await garbage.existing_services(session, [uuid.UUID(u) for u in uids])
        return {str(uid) for uid in found}


def _is_uid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
