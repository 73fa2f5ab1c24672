"""What every lpctl command shares: global options, profiles, the client, exit codes.

The root callback builds one `CliState` from flags, `LINKPLANE_*` variables and an optional
profile file; commands take it from the click context. Exit codes live here, in one table, so
scripts can rely on them (docs/cli.md documents the same table).
"""

from __future__ import annotations

import dataclasses
import enum
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import typer
from rich import markup
from rich.console import Console

from linkplane.client import errors, names
from linkplane.client.config import DEFAULT_ADDRESS, ClientConfig
from linkplane.client.sync import Client


class ExitCode(enum.IntEnum):
    """lpctl's exit codes; the numbers are part of its interface."""

    OK = 0
    ERROR = 1
    INVALID = 2
    NOT_FOUND = 3
    ALREADY_EXISTS = 4
    CONFLICT = 5
    UNAVAILABLE = 6
    OPERATION_FAILED = 7
    DENIED = 8
    INTERRUPTED = 130


def exit_code(error: errors.LinkplaneError) -> ExitCode:
    """The exit code for an error: the class decides, so subclasses keep their meaning."""
    if isinstance(error, errors.OperationFailed):
        return ExitCode.OPERATION_FAILED
    table: list[tuple[type[errors.LinkplaneError], ExitCode]] = [
        (errors.InvalidArgument, ExitCode.INVALID),
        (errors.OutOfRange, ExitCode.INVALID),
        (errors.NotFound, ExitCode.NOT_FOUND),
        (errors.AlreadyExists, ExitCode.ALREADY_EXISTS),
        (errors.FailedPrecondition, ExitCode.CONFLICT),
        (errors.Aborted, ExitCode.CONFLICT),
        (errors.Unavailable, ExitCode.UNAVAILABLE),
        (errors.DeadlineExceeded, ExitCode.UNAVAILABLE),
        (errors.PermissionDenied, ExitCode.DENIED),
        (errors.Unauthenticated, ExitCode.DENIED),
    ]
    for error_type, code in table:
        if isinstance(error, error_type):
            return code
    return ExitCode.ERROR


class OutputFormat(enum.StrEnum):
    """How results are printed."""

    table = "table"
    json = "json"
    yaml = "yaml"


stderr = Console(stderr=True, highlight=False, soft_wrap=True)
"""Diagnostics, progress and narration go to stderr so stdout stays parseable."""


