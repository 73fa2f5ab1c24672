"""One trace from a PublishService call, through its SQL, to the AWS calls it caused.

The RPC stores its traceparent with the Operation; the reconcile pass that works towards the
Operation (possibly on another replica) continues that trace, so a tracing backend shows the
request, its statements, the pass and every AWS call of the pass as one tree.
"""

from __future__ import annotations

import uuid
from collections.abc import MutableMapping, Sequence
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import in_memory_span_exporter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

from linkplane.server import logs
from linkplane.sim import server as sim_server
from linkplane.v1 import provider_service_pb2
from tests.support.api import Api, eventually, wait_done
from tests.support.simulator import CONSUMER, PROVIDER
from tests.support.specs import managed_service

PUBLISH = "/linkplane.v1.ProviderService/PublishService"

Exporter = in_memory_span_exporter.InMemorySpanExporter


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    """The span's parents up to the root (within the recorded spans), nearest first."""
    chain: list[ReadableSpan] = []
    current = span
    while current.parent is not None and current.parent.span_id in by_id:
        current = by_id[current.parent.span_id]
        chain.append(current)
    return chain


def one_trace(spans: Sequence[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.context is not None and s.context.trace_id == trace_id]


def is_sql(span: ReadableSpan) -> bool:
    attributes = span.attributes or {}
    return "postgresql" in {attributes.get("db.system"), attributes.get("db.system.name")}


async def publish(api: Api, project: str, networks: dict[str, Any]) -> str:
    """PublishService, then wait for its Operation; the operation's name."""
    await api.register(project, PROVIDER, CONSUMER)
    published = await api.provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}",
            service_id="traced",
            service=managed_service(project, networks),
            request_id=str(uuid.uuid4()),
        )
    )
    done = await wait_done(api, published.name, timeout=60)
    assert not done.HasField("error"), done.error
    return published.name


async def test_publish_is_one_trace_from_the_rpc_to_the_aws_calls(
    api: Api, spans: Exporter, networks: dict[str, Any], project: str
) -> None:
    await publish(api, project, networks)
    recorded = spans.get_finished_spans()
    rpc = [s for s in recorded if s.name == PUBLISH]
    assert len(rpc) == 1, [s.name for s in recorded]
    root = rpc[0]
    assert root.kind is SpanKind.SERVER
    assert root.context is not None
    trace = one_trace(recorded, root.context.trace_id)
    by_id = {s.context.span_id: s for s in trace if s.context is not None}

    # The RPC's own statements: the spec, the Operation, the audit entry, in its transaction.
    statements = [s for s in trace if is_sql(s) and s.parent is not None]
    rpc_statements = [
        s for s in statements if s.parent is not None and s.parent.span_id == root.context.span_id
    ]
    assert any(s.name.startswith("INSERT") for s in rpc_statements), [s.name for s in trace]

    # The pass that created the endpoint service continues the RPC's trace ...
    passes = [s for s in trace if s.name == "reconcile service"]
    assert passes, sorted({s.name for s in trace})
    for reconcile in passes:
        assert reconcile.parent is not None
        assert reconcile.parent.span_id == root.context.span_id
        assert reconcile.parent.is_remote  # it came back through the Operation row

    # ... with the AWS calls, each under a pass, and the pass's own statements.
    create = [s for s in trace if s.name == "ec2/CreateVpcEndpointServiceConfiguration"]
    assert len(create) == 1, sorted({s.name for s in trace})
    call = create[0]
    assert call.kind is SpanKind.CLIENT
    assert (call.attributes or {})["cloud.account.id"] == PROVIDER
    chain = ancestors(call, by_id)
    assert [s.name for s in chain] == ["reconcile service", PUBLISH]
    assert any(
        is_sql(s)
        and chain[0].context is not None
        and s.parent is not None
        and s.parent.span_id == chain[0].context.span_id
        for s in trace
    )
    assert {"elbv2/CreateLoadBalancer", "ec2/DescribeVpcEndpointServiceConfigurations"} <= {
        s.name for s in trace
    }


async def test_background_statements_start_no_traces(spans: Exporter, api: Api) -> None:
    """Claim polls, heartbeats and health pings run all the time: they must not each be a
    trace of one statement (telemetry.NoOrphanClients)."""
    spans.clear()
    await api.provider.ListServices(provider_service_pb2.ListServicesRequest(parent="projects/x"))
    recorded = spans.get_finished_spans()
    orphans = [s for s in recorded if s.parent is None and s.kind is SpanKind.CLIENT]
    assert not orphans, [s.name for s in orphans]
    assert any(s.name.endswith("/ListServices") for s in recorded)


