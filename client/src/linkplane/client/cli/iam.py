"""`lpctl iam ...`: who holds which role on a project (google.iam.v1.IAMPolicy).

`get` shows the policy, `add-binding`/`remove-binding` change one member of one role (a
read-modify-write with the policy's etag, retried if someone changed it meanwhile), `set`
replaces the whole policy from a file (as printed by `get -o json`; with its etag, a policy
changed since is refused with exit 5), `test` lists which permissions the caller holds.
"""

# PLR0917: typer turns each parameter of a command into a flag, so commands take many.

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from google.iam.v1 import policy_pb2
from google.protobuf import json_format
from rich.table import Table

from linkplane.client import iam, names
from linkplane.client.cli import output
from linkplane.client.cli.state import CliState, ExitCode, OutputFormat, fail, state_of, stderr

app = typer.Typer(
    help="Grant and revoke roles on a project (IAM policy).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

Project = Annotated[
    str | None, typer.Argument(help="Project id (default: --project).", show_default=False)
]
Role = Annotated[
    str,
    typer.Option("--role", help="viewer | consumer | provider | admin (or roles/linkplane.NAME)."),
]
Member = Annotated[
    str, typer.Option("--member", help="Principal, e.g. alice (becomes user:alice).")
]


def _resource(state: CliState, project: str | None) -> str:
    return names.project_name(project or state.project)


def _emit_policy(state: CliState, policy: policy_pb2.Policy) -> None:
    if state.output is not OutputFormat.table:
        output.emit(state, policy)
        return
    if not policy.bindings:
        stderr.print("no role bindings")
    else:
        table = Table("ROLE", "MEMBERS", box=None, pad_edge=False, header_style="bold")
        for binding in policy.bindings:
            table.add_row(binding.role, ", ".join(binding.members))
        output.stdout.print(table)
    stderr.print(f"etag: {base64.b64encode(policy.etag).decode()}")


@app.command(epilog="Example: lpctl iam get payments -o json > policy.json")
def get(ctx: typer.Context, project: Project = None) -> None:
    """Show the project's IAM policy: roles, their members, and the etag."""
    state = state_of(ctx)
    policy = state.client().get_iam_policy(
        resource=_resource(state, project), timeout=state.timeout
    )
    _emit_policy(state, policy)


@app.command(
    name="add-binding",
    epilog="Example: lpctl iam add-binding payments --role provider --member alice",
)
def add_binding(ctx: typer.Context, role: Role, member: Member, project: Project = None) -> None:
    """Grant a role to a member."""
    state = state_of(ctx)
    role_name, member_name = iam.role(role), iam.member(member)
    policy = state.client().add_iam_policy_binding(
        resource=_resource(state, project),
        role=role_name,
        member=member_name,
        timeout=state.timeout,
    )
    stderr.print(f"{member_name} holds {role_name}")
    _emit_policy(state, policy)


@app.command(
    name="remove-binding",
    epilog="Example: lpctl iam remove-binding payments --role provider --member alice",
)
def remove_binding(ctx: typer.Context, role: Role, member: Member, project: Project = None) -> None:
    """Revoke a role from a member (exit 3 if the member did not hold it)."""
    state = state_of(ctx)
    resource = _resource(state, project)
    role_name, member_name = iam.role(role), iam.member(member)
    client = state.client()
    before = client.get_iam_policy(resource=resource, timeout=state.timeout)
    if not iam.without_binding(before, role_name, member_name)[1]:
        raise fail(f"{member_name} does not hold {role_name} on {resource}", ExitCode.NOT_FOUND)
    policy = client.remove_iam_policy_binding(
        resource=resource, role=role_name, member=member_name, timeout=state.timeout
    )
    stderr.print(f"{member_name} no longer holds {role_name}")
    _emit_policy(state, policy)


@app.command(name="set", epilog="Example: lpctl iam set payments policy.json")
def set_(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project id.")],
    policy_file: Annotated[
        Path,
        typer.Argument(
            help="Policy as JSON or YAML ({bindings: [{role, members}], etag}); as printed by "
            "`lpctl iam get -o json`. Without an etag it replaces whatever is there.",
            exists=True,
            dir_okay=False,
        ),
    ],
) -> None:
    """Replace the project's whole IAM policy with the one in a file."""
    state = state_of(ctx)
    policy = _load_policy(policy_file)
    result = state.client().set_iam_policy(
        resource=_resource(state, project), policy=policy, timeout=state.timeout
    )
    _emit_policy(state, result)


@app.command(epilog="Example: lpctl iam test payments linkplane.services.publish")
def test(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project id.")],
    permissions: Annotated[list[str], typer.Argument(help="Permissions to check.")],
) -> None:
    """Show which of the given permissions you hold on the project."""
    state = state_of(ctx)
    held = state.client().test_iam_permissions(
        resource=_resource(state, project), permissions=permissions, timeout=state.timeout
    )
    if state.output is OutputFormat.table:
        for permission in permissions:
            mark = "[green]yes[/]" if permission in held else "[red]no[/]"
            output.stdout.print(f"{mark}  {permission}")
    else:
        print(json.dumps(held) if state.output is OutputFormat.json else yaml.safe_dump(held))


def _load_policy(path: Path) -> policy_pb2.Policy:
    document: Any = yaml.safe_load(path.read_text())
    if not isinstance(document, dict):
        raise typer.BadParameter(f"{path} does not hold a mapping", param_hint="POLICY_FILE")
    try:
        return json_format.ParseDict(document, policy_pb2.Policy())
    except json_format.ParseError as error:
        raise typer.BadParameter(f"{path}: {error}", param_hint="POLICY_FILE") from error
