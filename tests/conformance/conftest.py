"""Fixtures of the mission conformance suite: one simulator and one full control plane (API and
reconcilers) for the package, and per test a `Tenant` (own project, own AWS accounts).

The simulator runs with AWS's throttling and delays, time-scaled; linkplane's limiter is told
the same scale, as `linkplane-server dev` does. moto's state is process-global, so the simulator
is package-scoped and never reset: tests isolate by project and by never-reused account ids.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from linkplane.server.runtime import Runtime
from linkplane.sim import server as sim_server
from tests.conformance.harness import TIME_SCALE, Api, Sim, Tenant
from tests.support import databases, runtimes, simulator


@pytest.fixture(scope="package")
def sim_handle() -> Iterator[sim_server.SimHandle]:
    yield from simulator.running(TIME_SCALE)


@pytest.fixture(scope="module")
def plane_database_url(database_server: databases.DatabaseServer) -> Iterator[str]:
    """A database of this module's own for its server (as in tests/reconciler: no module's
    settled resources slow the next one's)."""
    with database_server.fresh("linkplane_plane") as url:
        yield url


@pytest.fixture(scope="module")
async def control_plane(
    sim_handle: sim_server.SimHandle, plane_database_url: str
) -> AsyncIterator[Runtime]:
    # Outside consumers and adopted NLBs share accounts with linkplane's objects here, one more
    # reason for the support settings' garbage_collection=False.
    settings = runtimes.worker_settings(
        sim_handle, time_scale=TIME_SCALE, page_token_secret="conformance-page-token-key"
    )
    async with runtimes.running(settings, plane_database_url) as runtime:
        yield runtime


@pytest.fixture(scope="module")
async def plane_channel(control_plane: Runtime) -> AsyncIterator[grpc.aio.Channel]:
    async with runtimes.channel_to(control_plane) as channel:
        yield channel


@pytest.fixture
async def tenant(
    plane_channel: grpc.aio.Channel, sim_handle: sim_server.SimHandle
) -> AsyncIterator[Tenant]:
    """This test's project, API and simulator view; its accounts are created on demand."""
    async with contextlib.AsyncExitStack() as stack:
        project = f"c-{uuid.uuid4().hex[:12]}"
        tenant = Tenant(Api(plane_channel, project), Sim(sim_handle.endpoint_url, stack))
        yield tenant
        await tenant.clean_up()
