"""``linkplane-sim``: run the simulator as a standalone process.

``linkplane-sim --listen 127.0.0.1:4566 [--time-scale 10] [--config sim.toml]`` serves the
simulated AWS until interrupted. Throttling is on unless the config or ``--no-throttling`` says
otherwise.
"""

import pathlib
import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from linkplane.sim import server

app = typer.Typer(add_completion=False, help="A local AWS for PrivateLink (moto + linkplane.sim).")


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise typer.BadParameter(f"expected HOST:PORT, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


@app.command()
def run(
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on (port 0 = any).")] = (
        "127.0.0.1:4566"
    ),
    time_scale: Annotated[
        float | None, typer.Option(help="Divide delays and multiply refill rates by this.")
    ] = None,
    config: Annotated[
        pathlib.Path | None, typer.Option(help="TOML or JSON config file.", exists=True)
    ] = None,
    throttling: Annotated[
        bool | None, typer.Option("--throttling/--no-throttling", help="AWS throttling.")
    ] = None,
) -> None:
    """Serve the simulated AWS until SIGINT/SIGTERM."""
    host, port = _split_listen(listen)
    handle = server.start(
        host=host, port=port, time_scale=time_scale, config=config, throttling=throttling
    )
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    typer.echo(f"linkplane-sim serving AWS at {handle.endpoint_url} (admin: {handle.admin_url})")
    stopping.wait()
    handle.stop()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
