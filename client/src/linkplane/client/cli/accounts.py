"""`lpctl accounts ...`: the AWS accounts linkplane acts in (answered directly, no operations)."""

# PLR0917: typer turns each parameter of a command into a flag, so commands take many.

from __future__ import annotations

import enum
from typing import Annotated

import typer
from rich.table import Table

from linkplane.client import names
from linkplane.client.cli import common, output
from linkplane.client.cli.state import ExitCode, OutputFormat, state_of, stderr
from linkplane.v1 import account_pb2, account_service_pb2

app = typer.Typer(
    help="Register and manage AWS accounts.", no_args_is_help=True, rich_markup_mode=None
)

AccountRef = Annotated[str, typer.Argument(help="12-digit AWS account id or full name.")]
DisplayName = Annotated[str | None, typer.Option("--display-name", help="Human-readable name.")]
RoleArn = Annotated[str | None, typer.Option("--role-arn", help="IAM role linkplane assumes.")]
ExternalId = Annotated[str | None, typer.Option("--external-id", help="AssumeRole external id.")]
Regions = Annotated[
    list[str] | None, typer.Option("--region", help="Allowed region (repeatable; none: any).")
]


@app.command(
    epilog="Example: lpctl accounts register 111111111111 "
    "--role-arn arn:aws:iam::111111111111:role/linkplane --region us-east-1"
)
def register(
    ctx: typer.Context,
    account_id: Annotated[str, typer.Argument(help="12-digit AWS account id.")],
    display_name: DisplayName = None,
    role_arn: RoleArn = None,
    external_id: ExternalId = None,
    region: Regions = None,
    label: common.Labels = None,
    validate_only: common.ValidateOnly = False,
    request_id: common.RequestId = None,
) -> None:
    """Register an AWS account so services and connections can use it."""
    state = state_of(ctx)
    account = account_pb2.Account(
        display_name=display_name or "",
        role_arn=role_arn or "",
        external_id=external_id or "",
        allowed_regions=region or [],
        labels=common.parse_labels(label),
    )
    result = state.client().register_account(
        parent=state.parent,
        account=account,
        account_id=names.short_id(account_id),
        request_id=request_id,
        validate_only=validate_only,
        timeout=state.timeout,
    )
    output.emit(state, result)


@app.command(epilog="Example: lpctl accounts get 111111111111")
def get(ctx: typer.Context, account: AccountRef) -> None:
    """Show one account."""
    state = state_of(ctx)
    name = names.account_name(state.project, account)
    output.emit(state, state.client().get_account(name=name, timeout=state.timeout))


@app.command(name="list", epilog="Example: lpctl accounts list -o json")
def list_(
    ctx: typer.Context,
    filter: common.Filter = "",
    page_size: common.PageSize = 0,
    limit: common.Limit = 100,
    all: common.All = False,
) -> None:
    """List the project's accounts."""
    state = state_of(ctx)
    pager = state.client().list_accounts(
        parent=state.parent, filter=filter, page_size=page_size, timeout=state.timeout
    )
    common.show_list(state, pager, limit, all)


@app.command(epilog="Example: lpctl accounts update 111111111111 --label team=payments")
def update(
    ctx: typer.Context,
    account: AccountRef,
    display_name: DisplayName = None,
    role_arn: RoleArn = None,
    external_id: ExternalId = None,
    region: Regions = None,
    label: common.Labels = None,
    etag: common.Etag = "",
    validate_only: common.ValidateOnly = False,
    request_id: common.RequestId = None,
) -> None:
    """Change an account; only the fields given as flags are updated."""
    state = state_of(ctx)
    message = account_pb2.Account(name=names.account_name(state.project, account), etag=etag)
    paths: list[str] = []
    if display_name is not None:
        message.display_name = display_name
        paths.append("display_name")
    if role_arn is not None:
        message.role_arn = role_arn
        paths.append("role_arn")
    if external_id is not None:
        message.external_id = external_id
        paths.append("external_id")
    if region:
        message.allowed_regions[:] = region
        paths.append("allowed_regions")
    if label:
        message.labels.update(common.parse_labels(label))
        paths.append("labels")
    common.require_changes(paths)
    result = state.client().update_account(
        account=message,
        update_mask=paths,
        request_id=request_id,
        validate_only=validate_only,
        timeout=state.timeout,
    )
    output.emit(state, result)


