"""The one place that owns AWS rate limiting: client-side token buckets.

AWS throttles per account and Region with token buckets per action family (the tables in
docs' aws-privatelink reference). linkplane mirrors those buckets locally so that it waits
*before* calling rather than being answered ``RequestLimitExceeded``: a throttled call costs a
round trip, drains AWS's bucket further and (for PrivateLink) counts against the whole
Organization. Every AWS call goes through :meth:`Limiter.acquire` (``calls`` does it); when AWS
throttles anyway (another tool shares the account, or linkplane restarted with AWS's bucket
already empty), :meth:`Limiter.penalize` drains the local buckets so they resynchronise.

Buckets are keyed by (account, region, family), so different accounts and Regions proceed in
parallel while one saturated family (CreateVpcEndpoint at 0.3/s) never slows another (Describe*
at 20/s). Waiters on one bucket are served first come, first served, and only the head of the
queue sleeps on the clock: a burst of 200 waiters drains at the refill rate without 200 tasks
waking up at once to race for one token.

Several replicas calling AWS for one account must share the buckets, as AWS does:
:class:`SharedLimiter` keeps them in a :class:`BucketStore` (Postgres, ``storage.buckets``), one
round trip per call, and falls back to the in-process buckets while the store is unreachable.

Why one module of ~490 lines: the in-process ``Limiter`` and the Postgres-backed
``SharedLimiter``, which falls back to it, share the bucket keys, the AWS rate tables and the
waiting discipline; apart, the fallback could drift from what it falls back to.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import dataclasses
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

import structlog

from linkplane.server.domain import ratelimits

logger = structlog.get_logger(__name__)


class WaitObserver(Protocol):
    """Told when the calling task starts and stops waiting for a token (see `TOKEN_WAITS`)."""

    def waiting(self) -> None: ...

    def resumed(self) -> None: ...


TOKEN_WAITS: contextvars.ContextVar[WaitObserver | None] = contextvars.ContextVar(
    "linkplane_token_waits", default=None
)
"""The observer of the current task's waits for tokens, if any.

