"""Options and helpers shared by lpctl's command groups.

One definition of `--wait`, `--limit/--all`, `--label` and friends keeps every command's flags
consistent; `finish` is where a mutation either prints its operation or waits for it with a live
progress display driven by the operation handle's `on_progress` callback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from google.protobuf import message
from rich.markup import escape

from linkplane.client import operations, watches
from linkplane.client.cli import output
from linkplane.client.cli.state import CliState, OutputFormat, stderr
from linkplane.v1 import common_pb2

T = TypeVar("T")

Wait = Annotated[
    bool, typer.Option("--wait", "-w", help="Wait until the operation is done, showing progress.")
]
DEFAULT_WAIT_TIMEOUT = 900.0
"""How long --wait waits unless told: above AWS's few minutes of provisioning, but bounded, so a
stuck operation ends a script instead of hanging it."""
WaitTimeout = Annotated[
    float | None,
    typer.Option(
        "--wait-timeout",
        help=f"With --wait, give up after this many seconds (exit 6); default "
        f"{DEFAULT_WAIT_TIMEOUT:.0f}, 0 waits without limit.",
    ),
]
ValidateOnly = Annotated[
    bool, typer.Option("--validate-only", help="Validate the request only; change nothing.")
]
RequestId = Annotated[
    str | None,
    typer.Option("--request-id", help="Idempotency key (UUID); a retry with it is safe."),
]
Filter = Annotated[str, typer.Option("--filter", help="AIP-160 filter, e.g. 'state = ACTIVE'.")]
PageSize = Annotated[int, typer.Option("--page-size", help="Items per page (0: server default).")]
Limit = Annotated[int, typer.Option("--limit", help="Show at most this many items.")]
All = Annotated[bool, typer.Option("--all", help="Show every item (ignores --limit).")]
Labels = Annotated[list[str] | None, typer.Option("--label", help="Label KEY=VALUE (repeatable).")]
Etag = Annotated[
    str, typer.Option("--etag", help="Fail with exit 5 if the resource changed since this etag.")
]
Watch = Annotated[
    bool, typer.Option("--watch", help="Keep streaming changes until interrupted (Ctrl-C).")
]
FromFile = Annotated[
    Path | None,
    typer.Option(
        "--from-file",
        "-f",
        help="YAML or JSON spec (proto3 JSON field names); flags override its fields.",
        exists=True,
        dir_okay=False,
    ),
]


def parse_labels(values: list[str] | None) -> dict[str, str]:
    """`["k=v", ...]` to a dict; malformed entries are a usage error."""
    labels: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--label")
        labels[key] = value
    return labels


def require_changes(paths: list[str]) -> None:
    """Check the update mask of an `update` command (the paths its flags set) before any call:
    a usage error when no flag set one (an empty mask would mean every field to the server)."""
    if not paths:
        raise typer.BadParameter("nothing to update: give at least one field flag")


def load_spec(path: Path | None) -> dict[str, Any]:
    """The mapping in a YAML/JSON spec file (empty without a file)."""
    if path is None:
        return {}
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict):
        raise typer.BadParameter(f"{path} does not hold a mapping", param_hint="--from-file")
    return document


def limited(items: Iterable[T], limit: int, everything: bool) -> Iterator[T]:
    """At most `limit` items unless `everything`; stops the pager early (fewer pages)."""
    return iter(items) if everything else islice(items, limit)


def show_list(state: CliState, items: Iterable[message.Message], limit: int, every: bool) -> None:
    """Print a (limited) list and hint on stderr when more items were left out."""
    iterator = iter(items)
    shown = list(limited(iterator, limit, every))
    more = False
    if not every and len(shown) == limit:
        more = next(iterator, None) is not None
    output.emit_list(state, shown)
    if more and state.output is OutputFormat.table:
        stderr.print(f"(showing the first {limit}; use --all or --limit for more)")


def stream(state: CliState, field: str, watch: watches.Watch[Any], name: str | None = None) -> None:
    """Print watch events until interrupted; `name` keeps only one resource's events."""
    try:
        for event in watch:
            if name and event.resource is not None and event.resource.name != name:
                continue
            output.emit_event(state, field, event)
    finally:
        watch.close()


def _progress_printer(verb: str) -> tuple[Callable[..., None], Any]:
    status = stderr.status(f"{verb}...")

    def on_progress(metadata: common_pb2.OperationMetadata, resource: Any) -> None:
        state = output.state_name(resource) if resource is not None else ""
        text = metadata.progress_message or "working"
        line = f"{text}" + (f" [dim]({state})[/]" if state else "")
        status.update(f"{escape(verb)}: {line}")
        stderr.print(f"  [cyan]•[/] {line}")

    return on_progress, status


def wait_for(state: CliState, op: operations.Operation[T], timeout: float | None, verb: str) -> T:
    """Wait for `op` with a live display of each progress or state change (on stderr)."""
    if timeout is None:
        timeout = DEFAULT_WAIT_TIMEOUT
    on_progress, status = _progress_printer(verb)
    with status:
        result = op.result(timeout=timeout if timeout > 0 else None, on_progress=on_progress)
    stderr.print(f"[green]✓[/] {escape(verb)} done ({op.name})")
    return result


def finish(
    state: CliState,
    op: operations.Operation[Any],
    *,
    wait: bool,
    timeout: float | None,
    verb: str,
) -> Any:
    """Print the operation (without --wait) or wait for it and print its result.

    Returns the result with --wait (None without), for commands that add a word about it.
    """
    if not wait:
        if state.output is OutputFormat.table:
            output.stdout.print(op.name)
            stderr.print(f"started; follow with: lpctl operations wait {op.name}")
        else:
            output.emit(state, op.proto)
        return None
    result = wait_for(state, op, timeout, verb)
    if isinstance(result, message.Message):
        output.emit(state, result)
    return result
