"""OpenTelemetry tracing: one tracer provider per process, configured by the OTEL_* variables.

Off by default: with neither ``OTEL_TRACES_EXPORTER`` nor an ``OTEL_EXPORTER_OTLP_*ENDPOINT``
set, no provider is installed, no instrumentation is attached (the gRPC interceptor and the
SQLAlchemy listeners are not even registered) and every span helper below returns OpenTelemetry's
non-recording span, so the cost is a few attribute lookups per RPC, statement and AWS call.
``linkplane-server`` calls :func:`configure_from_environment` at start; tests :func:`install` a
provider with an in-memory exporter. docs/observability.md lists the spans.

What is traced, and by whom:

- each RPC: OpenTelemetry's grpc.aio server interceptor (:func:`server_interceptors`), which also
  continues a caller's W3C ``traceparent``;
- each SQL statement: OpenTelemetry's SQLAlchemy instrumentation on the process's engine
  (:func:`instrument_engine`);
- each AWS call and each reconcile pass: linkplane's own spans (``aws/traces.py``,
  ``reconciler/traces.py``), since botocore's instrumentation does not reach aiobotocore.

Work that starts no trace of its own — the engine's claim poll, heartbeats, health pings — would
otherwise make a one-statement trace per poll; :class:`NoOrphanClients` drops CLIENT spans (SQL,
AWS) that have no parent, so only RPCs and reconcile passes start traces.

Log lines carry ``trace_id``/``span_id`` when a span is active (:func:`add_trace_ids`, a
structlog processor), and the span records them as events.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider, sampling
from opentelemetry.sdk.trace import export as sdk_export
from opentelemetry.trace.propagation import tracecontext
from opentelemetry.util import types as otel_types

TRACER_NAME = "linkplane"
SERVICE_NAME = "linkplane"

_provider: TracerProvider | None = None
_propagator = tracecontext.TraceContextTextMapPropagator()


class NoOrphanClients(sampling.Sampler):
    """Drop CLIENT spans (SQL statements, AWS calls) that start no trace of their own.

    Background statements (lease claims every poll, heartbeats, the database health ping)
    would each become a trace of one span; under an RPC or a reconcile pass they are kept,
    sampled as their parent was. Everything else is decided by ``delegate`` (the sampler
    OTEL_TRACES_SAMPLER chose).
    """

    def __init__(self, delegate: sampling.Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: trace.SpanKind | None = None,
        attributes: otel_types.Attributes = None,
        links: Sequence[trace.Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> sampling.SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if kind is trace.SpanKind.CLIENT and not parent.is_valid:
            return sampling.SamplingResult(sampling.Decision.DROP)
        return self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoOrphanClients{{{self.delegate.get_description()}}}"


def exporters_from_environment(
    environ: Mapping[str, str] = os.environ,
) -> list[sdk_export.SpanExporter]:
    """The span exporters the standard variables ask for; none means tracing stays off.

    ``OTEL_TRACES_EXPORTER`` (comma-separated: ``otlp``, ``console``, ``none``) wins; unset, an
    OTLP endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``…_TRACES_ENDPOINT``) means ``otlp``.
    OTLP speaks ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``/``…_PROTOCOL``: ``grpc`` (the default)
    or ``http/protobuf``; the exporters read endpoint, headers, timeout and TLS settings from
    the OTEL_EXPORTER_OTLP_* variables themselves.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not names:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        names = "otlp" if endpoint else "none"
    exporters: list[sdk_export.SpanExporter] = []
    for name in (n.strip() for n in names.split(",")):
        if name in {"", "none"}:
            continue
        if name == "console":
            exporters.append(sdk_export.ConsoleSpanExporter())
        elif name == "otlp":
            exporters.append(_otlp_exporter(environ))
        else:
            raise ValueError(f"OTEL_TRACES_EXPORTER: unsupported exporter {name!r}")
    return exporters


def _otlp_exporter(environ: Mapping[str, str]) -> sdk_export.SpanExporter:
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()
    # Exporters and instrumentations are imported only when tracing is on: an untraced
    # process starts as fast as before (they pull in protobuf encoders, requests, wrapt).
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc import (  # noqa: PLC0415 - see above
            trace_exporter as grpc_exporter,
        )

        return grpc_exporter.OTLPSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http import (  # noqa: PLC0415 - see above
            trace_exporter as http_exporter,
        )

        return http_exporter.OTLPSpanExporter()
    raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL: unsupported protocol {protocol!r}")


def make_provider(
    exporters: Sequence[sdk_export.SpanExporter], *, batch: bool = True
) -> TracerProvider:
    """A provider with linkplane's resource and sampler, exporting to ``exporters``.

    The resource is OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, ``service.name`` defaulting
    to linkplane; the sampler is OTEL_TRACES_SAMPLER's (parent-based always-on by default)
    behind :class:`NoOrphanClients`. ``batch`` exports off the event loop in batches
    (OTEL_BSP_* tune it); tests export synchronously.
    """
    attributes: dict[str, str] = {}
    configured = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in configured:
        attributes["service.name"] = SERVICE_NAME
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.sampler = NoOrphanClients(provider.sampler)
    for exporter in exporters:
        processor: SpanProcessor = (
            sdk_export.BatchSpanProcessor(exporter)
            if batch
            else sdk_export.SimpleSpanProcessor(exporter)
        )
        provider.add_span_processor(processor)
    return provider


