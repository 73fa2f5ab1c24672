"""`linkplane-server`: serve (production), migrate, and dev (everything embedded)."""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr

from linkplane.server import devmode, logs, processgroup, telemetry
from linkplane.server.api import identity
from linkplane.server.config import Role, Settings
from linkplane.server.runtime import Runtime, stop_on_signals
from linkplane.server.storage import migrations
from linkplane.server.storage.embedded import EmbeddedPostgres

app = typer.Typer(
    help="linkplane: a control plane for AWS PrivateLink.",
    no_args_is_help=True,
    add_completion=False,
)

DEV_TIME_SCALE = 50.0
ListenOption = Annotated[
    str | None, typer.Option("--listen", help="gRPC listen address HOST:PORT.")
]


def _settings(**overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    settings = Settings(**values)  # type: ignore[arg-type]
    logs.configure(settings.log_format, settings.log_level)
    telemetry.configure_from_environment()  # OTEL_* variables; off unless they name an exporter
    return settings


@app.command()
def serve(
    listen: ListenOption = None,
    role: Annotated[Role | None, typer.Option(help="api, worker or all.")] = None,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Processes serving the API on the same port (SO_REUSEPORT: the kernel spreads "
            "connections over them). The first also runs the workers when the role has them.",
        ),
    ] = 1,
) -> None:
    """Run linkplane against LINKPLANE_DATABASE_URL (production).

    Example: LINKPLANE_DATABASE_URL=postgresql://linkplane@db/linkplane linkplane-server serve
    """
    settings = _settings(listen=listen, role=role)
    if processes > 1 and settings.role == Role.WORKER:
        typer.echo("error: --processes serves the API; the worker role has none", err=True)
        raise typer.Exit(2)
    if processes > 1 and settings.listen.rsplit(":", 1)[-1] == "0":
        typer.echo("error: --processes needs a fixed port to share (not :0)", err=True)
        raise typer.Exit(2)
    if settings.database_url is None:
        typer.echo("error: set LINKPLANE_DATABASE_URL (or use `linkplane-server dev`)", err=True)
        raise typer.Exit(2)
    if settings.page_token_secret is None and settings.role != Role.WORKER:
        # Replicas must agree on the key, and a built-in one would let anyone forge tokens.
        typer.echo(
            "error: set LINKPLANE_PAGE_TOKEN_SECRET to a random value shared by every replica, "
            "e.g. $(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')",
            err=True,
        )
        raise typer.Exit(2)
    _check_identity(settings)
    url = settings.database_url.get_secret_value()
    asyncio.run(_serve(settings, url, processes))


def _check_identity(settings: Settings) -> None:
    """Refuse to start with a half-configured identity setup, with a one-line reason."""
    problem = None
    if settings.tls_client_ca_file is not None and not (
        settings.tls_cert_file and settings.tls_key_file
    ):
        problem = (
            "LINKPLANE_TLS_CLIENT_CA_FILE needs LINKPLANE_TLS_CERT_FILE and LINKPLANE_TLS_KEY_FILE"
        )
    else:
        try:
            identity.Authenticator.from_settings(settings)
        except ValueError as error:
            problem = str(error)
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)


@app.command()
def migrate() -> None:
    """Bring the database schema at LINKPLANE_DATABASE_URL to the newest revision."""
    settings = _settings()
    if settings.database_url is None:
        typer.echo("error: set LINKPLANE_DATABASE_URL", err=True)
        raise typer.Exit(2)
    migrations.upgrade(settings.database_url.get_secret_value())
    typer.echo("database schema is up to date")


@app.command()
def dev(
    listen: ListenOption = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where the embedded Postgres keeps its data.")
    ] = None,
    time_scale: Annotated[
        float,
        typer.Option(help="Speed-up of the embedded AWS simulator: every delay divided by it."),
    ] = DEV_TIME_SCALE,
    sim: Annotated[
        bool, typer.Option(help="Run the embedded AWS simulator (off: use real AWS settings).")
    ] = True,
) -> None:
    """Run everything on this machine: an embedded Postgres (unless LINKPLANE_DATABASE_URL is
    set), migrations, the AWS simulator with a provider and a consumer account, and the server.

    Example: linkplane-server dev --listen 127.0.0.1:50051 --time-scale 50
    """
    settings = _settings(listen=listen, data_dir=data_dir)
    asyncio.run(_dev(settings, time_scale if sim else None))


