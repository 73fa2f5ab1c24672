"""A pass keeps its lease while the passes around it hold every pooled connection: heartbeats
and fences renew it on a connection of their own (`leases.Heartbeats`). And a beat that meets
a database outage does not end the beats.

Through the pool, a worker's heartbeats queued behind the passes they keep alive; on a busy
machine one waited past the lease, another worker claimed the resource mid-pass, and
tests/reconciler_multiprocess/test_workers.py saw two owners overlap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from linkplane.server import logs
from linkplane.server.reconciler import engine
from linkplane.server.storage import changes, database, leases, models
from tests.reconciler.conftest import eventually
from tests.reconciler.test_engine_bugs import (  # noqa: F401 - `db` is a fixture
    ConnectionStub,
    db,
    insert_connection,
    row_of,
)
from tests.reconciler.test_engine_database import postgres_starting_up

LEASE_SECONDS = 1.0


class PoolHog(ConnectionStub):
    """A Connection reconciler whose one pass holds the pool's only connection for twice the
    lease, then asks Postgres, on a connection outside the pool, whether its lease still
    runs and is still its own."""

    def __init__(self, handle: database.Database, url: str) -> None:
        self.db = handle
        self.url = url
        self.passes = 0
        self.lease_held: bool | None = None
        self.fenced = False

    async def reconcile(self, lease: leases.Lease) -> engine.Pass:
        self.passes += 1
        async with self.db.transaction() as session:
            await session.execute(text("SELECT 1"))
            await asyncio.sleep(2 * LEASE_SECONDS)
            self.lease_held = await lease_runs(self.url, lease)
            # A fence too, as before an AWS mutation: it must not wait for the pooled
            # connection this very pass holds.
            await asyncio.wait_for(
                leases.heartbeats(self.db).renew(ConnectionStub.model, lease, LEASE_SECONDS),
                timeout=1.0,
            )
            self.fenced = True
        return engine.Pass(3600.0)


async def lease_runs(url: str, lease: leases.Lease) -> bool:
    """Whether Postgres, asked on a connection outside the pool, has the lease still running
    and still this one."""
    outside = await asyncpg.connect(changes.asyncpg_dsn(database.async_url(url)))
    try:
        held: bool = await outside.fetchval(
            "SELECT lease_expires_at > now() AND fencing_token = $2"
            " FROM connections WHERE uid = $1",
            lease.uid,
            lease.token,
        )
        return held
    finally:
        await outside.close()


class LongPass(ConnectionStub):
    """A Connection reconciler whose one pass lasts three leases, then asks whether its lease
    still runs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.passes = 0
        self.lease_held: bool | None = None

    async def reconcile(self, lease: leases.Lease) -> engine.Pass:
        self.passes += 1
        await asyncio.sleep(3 * LEASE_SECONDS)
        self.lease_held = await lease_runs(self.url, lease)
        return engine.Pass(3600.0)


@pytest.fixture
async def one_connection_db(own_database_url: str) -> AsyncIterator[database.Database]:
    handle = database.Database(own_database_url, pool_size=1, pool_overflow=0, timeout=5.0)
    try:
        yield handle
    finally:
        await handle.close()


async def first_pass(
    handle: database.Database, url: str, reconciler: engine.Reconciler
) -> models.Connection:
    """Run an engine with `reconciler` on a new Connection until its first pass has ended and
    given the lease back; the row then."""
    uid = await insert_connection(handle)
    feed = changes.ChangeFeed(url)
    worker = engine.Engine(
        db=handle, feed=feed, reconcilers=[reconciler], concurrency=1, lease_seconds=LEASE_SECONDS
    )
    await feed.start()
    await worker.start()
    try:
        return await eventually(
            lambda: row_of(handle, uid),
            lambda r: r.fencing_token >= 1 and r.lease_expires_at is None,
            timeout=20.0,
        )
    finally:
        await worker.stop(1.0)
        await feed.stop()


async def test_a_pass_keeps_its_lease_while_the_pool_is_taken(
    one_connection_db: database.Database, own_database_url: str
) -> None:
    reconciler = PoolHog(one_connection_db, own_database_url)
    row = await first_pass(one_connection_db, own_database_url, reconciler)
    assert reconciler.passes == 1
    assert reconciler.fenced
    assert reconciler.lease_held is True, "the lease ran out while the pool was taken"
    assert row.fencing_token == 1, "claimed once: the pass ended with its own lease"


async def test_a_beat_that_meets_an_outage_does_not_end_the_beats(
    db: database.Database,  # noqa: F811 - the fixture
    own_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first beat meets Postgres unreachable (as `Dedicated` reports a connection dropped
    twice); the later ones get through, so the pass ends with its lease."""
    reconciler = LongPass(own_database_url)
    renew = leases.Heartbeats.renew
    beats = 0

    async def first_beat_fails(
        self: leases.Heartbeats, model: leases.Model, lease: leases.Lease, seconds: float
    ) -> None:
        nonlocal beats
        beats += 1
        if beats == 1:
            postgres_starting_up()
        await renew(self, model, lease, seconds)

    monkeypatch.setattr(leases.Heartbeats, "renew", first_beat_fails)
    failed: list[str] = []

    def listen(event: MutableMapping[str, Any]) -> None:
        if event.get("event") == "reconciler.heartbeat_failed":
            failed.append(str(event.get("uid")))

    logs.listeners.append(listen)
    try:
        row = await first_pass(db, own_database_url, reconciler)
    finally:
        logs.listeners.remove(listen)
    assert reconciler.lease_held is True, "the lease ran out after one failed beat"
    assert beats >= 3, "the beats went on after the failed one"
    assert failed == [str(row.uid)]
    assert reconciler.passes == 1 and row.fencing_token == 1
