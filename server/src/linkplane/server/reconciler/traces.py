"""The span of a reconcile pass, continuing the trace of the request that asked for the work.

An RPC that creates an Operation stores its W3C traceparent with it (storage/operations.py,
migration 0004). When the engine starts a pass, :func:`traced` looks up the resource's open
Operations and opens the pass span ``reconcile {kind}`` as a child of the newest one's request
(linked to every one of them), so one trace runs from ``PublishService`` through its SQL
statements to the pass's AWS calls; passes that serve no open Operation (resyncs, drift checks)
start traces of their own. With tracing off, the pass runs as it is, without the lookup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from opentelemetry import trace

from linkplane.server import telemetry
from linkplane.server.storage import database, leases, operations


async def traced(
    db: database.Database, lease: leases.Lease, work: Callable[[], Awaitable[None]]
) -> None:
    """Run ``work`` (the engine's pass over ``lease``) inside its pass span."""
    if not telemetry.enabled():
        await work()
        return
    try:
        async with db.transaction() as session:
            parents = await operations.trace_contexts(session, lease.uid)
    except Exception:
        # The pass meets the same database problem and handles it; the span just has no parent.
        parents = []
    with telemetry.continued_span(
        f"reconcile {lease.kind}",
        parents,
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "linkplane.resource.kind": lease.kind,
            "linkplane.resource.uid": str(lease.uid),
            "linkplane.lease.token": lease.token,
            "linkplane.resource.generation": lease.generation,
            "linkplane.operations.open": len(parents),
        },
    ):
        await work()
