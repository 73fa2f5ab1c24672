"""Three worker processes on one consumer account stay inside AWS's buckets together.

AWS counts an account's calls per (Region, action family) whichever process makes them: the
simulator's CreateVpcEndpoint bucket (burst 4, then 0.3/s, time-scaled) is one for all three
workers. With the buckets shared through Postgres (the default) a backlog of connections is
created without RequestLimitExceeded (but for a stray one when a loaded machine delivers
requests in bunches, see THROTTLE_BOUND); with each process pacing itself alone
(``LINKPLANE_AWS_SHARED_RATE_LIMITS=false``) the three together spend three bursts and refill
three times too fast, and the simulator throttles them. The second test is the first with the
feature switched off: it shows the first one can fail (and stops as soon as it has).

The connection backlog runs at a lower time scale than the rest of the package (5 instead of
100): slow enough that three processes on a busy machine can easily outrun AWS's refill (at 20,
three processes whose Describe calls took seconds on a loaded machine were throttled only once
without sharing), so "not throttled" is the limiter's doing and not the machine's slowness; the
verdicts count throttles, never time. The service is published before the slow-down: at scale 5
its NLB and endpoint service alone would take 36 s, and no bucket is near empty then.

The suite runs 30 connections (about 40 s a test); issue 10's fleet figure is the same test at
100: `LINKPLANE_TEST_FLEET_CONNECTIONS=100 python3 run.py test tests/reconciler_multiprocess/
test_shared_limits.py -s` (docs/reliability.md has the figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from linkplane.sim import server as sim_server
from linkplane.v1 import connection_pb2, consumer_service_pb2, provider_service_pb2, service_pb2
from tests.reconciler_multiprocess.conftest import TIME_SCALE, Worker
from tests.support.api import eventually, wait_done
from tests.support.simulator import CONSUMER, PROVIDER, REGION
from tests.support.specs import connection_spec, managed_service

pytestmark = pytest.mark.heavy(seconds=70)

SCALE = 5.0
CONNECTIONS = int(os.environ.get("LINKPLANE_TEST_FLEET_CONNECTIONS", "30"))
PER_VPC = 20  # VPCs of 20 endpoints, under the 50-endpoints-per-VPC quota
WORKERS = 3
THROTTLE_BOUND = 3
"""A stray throttle or three: requests leave on schedule but can reach the simulator in bunches
when the machine is loaded (docs/reconciler.md, "Rate limiting"); never a storm."""


@pytest.fixture
def slower_sim(sim: sim_server.SimHandle) -> Iterator[sim_server.SimHandle]:
    """The package's simulator, slowed to SCALE by `create_backlog` once the service is
    published, and back at the package's scale afterwards."""
    try:
        yield sim
    finally:
        sim.set_time_scale(TIME_SCALE)


def start_workers(database_url: str, sim: sim_server.SimHandle, *, shared: bool) -> list[Worker]:
    logdir = Path(tempfile.mkdtemp(prefix="linkplane-shared-limits-"))
    workers = []
    for index in range(WORKERS):
        worker = Worker(f"w{index}", database_url, sim, logdir)
        worker.env.update(
            {
                "LINKPLANE_AWS_TIME_SCALE": str(SCALE),
                "LINKPLANE_AWS_SHARED_RATE_LIMITS": "true" if shared else "false",
                # A resync every 0.2 s of 60 connections in three processes would spend the
                # machine's two cores on Describe calls (the simulator answered them in 8 s).
                "LINKPLANE_TRANSITIONAL_RESYNC_SECONDS": "2.0",
                # Line by line, so the test can see a worker is up before giving it work.
                "PYTHONUNBUFFERED": "1",
            }
        )
        worker.start()
        workers.append(worker)
    return workers


async def wait_ready(workers: list[Worker]) -> None:
    """Until every worker runs its reconcilers (starting Python on a busy machine is slow, and
    a backlog given to the first one up would not be shared)."""

    async def ready() -> list[str]:
        assert all(w.alive() for w in workers), [w.log_path.read_text()[-2000:] for w in workers]
        return [w.name for w in workers if not w.events("linkplane.workers")]

    await eventually(ready, lambda waiting: not waiting, timeout=180.0)


def throttled(sim: sim_server.SimHandle) -> int:
    return sum(sum(by_action.values()) for by_action in sim.throttle_counts().values())


