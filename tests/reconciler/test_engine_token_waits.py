"""A pass asleep on an AWS rate-limit token does not hold a worker slot: while one account's
CreateVpcEndpoint bucket keeps its passes waiting, another account's passes still run (and the
leases one process holds stay bounded)."""

from __future__ import annotations

import asyncio
import uuid

from linkplane.server.aws import throttlers
from linkplane.server.reconciler import engine
from linkplane.server.storage import changes, database, leases, models
from tests.reconciler.conftest import eventually
from tests.reconciler.test_engine_bugs import (  # noqa: F401 - `db` is a fixture
    ConnectionStub,
    db,
    insert_connection,
)

BUSY = "111111111111"
"""The account whose bucket is empty: its passes wait for a token for ~1,000 s."""
IDLE = "222222222222"


class Creating(ConnectionStub):
    """A Connection reconciler whose passes each take one CreateVpcEndpoint token: the busy
    account's rows wait on its drained bucket, the idle account's go straight through."""

    def __init__(self, limiter: throttlers.Limiter, busy: set[uuid.UUID]) -> None:
        self.limiter = limiter
        self.busy = busy
        self.done: list[uuid.UUID] = []

    async def reconcile(self, lease: leases.Lease) -> engine.Pass:
        account = BUSY if lease.uid in self.busy else IDLE
        await self.limiter.acquire("ec2", "CreateVpcEndpoint", account, "us-east-1")
        self.done.append(lease.uid)
        return engine.Pass(3600.0)


async def test_passes_waiting_for_tokens_leave_their_slot_to_other_work(
    db,  # noqa: F811 - the fixture
    own_database_url,
):
    # One token per account, refilled once in ~1,000 s: the busy account's is spent already.
    limiter = throttlers.Limiter(
        rates={throttlers.EC2_ENDPOINT_MUTATION: throttlers.Rate(burst=1, refill=0.001)},
        safety=1.0,
    )
    await limiter.acquire("ec2", "CreateVpcEndpoint", BUSY, "us-east-1")
    # Due in this order: three busy rows first, then the idle one, then three more busy.
    busy = {await insert_connection(db) for _ in range(3)}
    idle = await insert_connection(db)
    busy |= {await insert_connection(db) for _ in range(3)}
    reconciler = Creating(limiter, busy)
    feed = changes.ChangeFeed(own_database_url)
    worker = engine.Engine(
        db=db, feed=feed, reconcilers=[reconciler], concurrency=1, lease_seconds=30.0
    )
    await feed.start()
    await worker.start()
    try:
        # With one slot, a waiting pass holding it would keep the idle account's row (and
        # every other) waiting for the busy account's refill.
        await eventually(lambda: _done(reconciler), lambda done: idle in done, timeout=20.0)
        assert not set(reconciler.done) & busy
        # Waiting passes are bounded: WAITING_FACTOR times the concurrency in flight, and the
        # last two busy rows stay unclaimed.
        await eventually(
            lambda: _leased(db, busy), lambda n: n == engine.WAITING_FACTOR, timeout=20.0
        )
        await asyncio.sleep(1.5)  # more than the engine's poll interval
        assert await _leased(db, busy) == engine.WAITING_FACTOR
    finally:
        await worker.stop(1.0)
        await feed.stop()


async def _done(reconciler: Creating) -> list[uuid.UUID]:
    await asyncio.sleep(0)
    return list(reconciler.done)


async def _leased(handle: database.Database, uids: set[uuid.UUID]) -> int:
    async with handle.transaction() as session:
        rows = [await session.get(models.Connection, uid) for uid in uids]
    return sum(1 for row in rows if row is not None and row.lease_owner)


def test_a_pass_waiting_in_two_tasks_at_once_is_one_pass_asleep() -> None:
    # A pass that gathers batches can wait for tokens in several tasks; it frees one slot.
    engine_waits = engine._TokenWaits(asyncio.Event())
    one_pass = engine._PassWaits(engine_waits)
    one_pass.waiting()
    one_pass.waiting()
    assert engine_waits.count == 1
    one_pass.resumed()
    assert engine_waits.count == 1
    one_pass.resumed()
    assert engine_waits.count == 0
