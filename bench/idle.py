"""What settled resources cost: a server holding N AVAILABLE connections, doing nothing else.

Not a test. Starts Postgres (embedded, unless --database-url), the simulator in a process of
its own (`converge.RemoteSim`, time-scaled so that creating the fleet is quick) and
`linkplane-server serve --role all` in a process of its own. It creates N connections over K
consumer accounts, waits until all are AVAILABLE and every Operation is done, restarts the
server with every reconciler setting at its default (the default resync interval is what issue
13's figure is about), lets it settle for --settle seconds, then measures over --seconds:

- the server process's CPU time (user + system, from /proc), as a share of one core;
- the AWS calls it made, by action (from the simulator's request log), per minute;
- the Connection passes actually run (leases claimed: each takes a new fencing token), next to
  the one resync per connection and interval expected.

    uv run python bench/idle.py --connections 1000 --accounts 4 --seconds 600
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import rig
from converge import PER_VPC, PROVIDER, RemoteSim, consumer_accounts

from linkplane.server.config import Settings
from linkplane.v1 import (
    account_service_pb2_grpc,
    consumer_service_pb2,
    consumer_service_pb2_grpc,
    provider_service_pb2,
    provider_service_pb2_grpc,
)


def start_server(
    database_url: str, sim: RemoteSim, port: int, time_scale: float, *, building: bool
) -> Any:
    """`serve --role all` in its own process. While ``building`` the fleet, resources that
    change resync every 0.2 s instead of 5 s (a quick build); the server that is measured runs
    with every reconciler setting at its default (the transitional period also sets how long an
    account's DescribeVpcEndpoints snapshot serves settled resources' passes)."""
    env = {
        **os.environ,
        "LINKPLANE_DATABASE_URL": database_url,
        "LINKPLANE_ROLE": "all",
        "LINKPLANE_LISTEN": f"127.0.0.1:{port}",
        "LINKPLANE_AWS_ENDPOINT_URL": sim.endpoint_url,
        "LINKPLANE_AWS_ACCESS_KEY_ID": "bench",
        "LINKPLANE_AWS_SECRET_ACCESS_KEY": "bench",
        "LINKPLANE_AWS_TIME_SCALE": str(time_scale),
        "LINKPLANE_LOG_LEVEL": "warning",
        "LINKPLANE_PAGE_TOKEN_SECRET": secrets.token_urlsafe(32),
    }
    if building:
        env["LINKPLANE_TRANSITIONAL_RESYNC_SECONDS"] = "0.2"
    log = Path(tempfile.mkdtemp(prefix="linkplane-idle-")) / "server.log"
    print(f"server log: {log}")
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "linkplane.server.cli", "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def count_where(database_url: str, query: str, *args: object) -> int:
    connection = await asyncpg.connect(
        database_url.replace("postgresql+asyncpg://", "postgresql://")
    )
    try:
        return int(await connection.fetchval(query, *args))
    finally:
        await connection.close()


async def build_fleet(
    channel: grpc.aio.Channel, sim: RemoteSim, args: argparse.Namespace, database_url: str
) -> str:
    """Register, publish, create N connections; return the project once all are settled."""
    project = f"idle-{uuid.uuid4().hex[:8]}"
    parent = f"projects/{project}"
    accounts = consumer_accounts(args.accounts)
    per_account = math.ceil(args.connections / args.accounts)
    provider_net = sim.seed_network(PROVIDER, "10.1.0.0/16")
    vpcs = {
        account: [
            sim.seed_network(account, f"10.{10 + a}.{v * 16}.0/20")
            for v in range(math.ceil(per_account / PER_VPC))
        ]
        for a, account in enumerate(accounts)
    }
    accounts_api = account_service_pb2_grpc.AccountServiceStub(channel)
    await rig.register(accounts_api, parent, [PROVIDER, *accounts])
    await provider_service_pb2_grpc.ProviderServiceStub(channel).PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=parent,
            service_id="idle",
            service=rig.auto_accepting_service(parent, PROVIDER, provider_net, accounts),
        )
    )
    consumer = consumer_service_pb2_grpc.ConsumerServiceStub(channel)
    gate = asyncio.Semaphore(16)

    async def create(index: int) -> None:
        account = accounts[index % len(accounts)]
        network = vpcs[account][(index // len(accounts)) // PER_VPC]
        async with gate:
            await consumer.CreateConnection(
                consumer_service_pb2.CreateConnectionRequest(
                    parent=parent,
                    connection_id=f"c{index:04d}",
                    connection=rig.connection(parent, "idle", account, network),
                )
            )

    await asyncio.gather(*(create(i) for i in range(args.connections)))

    async def settled() -> bool:
        available = await count_where(
            database_url,
            "SELECT count(*) FROM connections WHERE project = $1 AND state = 'AVAILABLE' "
            "AND NOT reconciling",
            project,
        )
        running = await count_where(database_url, "SELECT count(*) FROM operations WHERE NOT done")
        return available == args.connections and running == 0

    for _ in range(int(args.timeout)):  # polled once a second, from Postgres
        if await settled():
            return project
        await asyncio.sleep(1.0)
    raise TimeoutError(f"the fleet did not settle in {args.timeout:.0f} s")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with rig.fresh_database(args.database_url) as url:
        return await _run_on(args, url)


async def _run_on(args: argparse.Namespace, url: str) -> dict[str, Any]:
    sim = RemoteSim(args.time_scale)
    server = None
    try:
        port = rig.free_port()
        server = start_server(url, sim, port, args.time_scale, building=True)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            async with asyncio.timeout(60):
                await channel.channel_ready()
            started = time.monotonic()
            await build_fleet(channel, sim, args, url)
            built = time.monotonic() - started
        server.terminate()
        server.wait(timeout=30)
        server = start_server(url, sim, port, args.time_scale, building=False)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            async with asyncio.timeout(60):
                await channel.channel_ready()
            await asyncio.sleep(args.settle)
            claims = "SELECT coalesce(sum(fencing_token), 0) FROM connections"
            claims_before = await count_where(url, claims)
            cpu_before, wall_before, since = (
                rig.cpu_seconds(server.pid),
                time.monotonic(),
                time.time(),
            )
            await asyncio.sleep(args.seconds)
            cpu = rig.cpu_seconds(server.pid) - cpu_before
            # Every claim of a lease takes a new fencing token: the passes actually run.
            passes = await count_where(url, claims) - claims_before
            wall, until = time.monotonic() - wall_before, time.time()
            calls = Counter(
                r["action"] for r in sim.requests() if since <= float(r["time"]) < until
            )
        interval = Settings.model_fields["resync_interval_seconds"].default
        minutes = wall / 60.0
        return {
            "connections": args.connections,
            "accounts": args.accounts,
            "resync_interval_seconds": interval,
            "fleet_built_seconds": round(built, 1),
            "window_seconds": round(wall, 1),
            "server_cpu_seconds": round(cpu, 2),
            "server_core_share_percent": round(100.0 * cpu / wall, 2),
            "resyncs_expected_per_minute": round(args.connections * 60.0 / interval, 1),
            "connection_passes_per_minute": round(passes / minutes, 1),
            "aws_calls_per_minute": round(sum(calls.values()) / minutes, 1),
            "aws_calls_per_minute_by_action": {
                action: round(n / minutes, 1) for action, n in calls.most_common()
            },
        }
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--accounts", type=int, default=4)
    parser.add_argument("--time-scale", type=float, default=100.0, help="to build the fleet")
    parser.add_argument("--seconds", type=float, default=600.0, help="measured window")
    parser.add_argument("--settle", type=float, default=10.0, help="pause before measuring")
    parser.add_argument(
        "--database-url",
        default=None,
        help="Postgres to make the run's own database on (rig.fresh_database)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="to build the fleet")
    result = asyncio.run(run(parser.parse_args()))
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
