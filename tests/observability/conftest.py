"""Fixtures for observability tests: a full server (API + workers + simulator) that traces.

The tracer provider exports synchronously to an in-memory exporter and is installed before the
Runtime is built (the gRPC interceptor and the SQLAlchemy listeners are attached at build
time), and removed afterwards, so other test packages run untraced. The database is this
package's own, so no other package's resources are reconciled (and traced) here.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import grpc
import pytest
from opentelemetry.sdk.trace.export import in_memory_span_exporter
from sqlalchemy.engine import make_url

from linkplane.server import telemetry
from linkplane.server.runtime import Runtime
from linkplane.server.storage import changes, database, migrations
from linkplane.sim import server as sim_server
from tests.reconciler.conftest import CONSUMER, PROVIDER, REGION, TIME_SCALE, Api, worker_settings


@pytest.fixture(scope="package")
def sim() -> Iterator[sim_server.SimHandle]:
    handle = sim_server.start(time_scale=TIME_SCALE, throttling=True)
    yield handle
    handle.stop()


@pytest.fixture(scope="package")
def networks(sim: sim_server.SimHandle) -> dict[str, dict[str, Any]]:
    return {
        account: sim_server.seed_network(sim, account_id=account, region=REGION, cidr=cidr)
        for account, cidr in ((PROVIDER, "10.1.0.0/16"), (CONSUMER, "10.2.0.0/16"))
    }


@pytest.fixture(scope="package")
def traced_database_url(database_url: str) -> Iterator[str]:
    """A fresh, migrated database for this package alone; dropped afterwards."""
    admin = make_url(database_url).set(database="postgres").render_as_string(hide_password=False)
    name = f"linkplane_obs_{secrets.token_hex(4)}"

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


@pytest.fixture(scope="package")
def spans() -> Iterator[in_memory_span_exporter.InMemorySpanExporter]:
    """Every span the package's server records (synchronously, as each span ends)."""
    exporter = in_memory_span_exporter.InMemorySpanExporter()
    telemetry.install(telemetry.make_provider([exporter], batch=False))
    try:
        yield exporter
    finally:
        telemetry.install(None)


@pytest.fixture(scope="package")
async def traced_plane(
    spans: in_memory_span_exporter.InMemorySpanExporter,
    sim: sim_server.SimHandle,
    networks: dict[str, Any],
    traced_database_url: str,
) -> AsyncIterator[Runtime]:
    runtime = Runtime(worker_settings(sim), traced_database_url)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


@pytest.fixture(scope="package")
async def traced_channel(traced_plane: Runtime) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{traced_plane.port}") as channel:
        yield channel


@pytest.fixture
def api(traced_channel: grpc.aio.Channel) -> Api:
    return Api(traced_channel)
