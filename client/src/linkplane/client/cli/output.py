"""Rendering of results as tables (people), JSON or YAML (scripts), and progress displays.

JSON and YAML are the canonical proto3 JSON mapping (`json_format.MessageToDict`, camelCase
keys), so `lpctl -o json` output can be fed back with `--from-file`. Tables pick a few columns
per resource type; a single resource is shown as a field/value table.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

import yaml
from google.longrunning import operations_pb2
from google.protobuf import json_format, message
from rich.console import Console
from rich.table import Table

from linkplane.client import names, watches
from linkplane.client.cli.state import CliState, OutputFormat, stderr
from linkplane.client.operations import unpack_any
from linkplane.v1 import account_pb2, audit_event_pb2, common_pb2, connection_pb2, service_pb2

stdout = Console(highlight=False, soft_wrap=True)


def to_dict(value: message.Message) -> dict[str, Any]:
    """A message in proto3 JSON form; Operations get their Any fields unpacked for reading."""
    result: dict[str, Any] = json_format.MessageToDict(value)
    return result


def state_name(resource: Any) -> str:
    """`ACTIVE` for `STATE_ACTIVE`; empty when the resource has no state."""
    if not hasattr(resource, "state"):
        return ""
    descriptor = resource.DESCRIPTOR.fields_by_name["state"].enum_type
    return str(descriptor.values_by_number[resource.state].name).removeprefix("STATE_")


def _account_id(name: str) -> str:
    return names.short_id(name) if name else ""


def _service_row(s: service_pb2.Service) -> list[str]:
    counts = s.connection_counts
    return [
        names.short_id(s.name),
        state_name(s),
        s.region,
        _account_id(s.provider_account),
        s.service_name,
        f"{counts.available}/{counts.total}" if counts.total else "",
    ]


def _connection_row(c: connection_pb2.Connection) -> list[str]:
    target = names.short_id(c.service) if c.service else c.service_name
    return [
        names.short_id(c.name),
        state_name(c),
        c.region,
        _account_id(c.consumer_account),
        target,
        c.endpoint_id,
    ]


def _account_row(a: account_pb2.Account) -> list[str]:
    labels = ",".join(f"{k}={v}" for k, v in sorted(a.labels.items()))
    return [a.aws_account_id or _account_id(a.name), a.display_name, a.role_arn, labels]


def _service_connection_row(c: service_pb2.ServiceConnection) -> list[str]:
    verdict = service_pb2.ServiceConnection.Decision.Verdict.Name(c.decision.verdict)
    return [
        c.endpoint_id,
        state_name(c),
        c.owner_account_id,
        c.vpc_id,
        names.short_id(c.connection) if c.connection else "",
        verdict.removeprefix("VERDICT_").replace("UNSPECIFIED", ""),
    ]


def _operation_row(op: operations_pb2.Operation) -> list[str]:
    metadata = common_pb2.OperationMetadata()
    if op.HasField("metadata"):
        op.metadata.Unpack(metadata)
    status = "running"
    if op.done:
        status = f"failed: {op.error.message}" if op.HasField("error") else "done"
    return [op.name, metadata.verb, metadata.target, status, metadata.progress_message]


def _audit_event_row(e: audit_event_pb2.AuditEvent) -> list[str]:
    return [
        e.time.ToJsonString() if e.HasField("time") else "",
        e.actor,
        e.method,
        e.resource,
        ",".join(e.changed_fields),
        e.request_id,
    ]


_COLUMNS: dict[type[Any], tuple[list[str], Callable[[Any], list[str]]]] = {
    service_pb2.Service: (
        ["NAME", "STATE", "REGION", "PROVIDER", "SERVICE NAME", "CONNS"],
        _service_row,
    ),
    connection_pb2.Connection: (
        ["NAME", "STATE", "REGION", "CONSUMER", "TARGET", "ENDPOINT"],
        _connection_row,
    ),
    account_pb2.Account: (["ACCOUNT", "DISPLAY NAME", "ROLE", "LABELS"], _account_row),
    service_pb2.ServiceConnection: (
        ["ENDPOINT", "STATE", "OWNER", "VPC", "CONNECTION", "DECISION"],
        _service_connection_row,
    ),
    operations_pb2.Operation: (
        ["NAME", "VERB", "TARGET", "STATUS", "PROGRESS"],
        _operation_row,
    ),
    audit_event_pb2.AuditEvent: (
        ["TIME", "ACTOR", "METHOD", "RESOURCE", "CHANGED", "REQUEST ID"],
        _audit_event_row,
    ),
}

# Columns holding ids people copy into the next command (resource names, vpce-..., vpce-svc-...
# service names, account ids, vpc-...): never wrapped or cut. On a narrow terminal the other
# columns wrap instead; if even that is not enough the line gets longer than the terminal
# (stdout soft-wraps) rather than an id losing characters.
_ID_COLUMNS = frozenset(
    {"NAME", "PROVIDER", "SERVICE NAME", "CONSUMER", "TARGET", "ENDPOINT", "ACCOUNT", "OWNER"}
    | {"VPC", "CONNECTION", "RESOURCE", "REQUEST ID"}
)
# Narrowest a wrapping column gets when the terminal is too narrow for the ids.
_MIN_WRAPPED_WIDTH = 8


def operation_dict(op: operations_pb2.Operation) -> dict[str, Any]:
    """An Operation as JSON with `metadata` and `response` unpacked to their real types."""
    result: dict[str, Any] = {"name": op.name, "done": op.done}
    if op.HasField("metadata"):
        metadata = common_pb2.OperationMetadata()
        op.metadata.Unpack(metadata)
        result["metadata"] = to_dict(metadata)
    if op.HasField("error"):
        result["error"] = {"code": op.error.code, "message": op.error.message}
    elif op.HasField("response"):
        response = unpack_any(op.response)
        result["response"] = to_dict(response) if response is not None else {}
    return result


def _as_dict(item: message.Message) -> dict[str, Any]:
    if isinstance(item, operations_pb2.Operation):
        return operation_dict(item)
    return to_dict(item)


def emit(state: CliState, item: message.Message) -> None:
    """Print one resource."""
    if state.output is OutputFormat.json:
        print(json.dumps(_as_dict(item), indent=2))
    elif state.output is OutputFormat.yaml:
        print(yaml.safe_dump(_as_dict(item), sort_keys=False), end="")
    else:
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for key, value in _as_dict(item).items():
            table.add_row(key, value if isinstance(value, str) else json.dumps(value))
        stdout.print(table)


def emit_list(state: CliState, items: Iterable[message.Message]) -> int:
    """Print many resources of one type; returns how many."""
    materialised = list(items)
    if state.output is OutputFormat.json:
        print(json.dumps([_as_dict(i) for i in materialised], indent=2))
    elif state.output is OutputFormat.yaml:
        print(yaml.safe_dump([_as_dict(i) for i in materialised], sort_keys=False), end="")
    elif not materialised:
        stderr.print("no results")
    else:
        headers, row = _COLUMNS[type(materialised[0])]
        rows = [row(item) for item in materialised]
        table = Table(box=None, pad_edge=False, header_style="bold")
        # Rich drops or cuts columns when the table cannot fit, so ask for the width that
        # shows every id whole and at least a few characters of each other column.
        needed = 2 * (len(headers) - 1)
        for index, header in enumerate(headers):
            widest = max(len(header), *(len(cells[index]) for cells in rows))
            if header in _ID_COLUMNS:
                table.add_column(header, no_wrap=True, overflow="ignore", min_width=widest)
                needed += widest
            else:
                table.add_column(header, overflow="fold")
                needed += min(widest, _MIN_WRAPPED_WIDTH)
        for cells in rows:
            table.add_row(*cells)
        console = stdout
        if needed > stdout.width:
            # Console.print(width=...) cannot exceed the terminal's width; a wider console can.
            console = Console(
                highlight=False,
                soft_wrap=True,
                width=needed,
                force_terminal=stdout.is_terminal,
                no_color=stdout.no_color,
            )
        console.print(table)
    return len(materialised)


def emit_event(state: CliState, field: str, event: watches.WatchEvent[Any]) -> None:
    """Print one watch event: a JSON line, a YAML document or a table-ish line."""
    resource = event.resource
    if state.output is OutputFormat.table:
        if resource is None:
            stdout.print(f"{event.type_name:<9} (initial list complete)")
        else:
            stdout.print(
                f"{event.type_name:<9} {names.short_id(resource.name):<30} {state_name(resource)}"
            )
        return
    document: dict[str, Any] = {"type": event.type_name}
    if resource is not None:
        document[field] = to_dict(resource)
    if state.output is OutputFormat.json:
        print(json.dumps(document), flush=True)
    else:
        print("---\n" + yaml.safe_dump(document, sort_keys=False), end="", flush=True)
    sys.stdout.flush()
