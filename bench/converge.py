"""How close linkplane gets to AWS's CreateVpcEndpoint limit: N connections over K accounts.

Not a test. Starts Postgres (embedded, unless --database-url), migrates it, starts the
simulator in-process with AWS's throttling buckets on, time-scaled, and a linkplane Runtime with
role ALL; registers a provider and K consumer accounts, publishes one service with an accept
rule for every consumer, creates N connections spread round-robin over the K accounts (several
VPCs each, under the 50-endpoints-per-VPC quota), and measures the wall time until all are
AVAILABLE. It prints that time, the lower bound AWS's CreateVpcEndpoint bucket allows (burst 4,
then 0.3/s per account and Region, divided by the time scale; accounts run in parallel, so the
busiest account's), their ratio, the same bound plus the simulator's pending → available delay
of the last endpoint (no control plane can avoid it), the simulator's throttle count and the
number of failed operations.

    uv run python bench/converge.py --connections 200 --accounts 1
    uv run python bench/converge.py --connections 400 --accounts 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import pathlib
import subprocess
import sys
import time
import urllib.request
import uuid
from typing import Any

import asyncpg
import grpc
import prometheus_client
import rig
from google.longrunning import operations_pb2, operations_pb2_grpc

from linkplane.server import cli, logs
from linkplane.server.config import Role, Settings
from linkplane.server.runtime import Runtime
from linkplane.sim import config as sim_config
from linkplane.sim import server as sim_server
from linkplane.v1 import (
    account_service_pb2_grpc,
    consumer_service_pb2,
    consumer_service_pb2_grpc,
    provider_service_pb2,
    provider_service_pb2_grpc,
)

PROVIDER = "111111111111"
REGION = rig.REGION
PER_VPC = 40
BURST, REFILL = 4, 0.3  # AWS's CreateVpcEndpoint bucket per account and Region


class RemoteSim:
    """`linkplane-sim` in a process of its own, driven through its admin API.

    In-process, moto's request lock and the GIL it shares with linkplane's event loop cap the
    simulator at ~25-30 requests/s on two cores, which then bounds the run instead of AWS's
    bucket. A separate process measures linkplane rather than the rig.
    """

    def __init__(self, time_scale: float) -> None:
        port = rig.free_port()
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "linkplane.sim.cli",
                "--listen",
                f"127.0.0.1:{port}",
                "--time-scale",
                str(time_scale),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self._admin("GET", "health")
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("linkplane-sim did not start") from None
                time.sleep(0.2)

    def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.endpoint_url}/_sim/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def seed_network(self, account_id: str, cidr: str) -> dict[str, Any]:
        result: dict[str, Any] = self._admin(
            "POST",
            "seed-network",
            {"account_id": account_id, "region": REGION, "cidr": cidr, "azs": 2},
        )
        return result

    def throttle_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = self._admin("GET", "throttles")
        return counts

    def creates(self) -> list[float]:
        """Wall-clock times of successful CreateVpcEndpoint calls."""
        log = self._admin("GET", "requests?action=CreateVpcEndpoint&outcome=ok&limit=100000")
        return sorted(float(r["time"]) for r in log)

    def accepts(self) -> list[float]:
        """Wall-clock times of successful AcceptVpcEndpointConnections calls."""
        log = self._admin(
            "GET", "requests?action=AcceptVpcEndpointConnections&outcome=ok&limit=100000"
        )
        return sorted(float(r["time"]) for r in log)

    def count(self, action: str) -> int:
        """How many requests of ``action`` the simulator served (any outcome)."""
        return len(self._admin("GET", f"requests?action={action}&limit=100000"))

    def requests(self) -> list[dict[str, Any]]:
        """The simulator's request log (its last 50,000 requests)."""
        log: list[dict[str, Any]] = self._admin("GET", "requests?limit=100000")
        return log

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class LocalSim:
    """The simulator in this process (`--in-process-sim`), for comparison."""

    def __init__(self, time_scale: float) -> None:
        self.handle = sim_server.start(time_scale=time_scale, throttling=True)
        self.endpoint_url = self.handle.endpoint_url

    def seed_network(self, account_id: str, cidr: str) -> dict[str, Any]:
        return sim_server.seed_network(self.handle, account_id=account_id, cidr=cidr)

    def throttle_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = self.handle.throttle_counts()
        return counts

    def creates(self) -> list[float]:
        return sorted(
            float(str(r["time"]))
            for r in self.handle.requests()
            if r["action"] == "CreateVpcEndpoint" and r["outcome"] == "ok"
        )

    def accepts(self) -> list[float]:
        return sorted(
            float(str(r["time"]))
            for r in self.handle.requests()
            if r["action"] == "AcceptVpcEndpointConnections" and r["outcome"] == "ok"
        )

    def count(self, action: str) -> int:
        return sum(r["action"] == action for r in self.handle.requests())

    def requests(self) -> list[dict[str, Any]]:
        log: list[dict[str, Any]] = self.handle.requests()
        return log

    def stop(self) -> None:
        self.handle.stop()


