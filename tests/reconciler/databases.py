"""A database of a test module's own, for tests that run their own workers: no other worker
(the package's control plane) may claim their rows or change their timing."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from linkplane.server.storage import changes, database, migrations


@pytest.fixture(scope="module")
def own_database_url(database_url: str) -> Iterator[str]:
    """A fresh, migrated database for this module alone; dropped afterwards."""
    admin = make_url(database_url).set(database="postgres").render_as_string(hide_password=False)
    name = f"linkplane_own_{secrets.token_hex(4)}"

    async def admin_sql(sql: str) -> None:
        connection = await asyncpg.connect(changes.asyncpg_dsn(admin))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    url = make_url(database.async_url(database_url)).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    migrations.upgrade(rendered)
    try:
        yield rendered
    finally:
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
