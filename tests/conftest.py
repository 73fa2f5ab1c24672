"""Fixtures shared by every test: a real Postgres and a real linkplane server on a real port.

The database is the server at LINKPLANE_TEST_DATABASE_URL when set (CI points it at the
machine's PostgreSQL), otherwise an embedded Postgres from pgserver. Either way each test run
gets a fresh database, migrated with the real Alembic scripts. Tests isolate themselves by
project (`project` fixture), not by truncating tables, so they can share one server.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from sqlalchemy.engine import make_url

from linkplane.server import logs
from linkplane.server.config import Role, Settings
from linkplane.server.runtime import Runtime
from linkplane.server.storage import changes, database, migrations
from linkplane.server.storage.embedded import EmbeddedPostgres


def _admin_url() -> tuple[str, EmbeddedPostgres | None]:
    configured = os.environ.get("LINKPLANE_TEST_DATABASE_URL")
    if configured:
        return configured, None
    embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="linkplane-test-pg-")))
    return embedded.start(), embedded


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, migrated database for this test run; dropped afterwards."""
    import asyncio

    admin, embedded = _admin_url()
    name = f"linkplane_test_{secrets.token_hex(4)}"

    async def admin_sql(sql: str) -> None:
        connection = await asyncpg.connect(changes.asyncpg_dsn(admin))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    url = (
        make_url(database.async_url(admin)).set(database=name).render_as_string(hide_password=False)
    )
    migrations.upgrade(url)
    try:
        yield url
    finally:
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if embedded is not None:
            embedded.stop()


@pytest.fixture(scope="session")
async def server(database_url: str) -> AsyncIterator[Runtime]:
    settings = Settings(listen="127.0.0.1:0", shutdown_grace_seconds=1.0, role=Role.API)
    runtime = Runtime(settings, database_url)
    await runtime.start()
    await runtime.feed.wait_connected(10)
    try:
        yield runtime
    finally:
        await runtime.stop()


@pytest.fixture(scope="session")
async def channel(server: Runtime) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as chan:
        yield chan


@pytest.fixture
def project() -> str:
    """A project id of this test's own, so tests never see each other's resources."""
    return f"t-{uuid.uuid4().hex[:12]}"


# Every test runs with linkplane's log configuration, so `no_reconciler_bugs` sees every event.
logs.configure("console", "info")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reconciler_bug_expected: the test provokes `reconciler.bug` on purpose"
    )


@pytest.fixture(autouse=True)
def no_reconciler_bugs(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test during which any reconciler logged `reconciler.bug` (an unexpected exception).

    The engine survives such exceptions (the resource gets an `InternalError` condition and is
    retried), so without this a bug only shows as a slow or stuck test, if at all.
    """
    if request.node.get_closest_marker("reconciler_bug_expected") is not None:
        yield
        return
    bugs: list[str] = []

    def listen(event: MutableMapping[str, Any]) -> None:
        if event.get("event") == "reconciler.bug":
            bugs.append(f"{event.get('kind')} {event.get('uid')}: {event.get('error')}")

    logs.listeners.append(listen)
    try:
        yield
    finally:
        logs.listeners.remove(listen)
    if bugs:
        pytest.fail("reconciler.bug logged during the test:\n" + "\n".join(bugs))