def profile_path() -> Path:
    """`LINKPLANE_CONFIG`, else `~/.config/linkplane/profiles.toml` (XDG_CONFIG_HOME aware)."""
    explicit = os.environ.get("LINKPLANE_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "linkplane" / "profiles.toml"


def load_profile(name: str) -> dict[str, Any]:
    """The `[profiles.NAME]` table of the profile file; a missing profile is a usage error."""
    path = profile_path()
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise typer.BadParameter(
            f"profile file {path} does not exist", param_hint="--profile"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise typer.BadParameter(f"{path}: {error}", param_hint="--profile") from error
    profiles = document.get("profiles", {})
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise typer.BadParameter(
            f"no profile {name!r} in {path} (known: {known})", param_hint="--profile"
        )
    profile: dict[str, Any] = profiles[name]
    return profile


@dataclasses.dataclass
class CliState:
    """Resolved global options of one lpctl invocation."""

    config: ClientConfig
    project: str
    output: OutputFormat
    timeout: float | None
    _client: Client | None = None

    @property
    def parent(self) -> str:
        """`projects/{project}`."""
        return names.project_name(self.project)

    def client(self) -> Client:
        """The blocking client, created on first use."""
        if self._client is None:
            self._client = Client(self.config)
        return self._client

    def close(self) -> None:
        """Close the client's channel if one was opened."""
        if self._client is not None:
            self._client.close()


@dataclasses.dataclass(frozen=True)
class Credentials:
    """Where lpctl's bearer token and TLS client certificate come from."""

    token: str | None = None
    """`--token` / LINKPLANE_TOKEN."""
    token_file: Path | None = None
    """`--token-file` / LINKPLANE_TOKEN_FILE: read on every call."""
    token_from_flag: bool = False
    """Whether `token` was given on the command line (it then beats any token file)."""
    token_file_from_flag: bool = False
    """Whether `token_file` was given on the command line."""
    tls_cert: Path | None = None
    """`--tls-cert` / LINKPLANE_TLS_CERT: PEM client certificate for mTLS."""
    tls_key: Path | None = None
    """`--tls-key` / LINKPLANE_TLS_KEY: its private key."""


def resolve_token(
    credentials: Credentials, settings: dict[str, Any]
) -> tuple[str | None, Path | None]:
    """The token or token file to use: flags beat the environment, which beats the profile;
    at one level a token beats a token file. Both flags at once is a usage error."""
    if credentials.token_from_flag and credentials.token_file_from_flag:
        raise typer.BadParameter("give --token or --token-file, not both", param_hint="--token")
    if credentials.token_file_from_flag:
        return None, credentials.token_file
    if credentials.token:
        return credentials.token, None
    if credentials.token_file:
        return None, credentials.token_file
    if settings.get("token"):
        return str(settings["token"]), None
    if settings.get("token_file"):
        return None, Path(str(settings["token_file"])).expanduser()
    return None, None


def build_state(
    *,
    address: str | None,
    token: str | None,
    project: str | None,
    profile: str | None,
    output: OutputFormat | None,
    timeout: float | None,
    tls_ca: Path | None,
    credentials: Credentials | None = None,
) -> CliState:
    """Merge flags (and their environment variables) over the profile over the defaults."""
    settings = load_profile(profile) if profile else {}
    credentials = credentials or Credentials(token=token)
    ca_path = tls_ca or (Path(settings["tls_ca"]) if settings.get("tls_ca") else None)
    chosen_token, token_file = resolve_token(credentials, settings)
    if token_file is not None and not token_file.is_file():
        raise typer.BadParameter(
            f"token file {token_file} does not exist", param_hint="--token-file"
        )
    cert = credentials.tls_cert or (
        Path(settings["tls_cert"]) if settings.get("tls_cert") else None
    )
    key = credentials.tls_key or (Path(settings["tls_key"]) if settings.get("tls_key") else None)
    if (cert is None) != (key is None):
        raise typer.BadParameter("--tls-cert and --tls-key go together", param_hint="--tls-cert")
    config = ClientConfig(
        address=address or settings.get("address") or DEFAULT_ADDRESS,
        token=chosen_token,
        token_file=token_file,
        tls=bool(settings.get("tls", False)),
        tls_root_certificates=ca_path.read_bytes() if ca_path else None,
        tls_client_certificate_chain=cert.read_bytes() if cert else None,
        tls_client_private_key=key.read_bytes() if key else None,
        default_timeout=timeout or float(settings.get("timeout", 30.0)),
    )
    if output is None:
        output = OutputFormat.table if sys.stdout.isatty() else OutputFormat.json
    return CliState(
        config=config,
        project=project or settings.get("project") or "default",
        output=output,
        timeout=timeout,
    )


def state_of(ctx: typer.Context) -> CliState:
    """The `CliState` the root callback stored."""
    state = ctx.find_root().obj
    if not isinstance(state, CliState):
        raise TypeError("lpctl's root callback did not run")
    return state


def report(error: errors.LinkplaneError) -> None:
    """Print an error as one line on stderr, then its field violations, never a traceback."""
    line = str(error)
    if error.reason and not isinstance(error, errors.OperationTimeout):
        line += f" [{error.reason}]"
    stderr.print(f"[bold red]error:[/] {_escape(line)}")
    for field, description in error.field_violations:
        stderr.print(f"  {_escape(field)}: {_escape(description)}")
    hint = access_hint(error)
    if hint:
        stderr.print(f"  hint: {_escape(hint)}")


def access_hint(error: errors.LinkplaneError) -> str | None:
    """What to do about UNAUTHENTICATED (16) and PERMISSION_DENIED (7), in lpctl's terms, and
    about a `--wait` that timed out (exit 6) while the operation goes on."""
    if isinstance(error, errors.OperationTimeout):
        return (
            "the operation is still running on the server; follow it with: "
            f"lpctl operations wait {error.operation_name}"
        )
    if isinstance(error, errors.Unauthenticated):
        if error.reason == "MISSING_CREDENTIALS":
            return (
                "the server requires credentials: pass --token or --token-file, or set "
                "LINKPLANE_TOKEN or LINKPLANE_TOKEN_FILE (or --tls-cert/--tls-key for mTLS)"
            )
        return (
            "the server did not accept your credentials: check the token (expired? meant for "
            "this server?) given by --token, --token-file, LINKPLANE_TOKEN or LINKPLANE_TOKEN_FILE"
        )
    if isinstance(error, errors.PermissionDenied):
        permission = error.metadata.get("permission")
        resource = error.metadata.get("resource", "")
        project = resource.split("/")[1] if resource.startswith("projects/") else None
        if permission and project:
            return (
                f"you lack {permission} on projects/{project}; an admin of the project can "
                f"grant a role holding it: lpctl iam add-binding {project} --role ROLE "
                "--member YOU (lpctl iam get shows the roles granted)"
            )
        return "ask an admin of the project for a role that allows this (lpctl iam get)"
    return None


def fail(message: str, code: ExitCode = ExitCode.ERROR) -> typer.Exit:
    """Print `message` as an error and return the Exit to raise."""
    stderr.print(f"[bold red]error:[/] {_escape(message)}")
    return typer.Exit(int(code))


def _escape(text: str) -> str:
    return markup.escape(text)
