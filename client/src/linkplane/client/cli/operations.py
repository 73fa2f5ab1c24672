"""`lpctl operations ...`: inspect and wait for long-running operations."""

from __future__ import annotations

from typing import Annotated

import typer
from google.protobuf import message

from linkplane.client import names
from linkplane.client.cli import common, output
from linkplane.client.cli.state import state_of

app = typer.Typer(
    help="Inspect and wait for long-running operations.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

OperationRef = Annotated[str, typer.Argument(help="operations/{id} or just the id.")]


@app.command(epilog="Example: lpctl operations get operations/3f2a9c -o json")
def get(ctx: typer.Context, name: OperationRef) -> None:
    """Show one operation (metadata, and its response or error once done)."""
    state = state_of(ctx)
    op = state.client().get_operation(name=names.operation_name(name), timeout=state.timeout)
    output.emit(state, op.proto)


@app.command(name="list", epilog="Example: lpctl operations list --filter 'done = false'")
def list_(
    ctx: typer.Context,
    filter: common.Filter = "",
    page_size: common.PageSize = 0,
    limit: common.Limit = 100,
    all: common.All = False,
) -> None:
    """List operations."""
    state = state_of(ctx)
    pager = state.client().list_operations(
        filter=filter, page_size=page_size, timeout=state.timeout
    )
    common.show_list(state, (op.proto for op in pager), limit, all)


@app.command(epilog="Example: lpctl operations wait operations/3f2a9c --wait-timeout 600")
def wait(ctx: typer.Context, name: OperationRef, wait_timeout: common.WaitTimeout = None) -> None:
    """Wait for an operation, showing progress; exit 7 if it fails, 6 on timeout."""
    state = state_of(ctx)
    op = state.client().get_operation(name=names.operation_name(name), timeout=state.timeout)
    result = common.wait_for(state, op, wait_timeout, f"wait {op.name}")
    if isinstance(result, message.Message):
        output.emit(state, result)