The reconciler's engine sets one in each pass: a pass asleep until its account's bucket pays
its token (seconds, when hundreds of creates queue for one account's CreateVpcEndpoint bucket)
does no work, and the engine gives its slot to another account's pass meanwhile.
"""


@contextlib.contextmanager
def _waiting() -> Iterator[None]:
    observer = TOKEN_WAITS.get()
    if observer is None:
        yield
        return
    observer.waiting()
    try:
        yield
    finally:
        observer.resumed()


@dataclasses.dataclass(frozen=True)
class Rate:
    """One AWS token bucket: how many calls at once and how many per second after that."""

    burst: float
    """Bucket capacity: calls that may go out back to back when the bucket is full."""
    refill: float
    """Tokens added per second: the sustained call rate."""


# Family names are "<service>:<family>". The numbers are AWS's documented defaults per account
# and Region (see the reference's throttling tables); accounts with raised limits can pass
# their own via Limiter(rates=...).
EC2_NON_MUTATING = "ec2:non-mutating"
EC2_MUTATING = "ec2:mutating"
EC2_ENDPOINT_MUTATION = "ec2:endpoint-mutation"
EC2_CONNECTION_DECISION = "ec2:connection-decision"
EC2_SERVICE_CONFIGURATION = "ec2:service-configuration"
ELBV2_ACCOUNT = "elbv2:account"
ELBV2_PLACEMENT = "elbv2:load-balancer-placement"
ELBV2_TARGETS = "elbv2:targets"
ELBV2_MUTATING = "elbv2:mutating"
ROUTE53_ACCOUNT = "route53:account"
SERVICE_QUOTAS_ACCOUNT = "service-quotas:account"

AWS_RATES: Mapping[str, Rate] = {
    EC2_NON_MUTATING: Rate(burst=100, refill=20),
    EC2_MUTATING: Rate(burst=50, refill=5),
    EC2_ENDPOINT_MUTATION: Rate(burst=4, refill=0.3),
    EC2_CONNECTION_DECISION: Rate(burst=10, refill=1),
    EC2_SERVICE_CONFIGURATION: Rate(burst=10, refill=1),
    ELBV2_ACCOUNT: Rate(burst=40, refill=10),
    ELBV2_PLACEMENT: Rate(burst=10, refill=0.2),
    ELBV2_TARGETS: Rate(burst=20, refill=4),
    ELBV2_MUTATING: Rate(burst=20, refill=3),
    # Route 53's API allows five requests per second per account (all Regions: it is global).
    ROUTE53_ACCOUNT: Rate(burst=5, refill=5),
    # Service Quotas publishes no bucket sizes; linkplane reads one quota per account and
    # Region an hour (aws/quotas.py), so a small bucket costs nothing and stays well clear.
    SERVICE_QUOTAS_ACCOUNT: Rate(burst=5, refill=2),
}

FULL_REFILL_FAMILIES = frozenset({EC2_ENDPOINT_MUTATION})
"""Families whose refill keeps only a thin margin (``THIN_REFILL_MARGIN``) instead of ``safety``.

CreateVpcEndpoint/DeleteVpcEndpoints/ModifyVpcEndpoint at 0.3/s *is* the throughput of any
PrivateLink control plane: a 10% margin there makes every large rollout 11% slower, for ever,
while the cost it avoids is small: the burst keeps its margin (nothing is sent back to back
into an empty AWS bucket), and the rare RequestLimitExceeded that matching AWS's refill
exactly can cause costs one round trip and drains the local bucket (``penalize``). Families
with generous refills keep the margin, which there costs nothing noticeable.
"""

THIN_REFILL_MARGIN = 0.98
"""Refill factor of ``FULL_REFILL_FAMILIES``: at exactly AWS's rate, timer jitter made about 2
calls in 100 arrive a moment before AWS's token (measured: 4 throttles in 200 creates); 2 %
below it absorbs the jitter and costs a rollout 2 %."""

_NON_MUTATING_PREFIXES = ("Describe", "List", "Get")
_EC2_FAMILIES: Mapping[str, str] = {
    "CreateVpcEndpoint": EC2_ENDPOINT_MUTATION,
    "DeleteVpcEndpoints": EC2_ENDPOINT_MUTATION,
    "ModifyVpcEndpoint": EC2_ENDPOINT_MUTATION,
    "AcceptVpcEndpointConnections": EC2_CONNECTION_DECISION,
    "RejectVpcEndpointConnections": EC2_CONNECTION_DECISION,
    "CreateVpcEndpointServiceConfiguration": EC2_SERVICE_CONFIGURATION,
    "ModifyVpcEndpointServiceConfiguration": EC2_SERVICE_CONFIGURATION,
    "DeleteVpcEndpointServiceConfigurations": EC2_SERVICE_CONFIGURATION,
}
_ELBV2_FAMILIES: Mapping[str, str] = {
    "CreateLoadBalancer": ELBV2_PLACEMENT,
    "SetSubnets": ELBV2_PLACEMENT,
    "RegisterTargets": ELBV2_TARGETS,
    "DeregisterTargets": ELBV2_TARGETS,
}


def mutating(action: str) -> bool:
    """Whether an action changes something in AWS (anything but Describe*, List*, Get*).

    Conservative on purpose: an unknown verb counts as a mutation, so it is fenced.
    """
    return not action.startswith(_NON_MUTATING_PREFIXES)


GLOBAL_REGION = "global"
"""The region key for global services (Route 53): one bucket per account."""


def families(service: str, action: str) -> tuple[str, ...]:
    """The bucket families one call draws from, narrowest (slowest) first.

    ELBv2 calls draw from their action family *and* the account-level bucket that every ELBv2
    call shares; ELBv2 Describe* calls only from the account-level one.
    """
    if service == "ec2":
        if action in _EC2_FAMILIES:
            return (_EC2_FAMILIES[action],)
        if action.startswith(_NON_MUTATING_PREFIXES):
            return (EC2_NON_MUTATING,)
        return (EC2_MUTATING,)
    if service == "elbv2":
        if action in _ELBV2_FAMILIES:
            return (_ELBV2_FAMILIES[action], ELBV2_ACCOUNT)
        if action.startswith(_NON_MUTATING_PREFIXES):
            return (ELBV2_ACCOUNT,)
        return (ELBV2_MUTATING, ELBV2_ACCOUNT)
    if service == "route53":
        return (ROUTE53_ACCOUNT,)
    if service == "service-quotas":
        return (SERVICE_QUOTAS_ACCOUNT,)
    # STS (AssumeRole once an hour per account) and anything else: no documented bucket that
    # linkplane could approach, so no client-side limit.
    return ()


class Clock(Protocol):
    """Where the limiter reads time and sleeps; injectable so tests run on virtual time."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: ``time.monotonic`` and ``asyncio.sleep``."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclasses.dataclass(frozen=True)
class Stats:
    """Counters since the limiter was created, for metrics and tests."""

    acquired: int
    """Calls let through."""
    waits: int
    """Calls that had to wait for a token (at least one bucket was empty)."""
    wait_seconds: float
    """Total time spent waiting, summed over calls."""
    max_wait_seconds: float
    """The longest single wait."""
    penalties: int
    """Times a bucket was drained because AWS throttled a call anyway."""
    buckets: int
    """Buckets created so far: (account, region, family) combinations seen."""


# Refill arithmetic in floating point can land a hair below a whole token after sleeping
# exactly the computed deficit; without this slack the head waiter would re-sleep for ~1e-17 s
# forever on a clock that does not move by itself.
_EPSILON = 1e-9

BucketKey = tuple[str, str, str]
"""(account_id, region, family)."""


class _Bucket:
    """A token bucket with a FIFO queue of waiters; only the head waiter sleeps on the clock."""

    def __init__(self, capacity: float, refill: float, now: float) -> None:
        self.capacity = capacity
        self.refill = refill
        self.tokens = capacity
        self.stamp = now
        self.queue: collections.deque[asyncio.Future[None]] = collections.deque()

    def update(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.refill)
            self.stamp = now

    def deficit_seconds(self) -> float:
        return max(0.0, (1.0 - self.tokens) / self.refill)


class Limiter:
    """Token buckets per (account, region, action family), sized from AWS's throttling tables.

    ``safety`` scales AWS's numbers down (0.9 = use 90% of the burst, and at least one token
    less, and 90% of the refill; the refill of ``FULL_REFILL_FAMILIES`` excepted) so that
    linkplane alone never causes ``RequestLimitExceeded`` and leaves room for humans and other
    tools in the same account. ``time_scale`` speeds refill up by the same factor a simulator
    speeds up its own AWS buckets, so the two stay matched in tests and local runs.
    """

    def __init__(
        self,
        *,
        rates: Mapping[str, Rate] = AWS_RATES,
        safety: float = 0.9,
        time_scale: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        if not 0 < safety <= 1:
            raise ValueError(f"safety must be in (0, 1], got {safety}")
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        self._rates = dict(rates)
        self._safety = safety
        self._time_scale = time_scale
        self._clock: Clock = clock or SystemClock()
        self._buckets: dict[BucketKey, _Bucket] = {}
        self._acquired = 0
        self._waits = 0
        self._wait_seconds = 0.0
        self._max_wait = 0.0
        self._penalties = 0

    def rate(self, family: str) -> Rate:
        """The effective (safety- and time-scaled) rate of a family's buckets."""
        aws = self._rates[family]
        burst = aws.burst * self._safety
        if self._safety < 1:
            # At least one whole token short of AWS's burst: requests paced when they leave
            # can arrive bunched, and AWS's bucket absorbs a bunch only with the slack linkplane
            # left it. 10% of CreateVpcEndpoint's burst of 4 is 0.4 of a token, gone with one
            # request arriving 0.4 of a refill period early relative to the one before.
            burst = min(burst, aws.burst - 1)
        # A bucket that cannot hold one whole token would never let a call through.
        return Rate(
            burst=max(1.0, burst),
            refill=aws.refill
            * (
                max(self._safety, THIN_REFILL_MARGIN)
                if family in FULL_REFILL_FAMILIES
                else self._safety
            )
            * self._time_scale,
        )

    def _bucket(self, account: str, region: str, family: str) -> _Bucket:
        key = (account, region, family)
        bucket = self._buckets.get(key)
        if bucket is None:
            rate = self.rate(family)
            bucket = _Bucket(rate.burst, rate.refill, self._clock.monotonic())
            self._buckets[key] = bucket
        return bucket

    def _keys(self, service: str, action: str, account: str, region: str) -> list[BucketKey]:
        where = GLOBAL_REGION if service == "route53" else region
        return [(account, where, family) for family in families(service, action)]

    def available(self, family: str, account: str, region: str) -> float:
        """Tokens in one bucket now (full if never used); for tests and debugging."""
        bucket = self._buckets.get((account, region, family))
        if bucket is None:
            return self.rate(family).burst
        bucket.update(self._clock.monotonic())
        return bucket.tokens

    async def acquire(self, service: str, action: str, account: str, region: str) -> float:
        """Wait until every bucket this call draws from has a token, take them; returns the wait.

        Cancellation while waiting is safe: the waiter leaves its queue and hands its turn on.
        """
        started = self._clock.monotonic()
        queued = False
        for key in self._keys(service, action, account, region):
            queued = await self._take(self._bucket(*key)) or queued
        waited = self._clock.monotonic() - started if queued else 0.0
        self._acquired += 1
        if queued:
            self._waits += 1
            self._wait_seconds += waited
            self._max_wait = max(self._max_wait, waited)
        return waited

    async def _take(self, bucket: _Bucket) -> bool:
        """Take one token, queueing if needed; True if the caller had to queue."""
        bucket.update(self._clock.monotonic())
        if not bucket.queue and bucket.tokens >= 1 - _EPSILON:
            bucket.tokens -= 1
            return False
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        bucket.queue.append(turn)
        if len(bucket.queue) == 1:
            turn.set_result(None)
        try:
            with _waiting():
                await turn  # Resolved when this waiter reaches the head of the queue.
                while True:
                    bucket.update(self._clock.monotonic())
                    if bucket.tokens >= 1 - _EPSILON:
                        bucket.tokens -= 1
                        return True
                    # Re-checked after the sleep: a penalty may have drained the bucket since.
                    await self._clock.sleep(bucket.deficit_seconds())
        finally:
            was_head = bool(bucket.queue) and bucket.queue[0] is turn
            if was_head:
                _ = bucket.queue.popleft()  # this waiter's own turn: nothing to await
            else:
                with contextlib.suppress(ValueError):  # Already served and removed.
                    bucket.queue.remove(turn)
            if was_head and bucket.queue:
                successor = bucket.queue[0]
                if not successor.done():
                    successor.set_result(None)

    def penalize(
        self,
        service: str,
        action: str,
        account: str,
        region: str,
        *,
        backoff: float = 0.0,
    ) -> None:
        """AWS throttled a call: empty the buckets it draws from, optionally for longer.

        AWS does not say which bucket (the action family or ELBv2's account level) ran dry, so
        all of the call's buckets are drained. ``backoff`` seconds push them further into
        deficit, holding every waiter back that much longer.
        """
        now = self._clock.monotonic()
        for key in self._keys(service, action, account, region):
            bucket = self._bucket(*key)
            bucket.update(now)
            bucket.tokens = min(bucket.tokens, 0.0) - backoff * bucket.refill
        self._penalties += 1

    def stats(self) -> Stats:
        """Counters since creation: calls let through, waits, time spent waiting, penalties."""
        return Stats(
            acquired=self._acquired,
            waits=self._waits,
            wait_seconds=self._wait_seconds,
            max_wait_seconds=self._max_wait,
            penalties=self._penalties,
            buckets=len(self._buckets),
        )


class BucketStore(Protocol):
    """Where :class:`SharedLimiter` keeps its buckets: state every replica sees (Postgres)."""

    async def reserve(self, buckets: Sequence[ratelimits.BucketLimit]) -> float:
        """Take one token from each bucket now, even into deficit; the seconds until the
        refill has paid for every one of them (0 when all had a token)."""
        ...

    async def drain(
        self, buckets: Sequence[ratelimits.BucketLimit], backoff_seconds: float = 0.0
    ) -> None:
        """Empty the buckets (AWS throttled a call), ``backoff_seconds`` further into deficit."""
        ...


class SharedLimiter(Limiter):
    """A :class:`Limiter` whose buckets live in a :class:`BucketStore` shared by all replicas.

    Same rates, safety and time scale as the in-process limiter; each call costs one round trip
    to the store (which reserves its token and answers how long to wait) and then a sleep on
    this process's clock, so no process polls the store. A call that the store cannot serve
    (database unreachable) falls back to the in-process buckets: pacing per process for a
    while is better than no AWS calls at all, and the reconcile pass that needs the database
    next will find out for itself.
    """

    def __init__(
        self,
        store: BucketStore,
        *,
        rates: Mapping[str, Rate] = AWS_RATES,
        safety: float = 0.9,
        time_scale: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(rates=rates, safety=safety, time_scale=time_scale, clock=clock)
        self._store = store
        self._background: set[asyncio.Task[None]] = set()
        self._fallbacks = 0

    def _limits(
        self, service: str, action: str, account: str, region: str
    ) -> list[ratelimits.BucketLimit]:
        limits = []
        for key_account, key_region, family in self._keys(service, action, account, region):
            rate = self.rate(family)
            limits.append(
                ratelimits.BucketLimit(
                    account=key_account,
                    region=key_region,
                    family=family,
                    capacity=rate.burst,
                    refill=rate.refill,
                )
            )
        return limits

    async def acquire(self, service: str, action: str, account: str, region: str) -> float:
        """Reserve a token in every shared bucket of this call, then wait until they are paid.

        Cancellation while sleeping leaves the reserved token spent: the buckets run a little
        slower than they could, never faster than AWS's.
        """
        limits = self._limits(service, action, account, region)
        if not limits:
            self._acquired += 1
            return 0.0
        try:
            wait = await self._store.reserve(limits)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fallbacks += 1
            logger.warning(
                "aws.limiter.shared_unavailable",
                service=service,
                action=action,
                account=account,
                region=region,
                error=str(exc.__cause__ or exc),
            )
            return await super().acquire(service, action, account, region)
        self._acquired += 1
        if wait > 0:
            with _waiting():
                await self._clock.sleep(wait)
            self._waits += 1
            self._wait_seconds += wait
            self._max_wait = max(self._max_wait, wait)
        return wait

    def penalize(
        self,
        service: str,
        action: str,
        account: str,
        region: str,
        *,
        backoff: float = 0.0,
    ) -> None:
        """Drain the shared buckets (in the background: callers of ``penalize`` are
        synchronous, and the retry that follows waits the throttling delay anyway) and the
        in-process ones the fallback would use."""
        super().penalize(service, action, account, region, backoff=backoff)
        limits = self._limits(service, action, account, region)
        if not limits:
            return
        task = asyncio.get_running_loop().create_task(self._drain(limits, backoff))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _drain(self, limits: list[ratelimits.BucketLimit], backoff: float) -> None:
        try:
            await self._store.drain(limits, backoff)
        except Exception as exc:
            logger.warning("aws.limiter.drain_failed", error=str(exc.__cause__ or exc))

    @property
    def fallbacks(self) -> int:
        """Calls paced by the in-process buckets because the store could not be reached."""
        return self._fallbacks
