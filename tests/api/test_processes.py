"""`linkplane-server serve --processes N`: N API processes on one port, stopped together."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from linkplane.v1 import provider_service_pb2, provider_service_pb2_grpc

pytestmark = pytest.mark.heavy(seconds=25)

# Generous: starting Python processes on a busy 2-core machine takes tens of seconds.
START_SECONDS = 240.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def children(pid: int) -> list[int]:
    return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env)


def gone(pid: int) -> bool:
    """Exited (no such process, or a zombie nobody reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def listening_pids(port: int, candidates: list[int]) -> set[int]:
    """Which of `candidates` hold a listening socket on `port` (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    holders = set()
    for pid in candidates:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                holders.add(pid)
    return holders


async def test_processes_share_the_port_and_stop_together(database_url, project):
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {
        **os.environ,
        "LINKPLANE_DATABASE_URL": database_url,
        "LINKPLANE_ROLE": "api",
        "LINKPLANE_PAGE_TOKEN_SECRET": secrets.token_urlsafe(16),
        "LINKPLANE_AUTH_TOKENS": json.dumps({"t": "alice"}),
        "LINKPLANE_ADMINS": json.dumps(["alice"]),
        "LINKPLANE_LOG_LEVEL": "warning",
        "LINKPLANE_SHUTDOWN_GRACE_SECONDS": "1",
    }
    command = [
        str(Path(sys.executable).parent / "linkplane-server"),
        "serve",
        "--listen",
        address,
        "--processes",
        "3",
    ]
    parent = start(command, env)
    try:
        # Every process serves: wait until three hold the listening socket, and answer.
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert parent.poll() is None, "serve --processes exited"
            pids = [parent.pid, *children(parent.pid)]
            if len(pids) == 3 and len(listening_pids(port, pids)) == 3:
                break
            assert time.monotonic() < deadline, f"listening: {listening_pids(port, pids)}"
            await asyncio.sleep(0.5)
        # Separate connections (SO_REUSEPORT spreads connections, not calls): each answers.
        for _ in range(6):
            async with grpc.aio.insecure_channel(
                address, options=[("grpc.use_local_subchannel_pool", 1)]
            ) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                while True:
                    reply = await health.Check(
                        health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=60
                    )
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                    await asyncio.sleep(0.5)
                listed = await provider_service_pb2_grpc.ProviderServiceStub(channel).ListServices(
                    provider_service_pb2.ListServicesRequest(parent=f"projects/{project}"),
                    metadata=(("authorization", "Bearer t"),),
                    timeout=60,
                )
                assert list(listed.services) == []

        # One API process dies: the group stops (exit status 1), the others with it, so a
        # supervisor restarts it whole instead of running it short of a process.
        os.kill(pids[1], signal.SIGKILL)
        assert await asyncio.to_thread(parent.wait, 120) == 1
        assert gone(pids[2]), f"API process {pids[2]} outlived serve"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