async def test_statements_sent_through_asyncpg_are_spans_of_their_rpc(
    spans: Exporter, api: Api, project: str
) -> None:
    """RegisterAccount and the Gets send their statements without SQLAlchemy
    (storage/driver.py): each is still a span under the RPC's, as the engine's are."""
    spans.clear()
    await api.register(project, PROVIDER)
    with pytest.raises(grpc.aio.AioRpcError):
        await api.provider.GetService(
            provider_service_pb2.GetServiceRequest(name=f"projects/{project}/services/none")
        )
    # The server ends an RPC's span just after its answer leaves (see the test below): the
    # caller can hold both answers before both spans are recorded.

    async def both() -> list[ReadableSpan]:
        return await finished(spans, "/RegisterAccount") + await finished(spans, "/GetService")

    await eventually(both, lambda found: len(found) == 2, timeout=10.0)
    recorded = spans.get_finished_spans()
    for method, expected in (
        ("/linkplane.v1.AccountService/RegisterAccount", ["SELECT"]),
        ("/linkplane.v1.ProviderService/GetService", ["SELECT"]),
    ):
        (rpc,) = [s for s in recorded if s.name == method]
        assert rpc.context is not None
        children = sorted(
            s.name
            for s in recorded
            if is_sql(s) and s.parent is not None and s.parent.span_id == rpc.context.span_id
        )
        # RegisterAccount's one call of linkplane_register_account (migration 0006); the Get's
        # one read.
        assert children == expected, [s.name for s in recorded]
        for child in recorded:
            if child.name in expected and is_sql(child):
                assert "$1" in str((child.attributes or {})["db.statement"])


async def finished(spans: Exporter, suffix: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name.endswith(suffix)]


@pytest.fixture
def events() -> list[MutableMapping[str, Any]]:
    """Copies of the log events (the renderer consumes the originals)."""
    captured: list[MutableMapping[str, Any]] = []

    def listen(event: MutableMapping[str, Any]) -> None:
        captured.append(dict(event))

    logs.listeners.append(listen)
    try:
        yield captured  # type: ignore[misc]
    finally:
        logs.listeners.remove(listen)


async def test_log_lines_carry_the_trace_and_span_ids(
    api: Api,
    spans: Exporter,
    sim: sim_server.SimHandle,
    networks: dict[str, Any],
    project: str,
    events: list[MutableMapping[str, Any]],
) -> None:
    # An RPC's log line: rpc.error for a service that does not exist. The module's earlier
    # tests leave GetService spans behind: without clearing them, the wait below could return
    # one of theirs before this call's span is recorded (it failed so once, on a busy machine).
    spans.clear()
    missing = f"projects/{project}/services/absent"
    with pytest.raises(grpc.aio.AioRpcError):
        await api.provider.GetService(provider_service_pb2.GetServiceRequest(name=missing))
    # The server ends the RPC's span just after the answer leaves: the caller can hold the
    # answer a moment before the span is recorded.
    get = (await eventually(lambda: finished(spans, "/GetService"), bool, timeout=10.0))[-1]
    assert get.context is not None
    logged = [e for e in events if e.get("event") == "rpc.error" and e["method"] == "GetService"]
    assert logged, events
    assert logged[-1]["trace_id"] == format_trace_id(get.context.trace_id)
    assert logged[-1]["span_id"] == format_span_id(get.context.span_id)
    # The span shows the line as an event.
    assert any(e.name == "rpc.error" for e in get.events)

    # A pass's log line, in the trace of the request that caused the pass: AWS refuses the
    # endpoint service, and the pass logs the error.
    sim.deny(PROVIDER, "linkplane", ["ec2:CreateVpcEndpointServiceConfiguration"])
    try:
        await api.register(project, PROVIDER, CONSUMER)
        published = await api.provider.PublishService(
            provider_service_pb2.PublishServiceRequest(
                parent=f"projects/{project}",
                service_id="denied",
                service=managed_service(project, networks),
            )
        )
        done = await wait_done(api, published.name, timeout=60)
    finally:
        sim.deny(PROVIDER, "linkplane", [])
    assert done.HasField("error")
    rpc = [s for s in spans.get_finished_spans() if s.name == PUBLISH][-1]
    assert rpc.context is not None
    errors = [e for e in events if e.get("event") == "reconciler.aws_error"]
    assert errors, [e.get("event") for e in events]
    assert errors[0]["trace_id"] == format_trace_id(rpc.context.trace_id)
    refused = [
        s
        for s in one_trace(spans.get_finished_spans(), rpc.context.trace_id)
        if s.name == "ec2/CreateVpcEndpointServiceConfiguration"
    ]
    assert refused
    assert refused[0].status.status_code is StatusCode.ERROR
    assert (refused[0].attributes or {})["linkplane.aws.error.kind"] == "auth"
