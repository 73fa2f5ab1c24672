"""Fixtures for reconciler tests: the simulator over HTTP, a real Postgres, a full server.

The simulator enforces AWS's throttling buckets and delays, time-scaled; linkplane's own
limiter is told the same scale, exactly as `linkplane-server dev` does. One simulator per
process (moto's state is global), so the fixture is package-scoped like tests/sim's.

The helpers live in `tests.support`; the names re-exported here (`Api`, `eventually`,
`managed_service`, ...) keep `from tests.reconciler.conftest import ...` working, but new tests
should import them from `tests.support` modules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest

from linkplane.server.config import Settings
from linkplane.server.runtime import Runtime
from linkplane.sim import server as sim_server
from tests.support import databases, runtimes, simulator
from tests.support.api import Api, eventually, publish, wait_done
from tests.support.simulator import CONSUMER, OTHER_CONSUMER, PROVIDER, REGION, TIME_SCALE
from tests.support.specs import connection_spec, managed_service

__all__ = [
    "CONSUMER",
    "OTHER_CONSUMER",
    "PROVIDER",
    "REGION",
    "TIME_SCALE",
    "Api",
    "connection_spec",
    "eventually",
    "managed_service",
    "publish",
    "wait_done",
    "worker_settings",
]


@pytest.fixture(scope="package")
def sim() -> Iterator[sim_server.SimHandle]:
    yield from simulator.running(TIME_SCALE)


@pytest.fixture(scope="package")
def networks(sim: sim_server.SimHandle) -> dict[str, dict[str, Any]]:
    return simulator.seed_networks(sim)


def worker_settings(sim: sim_server.SimHandle, **overrides: Any) -> Settings:
    """A full server's settings against `sim` at this package's time scale."""
    return runtimes.worker_settings(sim, time_scale=TIME_SCALE, **overrides)


@pytest.fixture(scope="module")
def plane_database_url(database_server: databases.DatabaseServer) -> Iterator[str]:
    """A database of this module's own for its server: the resources a module leaves settled
    are never resynced by the next module's server (sharing one, test_service_features took
    340 s after the 200-endpoint and 40-connection modules, 57 s alone)."""
    with database_server.fresh("linkplane_plane") as url:
        yield url


@pytest.fixture(scope="module")
async def control_plane(
    sim: sim_server.SimHandle, networks: dict[str, Any], plane_database_url: str
) -> AsyncIterator[Runtime]:
    """A full server for this module, on the module's database."""
    async with runtimes.running(worker_settings(sim), plane_database_url) as runtime:
        yield runtime


@pytest.fixture(scope="module")
async def plane_channel(control_plane: Runtime) -> AsyncIterator[grpc.aio.Channel]:
    async with runtimes.channel_to(control_plane) as channel:
        yield channel


@pytest.fixture
def api(plane_channel: grpc.aio.Channel) -> Api:
    return Api(plane_channel)
