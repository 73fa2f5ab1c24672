"""Client-side token buckets, on virtual time: linkplane waits instead of being throttled."""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING

import pytest

from linkplane.server.aws import throttlers
from linkplane.server.aws.throttlers import Limiter

if TYPE_CHECKING:
    from tests.aws.conftest import FakeClock

ACCOUNT = "111111111111"
REGION = "us-east-1"


def exact(clock: FakeClock, time_scale: float = 1.0) -> Limiter:
    """A limiter with AWS's numbers unscaled, so expectations read straight off the tables."""
    return Limiter(safety=1.0, clock=clock, time_scale=time_scale)


@pytest.mark.parametrize(
    ("service", "action", "families"),
    [
        ("ec2", "DescribeVpcEndpoints", (throttlers.EC2_NON_MUTATING,)),
        ("ec2", "CreateVpcEndpoint", (throttlers.EC2_ENDPOINT_MUTATION,)),
        ("ec2", "DeleteVpcEndpoints", (throttlers.EC2_ENDPOINT_MUTATION,)),
        ("ec2", "ModifyVpcEndpoint", (throttlers.EC2_ENDPOINT_MUTATION,)),
        ("ec2", "AcceptVpcEndpointConnections", (throttlers.EC2_CONNECTION_DECISION,)),
        ("ec2", "RejectVpcEndpointConnections", (throttlers.EC2_CONNECTION_DECISION,)),
        ("ec2", "CreateVpcEndpointServiceConfiguration", (throttlers.EC2_SERVICE_CONFIGURATION,)),
        ("ec2", "DeleteVpcEndpointServiceConfigurations", (throttlers.EC2_SERVICE_CONFIGURATION,)),
        ("ec2", "ModifyVpcEndpointServicePermissions", (throttlers.EC2_MUTATING,)),
        ("elbv2", "DescribeLoadBalancers", (throttlers.ELBV2_ACCOUNT,)),
        ("elbv2", "CreateLoadBalancer", (throttlers.ELBV2_PLACEMENT, throttlers.ELBV2_ACCOUNT)),
        ("elbv2", "SetSubnets", (throttlers.ELBV2_PLACEMENT, throttlers.ELBV2_ACCOUNT)),
        ("elbv2", "RegisterTargets", (throttlers.ELBV2_TARGETS, throttlers.ELBV2_ACCOUNT)),
        ("elbv2", "CreateListener", (throttlers.ELBV2_MUTATING, throttlers.ELBV2_ACCOUNT)),
        ("sts", "AssumeRole", ()),
    ],
)
def test_actions_map_to_the_documented_families(
    service: str, action: str, families: tuple[str, ...]
) -> None:
    assert throttlers.families(service, action) == families


async def test_burst_then_steady_refill_rate(clock: FakeClock) -> None:
    limiter = exact(clock)
    start = clock.now
    done: list[float] = []

    async def create() -> None:
        await limiter.acquire("ec2", "CreateVpcEndpoint", ACCOUNT, REGION)
        done.append(clock.now - start)

    await clock.drive(*(create() for _ in range(10)))
    # The burst of 4 goes at once; the remaining 6 at 0.3 per second: one every 3.33 s.
    assert done[:4] == [0.0] * 4
    gaps = [b - a for a, b in itertools.pairwise(done[4:])]
    assert done[4] == pytest.approx(1 / 0.3)
    assert all(g == pytest.approx(1 / 0.3) for g in gaps)
    assert done[-1] == pytest.approx(6 / 0.3)
    stats = limiter.stats()
    assert (stats.acquired, stats.waits) == (10, 6)
    assert stats.max_wait_seconds == pytest.approx(6 / 0.3)
    assert stats.wait_seconds == pytest.approx(sum(done[4:]))


async def test_a_burst_of_200_waiters_drains_at_the_refill_rate_in_fifo_order(
    clock: FakeClock,
) -> None:
    limiter = exact(clock)
    order: list[int] = []

    async def waiter(i: int) -> None:
        await limiter.acquire("ec2", "AcceptVpcEndpointConnections", ACCOUNT, REGION)
        order.append(i)

    start = clock.now
    await clock.drive(*(waiter(i) for i in range(200)))
    assert order == list(range(200))
    # 10 at once, then 1 per second: the 200th leaves after 190 s, not earlier, not later.
    assert clock.now - start == pytest.approx(190.0)


async def test_only_the_head_waiter_sleeps(clock: FakeClock) -> None:
    limiter = exact(clock)
    tasks = [
        asyncio.create_task(limiter.acquire("ec2", "CreateVpcEndpoint", ACCOUNT, REGION))
        for _ in range(50)
    ]
    await clock.settle()
    # 4 went through; of the 46 queued, exactly one is parked on the clock (no herd).
    assert sum(t.done() for t in tasks) == 4
    assert len(clock._sleepers) == 1
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_accounts_and_regions_are_independent(clock: FakeClock) -> None:
    limiter = exact(clock)
    finished: dict[tuple[str, str], float] = {}
    start = clock.now

    async def five(account: str, region: str) -> None:
        for _ in range(5):
            await limiter.acquire("ec2", "CreateVpcEndpoint", account, region)
        finished[(account, region)] = clock.now - start

    await clock.drive(
        five("111111111111", "us-east-1"),
        five("222222222222", "us-east-1"),
        five("111111111111", "eu-west-1"),
    )
    # Each (account, region) spends its own burst of 4 and waits for one refill: in parallel.
    assert len(finished) == 3
    assert all(t == pytest.approx(1 / 0.3) for t in finished.values())