def configure_from_environment() -> bool:
    """Install a provider if the OTEL_* variables ask for an exporter; whether tracing is on.

    Also makes it OpenTelemetry's global provider, so libraries that trace by themselves use
    it. A provider already installed (by a test) is kept.
    """
    if _provider is not None:
        return True
    exporters = exporters_from_environment()
    if not exporters:
        return False
    provider = make_provider(exporters)
    install(provider)
    trace.set_tracer_provider(provider)
    return True


def install(provider: TracerProvider | None) -> None:
    """Use ``provider`` for linkplane's spans from now on (None: tracing off again).

    Only what is built afterwards is instrumented: install before creating the Runtime.
    """
    global _provider  # noqa: PLW0603 - one provider per process, like OpenTelemetry's own
    _provider = provider


def enabled() -> bool:
    return _provider is not None


def tracer() -> trace.Tracer:
    """linkplane's tracer: the installed provider's, or a no-op one when tracing is off."""
    if _provider is None:
        return trace.NoOpTracer()
    return _provider.get_tracer(TRACER_NAME)


def server_interceptors() -> list[Any]:
    """The grpc.aio interceptors that open a SERVER span per RPC (none when tracing is off).

    Health checks and reflection are left out: probes call them every few seconds.
    """
    if _provider is None:
        return []
    # Only when tracing is on (see _otlp_exporter).
    from opentelemetry.instrumentation import grpc as otel_grpc  # noqa: PLC0415
    from opentelemetry.instrumentation.grpc import filters  # noqa: PLC0415

    untraced = filters.any_of(
        filters.health_check(),
        filters.service_prefix("grpc.reflection."),
    )
    interceptor = otel_grpc.aio_server_interceptor(  # type: ignore[no-untyped-call]
        _provider, filter_=filters.negate(untraced)
    )
    return [interceptor]


def instrument_engine(engine: Any) -> None:
    """Open a CLIENT span per SQL statement of ``engine`` (an AsyncEngine); no-op when off.

    ``SQLAlchemyInstrumentor().instrument(engine=…)`` attaches exactly this ``EngineTracer``,
    but the instrumentor is a process-wide singleton that instruments once: a process (or test
    session) with several engines needs one tracer per engine. Statements are recorded
    without their parameters (they hold secrets), like the engine's own logs.
    """
    if _provider is None:
        return
    # Only when tracing is on (see _otlp_exporter).
    from opentelemetry import metrics  # noqa: PLC0415
    from opentelemetry.instrumentation.sqlalchemy import engine as otel_engine  # noqa: PLC0415

    usage = metrics.get_meter(TRACER_NAME).create_up_down_counter(
        "db.client.connections.usage", unit="connections"
    )
    otel_engine.EngineTracer(tracer(), engine.sync_engine, usage)  # type: ignore[no-untyped-call]


def statement_span(sql: str) -> contextlib.AbstractContextManager[Any]:
    """A CLIENT span for one SQL statement sent without SQLAlchemy (storage/driver.py), named
    and attributed as the engine's spans are (see `instrument_engine`); nothing when off."""
    if _provider is None:
        return contextlib.nullcontext()
    return tracer().start_as_current_span(
        sql.split(None, 1)[0],
        kind=trace.SpanKind.CLIENT,
        attributes={"db.system": "postgresql", "db.statement": sql},
    )


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the active span, to carry work across processes; None if no
    span is being recorded (tracing off, or not sampled)."""
    span = trace.get_current_span()
    if not span.is_recording():
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


def context_of(traceparent: str) -> otel_context.Context | None:
    """The context a stored ``traceparent`` names, as a remote parent; None if malformed."""
    extracted = _propagator.extract({"traceparent": traceparent})
    if not trace.get_current_span(extracted).get_span_context().is_valid:
        return None
    return extracted


@contextlib.contextmanager
def continued_span(
    name: str,
    traceparents: Sequence[str],
    *,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    attributes: otel_types.Attributes = None,
) -> Iterator[trace.Span]:
    """A current span continuing work that requests started elsewhere (Operations).

    The last of ``traceparents`` (the newest request) becomes the parent, so the span joins
    that request's trace; every one of them is also a link, so a span that serves several
    requests is found from each.
    """
    contexts = [c for c in (context_of(t) for t in traceparents) if c is not None]
    links = [trace.Link(trace.get_current_span(c).get_span_context()) for c in contexts]
    parent = contexts[-1] if contexts else None
    with tracer().start_as_current_span(
        name, context=parent, kind=kind, links=links, attributes=attributes
    ) as span:
        yield span


def add_trace_ids(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: ``trace_id``/``span_id`` (hex, as tracing backends show them) of
    the active span; the event is also recorded on the span, so a trace shows its log lines."""
    span = trace.get_current_span()
    span_context = span.get_span_context()
    if not span_context.is_valid:
        return event
    event["trace_id"] = trace.format_trace_id(span_context.trace_id)
    event["span_id"] = trace.format_span_id(span_context.span_id)
    if span.is_recording():
        attributes = {
            key: value
            for key, value in event.items()
            if key not in {"event", "trace_id", "span_id"}
            and isinstance(value, str | bool | int | float)
        }
        span.add_event(str(event.get("event", "log")), attributes)
    return event
