"""An unexpected exception in a reconciler is visible: a condition on the resource, a metric,
backoff, and (tests/conftest.py) a failed test whenever `reconciler.bug` is logged."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from linkplane.server.reconciler import engine, failures
from linkplane.server.storage import changes, database, leases, models
from tests.reconciler.conftest import eventually


class ConnectionStub:
    """A Connection reconciler for engine tests: no AWS error reaches `record_failure`."""

    kind = "connection"
    model = models.Connection

    async def record_failure(
        self, lease: leases.Lease, error: failures.Failure, attempts: int
    ) -> None:
        raise AssertionError("no AWS error in this test")

    def urgent(self) -> Any:
        return None


class Broken(ConnectionStub):
    """A Connection reconciler with a bug until the test sets `fixed`."""

    def __init__(self) -> None:
        self.fixed = False
        self.passes = 0

    async def reconcile(self, lease: leases.Lease) -> engine.Pass:
        self.passes += 1
        if not self.fixed:
            target: dict[str, Any] = {}
            return engine.Pass(target["missing"])  # a KeyError, as a bug would raise
        return engine.Pass(3600.0)


@pytest.fixture
async def db(own_database_url: str) -> AsyncIterator[database.Database]:
    handle = database.Database(own_database_url)
    try:
        yield handle
    finally:
        await handle.close()


async def insert_connection(db: database.Database) -> uuid.UUID:
    uid = uuid.uuid4()
    async with db.transaction() as session:
        session.add(
            models.Connection(
                uid=uid,
                name=f"projects/p/connections/c-{uid.hex[:8]}",
                project="p",
                display_name="",
                labels={},
                spec={},
                generation=1,
                observed_generation=0,
                state="CREATING",
                reconciling=True,
                status={},
                revision=1,
                consumer_account="projects/p/accounts/222222222222",
                region="us-east-1",
                vpc_id="vpc-0123456789abcdef0",
                fencing_token=0,
                attempts=0,
            )
        )
    return uid


async def row_of(db: database.Database, uid: uuid.UUID) -> models.Connection:
    async with db.transaction() as session:
        row = await session.get(models.Connection, uid)
        assert row is not None
        return row


def bugs_counted(error: str) -> float:
    value = REGISTRY.get_sample_value(
        "linkplane_reconciler_bugs_total", {"kind": "connection", "error": error}
    )
    return value or 0.0


@pytest.mark.reconciler_bug_expected
async def test_a_bug_shows_on_the_resource_counts_and_backs_off(db, own_database_url):
    uid = await insert_connection(db)
    reconciler = Broken()
    feed = changes.ChangeFeed(own_database_url)
    worker = engine.Engine(
        db=db, feed=feed, reconcilers=[reconciler], concurrency=1, lease_seconds=5.0
    )
    before = bugs_counted("KeyError")
    await feed.start()
    await worker.start()
    try:
        row = await eventually(
            lambda: row_of(db, uid),
            lambda r: any(
                c["type"] == engine.BUG_CONDITION for c in (r.status or {}).get("conditions", [])
            ),
        )
        (condition,) = [c for c in row.status["conditions"] if c["type"] == "Reconciling"]
        assert condition["status"] == "FALSE"
        assert condition["reason"] == "InternalError"
        assert "KeyError" in condition["message"]
        # Every failed pass is counted (a slow machine may have seen a second one already).
        assert before + 1 <= bugs_counted("KeyError") <= before + reconciler.passes
        # Backoff, not a tight loop: the attempts grow, each pass waits longer than the last
        # (1-2 s, then 2-4 s), so a 3 s window sees at most two passes (a slower machine, fewer).
        assert row.attempts >= 1
        seen = reconciler.passes
        await asyncio.sleep(3.0)
        assert reconciler.passes - seen <= 2, (seen, reconciler.passes)
        # Once a pass succeeds the condition goes away.
        reconciler.fixed = True
        healed = await eventually(
            lambda: row_of(db, uid),
            lambda r: (
                not any(
                    c["type"] == engine.BUG_CONDITION
                    for c in (r.status or {}).get("conditions", [])
                )
            ),
            timeout=60.0,
        )
        assert healed.attempts == 0
    finally:
        await worker.stop(1.0)
        await feed.stop()
