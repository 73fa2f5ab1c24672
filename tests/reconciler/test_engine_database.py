"""A database outage during a reconcile is not a linkplane bug (issue 10): the engine logs
`reconciler.database_unavailable`, backs off and tries again; no `reconciler.bug`, no bug
condition, no bug metric. Classified by SQLSTATE and exception type (`database.classify`)."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import asyncpg
import pytest
import sqlalchemy.exc

from linkplane.server import logs
from linkplane.server.domain import errors as domain_errors
from linkplane.server.reconciler import engine
from linkplane.server.storage import changes, database, leases
from tests.reconciler.conftest import eventually
from tests.reconciler.test_engine_bugs import (  # noqa: F401 - `db` is a fixture
    ConnectionStub,
    bugs_counted,
    db,
    insert_connection,
    row_of,
)


def postgres_starting_up() -> None:
    """What a query raises while Postgres restarts (SQLSTATE 57P03), as the storage layer
    turns it into its domain error."""
    with database.translate_errors():
        raise asyncpg.exceptions.CannotConnectNowError("the database system is starting up")


class Outage(ConnectionStub):
    """A Connection reconciler whose first `failing` passes meet a database outage."""

    def __init__(self, failing: int) -> None:
        self.failing = failing
        self.passes = 0

    async def reconcile(self, lease: leases.Lease) -> engine.Pass:
        self.passes += 1
        if self.passes == 1:
            postgres_starting_up()
        if self.passes <= self.failing:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
        return engine.Pass(3600.0)


def test_outages_are_told_from_bugs() -> None:
    with pytest.raises(domain_errors.Unavailable) as raised:
        postgres_starting_up()
    assert engine.database_unavailable(raised.value)
    assert engine.database_unavailable(ConnectionRefusedError(111, "refused"))
    # A data error is a bug, even on the connections table (its message says "connection").
    data_error = sqlalchemy.exc.DBAPIError(
        "INSERT INTO connections ...", {}, asyncpg.exceptions.StringDataRightTruncationError()
    )
    assert not engine.database_unavailable(data_error)
    assert not engine.database_unavailable(KeyError("connection"))


async def test_a_database_outage_backs_off_without_a_bug(db, own_database_url):  # noqa: F811
    uid = await insert_connection(db)
    reconciler = Outage(failing=2)
    events: list[str] = []

    def listen(event: MutableMapping[str, Any]) -> None:
        if event.get("event") == "reconciler.database_unavailable":
            events.append(str(event.get("uid")))

    feed = changes.ChangeFeed(own_database_url)
    worker = engine.Engine(
        db=db, feed=feed, reconcilers=[reconciler], concurrency=1, lease_seconds=5.0
    )
    before = bugs_counted("Unavailable") + bugs_counted("ConnectionRefusedError")
    logs.listeners.append(listen)
    await feed.start()
    await worker.start()
    try:
        # Two outages (each backed off: 1-2 s, then 2-4 s), then a pass that succeeds.
        row = await eventually(
            lambda: row_of(db, uid),
            lambda r: reconciler.passes >= 3 and r.attempts == 0,
            timeout=30.0,
        )
        assert events == [str(uid), str(uid)]
        assert not any(
            c["type"] == engine.BUG_CONDITION for c in (row.status or {}).get("conditions", [])
        )
        assert bugs_counted("Unavailable") + bugs_counted("ConnectionRefusedError") == before
        await asyncio.sleep(0.5)
        assert reconciler.passes == 3, "backed off, not retried in a loop"
    finally:
        logs.listeners.remove(listen)
        await worker.stop(1.0)
        await feed.stop()
