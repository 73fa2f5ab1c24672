"""Every AWS call linkplane makes goes through here: limit, call, classify, measure.

:func:`call` is the single choke point between linkplane and AWS. It waits for the
``throttlers`` buckets, calls the aiobotocore method, turns any failure into an
``errors.AwsError`` (draining the buckets when AWS throttled anyway), counts the outcome in
Prometheus and logs at debug level. :func:`paginate` does the same for each page of a
paginated Describe. The typed helpers in ``endpoints``, ``services`` and ``loadbalancers``
build on these; the reconciler may also use :class:`Context` directly for calls that need no
helper.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Protocol

import prometheus_client
import structlog
from botocore import xform_name

from linkplane.server.aws import errors, sessions, throttlers

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


BATCH_SIZE = 100
"""Ids per batch call (DeleteVpcEndpoints, Accept/RejectVpcEndpointConnections, ...)."""


class ClientSource(Protocol):
    """Where calls get their clients: ``sessions.AwsClients``, or a fake in unit tests."""

    async def client(self, service: str, account: sessions.AccountRef, region: str) -> Any: ...


async def call(
    clients: ClientSource,
    limiter: throttlers.Limiter,
    account: sessions.AccountRef,
    region: str,
    service: str,
    action: str,
    *,
    recently_created: bool = False,
    **params: Any,
) -> dict[str, Any]:
    """Call one AWS action (``"DescribeVpcEndpoints"``) with its parameters; return the response.

    Raises ``errors.AwsError`` for anything AWS or the transport failed with.
    ``recently_created`` marks calls about an object created moments ago, so a NotFound is
    classified as eventual consistency (retryable) rather than absence.
    """
    ctx = Context(clients, limiter, account, region)
    return await ctx.call(service, action, recently_created=recently_created, **params)


def paginate(
    clients: ClientSource,
    limiter: throttlers.Limiter,
    account: sessions.AccountRef,
    region: str,
    service: str,
    action: str,
    *,
    recently_created: bool = False,
    **params: Any,
) -> AsyncIterator[dict[str, Any]]:
    """Yield every page of a paginated action, each page limited, classified and measured.

    Uses botocore's paginator model (input/output tokens, result keys) through aiobotocore.
    A token is taken before each page is requested; the paginator only reveals that there is
    no further page when asked, so a listing costs at most one token more than its pages.
    """
    ctx = Context(clients, limiter, account, region)
    return ctx.paginate(service, action, recently_created=recently_created, **params)


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

    async def call(
        self, service: str, action: str, *, recently_created: bool = False, **params: Any
    ) -> dict[str, Any]:
        """:func:`call` in this context."""
        await _acquire(self, service, action)
        started = time.perf_counter()
        try:
            client = await self.clients.client(service, self.account, self.region)
            method = getattr(client, xform_name(action))
            response: dict[str, Any] = await method(**params)
        except errors.CLASSIFIABLE as exc:
            raise _failed(
                self, service, action, exc, started=started, recently_created=recently_created
            ) from exc
        _succeeded(self, service, action, started)
        return response

    async def paginate(
        self, service: str, action: str, *, recently_created: bool = False, **params: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """:func:`paginate` in this context."""
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
            _succeeded(self, service, action, started)
            yield page

    async def collect(
        self, service: str, action: str, key: str, *, recently_created: bool = False, **params: Any
    ) -> list[dict[str, Any]]:
        """All items under ``key`` across every page of a paginated action."""
        items: list[dict[str, Any]] = []
        async for page in self.paginate(
            service, action, recently_created=recently_created, **params
        ):
            items.extend(page.get(key, []))
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
        logger.debug(
            "aws.limiter.waited",
            service=service,
            action=action,
            account=ctx.account.account_id,
            region=ctx.region,
            seconds=round(waited, 3),
        )


def _succeeded(ctx: Context, service: str, action: str, started: float) -> None:
    elapsed = time.perf_counter() - started
    LATENCY.labels(service, action).observe(elapsed)
    CALLS.labels(service, action, "ok").inc()
    logger.debug(
        "aws.call",
        service=service,
        action=action,
        account=ctx.account.account_id,
        region=ctx.region,
        seconds=round(elapsed, 3),
        outcome="ok",
    )


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
    LATENCY.labels(service, action).observe(elapsed)
    CALLS.labels(service, action, err.kind.value).inc()
    logger.debug(
        "aws.call",
        service=service,
        action=action,
        account=ctx.account.account_id,
        region=ctx.region,
        seconds=round(elapsed, 3),
        outcome=err.kind.value,
        code=err.code,
        retryable=err.retryable,
    )
    return err
