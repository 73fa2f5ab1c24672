"""Shared AWS rate-limit buckets in Postgres: one token per call, waits queued across pools.

Each ``Database`` here is a separate connection pool, standing in for a separate replica. The
refill is made so slow (one token per 1,000 s) that however slowly this machine runs the
statements, the time they take cannot refill a token: the waits are checked against the
queue positions with a minute's slack, never against a duration.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from linkplane.server.aws import throttlers
from linkplane.server.domain import ratelimits
from linkplane.server.storage import buckets, database

SLOW = 0.001  # tokens per second: one per 1,000 s
SLACK = 60.0  # seconds of real time the test may take without changing a verdict


def bucket(
    family: str = "ec2:endpoint-mutation", *, capacity: float = 3.0
) -> ratelimits.BucketLimit:
    # An account of this test's own, so nothing else draws from these rows.
    return ratelimits.BucketLimit(
        account=uuid.uuid4().hex[:12],
        region="us-east-1",
        family=family,
        capacity=capacity,
        refill=SLOW,
    )


@pytest.fixture
async def pools(database_url):
    dbs = [database.Database(database_url, pool_size=4) for _ in range(3)]
    try:
        yield dbs
    finally:
        for db in dbs:
            await db.close()


async def test_callers_in_three_pools_queue_on_one_bucket(pools):
    limit = bucket(capacity=3.0)
    stores = [buckets.PostgresBuckets(db) for db in pools]
    waits = await asyncio.gather(*(stores[i % 3].reserve([limit]) for i in range(12)))
    ordered = sorted(waits)
    # The burst (3 tokens) goes at once; then each caller waits one refill period more than
    # the one before it, whichever pool it came through: no two were given the same token.
    assert ordered[:3] == [0.0, 0.0, 0.0]
    for position, wait in enumerate(ordered[3:], start=1):
        expected = position / SLOW
        assert expected - SLACK <= wait <= expected, (position, ordered)


async def test_a_call_drawing_from_two_buckets_waits_for_the_emptier(pools):
    store = buckets.PostgresBuckets(pools[0])
    narrow = bucket("elbv2:load-balancer-placement", capacity=1.0)
    wide = ratelimits.BucketLimit(narrow.account, narrow.region, "elbv2:account", 5.0, SLOW)
    assert await store.reserve([narrow, wide]) == 0.0
    second = await store.reserve([wide, narrow])  # order given does not matter
    assert 1 / SLOW - SLACK <= second <= 1 / SLOW
    # The wide bucket gave two of its five tokens: a call on it alone still goes at once.
    assert await store.reserve([wide]) == 0.0


async def test_drain_empties_the_bucket_and_pushes_it_back(pools):
    store = buckets.PostgresBuckets(pools[0])
    limit = bucket(capacity=10.0)
    assert await store.reserve([limit]) == 0.0
    await store.drain([limit], backoff_seconds=500.0)
    wait = await store.reserve([limit])
    # Empty (0 tokens) minus 500 s of refill, then one token more: 1,500 s.
    assert 1500.0 - SLACK <= wait <= 1500.0


async def test_shared_limiter_sleeps_what_the_store_says(pools):
    slept: list[float] = []

    class Clock(throttlers.SystemClock):
        async def sleep(self, seconds: float) -> None:
            slept.append(seconds)

    account = uuid.uuid4().hex[:12]
    limiters = [
        throttlers.SharedLimiter(buckets.PostgresBuckets(db), time_scale=1.0, clock=Clock())
        for db in pools
    ]
    # CreateVpcEndpoint: AWS's burst of 4 at 0.9 safety is 3 tokens (3.6, kept one whole token
    # short of AWS's), refill 0.3/s at 0.98.
    for index in range(6):
        await limiters[index % 3].acquire("ec2", "CreateVpcEndpoint", account, "us-east-1")
    period = 1 / (0.3 * 0.98)
    assert len(slept) == 3, slept  # 3 calls had a token; 3 had to wait, across all limiters
    for position, wait in enumerate(slept):
        expected = (position + 1) * period
        assert expected - 0.5 * period <= wait <= expected + 1e-6, slept


async def test_shared_limiter_falls_back_to_its_own_buckets_when_the_store_fails():
    class Broken:
        async def reserve(self, limits):
            raise ConnectionRefusedError("database down")

        async def drain(self, limits, backoff_seconds=0.0):
            raise ConnectionRefusedError("database down")

    limiter = throttlers.SharedLimiter(Broken(), time_scale=1000.0)
    waited = await limiter.acquire("ec2", "DescribeVpcs", "123456789012", "us-east-1")
    assert waited == 0.0
    assert limiter.fallbacks == 1
    assert limiter.stats().acquired == 1
