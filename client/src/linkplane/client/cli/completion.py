"""Shell completion of resource ids: `lpctl services get pay<TAB>` asks the server.

Completion runs lpctl with the words typed so far; click parses them without running any
command or the root callback, so the global options (`--address`, `--project`, tokens, TLS, and
their environment variables) are read from the root context's parsed parameters here. A short
deadline and a swallowed error keep a slow or unreachable server from hanging the shell: no
suggestions is the worst outcome.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import typer

from linkplane.client import errors, names
from linkplane.client.cli.state import CliState, Credentials, build_state

COMPLETION_TIMEOUT = 2.0
"""Seconds one completion may wait for the server."""

MAX_SUGGESTIONS = 200
"""Stop listing after this many matches (a completion menu is not a report)."""


def _state(ctx: typer.Context) -> CliState:
    params: dict[str, Any] = dict(ctx.find_root().params)
    token_file = params.get("token_file")
    state = build_state(
        address=params.get("address"),
        token=params.get("token"),
        project=params.get("project"),
        profile=params.get("profile"),
        output=None,
        timeout=COMPLETION_TIMEOUT,
        tls_ca=params.get("tls_ca"),
        credentials=Credentials(
            token=params.get("token"),
            token_file=Path(token_file) if token_file else None,
            tls_cert=params.get("tls_cert"),
            tls_key=params.get("tls_key"),
        ),
    )
    # One attempt: a completion must answer now or not at all.
    config = dataclasses.replace(state.config, max_attempts=1, max_exhausted_attempts=1)
    return dataclasses.replace(state, config=config)


def _matching(ctx: typer.Context, incomplete: str, list_names: ListNames) -> list[str]:
    try:
        state = _state(ctx)
    except (typer.BadParameter, OSError, ValueError):
        return []
    found: list[str] = []
    try:
        for name in list_names(state):
            short = names.short_id(name)
            if short.startswith(incomplete):
                found.append(short)
                if len(found) >= MAX_SUGGESTIONS:
                    break
    except errors.LinkplaneError:
        return []
    finally:
        state.close()
    return found


ListNames = Callable[[CliState], Iterable[str]]


def _services(state: CliState) -> Iterable[str]:
    pager = state.client().list_services(parent=state.parent, timeout=COMPLETION_TIMEOUT)
    return (service.name for service in pager)


def _connections(state: CliState) -> Iterable[str]:
    pager = state.client().list_connections(parent=state.parent, timeout=COMPLETION_TIMEOUT)
    return (connection.name for connection in pager)


def services(ctx: typer.Context, incomplete: str) -> list[str]:
    """Ids of the project's services starting with what was typed."""
    return _matching(ctx, incomplete, _services)


def connections(ctx: typer.Context, incomplete: str) -> list[str]:
    """Ids of the project's connections starting with what was typed."""
    return _matching(ctx, incomplete, _connections)
