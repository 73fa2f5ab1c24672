"""Fresh, migrated databases on the test Postgres: one for the session, more for packages or
modules that run their own workers (no other worker may claim their rows or change their
timing)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from linkplane.server.storage import changes, database, migrations
from linkplane.server.storage.embedded import EmbeddedPostgres


@contextlib.contextmanager
def postgres_server_url() -> Iterator[str]:
    """An administrative URL of the test Postgres: LINKPLANE_TEST_DATABASE_URL when set (CI
    points it at the machine's server), else an embedded Postgres started for the session."""
    configured = os.environ.get("LINKPLANE_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="linkplane-test-pg-")))
    try:
        yield embedded.start()
    finally:
        embedded.stop()


def server_url_of(database_url: str) -> str:
    """The administrative URL (database `postgres`) of the server holding `database_url`."""
    return make_url(database_url).set(database="postgres").render_as_string(hide_password=False)


def _admin_sql(admin_url: str, sql: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(changes.asyncpg_dsn(admin_url))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run())


@contextlib.contextmanager
def fresh_database(admin_url: str, prefix: str) -> Iterator[str]:
    """Create `{prefix}_{random}` through `admin_url`, migrate it with the real Alembic scripts,
    yield its (async) URL, and drop it afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    _admin_sql(admin_url, f'CREATE DATABASE "{name}"')
    url = make_url(database.async_url(admin_url)).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    migrations.upgrade(rendered)
    try:
        yield rendered
    finally:
        _admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