@app.command(epilog="Example: lpctl accounts delete 333333333333")
def delete(
    ctx: typer.Context,
    account: AccountRef,
    etag: common.Etag = "",
    validate_only: common.ValidateOnly = False,
    request_id: common.RequestId = None,
) -> None:
    """Remove an account (fails with exit 5 while services or connections use it)."""
    state = state_of(ctx)
    name = names.account_name(state.project, account)
    state.client().delete_account(
        name=name,
        etag=etag,
        request_id=request_id,
        validate_only=validate_only,
        timeout=state.timeout,
    )
    stderr.print(f"deleted {name}")


class Usage(enum.StrEnum):
    """Which IAM policy variant of deploy/aws/ to check."""

    both = "both"
    provider = "provider"
    consumer = "consumer"


_USAGES = {
    Usage.both: account_service_pb2.CheckAccountRequest.USAGE_UNSPECIFIED,
    Usage.provider: account_service_pb2.CheckAccountRequest.USAGE_PROVIDER,
    Usage.consumer: account_service_pb2.CheckAccountRequest.USAGE_CONSUMER,
}
_CHECK = account_service_pb2.PermissionCheck


def _result_name(value: int) -> str:
    return str(_CHECK.Result.Name(value)).removeprefix("RESULT_")  # type: ignore[arg-type]


@app.command(
    epilog="Example: lpctl accounts check 222222222222 --as consumer\n\n"
    "Exit status: 0 when every checked action is allowed (or cannot be checked: UNVERIFIED), "
    "8 when AWS denies any, 1 when any check itself failed (ERROR)."
)
def check(
    ctx: typer.Context,
    account: AccountRef,
    usage: Annotated[
        Usage,
        typer.Option(
            "--as",
            help="What the account is used for: the provider or consumer policy variant, or both.",
        ),
    ] = Usage.both,
    region: Annotated[
        str, typer.Option("--region", help="Region to check in [first allowed region].")
    ] = "",
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", help="Project of the account [the global --project]."),
    ] = None,
) -> None:
    """Assume the account's role and ask AWS whether it allows each action linkplane calls.

    EC2 actions are tried with DryRun, others with a harmless read; nothing changes in AWS.
    """
    state = state_of(ctx)
    name = names.account_name(project or state.project, account)
    result = state.client().check_account(
        name=name, usage=_USAGES[usage], region=region, timeout=state.timeout
    )
    if state.output is OutputFormat.table:
        table = Table(box=None, pad_edge=False, header_style="bold")
        table.add_column("ACTION", no_wrap=True)
        table.add_column("RESULT", no_wrap=True)
        table.add_column("MESSAGE", overflow="fold")
        for item in result.checks:
            table.add_row(item.action, _result_name(item.result), item.message)
        output.stdout.print(table)
    else:
        output.emit(state, result)
    denied = [c.action for c in result.checks if c.result == _CHECK.RESULT_DENIED]
    failed = [c.action for c in result.checks if c.result == _CHECK.RESULT_ERROR]
    who = result.caller_arn or "(role not assumed)"
    stderr.print(
        f"{name} in {result.region} as {who}: {len(result.checks)} actions, "
        f"{len(denied)} denied, {len(failed)} errors"
    )
    if denied:
        stderr.print("denied: " + ", ".join(denied))
        raise typer.Exit(int(ExitCode.DENIED))
    if failed:
        raise typer.Exit(int(ExitCode.ERROR))
