"""Every AWS call linkplane makes goes through here: limit, call, classify, measure.

:meth:`Context.call` is the single choke point between linkplane and AWS. It waits for the
``throttlers`` buckets, calls the aiobotocore method, turns any failure into an
``errors.AwsError`` (draining the buckets when AWS throttled anyway), counts the outcome in
Prometheus and logs at debug level. :meth:`Context.paginate` does the same for each page of a
paginated Describe.

A :class:`Context` with a :class:`RetryPolicy` (the reconcilers' contexts) retries a transient
failure (5xx, dropped connection, timeout) or a throttled answer *in place*, a bounded number
of times with jittered exponential delays, never sooner than AWS's own ``Retry-After``; a
throttled retry also waits for the drained buckets to refill. One 5xx in twenty calls then
costs a short delay instead of failing the whole reconcile pass (issue 10). Anything else —
and a failure that outlasts the retries — is raised for the reconciler to handle.

The typed helpers in ``endpoints``, ``services`` and ``loadbalancers``
build on these; the reconciler may also use :class:`Context` directly for calls that need no
helper.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import prometheus_client
import structlog
from botocore import xform_name

from linkplane.server.aws import errors, sessions, throttlers, traces

logger = structlog.get_logger(__name__)

CALLS = prometheus_client.Counter(
    "linkplane_aws_calls_total",
    "AWS API calls made by linkplane, by outcome (ok or the error kind).",
    ["service", "action", "outcome"],
)
LATENCY = prometheus_client.Histogram(
    "linkplane_aws_call_duration_seconds",
    "Latency of AWS API calls, excluding time spent waiting for the rate limiter.",
    ["service", "action"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
LIMITER_WAIT = prometheus_client.Histogram(
    "linkplane_aws_limiter_wait_seconds",
    "Time AWS calls waited for a rate-limit token before being sent.",
    ["service", "action"],
    buckets=(0.0, 0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
RETRIES = prometheus_client.Counter(
    "linkplane_aws_retries_total",
    "AWS calls retried in place after a transient or throttled answer, by error kind.",
    ["service", "action", "kind"],
)

BATCH_SIZE = 100
"""Ids per batch call (DeleteVpcEndpoints, Accept/RejectVpcEndpointConnections, ...)."""


class ClientSource(Protocol):
    """Where calls get their clients: ``sessions.AwsClients``, or a fake in unit tests."""

    async def client(self, service: str, account: sessions.AccountRef, region: str) -> Any: ...


RETRIED_IN_PLACE = frozenset({errors.Kind.TRANSIENT, errors.Kind.THROTTLE})
"""Failures worth repeating the same call for at once. Not CONFLICT (the object's state must
change first, which takes seconds to minutes) nor NOT_FOUND (a grace the reconciler schedules)."""


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How a call retries a transient or throttled failure in place.

    ``retries`` more attempts after the first; before retry *n* (0-based) it waits a uniformly
    jittered delay in ``[0, min(cap, base * 2**n)]`` (full jitter: concurrent passes that failed
    together do not retry together), and at least AWS's ``Retry-After`` when AWS sent one; a
    throttled call at least the throttling delay, and then for its (penalized) token bucket.
    """

    retries: int = 3
    base_seconds: float = 0.5
    cap_seconds: float = 5.0

    def delay(self, error: errors.AwsError, retry: int) -> float | None:
        """Seconds to wait before retry number ``retry``, or None to give up and raise."""
        if not error.retryable or error.kind not in RETRIED_IN_PLACE or retry >= self.retries:
            return None
        ceiling = min(self.cap_seconds, self.base_seconds * 2**retry)
        jittered = random.uniform(0.0, ceiling)  # noqa: S311 - jitter, not cryptography
        # A throttled call waits at least the throttling delay (AWS's Retry-After, else
        # errors.THROTTLE_DELAY), as a failed pass did: AWS's bucket refills on AWS's clock,
        # and retrying as soon as linkplane's own (drained) bucket has a token would meet it
        # still empty. A 5xx waits only for AWS's own hint, if any.
        floor = error.retry_after if error.kind is errors.Kind.THROTTLE else error.hinted
        return max(jittered, floor or 0.0)