async def publish_slowly(
    api: Any, project: str, service_id: str, service: service_pb2.Service
) -> service_pb2.Service:
    """``publish`` with a wait fit for a machine whose cores are shared (the NLB, listener,
    endpoint service: a dozen AWS calls at the simulator's pace)."""
    published = await api.provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}", service_id=service_id, service=service
        )
    )
    done = await wait_done(api, published.name, timeout=300.0)
    assert not done.HasField("error"), done.error
    return await api.provider.GetService(
        provider_service_pb2.GetServiceRequest(name=f"projects/{project}/services/{service_id}")
    )


async def create_backlog(api: Any, sim: Any, project: str, networks: Any, octet: int) -> float:
    """Publish a service, create CONNECTIONS connections to it in fresh VPCs of the consumer
    account, wait until all are AVAILABLE; returns the seconds it took (for the report)."""
    await api.register(project, PROVIDER, CONSUMER)
    vpcs = [
        sim_server.seed_network(
            sim, account_id=CONSUMER, region=REGION, cidr=f"10.{octet + i}.0.0/16"
        )
        for i in range(-(-CONNECTIONS // PER_VPC))
    ]
    service = await publish_slowly(
        api,
        project,
        "fleet",
        managed_service(
            project, networks, accept_rules=[service_pb2.AcceptRule(principal=CONSUMER)]
        ),
    )
    sim.set_time_scale(SCALE)
    started = time.monotonic()
    # A few at a time: 100 concurrent requests would wait on the API's database pool (10) and,
    # on a busy machine, some would time out; the workers see the backlog grow all the same.
    gate = asyncio.Semaphore(8)

    async def create(index: int) -> None:
        async with gate:
            await api.consumer.CreateConnection(
                consumer_service_pb2.CreateConnectionRequest(
                    parent=f"projects/{project}",
                    connection_id=f"c{index:03d}",
                    connection=connection_spec(project, vpcs[index // PER_VPC], service.name),
                )
            )

    await asyncio.gather(*(create(index) for index in range(CONNECTIONS)))

    async def states() -> list[int]:
        found: list[int] = []
        token = ""
        while True:
            page = await api.consumer.ListConnections(
                consumer_service_pb2.ListConnectionsRequest(
                    parent=f"projects/{project}", page_size=100, page_token=token
                )
            )
            found.extend(c.state for c in page.connections)
            token = page.next_page_token
            if not token:
                return found

    await eventually(
        states,
        lambda s: (
            len(s) == CONNECTIONS and all(x == connection_pb2.Connection.STATE_AVAILABLE for x in s)
        ),
        # (CONNECTIONS - 4) / 0.3 / 5 s of AWS bound (30: 17 s, 100: 64 s); generous for 2
        # busy cores.
        timeout=800.0,
    )
    return time.monotonic() - started


@pytest.mark.timeout(900)
async def test_three_workers_share_aws_buckets_and_are_never_throttled(
    api, networks, project, slower_sim, own_database_url
):
    before = throttled(slower_sim)
    workers = start_workers(own_database_url, slower_sim, shared=True)
    try:
        await wait_ready(workers)
        elapsed = await create_backlog(api, slower_sim, project, networks, octet=40)
    finally:
        for worker in workers:
            worker.stop()
    count = throttled(slower_sim) - before
    print(
        f"shared buckets, {WORKERS} workers: {CONNECTIONS} connections AVAILABLE in "
        f"{elapsed:.1f} s at scale {SCALE:g}; throttled {count} times"
    )
    assert count <= THROTTLE_BOUND, slower_sim.throttle_counts()
    # Every worker took part: the account really was worked from three processes at once.
    passes = {
        w.name: sum(p["kind"] == "connection" for p in w.events("reconciler.pass")) for w in workers
    }
    print(f"connection passes per worker: {passes}")
    assert all(passes.values()), passes


@pytest.mark.timeout(900)
async def test_without_sharing_three_workers_are_throttled(
    api, networks, project, slower_sim, own_database_url
):
    before = throttled(slower_sim)
    workers = start_workers(own_database_url, slower_sim, shared=False)
    try:
        await wait_ready(workers)
        backlog = asyncio.create_task(create_backlog(api, slower_sim, project, networks, octet=50))

        async def seen() -> int:
            return throttled(slower_sim) - before

        # The verdict is in once the throttles pass the bound (the three bursts alone do
        # that): waiting for the whole backlog as well would only add time. Should the backlog
        # finish first, the assertion below fails with the count it saw.
        try:
            count = await eventually(
                seen, lambda n: n > THROTTLE_BOUND or backlog.done(), timeout=800.0
            )
        finally:
            backlog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await backlog
    finally:
        for worker in workers:
            worker.stop()
    print(
        f"per-process buckets, {WORKERS} workers: throttled {count} times: "
        f"{slower_sim.throttle_counts()}"
    )
    assert count > THROTTLE_BOUND
