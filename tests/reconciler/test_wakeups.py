"""A Service that accepts at once wakes every Connection: none waits for a resync.

Issue 8: the Connection poked its Service before storing its endpoint id, so a Service that
accepted within a fraction of a second poked `Connection.endpoint_id IN (…)`, matched nothing,
and the Connection waited a full resync (300 s at real speed). Here the resync interval is an
hour and 40 connections are auto-accepted: all of them must be AVAILABLE within a bound far
below it, which only wake-ups (pokes) can achieve.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from linkplane.server.runtime import Runtime
from linkplane.sim import server as sim_server
from linkplane.v1 import connection_pb2, consumer_service_pb2, service_pb2
from tests.reconciler.conftest import (
    CONSUMER,
    PROVIDER,
    REGION,
    Api,
    managed_service,
    publish,
    worker_settings,
)
from tests.reconciler.databases import own_database_url  # noqa: F401 - a fixture

CONNECTIONS = 40  # enough to make the race certain (see the faults below)
PER_VPC = 20  # under the 50-endpoint quota of each VPC
RESYNC_SECONDS = 3600.0
BOUND_SECONDS = 120.0  # generous for a busy machine, and 30x below the resync


@pytest.fixture
async def slow_resync_api(
    sim: sim_server.SimHandle,
    networks: dict[str, object],
    own_database_url: str,  # noqa: F811
) -> AsyncIterator[Api]:
    runtime = Runtime(
        worker_settings(sim, resync_interval_seconds=RESYNC_SECONDS), own_database_url
    )
    await runtime.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.port}") as channel:
            yield Api(channel)
    finally:
        await runtime.stop()


async def test_auto_accepted_connections_never_wait_for_a_resync(
    slow_resync_api, networks, project, sim
):
    api = slow_resync_api
    await api.register(project, PROVIDER, CONSUMER)
    service = await publish(
        api,
        project,
        "fast",
        managed_service(project, networks, mode=service_pb2.AcceptancePolicy.MODE_AUTOMATIC),
    )
    vpcs = [
        sim_server.seed_network(
            sim, account_id=CONSUMER, region=REGION, cidr=f"10.{100 + i}.0.0/16"
        )
        for i in range(-(-CONNECTIONS // PER_VPC))
    ]

    async def create(index: int) -> None:
        vpc = vpcs[index // PER_VPC]
        await api.consumer.CreateConnection(
            consumer_service_pb2.CreateConnectionRequest(
                parent=f"projects/{project}",
                connection_id=f"c{index:03d}",
                connection=connection_pb2.Connection(
                    service=service.name,
                    consumer_account=f"projects/{project}/accounts/{CONSUMER}",
                    region=REGION,
                    vpc_id=vpc["vpc_id"],
                    subnet_ids=vpc["subnet_ids"],
                ),
                request_id=str(uuid.uuid4()),
            )
        )

    async def available() -> int:
        listed = await api.consumer.ListConnections(
            consumer_service_pb2.ListConnectionsRequest(
                parent=f"projects/{project}", filter="state = AVAILABLE", page_size=1000
            )
        )
        return len(listed.connections)

    # Make the race of issue 8 certain: anything a connection's pass does after creating its
    # endpoint takes 1.5 s more (reading its ENIs), while the Service accepts in a moment.
    # A Connection that stored its endpoint id only after that would miss the Service's poke.
    sim.set_faults({"DescribeNetworkInterfaces": {"latency_ms": 1500}})
    try:
        started = time.monotonic()
        await asyncio.gather(*(create(index) for index in range(CONNECTIONS)))
        created = time.monotonic()
        count = 0
        # Creating them takes a while on a busy machine (every pass shares this process); the
        # bound counts from the last create.
        while time.monotonic() - created < BOUND_SECONDS:
            count = await available()
            if count == CONNECTIONS:
                break
            await asyncio.sleep(0.5)
    finally:
        sim.set_faults({})

    assert count == CONNECTIONS, (
        f"{CONNECTIONS - count} connections still not AVAILABLE {BOUND_SECONDS} s after the "
        f"last create ({created - started:.0f} s to create them): a wake-up was lost (they "
        "would wait for the 1 h resync)"
    )