def consumer_accounts(count: int) -> list[str]:
    return [f"{200000000000 + i * 11111:012d}" for i in range(1, count + 1)]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    logs.configure("console", "warning")
    async with rig.fresh_database(args.database_url) as url:
        return await _run_on(args, url)


async def _run_on(args: argparse.Namespace, url: str) -> dict[str, Any]:
    sim: RemoteSim | LocalSim = (
        LocalSim(args.time_scale) if args.in_process_sim else RemoteSim(args.time_scale)
    )
    runtime = None
    try:
        accounts = consumer_accounts(args.accounts)
        provider_net = sim.seed_network(PROVIDER, "10.1.0.0/16")
        vpcs: dict[str, list[dict[str, Any]]] = {}
        per_account = math.ceil(args.connections / args.accounts)
        for a, account in enumerate(accounts):
            vpcs[account] = [
                sim.seed_network(account, f"10.{10 + a}.{v * 16}.0/20")
                for v in range(math.ceil(per_account / PER_VPC))
            ]
        settings = Settings(
            listen="127.0.0.1:0",
            role=Role.ALL,
            aws_endpoint_url=sim.endpoint_url,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            aws_time_scale=args.time_scale,
            transitional_resync_seconds=max(0.2, 5.0 / args.time_scale),
            resync_interval_seconds=max(5.0, 300.0 / args.time_scale),
            workers=args.workers,
        )
        runtime = Runtime(settings, url)
        port = await runtime.start()
        # As `linkplane-server serve` does: the harness and the server share this process.
        await runtime.load_aws_models()
        cli.freeze_startup_heap()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            return await _drive(args, channel, sim, provider_net, vpcs, per_account, url)
    finally:
        if runtime is not None:
            await runtime.stop()
        sim.stop()


async def _available(database_url: str, project: str) -> int:
    """How many of the project's connections are AVAILABLE, from Postgres directly.

    Polling the server's ListConnections (hundreds of connections, ten times a second) would
    load the server being measured; one COUNT on its own connection costs it nothing.
    """
    connection = await asyncpg.connect(
        database_url.replace("postgresql+asyncpg://", "postgresql://")
    )
    try:
        count = await connection.fetchval(
            "SELECT count(*) FROM connections WHERE project = $1 AND state = 'AVAILABLE'",
            project,
        )
    finally:
        await connection.close()
    return int(count)


