"""Reconciling through AWS faults (issue 10): a transient 5xx is retried in place, so 20 %
injected 5xx slows a rollout down a little instead of failing passes and doubling their
backoff; a FAILED resource keeps the permanent error that failed it when a later look meets
a transient one."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, update

from linkplane.server.runtime import Runtime
from linkplane.server.storage import models
from linkplane.sim import server as sim_server
from linkplane.v1 import connection_pb2, consumer_service_pb2, service_pb2
from tests.reconciler.conftest import (
    CONSUMER,
    PROVIDER,
    REGION,
    connection_spec,
    eventually,
    managed_service,
    publish,
    wait_done,
)
from tests.reconciler.test_connection_kinds import create, get, own_network
from tests.reconciler.test_connection_regions import WEST, failed_with, from_west, west_network

pytestmark = pytest.mark.heavy(seconds=60)

Conn = connection_pb2.Connection
AUTOMATIC = service_pb2.AcceptancePolicy.MODE_AUTOMATIC
CONNECTIONS = 20
FAULTS = {"*": {"internal_error_rate": 0.1, "unavailable_rate": 0.1}}  # 20 % 5xx in all
# Generous, so a busy two-core machine cannot make it flaky; without in-place retries a
# faulty round doubles its backoff per failed pass and misses it by far.
RATIO_BOUND, SLACK_SECONDS = 3.0, 20.0


async def listed(api: Any, project: str) -> list[Conn]:
    """The project's connections (one page: the test makes fewer than a thousand)."""
    response = await api.consumer.ListConnections(
        consumer_service_pb2.ListConnectionsRequest(parent=f"projects/{project}", page_size=1000)
    )
    assert not response.next_page_token
    return list(response.connections)


def faults_seen(sim: sim_server.SimHandle) -> int:
    return sum(1 for r in sim.requests() if r["outcome"] == "fault")


async def roll_out(
    api: Any, project: str, sim: sim_server.SimHandle, service: str, label: str, timeout: float
) -> float:
    """Create CONNECTIONS connections to `service` from a fresh VPC; seconds until every one
    is AVAILABLE (fails after `timeout`)."""
    network = own_network(sim)
    names = [f"projects/{project}/connections/{label}-{i}" for i in range(CONNECTIONS)]
    started = time.monotonic()
    operations = await asyncio.gather(
        *(
            create(api, project, f"{label}-{i}", connection_spec(project, network, service))
            for i in range(CONNECTIONS)
        )
    )
    pending = set(names)
    while pending and time.monotonic() - started < timeout:
        # One List per look, not a Get per connection: twenty pollers at 5 Hz were a load of
        # their own on the test server's four database connections.
        pending -= {c.name for c in await listed(api, project) if c.state == Conn.STATE_AVAILABLE}
        await asyncio.sleep(0.2)
    elapsed = time.monotonic() - started
    assert not pending, (
        f"{label}: {len(pending)} of {CONNECTIONS} connections not AVAILABLE after {elapsed:.0f} s"
    )
    for op in operations:
        done = await wait_done(api, op.name, 30.0)
        assert not done.HasField("error"), done.error
    return elapsed


async def test_twenty_percent_5xx_converges_within_a_bound_of_fault_free(
    api, networks, project, sim
):
    await api.register(project, PROVIDER, CONSUMER)
    service = await publish(
        api, project, "sturdy", managed_service(project, networks, mode=AUTOMATIC)
    )
    clean = await roll_out(api, project, sim, service.name, "clean", timeout=300.0)
    bound = RATIO_BOUND * clean + SLACK_SECONDS
    before = faults_seen(sim)
    sim.set_faults(FAULTS, seed=uuid.uuid4().int % 1000)
    try:
        faulty = await roll_out(api, project, sim, service.name, "faulty", timeout=bound)
    finally:
        sim.set_faults({})
    injected = faults_seen(sim) - before
    # The figure the issue asks for (pytest -s shows it).
    print(
        f"\nfault-free {clean:.1f} s, 20 % 5xx {faulty:.1f} s, ratio {faulty / clean:.2f}, "
        f"{injected} faults injected"
    )
    # The faults did hit. A round of 20 connections makes about a hundred calls since a created
    # endpoint costs no filtered Describe (issue 13), so about 20 are expected; 19 was seen in
    # CI. At least 5 proves they hit without making the verdict depend on the call count.
    assert injected >= 5, injected
    assert faulty <= bound
    # Forty deletes at once, then one List per look until all are gone (forty GetOperation
    # pollers at 10 Hz once exhausted the test server's pool on a busy machine: UNAVAILABLE).
    await asyncio.gather(
        *(
            api.consumer.DeleteConnection(
                consumer_service_pb2.DeleteConnectionRequest(
                    name=f"projects/{project}/connections/{label}-{i}",
                    request_id=str(uuid.uuid4()),
                )
            )
            for label in ("clean", "faulty")
            for i in range(CONNECTIONS)
        )
    )
    await eventually(lambda: listed(api, project), lambda connections: not connections, 120.0)


async def test_a_failed_connection_keeps_its_permanent_error_after_a_transient_one(
    api, networks, project, sim, control_plane: Runtime
):
    await api.register(project, PROVIDER, CONSUMER)
    service = await publish(
        api, project, "kept", managed_service(project, networks, mode=AUTOMATIC)
    )
    name = f"projects/{project}/connections/kept"
    failed = await failed_with(
        api,
        project,
        "kept",
        from_west(project, west_network(sim), service=service.name, service_region=REGION),
    )
    assert failed.last_aws_error.code == "UnsupportedRegion"

    async def attempts() -> int:
        async with control_plane.db.transaction() as session:
            value = await session.scalar(
                select(models.Connection.attempts).where(models.Connection.name == name)
            )
        assert value is not None
        return int(value)

    first = await attempts()
    # Every DescribeVpcEndpoints fails (more often than the in-place retries can absorb): the
    # next look at the connection ends in a transient InternalError.
    sim.set_faults({"DescribeVpcEndpoints": {"internal_error_rate": 1.0}})
    try:
        async with control_plane.db.transaction() as session:
            poked = await session.execute(
                update(models.Connection)
                .where(models.Connection.name == name)
                .values(next_reconcile_at=func.now())
            )
            assert poked.rowcount == 1  # type: ignore[attr-defined]
        deadline = time.monotonic() + 90.0
        while await attempts() == first:
            assert time.monotonic() < deadline, "the poked pass never ended"
            await asyncio.sleep(0.1)
        transient = [
            r
            for r in sim.requests()
            if r["action"] == "DescribeVpcEndpoints"
            and r["account"] == CONSUMER
            and r["region"] == WEST
            and r["outcome"] == "fault"
        ]
        assert transient, "the pass met the injected fault"
    finally:
        sim.set_faults({})
    kept = await get(api, name)
    assert kept.state == Conn.STATE_FAILED
    assert kept.last_aws_error.code == "UnsupportedRegion", kept.last_aws_error
    assert not kept.last_aws_error.retryable
