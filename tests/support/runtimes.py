"""A linkplane server in the test process (`Runtime`), its settings, and a channel to it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc

from linkplane.server.config import Role, Settings
from linkplane.server.runtime import Runtime
from linkplane.sim import server as sim_server


def worker_settings(sim: sim_server.SimHandle, *, time_scale: float, **overrides: Any) -> Settings:
    """Settings of a full server (API and reconcilers) against `sim`, with short resync,
    lease and shutdown times so tests converge quickly; `overrides` win."""
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "role": Role.ALL,
        "aws_endpoint_url": sim.endpoint_url,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "aws_time_scale": time_scale,
        "transitional_resync_seconds": 0.2,
        "resync_interval_seconds": 2.0,
        "lease_seconds": 5.0,
        "shutdown_grace_seconds": 1.0,
        # Sweeps run when a test asks (tests/reconciler/test_garbage.py), not at a moment of
        # the suite's timing: the sweeper never touches untagged objects, but no test should
        # depend on when it runs.
        "garbage_collection": False,
    }
    values.update(overrides)
    return Settings(**values)


SHARED_DATABASE_URLS: set[str] = set()
"""The databases every test of this worker shares (the `database_url` fixture's): API-only."""


@contextlib.asynccontextmanager
async def running(
    settings: Settings, database_url: str, *, wait_for_feed: bool = False
) -> AsyncIterator[Runtime]:
    """A started `Runtime`, stopped afterwards; `wait_for_feed` also waits (10 s at most) until
    its change feed listens, for tests that watch from their first call.

    Refuses workers on a shared database: they would reconcile every other test's resources
    against this test's simulator (tests/support/plugin.py)."""
    if settings.role != Role.API and database_url in SHARED_DATABASE_URLS:
        raise AssertionError(
            "workers on the shared database_url reconcile every test's resources: "
            "use own_database_url or a database fixture of the package's own"
        )
    runtime = Runtime(settings, database_url)
    await runtime.start()
    try:
        if wait_for_feed:
            await runtime.feed.wait_connected(10)
        yield runtime
    finally:
        await runtime.stop()


@contextlib.asynccontextmanager
async def channel_to(runtime: Runtime) -> AsyncIterator[grpc.aio.Channel]:
    """An insecure channel to `runtime`'s port, closed afterwards."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.port}") as channel:
        yield channel