def freeze_startup_heap() -> None:
    """Keep what start-up built out of the cyclic GC's full collections.

    Modules, protobuf descriptors, botocore's service models (loaded just before, by
    `Runtime.load_aws_models`), SQLAlchemy's compiled statements: some hundreds of thousands
    of objects that live as long as the process. Every full
    (generation 2) collection walked them all, 136-151 ms each, with the event loop standing
    still: with 1,000 Watch streams delivering 5 changes/s, those pauses were GetService's whole
    p99 (135 ms against 4.6 ms without streams; bench/README.md). Frozen, they are never walked
    again; objects made later are collected as before. Called once the runtime has started, in
    the process's entry point only (a test process starts many runtimes and must not freeze
    their garbage).
    """
    gc.collect()
    gc.freeze()


async def _serve(settings: Settings, url: str, processes: int = 1) -> None:
    stop = stop_on_signals()
    runtime = Runtime(settings, url)
    await runtime.start()
    await runtime.load_aws_models()
    freeze_startup_heap()
    if processes == 1:
        await runtime.run_until_signalled(stop)
        return
    await processgroup.serve_with(runtime, _api_process_command(settings), processes - 1, stop)


def _api_process_command(settings: Settings) -> list[str]:
    """The command of one more API-only process on the same address (the rest of its settings
    come from the same LINKPLANE_* environment)."""
    return [
        sys.executable,
        "-m",
        "linkplane.server.cli",
        "serve",
        "--role",
        Role.API.value,
        "--listen",
        settings.listen,
    ]


async def _dev(settings: Settings, time_scale: float | None) -> None:
    embedded: EmbeddedPostgres | None = None
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
    else:
        embedded = EmbeddedPostgres(settings.data_dir / "postgres")
        typer.echo(f"starting embedded Postgres in {embedded.data_dir} …")
        url = await asyncio.to_thread(embedded.start)
    simulator = None
    networks: dict[str, dict[str, object]] = {}
    try:
        await migrations.upgrade_async(url)
        if time_scale is not None:
            simulator, networks = _start_simulator(time_scale)
            settings = settings.model_copy(
                update={
                    "aws_endpoint_url": simulator.endpoint_url,
                    "aws_access_key_id": SecretStr("dev"),
                    "aws_secret_access_key": SecretStr("dev"),
                    "aws_time_scale": time_scale,
                    "transitional_resync_seconds": max(0.2, 5.0 / time_scale),
                    "resync_interval_seconds": max(5.0, 300.0 / time_scale),
                }
            )
        stop = stop_on_signals()
        runtime = Runtime(settings, url)
        port = await runtime.start()
        await runtime.load_aws_models()
        freeze_startup_heap()
        host = settings.listen.rsplit(":", 1)[0]
        address = f"{host}:{port}"
        auth_enabled = identity.Authenticator.from_settings(settings).enabled
        if networks and not auth_enabled:
            await devmode.register_accounts(address, networks)
        typer.echo(devmode.walkthrough(address, networks, simulator, auth_enabled=auth_enabled))
        await runtime.run_until_signalled(stop)
    finally:
        if simulator is not None:
            simulator.stop()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def _start_simulator(time_scale: float) -> tuple[Any, dict[str, dict[str, object]]]:
    try:
        from linkplane.sim import server as sim_server  # noqa: PLC0415 - optional extra
    except ImportError as exc:
        typer.echo(
            "error: the AWS simulator needs the sim extra (pip install 'linkplane-server[sim]'),"
            " or run `dev --no-sim` with real AWS settings",
            err=True,
        )
        raise typer.Exit(2) from exc
    handle = sim_server.start(time_scale=time_scale, throttling=True)
    networks = {
        account: sim_server.seed_network(
            handle, account_id=account, region=devmode.REGION, cidr=cidr
        )
        for account, cidr in devmode.ACCOUNTS.items()
    }
    return handle, networks


def main() -> None:
    app()


if __name__ == "__main__":
    main()
