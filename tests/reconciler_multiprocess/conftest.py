"""Fixtures for multi-process reconciler tests: workers in their own OS processes.

`linkplane-server serve --role worker` runs as a subprocess (so it can be SIGKILLed, and so
two of them can share one Postgres); the API runs in the test process with role API (it
reconciles nothing), and so does the simulator, which the workers reach over HTTP. The
database is a fresh one for each test, so nothing left by other tests is reconciled here. One
simulator per process (moto), hence package scope.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from linkplane.server.config import Role, Settings
from linkplane.server.runtime import Runtime
from linkplane.sim import server as sim_server
from tests.support import databases, runtimes, simulator
from tests.support.api import Api

TIME_SCALE = 100.0
LEASE_SECONDS = 2.0


@pytest.fixture(scope="package")
def sim() -> Iterator[sim_server.SimHandle]:
    yield from simulator.running(TIME_SCALE)


@pytest.fixture(scope="package")
def networks(sim: sim_server.SimHandle) -> dict[str, dict[str, Any]]:
    return simulator.seed_networks(sim)


@pytest.fixture
def own_database_url(database_server: databases.DatabaseServer) -> Iterator[str]:
    """A fresh, migrated database on the test Postgres for each test: the workers a test spawns
    reconcile every row they find, and a backlog left by an earlier test (the shared-limits
    test leaves 120 settled connections) would compete with this test's work (in CI, 9 of 20
    connections of the two-worker test were still CREATING after 60 s)."""
    with database_server.fresh("linkplane_mp") as url:
        yield url


@pytest.fixture
async def api_plane(own_database_url: str, networks: Any) -> AsyncIterator[Runtime]:
    settings = Settings(listen="127.0.0.1:0", role=Role.API, shutdown_grace_seconds=1.0)
    async with runtimes.running(settings, own_database_url) as runtime:
        yield runtime


@pytest.fixture
async def api_channel(api_plane: Runtime) -> AsyncIterator[grpc.aio.Channel]:
    async with runtimes.channel_to(api_plane) as channel:
        yield channel


@pytest.fixture
def api(api_channel: grpc.aio.Channel) -> Api:
    return Api(api_channel)


class Worker:
    """One `linkplane-server serve --role worker` process; restartable, killable."""

    def __init__(
        self,
        name: str,
        database_url: str,
        sim: sim_server.SimHandle,
        logdir: Path,
        *,
        lease_seconds: float = LEASE_SECONDS,
    ):
        self.name = name
        self.log_path = logdir / f"{name}.jsonl"
        self.env = {
            **os.environ,
            "LINKPLANE_DATABASE_URL": database_url,
            "LINKPLANE_ROLE": "worker",
            "LINKPLANE_LISTEN": "127.0.0.1:0",
            "LINKPLANE_AWS_ENDPOINT_URL": sim.endpoint_url,
            "LINKPLANE_AWS_ACCESS_KEY_ID": "test",
            "LINKPLANE_AWS_SECRET_ACCESS_KEY": "test",
            "LINKPLANE_AWS_TIME_SCALE": str(TIME_SCALE),
            "LINKPLANE_TRANSITIONAL_RESYNC_SECONDS": "0.2",
            "LINKPLANE_RESYNC_INTERVAL_SECONDS": "2",
            "LINKPLANE_LEASE_SECONDS": str(lease_seconds),
            "LINKPLANE_WORKERS": "8",
            "LINKPLANE_LOG_FORMAT": "json",
            "LINKPLANE_LOG_LEVEL": "debug",
            "LINKPLANE_SHUTDOWN_GRACE_SECONDS": "1",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "linkplane.server.cli", "serve", "--role", "worker"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL: no shutdown, leases left to expire, requests possibly half done."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def events(self, event: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if f'"{event}"' not in line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by SIGKILL
            if record.get("event") == event:
                found.append(record)
        return found


@pytest.fixture
def spawn(own_database_url: str, sim: sim_server.SimHandle) -> Iterator[Any]:
    """`spawn(name)` starts a worker process (`spawn(name, lease_seconds=...)` with a lease
    of its own); all are stopped after the test."""
    logdir = Path(tempfile.mkdtemp(prefix="linkplane-workers-"))
    workers: list[Worker] = []

    def make(name: str, *, lease_seconds: float = LEASE_SECONDS) -> Worker:
        worker = Worker(name, own_database_url, sim, logdir, lease_seconds=lease_seconds)
        worker.start()
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop()
