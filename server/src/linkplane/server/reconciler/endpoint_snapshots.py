"""Endpoint snapshots: one DescribeVpcEndpoints per account and region, shared by the passes
of every Connection there.

A pass asks the snapshot which endpoint carries its `linkplane:uid` tag (`EndpointSnapshots.find`)
and pre-flight asks it how many endpoints count against a VPC's quota (`counted_in_vpc`); the
Connection reconciler decides when a snapshot's answer needs confirming by a direct read.

A refresh also tells whose endpoint changed state since the previous snapshot (`on_changed`):
their Connections look at once, instead of at their next resync.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

from linkplane.server.aws import calls, tags
from linkplane.server.domain import states

# Endpoint types the per-VPC quota (L-29B6F2EB) counts.
QUOTA_COUNTED_TYPES = ["Interface", "GatewayLoadBalancer"]

# The states a new endpoint starts in (with acceptance required, or accepted at once).
_CREATED_STATES = frozenset({"PENDING_ACCEPTANCE", "PENDING"})

Changed = Callable[[list[str]], Awaitable[None]]
"""Told the `linkplane:uid` tags whose endpoint changed state (or went) between snapshots."""


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

    def __init__(self, ttl: float, on_changed: Changed | None = None) -> None:
        self.ttl = ttl
        self._on_changed = on_changed
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
            earlier = self._taken.get(key)
            if earlier is not None and time.monotonic() - earlier.asked <= self.ttl:
                return earlier
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
        if earlier is not None and self._on_changed is not None:
            changed = snapshot.changed_since(earlier)
            if changed:
                await self._on_changed(changed)
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

    def changed_since(self, earlier: Snapshot) -> list[str]:
        """The uids whose endpoint is in another state here than in `earlier`, or gone. An
        endpoint `earlier` did not show counts when it is past the states a create starts in
        (a Connection whose create predates `earlier`'s request can be first seen failed);
        a new endpoint still in them is not told: the pass that created it is looking."""
        changed = []
        for uid, before in earlier.by_uid.items():
            now = self.by_uid.get(uid)
            if now is None or now.get("State") != before.get("State"):
                changed.append(uid)
        for uid, now in self.by_uid.items():
            if uid not in earlier.by_uid:
                state = states.normalise_endpoint_state(now.get("State"))
                if state not in _CREATED_STATES:
                    changed.append(uid)
        return changed

    @classmethod
    def of(cls, asked: float, found: list[dict[str, Any]]) -> Snapshot:
        by_uid: dict[str, dict[str, Any]] = {}
        counted: dict[str, int] = {}
        ordered = sorted(
            found, key=lambda e: (str(e.get("CreationTimestamp", "")), e["VpcEndpointId"])
        )
        for endpoint in ordered:
            owner = tags.tag_value(endpoint, tags.UID_KEY)
            state = states.normalise_endpoint_state(endpoint.get("State"))
            if owner and state not in states.GONE_ENDPOINT_STATES:
                by_uid.setdefault(owner, endpoint)
            if _counts_against_quota(endpoint):
                vpc_id = str(endpoint.get("VpcId", ""))
                counted[vpc_id] = counted.get(vpc_id, 0) + 1
        return cls(asked, by_uid, counted, frozenset(str(e["VpcEndpointId"]) for e in found))


def _counts_against_quota(endpoint: dict[str, Any]) -> bool:
    counted_type = endpoint.get("VpcEndpointType") in QUOTA_COUNTED_TYPES
    return counted_type and states.counts_against_quota(endpoint.get("State"))


@dataclasses.dataclass(frozen=True)
class Sighting:
    """An endpoint as a snapshot saw it, and when that snapshot's request left (monotonic)."""

    endpoint: dict[str, Any] | None
    asked: float
