"""`lpctl audit list`: a project's audit log, oldest first (AuditService.ListAuditEvents)."""

from __future__ import annotations

from typing import Annotated

import typer

from linkplane.client import names
from linkplane.client.cli import common
from linkplane.client.cli.state import state_of

app = typer.Typer(help="Read a project's audit log.", no_args_is_help=True, rich_markup_mode=None)


@app.command(
    name="list",
    epilog="Example: lpctl audit list payments --filter "
    '\'actor = "alice" AND time >= "2026-01-01T00:00:00Z"\'',
)
def list_(
    ctx: typer.Context,
    project: Annotated[
        str | None, typer.Argument(help="Project id (default: --project).", show_default=False)
    ] = None,
    filter: Annotated[
        str,
        typer.Option(
            "--filter",
            help="AIP-160 filter on actor, method, resource, request_id (= !=) and time "
            "(also < <= > >=, RFC 3339).",
        ),
    ] = "",
    page_size: common.PageSize = 0,
    limit: common.Limit = 100,
    all: common.All = False,
) -> None:
    """List who changed what in the project, and when."""
    state = state_of(ctx)
    events = state.client().list_audit_events(
        parent=names.project_name(project or state.project),
        filter=filter,
        page_size=page_size,
        timeout=state.timeout,
    )
    common.show_list(state, events, limit, all)
