"""`serve --processes N`: more API processes on the same port, to use every core.

One Python process serves gRPC on one core at most (the GIL). With N > 1, the process that
`serve` starts runs its Runtime as usual (the API, and the workers when its role has them) and
starts N - 1 API-only processes listening on the same address; gRPC opens its listening socket
with SO_REUSEPORT (api/server.py), so the kernel spreads incoming connections over them. Each
process has its own database pool, change feed and health status, as separate replicas would.

The group lives and dies together: SIGTERM/SIGINT to the first process stops the others
(gracefully: they get SIGTERM and drain), and an API process that exits on its own stops the
group with an error, so that whatever supervises `serve` restarts it whole instead of running
short of processes unnoticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog

from linkplane.server.runtime import Runtime, stop_on_signals

log = structlog.get_logger("linkplane.processes")


async def serve_with(
    runtime: Runtime, command: list[str], extra: int, stop: asyncio.Event | None = None
) -> None:
    """Run the started `runtime` alongside `extra` processes running `command`, until a signal
    (`stop`, from `runtime.stop_on_signals`) or until one of them exits."""
    if stop is None:
        stop = stop_on_signals()
    children = [await asyncio.create_subprocess_exec(*command) for _ in range(extra)]
    log.info("linkplane.processes", api_processes=extra + 1, pids=[c.pid for c in children])
    signalled = asyncio.create_task(stop.wait())
    exits = [asyncio.create_task(child.wait()) for child in children]
    done, _ = await asyncio.wait([signalled, *exits], return_when=asyncio.FIRST_COMPLETED)
    # On Ctrl-C the whole terminal process group gets SIGINT: children ending then is no failure.
    failed = (
        [] if stop.is_set() else [c.pid for c, e in zip(children, exits, strict=True) if e in done]
    )
    if failed:
        log.error("linkplane.process_exited", pids=failed, codes=[c.returncode for c in children])
    for child in children:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
    await runtime.stop()
    grace = runtime.settings.shutdown_grace_seconds + 10.0
    for child in children:
        try:
            async with asyncio.timeout(grace):
                await child.wait()
        except TimeoutError:
            child.kill()
            await child.wait()
    signalled.cancel()
    if failed:
        raise SystemExit(1)
