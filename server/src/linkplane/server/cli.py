"""`linkplane-server`: serve (production), migrate, and dev (everything embedded)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from linkplane.server import logs
from linkplane.server.config import Role, Settings
from linkplane.server.runtime import Runtime
from linkplane.server.storage import migrations
from linkplane.server.storage.embedded import EmbeddedPostgres

app = typer.Typer(
    help="linkplane: a control plane for AWS PrivateLink.",
    no_args_is_help=True,
    add_completion=False,
)

ListenOption = Annotated[
    str | None, typer.Option("--listen", help="gRPC listen address HOST:PORT.")
]


def _settings(**overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    settings = Settings(**values)  # type: ignore[arg-type]
    logs.configure(settings.log_format, settings.log_level)
    return settings


@app.command()
def serve(
    listen: ListenOption = None,
    role: Annotated[Role | None, typer.Option(help="api, worker or all.")] = None,
) -> None:
    """Run linkplane against LINKPLANE_DATABASE_URL (production).

    Example: LINKPLANE_DATABASE_URL=postgresql://linkplane@db/linkplane linkplane-server serve
    """
    settings = _settings(listen=listen, role=role)
    if settings.database_url is None:
        typer.echo("error: set LINKPLANE_DATABASE_URL (or use `linkplane-server dev`)", err=True)
        raise typer.Exit(2)
    url = settings.database_url.get_secret_value()
    asyncio.run(_serve(settings, url))


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
) -> None:
    """Run everything on this machine: embedded Postgres (unless LINKPLANE_DATABASE_URL is
    set), migrations, and the server.

    Example: linkplane-server dev --listen 127.0.0.1:50051
    """
    settings = _settings(listen=listen, data_dir=data_dir)
    asyncio.run(_dev(settings))


async def _serve(settings: Settings, url: str) -> None:
    runtime = Runtime(settings, url)
    await runtime.start()
    await runtime.run_until_signalled()


async def _dev(settings: Settings) -> None:
    embedded: EmbeddedPostgres | None = None
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
    else:
        embedded = EmbeddedPostgres(settings.data_dir / "postgres")
        typer.echo(f"starting embedded Postgres in {embedded.data_dir} …")
        url = await asyncio.to_thread(embedded.start)
    try:
        await migrations.upgrade_async(url)
        runtime = Runtime(settings, url)
        port = await runtime.start()
        host = settings.listen.rsplit(":", 1)[0]
        typer.echo(
            f"\nlinkplane is serving on {host}:{port} (dev mode).\n"
            f"  export LINKPLANE_ADDRESS={host}:{port}\n"
            "  lpctl accounts list\n"
            "Stop with Ctrl-C.\n"
        )
        await runtime.run_until_signalled()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
