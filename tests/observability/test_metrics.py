"""The reconcile-queue, lease hand-off and Operation-latency metrics, with real values.

A Service is published through an API-only server (nothing reconciles it yet), so it waits in
the queue; a worker that "crashed" holding its lease leaves it to the worker started next,
which counts the hand-off and completes the Operation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import prometheus_client
import pytest

from linkplane.server.config import Role, Settings
from linkplane.server.runtime import Runtime
from linkplane.server.storage import leases, models, queues
from linkplane.sim import server as sim_server
from linkplane.v1 import provider_service_pb2
from tests.support import runtimes
from tests.support.api import Api, eventually, wait_done
from tests.support.simulator import CONSUMER, PROVIDER, TIME_SCALE
from tests.support.specs import managed_service

KINDS = [("service", models.Service), ("connection", models.Connection)]


def sample(name: str, **labels: str) -> float:
    value = prometheus_client.REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.fixture
async def api_only(own_database_url: str) -> AsyncIterator[Runtime]:
    runtime = Runtime(
        Settings(listen="127.0.0.1:0", role=Role.API, shutdown_grace_seconds=1.0),
        own_database_url,
    )
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def test_queue_handoff_and_operation_latency_metrics(
    api_only: Runtime,
    own_database_url: str,
    sim: sim_server.SimHandle,
    networks: dict[str, Any],
    project: str,
) -> None:
    sampler = queues.Sampler(api_only.db, KINDS)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{api_only.port}") as channel:
        api = Api(channel)
        await api.register(project, PROVIDER, CONSUMER)
        started = time.monotonic()
        published = await api.provider.PublishService(
            provider_service_pb2.PublishServiceRequest(
                parent=f"projects/{project}",
                service_id="queued",
                service=managed_service(project, networks),
            )
        )

        # No worker runs: the Service waits in the queue, and for longer as time passes.
        first = (await sampler.sample())["service"]
        assert first.depth == 1
        assert (await sampler.sample())["connection"].depth == 0
        await asyncio.sleep(0.2)
        later = (await sampler.sample())["service"]
        assert later.oldest_due_seconds >= first.oldest_due_seconds + 0.2
        assert sample("linkplane_reconcile_queue_depth", kind="service") == 1
        assert sample("linkplane_reconcile_queue_oldest_due_seconds", kind="service") > 0

        # A worker claims it and dies holding the lease: not waiting while leased, due again
        # (and counted again) once the lease has expired.
        held = await leases.claim(
            api_only.db, models.Service, kind="service", owner="crashed", seconds=1.0, limit=5
        )
        assert len(held) == 1
        assert (await sampler.sample())["service"].depth == 0

        async def depth() -> int:
            return (await sampler.sample())["service"].depth

        await eventually(depth, lambda d: d == 1, timeout=30)

        # The next worker takes it over: one hand-off, then the Operation completes.
        handoffs = sample("linkplane_lease_handoffs_total", kind="service")
        labels = {"verb": "publish", "outcome": "succeeded"}
        done_before = sample("linkplane_operation_duration_seconds_count", **labels)
        seconds_before = sample("linkplane_operation_duration_seconds_sum", **labels)
        worker = Runtime(
            runtimes.worker_settings(sim, time_scale=TIME_SCALE, role=Role.WORKER),
            own_database_url,
        )
        await worker.start()
        try:
            done = await wait_done(api, published.name, timeout=60)
            elapsed = time.monotonic() - started
            assert not done.HasField("error"), done.error
            assert sample("linkplane_lease_handoffs_total", kind="service") == handoffs + 1
            assert sample("linkplane_operation_duration_seconds_count", **labels) == done_before + 1
            took = sample("linkplane_operation_duration_seconds_sum", **labels) - seconds_before
            # It took at least the lease the crashed worker held, and no longer than we waited.
            assert 1.0 <= took <= elapsed + 1.0
            # Settled: nothing waits any more (a resync may be due for a moment now and then).
            await eventually(depth, lambda d: d == 0, timeout=30)
        finally:
            await worker.stop()
