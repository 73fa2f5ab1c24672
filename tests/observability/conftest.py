"""Fixtures for observability tests: a full server (API + workers + simulator) that traces.

The tracer provider exports synchronously to an in-memory exporter and is installed before the
Runtime is built (the gRPC interceptor and the SQLAlchemy listeners are attached at build
time), and removed afterwards, so other test packages run untraced. The server works on a
database of its own: the `database_url` every test gets is shared by all the tests of a pytest
worker (tests/support/plugin.py), so on it this server reconciled other packages' Services
against this package's simulator (whose subnets they do not name: CreateLoadBalancer refused
InvalidSubnetID.NotFound, 6-72 times a run), and traced them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace.export import in_memory_span_exporter

from linkplane.server import telemetry
from linkplane.server.runtime import Runtime
from linkplane.sim import server as sim_server
from tests.support import databases, runtimes, simulator
from tests.support.api import Api
from tests.support.simulator import CONSUMER, PROVIDER, TIME_SCALE


@pytest.fixture(scope="package")
def sim() -> Iterator[sim_server.SimHandle]:
    yield from simulator.running(TIME_SCALE)


@pytest.fixture(scope="package")
def networks(sim: sim_server.SimHandle) -> dict[str, dict[str, Any]]:
    return simulator.seed_networks(sim, (PROVIDER, CONSUMER))


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
def traced_database_url(database_server: databases.DatabaseServer) -> Iterator[str]:
    with database_server.fresh("linkplane_traced") as url:
        yield url


@pytest.fixture(scope="package")
async def traced_plane(
    spans: in_memory_span_exporter.InMemorySpanExporter,
    sim: sim_server.SimHandle,
    networks: dict[str, Any],
    traced_database_url: str,
) -> AsyncIterator[Runtime]:
    # Not `runtimes.running` before `spans`: the tracer provider must be installed before the
    # Runtime is built. The fixture order above (spans first) ensures it.
    async with runtimes.running(
        runtimes.worker_settings(sim, time_scale=TIME_SCALE), traced_database_url
    ) as runtime:
        yield runtime


@pytest.fixture(scope="package")
async def traced_channel(traced_plane: Runtime) -> AsyncIterator[grpc.aio.Channel]:
    async with runtimes.channel_to(traced_plane) as channel:
        yield channel


@pytest.fixture
def api(traced_channel: grpc.aio.Channel) -> Api:
    return Api(traced_channel)