@dataclasses.dataclass(frozen=True)
class Context:
    """Where a reconcile step acts: which clients and limiter, which account and Region.

    The helpers in ``endpoints``, ``services`` and ``loadbalancers`` take one of these so
    their signatures say what they do, not how they reach AWS.
    """

    clients: ClientSource
    limiter: throttlers.Limiter
    account: sessions.AccountRef
    region: str
    retry: RetryPolicy | None = None
    """Retry transient and throttled failures in place; None: raise the first failure."""
    fence: Callable[[], Awaitable[None]] | None = None
    """Awaited right before every mutating call (``throttlers.mutating``), after the rate
    limiter's wait: raises (the reconciler's ``LeaseLost``) when the caller no longer holds the
    resource's lease, so a worker that stalled past its lease sends AWS no mutation."""

    async def call(
        self, service: str, action: str, *, recently_created: bool = False, **params: Any
    ) -> dict[str, Any]:
        """Call one AWS action (``"DescribeVpcEndpoints"``) with its parameters; return the
        response, retried in place under the context's policy.

        Raises ``errors.AwsError`` for anything AWS or the transport failed with.
        ``recently_created`` marks calls about an object created moments ago, so a NotFound is
        classified as eventual consistency (retryable) rather than absence."""
        retry = 0
        while True:
            await _acquire(self, service, action)
            if self.fence is not None and throttlers.mutating(action):
                await self.fence()
            started = time.perf_counter()
            try:
                client = await self.clients.client(service, self.account, self.region)
                method = getattr(client, xform_name(action))
                response: dict[str, Any] = await method(**params)
            except errors.CLASSIFIABLE as exc:
                err = _failed(
                    self, service, action, exc, started=started, recently_created=recently_created
                )
                # Safe for mutating calls too: creates carry a deterministic ClientToken (or
                # an idempotent name), so a retry of a create that did apply adopts it.
                if not await self._wait_before_retry(service, action, err, retry):
                    raise err from exc
                retry += 1
                continue
            _record_outcome(self, service, action, time.perf_counter() - started)
            return response

    async def _wait_before_retry(
        self, service: str, action: str, err: errors.AwsError, retry: int
    ) -> bool:
        """Sleep before retry number ``retry`` if the policy allows one; whether to retry."""
        delay = self.retry.delay(err, retry) if self.retry is not None else None
        if delay is None:
            return False
        RETRIES.labels(service, action, err.kind.value).inc()
        _debug(
            self,
            "aws.retry",
            service,
            action,
            code=err.code,
            retry=retry + 1,
            seconds=round(delay, 3),
        )
        await asyncio.sleep(delay)
        return True

    async def paginate(
        self, service: str, action: str, *, recently_created: bool = False, **params: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield every page of a paginated action, each page limited, classified, measured.

        Uses botocore's paginator model (input/output tokens, result keys) through aiobotocore.
        A token is taken before each page is requested; the paginator only reveals that there
        is no further page when asked, so a listing costs at most one token more than its
        pages."""
        started = time.perf_counter()
        try:
            # Getting a client can mean an AssumeRole call, whose failures are AWS's too.
            client = await self.clients.client(service, self.account, self.region)
        except errors.CLASSIFIABLE as exc:
            raise _failed(
                self, service, action, exc, started=started, recently_created=False
            ) from exc
        pages = client.get_paginator(xform_name(action)).paginate(**params).__aiter__()
        while True:
            await _acquire(self, service, action)
            started = time.perf_counter()
            try:
                page: dict[str, Any] = await pages.__anext__()
            except StopAsyncIteration:
                return
            except errors.CLASSIFIABLE as exc:
                raise _failed(
                    self, service, action, exc, started=started, recently_created=recently_created
                ) from exc
            _record_outcome(self, service, action, time.perf_counter() - started)
            yield page

    async def collect(
        self, service: str, action: str, key: str, *, recently_created: bool = False, **params: Any
    ) -> list[dict[str, Any]]:
        """All items under ``key`` across every page of a paginated action.

        A page that fails transiently restarts the listing (under the context's retry
        policy): a paginator cannot resume after an error, and a listing is read-only.
        """
        retry = 0
        while True:
            items: list[dict[str, Any]] = []
            try:
                async for page in self.paginate(
                    service, action, recently_created=recently_created, **params
                ):
                    items.extend(page.get(key, []))
            except errors.AwsError as err:
                if not await self._wait_before_retry(service, action, err, retry):
                    raise
                retry += 1
                continue
            return items


@dataclasses.dataclass(frozen=True)
class Unsuccessful:
    """One item of a batch call's ``Unsuccessful[]``: which id, and the classified error."""

    resource_id: str
    error: errors.AwsError

    @property
    def code(self) -> str:
        """The AWS error code, e.g. ``ExistingVpcEndpointConnections``."""
        return self.error.code


def unsuccessful(response: Mapping[str, Any], action: str) -> list[Unsuccessful]:
    """The classified items of a batch response's ``Unsuccessful[]``.

    EC2's batch calls answer HTTP 200 even when items fail: the failures are only here, so a
    caller that ignores this list believes a delete or accept happened when it did not.
    """
    items: list[Unsuccessful] = []
    for raw in response.get("Unsuccessful", []) or []:
        error = raw.get("Error", {}) or {}
        resource_id = str(raw.get("ResourceId", ""))
        code = str(error.get("Code") or "Unknown")
        message = str(error.get("Message") or "")
        err = errors.from_code(code, f"{resource_id}: {message}", action=action)
        items.append(Unsuccessful(resource_id, err))
    return items


def merge_params(fixed: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """A create helper's parameters plus the caller's extras; an extra may not override one.

    The helpers' fixed parameters are the AWS facts they exist to respect (Interface type,
    ClientToken, ownership tags); silently letting an extra replace one would defeat them.
    """
    clash = sorted(fixed.keys() & extra.keys())
    if clash:
        raise ValueError(f"parameters {clash} are set by the helper and cannot be overridden")
    return {**fixed, **extra}


def chunks(ids: Iterable[str], size: int = BATCH_SIZE) -> list[list[str]]:
    """Unique ids, in first-seen order, split into batches of at most ``size``."""
    unique = list(dict.fromkeys(ids))
    return [unique[i : i + size] for i in range(0, len(unique), size)]


async def _acquire(ctx: Context, service: str, action: str) -> None:
    waited = await ctx.limiter.acquire(service, action, ctx.account.account_id, ctx.region)
    LIMITER_WAIT.labels(service, action).observe(waited)
    if waited > 0:
        traces.record_wait(service, action, ctx.account.account_id, ctx.region, waited)
        _debug(ctx, "aws.limiter.waited", service, action, seconds=round(waited, 3))


def _debug(ctx: Context, event: str, service: str, action: str, **facts: Any) -> None:
    """A debug line about one call, named by where it went: service, action, account, Region."""
    logger.debug(
        event,
        service=service,
        action=action,
        account=ctx.account.account_id,
        region=ctx.region,
        **facts,
    )


def _record_outcome(
    ctx: Context,
    service: str,
    action: str,
    elapsed: float,
    error: errors.AwsError | None = None,
) -> None:
    """Trace, time, count and log one finished call (``error`` None: it succeeded)."""
    traces.record_call(
        service, action, ctx.account.account_id, ctx.region, seconds=elapsed, error=error
    )
    LATENCY.labels(service, action).observe(elapsed)
    outcome = "ok" if error is None else error.kind.value
    CALLS.labels(service, action, outcome).inc()
    why = {} if error is None else {"code": error.code, "retryable": error.retryable}
    _debug(ctx, "aws.call", service, action, seconds=round(elapsed, 3), outcome=outcome, **why)


def _failed(
    ctx: Context,
    service: str,
    action: str,
    exc: BaseException,
    *,
    started: float,
    recently_created: bool,
) -> errors.AwsError:
    elapsed = time.perf_counter() - started
    err = errors.classify(exc, recently_created=recently_created, action=action)
    if errors.is_throttle(err):
        # AWS's bucket is emptier than ours: drain ours so every waiter backs off with it.
        ctx.limiter.penalize(service, action, ctx.account.account_id, ctx.region)
    _record_outcome(ctx, service, action, elapsed, err)
    return err
