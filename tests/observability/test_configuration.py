"""Tracing is configured by the standard OTEL_* variables: off unless they name an exporter.

The OTLP case sends a span to a real (in-process) OTLP/gRPC collector endpoint, so the
variables are proven to reach the exporter, not just to pick a class.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc import trace_exporter as grpc_exporter
from opentelemetry.exporter.otlp.proto.http import trace_exporter as http_exporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import export as sdk_export
from opentelemetry.trace import SpanKind

from linkplane.server import telemetry


def test_off_by_default_and_when_disabled() -> None:
    assert telemetry.exporters_from_environment({}) == []
    assert telemetry.exporters_from_environment({"OTEL_TRACES_EXPORTER": "none"}) == []
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}
    assert telemetry.exporters_from_environment({**endpoint, "OTEL_SDK_DISABLED": "true"}) == []
    assert telemetry.exporters_from_environment({**endpoint, "OTEL_TRACES_EXPORTER": "none"}) == []


def test_an_endpoint_or_an_exporter_name_turns_otlp_on() -> None:
    (exporter,) = telemetry.exporters_from_environment(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}
    )
    assert isinstance(exporter, grpc_exporter.OTLPSpanExporter)
    (exporter,) = telemetry.exporters_from_environment(
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    )
    assert isinstance(exporter, http_exporter.OTLPSpanExporter)
    both = telemetry.exporters_from_environment({"OTEL_TRACES_EXPORTER": "otlp,console"})
    assert [type(e) for e in both] == [
        grpc_exporter.OTLPSpanExporter,
        sdk_export.ConsoleSpanExporter,
    ]
    with pytest.raises(ValueError, match="zipkin"):
        telemetry.exporters_from_environment({"OTEL_TRACES_EXPORTER": "zipkin"})


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.names: list[str] = []

    def Export(self, request, context):  # type: ignore[no-untyped-def]
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.names += [span.name for span in scope_spans.spans]
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def collector() -> Iterator[tuple[Collector, int]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    received = Collector()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(received, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield received, port
    finally:
        server.stop(None)


def test_spans_reach_the_otlp_endpoint_the_variables_name(
    collector: tuple[Collector, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    received, port = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    provider = telemetry.make_provider(telemetry.exporters_from_environment())
    try:
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("reconcile service"):
            # A statement under a pass is kept; one without a parent is background noise.
            tracer.start_span("SELECT", kind=SpanKind.CLIENT).end()
        tracer.start_span("UPDATE", kind=SpanKind.CLIENT).end()
        assert provider.force_flush(30_000)
    finally:
        provider.shutdown()
    assert sorted(received.names) == ["SELECT", "reconcile service"]
