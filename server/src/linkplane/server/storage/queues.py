"""Metrics of the reconcile queue and of Operations, read where the database knows them.

The reconcile queue is the resource tables themselves (``next_reconcile_at`` and the lease
columns, storage/leases.py), so its depth and the age of its oldest due row are sampled with one
query per kind (:class:`Sampler`, run by worker processes). Every worker reports the same
database-wide numbers: dashboards take ``max`` across pods, not ``sum``.

Counted where they happen: lease hand-offs when ``leases.claim`` takes a row whose lease expired
under another owner (that owner crashed, stalled past its lease, or lost Postgres), and
Operation latency (create → done) when ``operations.finish`` completes one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import prometheus_client
import structlog
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from linkplane.server.storage import database, models

Model = type[models.Service] | type[models.Connection]

log = structlog.get_logger("linkplane.queues")

QUEUE_DEPTH = prometheus_client.Gauge(
    "linkplane_reconcile_queue_depth",
    "Resources due for a reconcile pass that no worker holds (database-wide; max across pods).",
    ["kind"],
)
OLDEST_DUE = prometheus_client.Gauge(
    "linkplane_reconcile_queue_oldest_due_seconds",
    "How long the longest-waiting due resource has been due (0 when none is; database-wide).",
    ["kind"],
)
LEASE_HANDOFFS = prometheus_client.Counter(
    "linkplane_lease_handoffs_total",
    "Claims of a resource whose lease expired under another owner (crashed or stalled worker).",
    ["kind"],
)
OPERATION_SECONDS = prometheus_client.Histogram(
    "linkplane_operation_duration_seconds",
    "Time from an Operation's creation to its completion, by verb and outcome.",
    ["verb", "outcome"],
    buckets=(0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0),
)

SAMPLE_SECONDS = 15.0
"""How often workers sample the queue (about one scrape interval of staleness at most)."""


@dataclass(frozen=True)
class Backlog:
    """What one kind's queue holds now."""

    depth: int
    oldest_due_seconds: float


def count_handoffs(kind: str, owner: str, previous_owners: Iterable[str | None]) -> None:
    """Count the claims (by ``owner``) of rows another owner's expired lease still named."""
    handed = sum(1 for previous in previous_owners if previous is not None and previous != owner)
    if handed:
        LEASE_HANDOFFS.labels(kind).inc(handed)


def observe_operation(verb: str, seconds: float, *, failed: bool) -> None:
    OPERATION_SECONDS.labels(verb, "failed" if failed else "succeeded").observe(max(seconds, 0.0))


async def backlog(session: AsyncSession, model: Model) -> Backlog:
    """Due rows no live lease holds, and how long ago the earliest became due."""
    query = select(
        func.count(),
        func.coalesce(func.extract("epoch", func.now() - func.min(model.next_reconcile_at)), 0),
    ).where(
        model.next_reconcile_at <= func.now(),
        or_(model.lease_expires_at.is_(None), model.lease_expires_at < func.now()),
    )
    depth, oldest = (await session.execute(query)).one()
    return Backlog(depth=int(depth), oldest_due_seconds=max(float(oldest), 0.0))


class Sampler:
    """Sets the queue gauges for each (kind, model) every ``interval`` seconds."""

    def __init__(
        self,
        db: database.Database,
        kinds: Sequence[tuple[str, Model]],
        interval: float = SAMPLE_SECONDS,
    ) -> None:
        self.db = db
        self.kinds = kinds
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def sample(self) -> dict[str, Backlog]:
        found: dict[str, Backlog] = {}
        async with self.db.transaction() as session:
            for kind, model in self.kinds:
                found[kind] = queue = await backlog(session, model)
                QUEUE_DEPTH.labels(kind).set(queue.depth)
                OLDEST_DUE.labels(kind).set(queue.oldest_due_seconds)
        return found

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="queue-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception as exc:
                # The database is down (health says so): the gauges keep their last values.
                log.debug("queues.sample_failed", error=str(exc))
            await asyncio.sleep(self.interval)
