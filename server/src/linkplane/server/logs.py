"""structlog configuration: console for people, JSON for log pipelines."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

from linkplane.server import telemetry

Listener = Callable[[MutableMapping[str, Any]], None]
listeners: list[Listener] = []
"""Called with every event that passes the level filter, before it is rendered.

The test suite registers one to fail any test during which ``reconciler.bug`` is logged; a
listener that raises would break logging, so each is called under a guard."""


def _notify_listeners(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for listener in list(listeners):
        # A listener must never break the caller's logging.
        with contextlib.suppress(Exception):
            listener(event)
    return event


def configure(fmt: str = "console", level: str = "info") -> None:
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            telemetry.add_trace_ids,
            _notify_listeners,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), format="%(name)s %(message)s")
