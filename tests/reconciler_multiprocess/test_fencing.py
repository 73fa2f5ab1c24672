"""A worker paused past its lease sends AWS no mutation when it resumes.

Scenario (issue 10): worker A is in the middle of a pass, about to create a connection's VPC
endpoint, when it is frozen (SIGSTOP: a VM pause, a long GC, a stuck host). Its lease expires,
worker B claims the connection and creates the endpoint itself. Then A is thawed (SIGCONT). Its
database writes were already fenced; the fence before each mutating AWS call must stop it
from sending the CreateVpcEndpoint it was about to send: the simulator's request log shows no
mutation in the consumer account after the thaw, and A logs that it lost the lease.

To freeze A at a known line without racing it, the test makes A wait in the shared rate
limiter: the consumer account's CreateVpcEndpoint bucket (a row in ``aws_rate_buckets``) is put
20 s into deficit, so A's pass reserves its token and sleeps; the test sees the reservation in
the row (its stamp moves) and freezes A during that sleep. Every later step waits for a state
(lease expired, fencing token advanced, connection AVAILABLE, A's log line), never for a time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from linkplane.server.aws import throttlers
from linkplane.server.storage import changes
from linkplane.sim import server as sim_server
from linkplane.v1 import connection_pb2, consumer_service_pb2, service_pb2
from tests.reconciler_multiprocess.conftest import TIME_SCALE, Worker
from tests.reconciler_multiprocess.test_shared_limits import publish_slowly, wait_ready
from tests.support.api import eventually
from tests.support.simulator import CONSUMER, PROVIDER, REGION
from tests.support.specs import connection_spec, managed_service

pytestmark = pytest.mark.heavy(seconds=35)

FAMILY = throttlers.EC2_ENDPOINT_MUTATION
DEFICIT_SECONDS = 20.0
"""How long A's reservation waits: far longer than it takes the test to see the reservation
and freeze A, so A is frozen inside that wait, before its CreateVpcEndpoint."""


def worker(name: str, database_url: str, sim: sim_server.SimHandle, logdir: Path) -> Worker:
    made = Worker(name, database_url, sim, logdir)
    made.env["PYTHONUNBUFFERED"] = "1"  # the test reads its log while it runs
    made.start()
    return made


@pytest.fixture
async def pg(own_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(changes.asyncpg_dsn(own_database_url))
    try:
        yield connection
    finally:
        await connection.close()


async def bucket_stamp(pg: asyncpg.Connection) -> datetime | None:
    stamp: datetime | None = await pg.fetchval(
        "SELECT stamp FROM aws_rate_buckets WHERE account_id = $1 AND region = $2 AND family = $3",
        CONSUMER,
        REGION,
        FAMILY,
    )
    return stamp


async def set_bucket(pg: asyncpg.Connection, deficit_seconds: float) -> None:
    """The consumer's CreateVpcEndpoint bucket: full (0) or ``deficit_seconds`` into deficit."""
    rate = throttlers.Limiter(time_scale=TIME_SCALE).rate(FAMILY)
    tokens = rate.burst if deficit_seconds == 0 else -deficit_seconds * rate.refill
    await pg.execute(
        "INSERT INTO aws_rate_buckets "
        "(account_id, region, family, capacity, refill, tokens, stamp) "
        "VALUES ($1, $2, $3, $4, $5, $6, now()) ON CONFLICT (account_id, region, family) "
        "DO UPDATE SET tokens = EXCLUDED.tokens, stamp = EXCLUDED.stamp",
        CONSUMER,
        REGION,
        FAMILY,
        rate.burst,
        rate.refill,
        tokens,
    )


def mutations_since(sim: sim_server.SimHandle, since: float) -> list[dict[str, Any]]:
    return [
        r
        for r in sim.requests()
        if r["account"] == CONSUMER
        and float(str(r["time"])) >= since
        and throttlers.mutating(str(r["action"]))
    ]


