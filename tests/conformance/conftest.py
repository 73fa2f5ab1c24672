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

from linkplane.server import logs
from linkplane.server.config import Role, Settings
from linkplane.server.runtime import Runtime
from linkplane.sim import server as sim_server
from tests.conformance.harness import TIME_SCALE, Api, Sim, Tenant

# Debug logging renders a line per AWS call, which costs the event loop more than the work.
logs.configure("console", "info")


@pytest.fixture(scope="package")
def sim_handle() -> Iterator[sim_server.SimHandle]:
    handle = sim_server.start(time_scale=TIME_SCALE, throttling=True)
    yield handle
    handle.stop()


@pytest.fixture(scope="package")
async def control_plane(
    sim_handle: sim_server.SimHandle, database_url: str
) -> AsyncIterator[Runtime]:
    settings = Settings(
        listen="127.0.0.1:0",
        role=Role.ALL,
        aws_endpoint_url=sim_handle.endpoint_url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        aws_time_scale=TIME_SCALE,
        transitional_resync_seconds=0.2,
        resync_interval_seconds=2.0,
        lease_seconds=5.0,
        shutdown_grace_seconds=1.0,
        page_token_secret="conformance-page-token-key",
        # Outside consumers and adopted NLBs share accounts with linkplane's objects here; the
        # sweeper never touches untagged objects, but no test should depend on its timing.
        garbage_collection=False,
    )
    runtime = Runtime(settings, database_url)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


@pytest.fixture(scope="package")
async def plane_channel(control_plane: Runtime) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{control_plane.port}") as channel:
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
