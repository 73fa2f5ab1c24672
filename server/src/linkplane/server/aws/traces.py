"""A CLIENT span per AWS call, recorded by ``calls`` once the call's outcome is known.

OpenTelemetry's botocore instrumentation does not reach aiobotocore's async clients, so
``calls._record_outcome`` — which every call and every page already pass through to be
counted — records the span here, after the fact, with the call's real start time. Its
parent is whatever span is current (the reconcile pass, or CheckAccount's RPC). Attributes
follow OpenTelemetry's AWS SDK conventions (``rpc.system=aws-api``, ``rpc.service``,
``rpc.method``, ``cloud.region``); a failure carries AWS's error code and linkplane's kind.
Time spent waiting for a rate-limit token is its own span (``aws.limiter.wait``), so a slow
pass shows whether AWS or linkplane's buckets held it up.
"""

from __future__ import annotations

import time

from opentelemetry import trace

from linkplane.server import telemetry
from linkplane.server.aws import errors


def record_call(
    service: str,
    action: str,
    account_id: str,
    region: str,
    *,
    seconds: float,
    error: errors.AwsError | None = None,
) -> None:
    """One span ``{service}/{action}`` that ended now and lasted ``seconds``."""
    if not telemetry.enabled():
        return
    ended = time.time_ns()
    span = telemetry.tracer().start_span(
        f"{service}/{action}",
        kind=trace.SpanKind.CLIENT,
        start_time=ended - int(seconds * 1e9),
        attributes={
            "rpc.system": "aws-api",
            "rpc.service": service,
            "rpc.method": action,
            "cloud.provider": "aws",
            "cloud.account.id": account_id,
            "cloud.region": region,
        },
    )
    if error is not None:
        span.set_attributes(
            {
                "aws.error.code": error.code,
                "linkplane.aws.error.kind": error.kind.value,
                "linkplane.aws.error.retryable": error.retryable,
            }
        )
        span.set_status(trace.StatusCode.ERROR, error.code)
    span.end(end_time=ended)


def record_wait(service: str, action: str, account_id: str, region: str, seconds: float) -> None:
    """One span ``aws.limiter.wait`` for a call that waited ``seconds`` for a token."""
    if not telemetry.enabled():
        return
    ended = time.time_ns()
    span = telemetry.tracer().start_span(
        "aws.limiter.wait",
        start_time=ended - int(seconds * 1e9),
        attributes={
            "rpc.service": service,
            "rpc.method": action,
            "cloud.account.id": account_id,
            "cloud.region": region,
        },
    )
    span.end(end_time=ended)
