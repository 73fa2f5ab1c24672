"""lpctl, linkplane's command line: a typer app over the blocking `linkplane.client.Client`.

`main()` is the console-script entry point. It is also where errors end: every
`LinkplaneError` becomes one line on stderr (plus field violations) and a documented exit code
(`state.ExitCode`), never a traceback.
"""

# PLR0917: typer turns each parameter of a command into a flag, so commands take many.

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from linkplane.client import errors
from linkplane.client.cli import accounts, audit, connections, demo, iam, operations, services
from linkplane.client.cli.state import (
    Credentials,
    ExitCode,
    OutputFormat,
    build_state,
    exit_code,
    report,
)

__all__ = ["app", "main"]

_OUTPUT_FLAGS = ("-o", "--output")


def hoist_output(args: list[str]) -> list[str]:
    """Move `-o/--output FORMAT` given after the subcommand to the front, where the root
    callback reads it, so `lpctl services list -o json` works as kubectl users expect.

    Handles `-o json`, `-ojson`, `--output json` and `--output=json`; everything after `--`
    is left alone (a positional that happens to be `-o`).
    """
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest.extend(args[index:])
            break
        if arg in _OUTPUT_FLAGS and index + 1 < len(args):
            front.extend(args[index : index + 2])
            index += 2
            continue
        if arg.startswith("--output=") or (arg.startswith("-o") and not arg.startswith("--")):
            front.append(arg)
        else:
            rest.append(arg)
        index += 1
    return front + rest


class _RootGroup(TyperGroup):
    """lpctl's root command: hoists `-o/--output` before the arguments are parsed."""

    # `ctx` is typer's vendored click Context, which typer does not export under a public name.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_output(args))


app = typer.Typer(
    name="lpctl",
    cls=_RootGroup,
    help="Manage AWS PrivateLink through linkplane: publish services, connect VPCs, "
    "accept requests, follow operations.",
    epilog="Example: lpctl --project payments services list -o table\n\n"
    "Run 'lpctl demo' against a dev server for a guided walkthrough.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(services.app, name="services")
app.add_typer(connections.app, name="connections")
app.add_typer(accounts.app, name="accounts")
app.add_typer(operations.app, name="operations")
app.add_typer(iam.app, name="iam")
app.add_typer(audit.app, name="audit")
app.command(
    name="demo",
    epilog="Example: lpctl demo --address 127.0.0.1:50051",
)(demo.demo)


@app.callback()
def root(
    ctx: typer.Context,
    address: Annotated[
        str | None,
        typer.Option(
            "--address", envvar="LINKPLANE_ADDRESS", help="Server host:port [127.0.0.1:50051]."
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="LINKPLANE_TOKEN", help="Bearer token.", show_default=False),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            envvar="LINKPLANE_TOKEN_FILE",
            help="File holding the bearer token (read on every call).",
            show_default=False,
        ),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", envvar="LINKPLANE_PROJECT", help="Project [default]."),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            envvar="LINKPLANE_PROFILE",
            help="Profile from $LINKPLANE_CONFIG or ~/.config/linkplane/profiles.toml.",
        ),
    ] = None,
    output: Annotated[
        OutputFormat | None,
        typer.Option(
            "--output",
            "-o",
            help="table (default on a TTY) | json (when piped) | yaml; also accepted after "
            "the subcommand.",
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Deadline of each call, seconds [30].")
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option("--tls-ca", envvar="LINKPLANE_TLS_CA", help="PEM CA bundle; enables TLS."),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert", envvar="LINKPLANE_TLS_CERT", help="PEM client certificate (mTLS)."
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option("--tls-key", envvar="LINKPLANE_TLS_KEY", help="PEM key of --tls-cert."),
    ] = None,
) -> None:
    """Global options; they apply to every command."""
    # A flag beats an environment variable of the other kind of token (see resolve_token).
    from_flag = {
        name: getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"
        for name in ("token", "token_file")
    }
    state = build_state(
        address=address,
        token=token,
        project=project,
        profile=profile,
        output=output,
        timeout=timeout,
        tls_ca=tls_ca,
        credentials=Credentials(
            token=token,
            token_file=token_file,
            token_from_flag=from_flag["token"],
            token_file_from_flag=from_flag["token_file"],
            tls_cert=tls_cert,
            tls_key=tls_key,
        ),
    )
    ctx.obj = state
    ctx.call_on_close(state.close)


def main() -> None:
    """Run lpctl; map linkplane errors to one stderr line and an exit code."""
    try:
        app(prog_name="lpctl")
    except errors.LinkplaneError as error:
        report(error)
        sys.exit(int(exit_code(error)))
    except KeyboardInterrupt:
        sys.exit(int(ExitCode.INTERRUPTED))
