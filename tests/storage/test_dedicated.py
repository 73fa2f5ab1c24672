"""The Gets' own connection (storage/driver.py's `Dedicated`): Postgres dropping it mid-read
costs the reader nothing, a statement's own error keeps it, and it closes with the Database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import func, literal, select

from linkplane.server.domain import errors
from linkplane.server.storage import driver
from linkplane.server.storage.database import Database

BACKEND = driver.Statement.of(select(func.pg_backend_pid()))
# Postgres ends this very session (57P01, as on a restart or failover) while a read runs.
END_OWN_SESSION = driver.Statement.of(select(func.pg_terminate_backend(func.pg_backend_pid())))
DIVIDE_BY_ZERO = driver.Statement.of(select(literal(1) / literal(0)))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=2)
    yield database
    await database.close()


async def backend(held: driver.Connection) -> int:
    pid: int = (await held.rows(BACKEND, {}))[0][0]
    return pid


async def test_a_read_whose_connection_postgres_dropped_runs_again_on_a_new_one(db):
    dedicated = driver.Dedicated(db)
    before = await dedicated.read(backend)
    used: list[asyncpg.Connection] = []

    async def read(held: driver.Connection) -> int:
        used.append(held.driver)
        if len(used) == 1:
            await held.rows(END_OWN_SESSION, {})
        return await backend(held)

    after = await dedicated.read(read)

    assert len(used) == 2 and used[0].is_closed() and not used[1].is_closed()
    assert after != before
    assert await dedicated.read(backend) == after  # kept for the next reads


async def test_dropped_twice_in_one_read_is_unavailable(db):
    dedicated = driver.Dedicated(db)

    async def read(held: driver.Connection) -> int:
        await held.rows(END_OWN_SESSION, {})
        return 0

    with pytest.raises(errors.Unavailable):
        await dedicated.read(read)
    assert await dedicated.read(backend) > 0  # and the next read opens a new one


async def test_a_statements_own_error_keeps_the_connection(db):
    dedicated = driver.Dedicated(db)
    before = await dedicated.read(backend)

    async def divide(held: driver.Connection) -> object:
        return await held.rows(DIVIDE_BY_ZERO, {})

    with pytest.raises(asyncpg.DivisionByZeroError):
        await dedicated.read(divide)
    assert await dedicated.read(backend) == before


async def test_closing_the_database_closes_its_own_connections(database_url):
    database = Database(database_url, pool_size=2)
    dedicated = driver.Dedicated(database)
    held: list[asyncpg.Connection] = []

    async def keep(connection: driver.Connection) -> None:
        held.append(connection.driver)

    await dedicated.read(keep)
    await database.close()
    assert held[0].is_closed()