@pytest.mark.timeout(900)
async def test_a_worker_thawed_after_losing_its_lease_sends_no_mutation(
    api, networks, project, sim, own_database_url, pg
):
    logdir = Path(tempfile.mkdtemp(prefix="linkplane-fencing-"))
    await api.register(project, PROVIDER, CONSUMER)
    first = worker("stale", own_database_url, sim, logdir)
    second: Worker | None = None
    try:
        await wait_ready([first])
        service = await publish_slowly(
            api,
            project,
            "fenced",
            managed_service(
                project, networks, accept_rules=[service_pb2.AcceptRule(principal=CONSUMER)]
            ),
        )
        await set_bucket(pg, DEFICIT_SECONDS)
        stamp = await bucket_stamp(pg)
        name = f"projects/{project}/connections/paused"
        await api.consumer.CreateConnection(
            consumer_service_pb2.CreateConnectionRequest(
                parent=f"projects/{project}",
                connection_id="paused",
                connection=connection_spec(project, networks[CONSUMER], service.name),
            )
        )
        conn = await api.consumer.GetConnection(
            consumer_service_pb2.GetConnectionRequest(name=name)
        )
        created_at = time.time()

        # A reserved its CreateVpcEndpoint token and sleeps DEFICIT_SECONDS: freeze it there.
        await eventually(lambda: bucket_stamp(pg), lambda now: now != stamp, timeout=120.0)
        assert first.process is not None
        os.kill(first.process.pid, signal.SIGSTOP)
        assert not mutations_since(sim, created_at), (
            "the stale worker sent its create before it could be frozen (it waited "
            f"{DEFICIT_SECONDS} s in the limiter first); nothing left to test"
        )
        token = await pg.fetchval("SELECT fencing_token FROM connections WHERE name = $1", name)

        # Its lease runs out (no heartbeat while frozen); B claims the connection and does the
        # work, with the bucket full again so that B does not wait behind A's reservation.
        await eventually(
            lambda: pg.fetchval(
                "SELECT lease_expires_at < now() FROM connections WHERE name = $1", name
            ),
            bool,
            timeout=60.0,
        )
        await set_bucket(pg, 0)
        second = worker("successor", own_database_url, sim, logdir)
        await wait_ready([second])
        await eventually(
            lambda: pg.fetchval("SELECT fencing_token FROM connections WHERE name = $1", name),
            lambda now: now > token,
            timeout=180.0,
        )

        async def state() -> Any:
            got = await api.consumer.GetConnection(
                consumer_service_pb2.GetConnectionRequest(name=name)
            )
            return got.state

        await eventually(
            state, lambda s: s == connection_pb2.Connection.STATE_AVAILABLE, timeout=180.0
        )
        taken_over = mutations_since(sim, created_at)
        assert [r["action"] for r in taken_over if r["action"] == "CreateVpcEndpoint"] == [
            "CreateVpcEndpoint"
        ], taken_over

        # Thaw A. It finishes its limiter wait, checks its lease before the create, finds it
        # gone and stops; nothing it does reaches AWS as a mutation.
        thawed = time.time()
        os.kill(first.process.pid, signal.SIGCONT)

        def lost() -> list[dict[str, Any]]:
            return [e for e in first.events("reconciler.lease_lost") if e["uid"] == conn.uid]

        async def probe() -> list[dict[str, Any]]:
            return lost()

        await eventually(probe, bool, timeout=DEFICIT_SECONDS + 120.0)
        await asyncio.sleep(0.5)  # anything A sent right after its log line would show now
        assert mutations_since(sim, thawed) == []
        stale_passes = [
            p
            for p in first.events("reconciler.pass")
            if p["uid"] == conn.uid and p["token"] == token
        ]
        assert [p["outcome"] for p in stale_passes] == ["lease_lost"], stale_passes
        endpoints = [
            e
            for e in sim.objects(account=CONSUMER)["endpoints"]
            if e["tags"].get("linkplane:uid") == conn.uid
        ]
        assert len(endpoints) == 1, endpoints
    finally:
        if first.process is not None and first.alive():
            os.kill(first.process.pid, signal.SIGCONT)
        first.stop()
        if second is not None:
            second.stop()