async def test_families_are_independent(clock: FakeClock) -> None:
    limiter = exact(clock)
    for _ in range(4):
        await limiter.acquire("ec2", "CreateVpcEndpoint", ACCOUNT, REGION)
    # The endpoint-mutation bucket is empty, yet Describe calls go straight through.
    await asyncio.wait_for(
        asyncio.gather(
            *(limiter.acquire("ec2", "DescribeVpcEndpoints", ACCOUNT, REGION) for _ in range(50))
        ),
        timeout=1,
    )
    assert limiter.stats().waits == 0


async def test_elbv2_calls_also_draw_from_the_account_bucket(clock: FakeClock) -> None:
    limiter = exact(clock)
    # 20 RegisterTargets (their family's burst) use 20 of the account-level 40.
    await clock.drive(
        *(limiter.acquire("elbv2", "RegisterTargets", ACCOUNT, REGION) for _ in range(20))
    )
    assert limiter.available(throttlers.ELBV2_ACCOUNT, ACCOUNT, REGION) == pytest.approx(20)
    start = clock.now
    # 30 Describe calls: 20 from what is left, then 10 more at 10 per second.
    await clock.drive(
        *(limiter.acquire("elbv2", "DescribeLoadBalancers", ACCOUNT, REGION) for _ in range(30))
    )
    assert clock.now - start == pytest.approx(1.0)


async def test_penalize_drains_the_bucket_and_holds_waiters_back(clock: FakeClock) -> None:
    limiter = exact(clock)
    await limiter.acquire("ec2", "DescribeVpcs", ACCOUNT, REGION)
    assert limiter.available(throttlers.EC2_NON_MUTATING, ACCOUNT, REGION) == pytest.approx(99)
    limiter.penalize("ec2", "DescribeVpcs", ACCOUNT, REGION, backoff=2.0)
    start = clock.now
    await clock.drive(limiter.acquire("ec2", "DescribeVpcs", ACCOUNT, REGION))
    # Empty and 2 s in deficit at 20/s: the next call waits 2 s plus one token (0.05 s).
    assert clock.now - start == pytest.approx(2.05)
    assert limiter.stats().penalties == 1


async def test_penalty_while_a_waiter_sleeps_is_respected(clock: FakeClock) -> None:
    limiter = exact(clock)
    for _ in range(4):
        await limiter.acquire("ec2", "CreateVpcEndpoint", ACCOUNT, REGION)
    start = clock.now
    waiter = asyncio.ensure_future(limiter.acquire("ec2", "CreateVpcEndpoint", ACCOUNT, REGION))
    await clock.settle()
    clock.now += 3.0  # Almost a token refilled...
    limiter.penalize("ec2", "CreateVpcEndpoint", ACCOUNT, REGION)  # ...and AWS throttled us.
    await clock.drive(waiter)
    assert clock.now - start == pytest.approx(3.0 + 1 / 0.3)


async def test_time_scale_speeds_refill_but_not_burst(clock: FakeClock) -> None:
    limiter = exact(clock, time_scale=100.0)
    start = clock.now
    await clock.drive(
        *(limiter.acquire("ec2", "CreateVpcEndpoint", ACCOUNT, REGION) for _ in range(10))
    )
    # Burst stays 4; the other 6 come at 30 per second instead of 0.3.
    assert clock.now - start == pytest.approx(6 / 30)
    assert limiter.rate(throttlers.EC2_ENDPOINT_MUTATION).burst == 4


def test_safety_keeps_linkplane_below_aws() -> None:
    limiter = Limiter(safety=0.9)
    rate = limiter.rate(throttlers.EC2_NON_MUTATING)
    assert rate.refill == pytest.approx(18.0)
    assert rate.burst == pytest.approx(90.0)
    # A small burst keeps at least one whole token of margin (4 at 0.9 is 3, not 3.6): a
    # fraction of a token absorbs no bunched arrival. Exactly AWS's (safety 1) keeps all 4.
    assert limiter.rate(throttlers.EC2_ENDPOINT_MUTATION).burst == 3.0
    assert Limiter(safety=1.0).rate(throttlers.EC2_ENDPOINT_MUTATION).burst == 4.0
    # A tiny bucket still lets one call through.
    assert Limiter(safety=0.1).rate(throttlers.EC2_ENDPOINT_MUTATION).burst == 1.0


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="safety"):
        Limiter(safety=1.5)
    with pytest.raises(ValueError, match="time_scale"):
        Limiter(time_scale=0)


async def test_a_cancelled_waiter_hands_its_turn_on(clock: FakeClock) -> None:
    limiter = exact(clock)
    for _ in range(10):
        await limiter.acquire("ec2", "RejectVpcEndpointConnections", ACCOUNT, REGION)
    first = asyncio.ensure_future(
        limiter.acquire("ec2", "RejectVpcEndpointConnections", ACCOUNT, REGION)
    )
    second = asyncio.ensure_future(
        limiter.acquire("ec2", "RejectVpcEndpointConnections", ACCOUNT, REGION)
    )
    await clock.settle()
    first.cancel()
    start = clock.now
    await clock.drive(second)
    # The cancelled head did not take the token: the next waiter gets it after one refill.
    assert clock.now - start == pytest.approx(1.0)
    assert first.cancelled()