async def _drive(
    args, channel, sim, provider_net, vpcs, per_account, database_url
) -> dict[str, Any]:
    project = f"bench-{uuid.uuid4().hex[:8]}"
    parent = f"projects/{project}"
    accounts_api = account_service_pb2_grpc.AccountServiceStub(channel)
    provider = provider_service_pb2_grpc.ProviderServiceStub(channel)
    consumer = consumer_service_pb2_grpc.ConsumerServiceStub(channel)
    operations = operations_pb2_grpc.OperationsStub(channel)
    await rig.register(accounts_api, parent, [PROVIDER, *vpcs])
    service = rig.auto_accepting_service(parent, PROVIDER, provider_net, list(vpcs))
    op = await provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=parent, service_id="bench", service=service
        )
    )
    for _ in range(int(args.timeout * 10)):  # publishing: bounded like the rest
        published = await operations.GetOperation(operations_pb2.GetOperationRequest(name=op.name))
        if published.done:
            break
        await asyncio.sleep(0.1)
    throttled_before = await asyncio.to_thread(sim.throttle_counts)

    accounts = list(vpcs)
    started = time.monotonic()
    started_wall = time.time()
    # A well-behaved client: the server refuses a principal's 65th call in flight
    # (RESOURCE_EXHAUSTED), which 1,000 creates sent at once reach on a busy machine.
    in_flight = asyncio.Semaphore(32)

    async def create(index: int) -> operations_pb2.Operation:
        account = accounts[index % len(accounts)]
        network = vpcs[account][(index // len(accounts)) // PER_VPC]
        async with in_flight:
            return await consumer.CreateConnection(
                consumer_service_pb2.CreateConnectionRequest(
                    parent=parent,
                    connection_id=f"c{index:04d}",
                    connection=rig.connection(parent, "bench", account, network),
                )
            )

    created = await asyncio.gather(*(create(index) for index in range(args.connections)))
    deadline = started + args.timeout
    available = 0
    while time.monotonic() < deadline:
        available = await _available(database_url, project)
        if available == args.connections:
            break
        await asyncio.sleep(0.1)
    elapsed = time.monotonic() - started
    failed = 0
    for operation in created:
        done = await operations.GetOperation(
            operations_pb2.GetOperationRequest(name=operation.name)
        )
        failed += int(done.HasField("error"))
    bound = max(0, per_account - BURST) / REFILL / args.time_scale
    pending = sim_config.SimConfig().delays.endpoint_pending / args.time_scale
    # Which (account, action) was throttled during the run, not only how often.
    throttled_by = {
        f"{account} {action}": count - throttled_before.get(account, {}).get(action, 0)
        for account, actions in (await asyncio.to_thread(sim.throttle_counts)).items()
        for action, count in actions.items()
        if count > throttled_before.get(account, {}).get(action, 0)
    }
    throttled = sum(throttled_by.values())
    creates = [t - started_wall for t in await asyncio.to_thread(sim.creates)]
    accepts = [t - started_wall for t in await asyncio.to_thread(sim.accepts)]
    if args.requests_out:
        # The simulator's whole request log, times relative to the start, for a timeline.
        log = await asyncio.to_thread(sim.requests)
        for entry in log:
            entry["time"] = float(entry["time"]) - started_wall
        await asyncio.to_thread(pathlib.Path(args.requests_out).write_text, json.dumps(log))
    describes = await asyncio.to_thread(sim.count, "DescribeVpcEndpoints")
    # The engine's passes in this process (its Prometheus counter), per kind: what the
    # fleet's convergence asked of the reconcile slots.
    passes: dict[str, float] = {}
    for metric in prometheus_client.REGISTRY.collect():
        if metric.name == "linkplane_reconciles":
            for sample in metric.samples:
                if sample.name == "linkplane_reconciles_total":
                    kind = sample.labels["kind"]
                    passes[kind] = passes.get(kind, 0.0) + sample.value
    return {
        "first_create_at": round(creates[0], 2) if creates else None,
        "last_create_at": round(creates[-1], 2) if creates else None,
        # The tail after the last create: its acceptance, then AWS's provisioning delay.
        "accept_calls": len(accepts),
        "last_accept_at": round(accepts[-1], 2) if accepts else None,
        "connections": args.connections,
        "accounts": args.accounts,
        "time_scale": args.time_scale,
        "workers": args.workers,
        "available": available,
        "seconds": round(elapsed, 2),
        "bound_seconds": round(bound, 2),
        "ratio": round(elapsed / bound, 3) if bound else None,
        "bound_with_provisioning_seconds": round(bound + pending, 2),
        "ratio_with_provisioning": round(elapsed / (bound + pending), 3),
        "throttled": throttled,
        "throttled_by_account_and_action": throttled_by,
        "simulator": "in-process" if args.in_process_sim else "own process",
        "failed_operations": failed,
        # All of the run (publishing included): snapshots, direct reads and filtered searches.
        "describe_vpc_endpoints_per_connection": round(describes / args.connections, 2),
        "connection_passes_per_connection": round(
            passes.get("connection", 0.0) / args.connections, 2
        ),
        "service_passes": int(passes.get("service", 0.0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--accounts", type=int, default=1)
    parser.add_argument("--time-scale", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=16, help="concurrent reconciles")
    parser.add_argument(
        "--database-url",
        default=None,
        help="Postgres to make the run's own database on (rig.fresh_database)",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--requests-out", default=None, help="write the simulator's request log (JSON) here"
    )
    parser.add_argument(
        "--in-process-sim",
        action="store_true",
        help="run the simulator in this process (slower: it then bounds the run)",
    )
    result = asyncio.run(run(parser.parse_args()))
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
