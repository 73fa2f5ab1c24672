"""What authorization costs: GetService latency with authorization on vs off, C concurrent.

Not a test. Starts Postgres (embedded, unless --database-url), migrates it, and runs two API
Runtimes in this process on the same database: one with authentication off (every caller is the
local administrator; no policy is read) and one with static bearer tokens, where the caller is
an ordinary principal holding roles/linkplane.viewer through the project's IAM policy (so each
call goes through the permission check and the policy cache). The same generator drives both:
C workers each sending GetService back to back, with the same metadata, in alternating rounds
(off, on, off, on, …) so drift on a busy machine hits both alike. Prints per-mode calls/s and
latency percentiles, the on/off ratios, and the cost of the check alone (in process, cached).

    uv run python bench/authz.py --concurrency 16 --calls 4000 --rounds 4
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass, field

import grpc
import rig
from google.iam.v1 import iam_policy_pb2, iam_policy_pb2_grpc, policy_pb2

from linkplane.server import logs
from linkplane.server.api import authz
from linkplane.server.config import Role, Settings
from linkplane.server.runtime import Runtime
from linkplane.v1 import (
    account_pb2,
    account_service_pb2,
    account_service_pb2_grpc,
    provider_service_pb2,
    provider_service_pb2_grpc,
    service_pb2,
)

PROVIDER = "111111111111"
TOKENS = {"root-token": "root", "reader-token": "reader"}
READER = (("authorization", "Bearer reader-token"),)
ROOT = (("authorization", "Bearer root-token"),)


@dataclass
class Samples:
    """Latencies (seconds) and wall time of one mode over all its rounds."""

    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0

    def line(self, label: str) -> str:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

        rate = len(ordered) / self.wall
        return (
            f"{label:14} {rate:8.0f} calls/s   mean {statistics.fmean(ordered) * 1000:6.2f} ms"
            f"   p50 {pct(0.50):6.2f}   p95 {pct(0.95):6.2f}   p99 {pct(0.99):6.2f} ms"
        )


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "listen": "127.0.0.1:0",
        "role": Role.API,
        "shutdown_grace_seconds": 1.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def setup(off_port: int, on_port: int, project: str) -> str:
    """A service to read (created as the local admin) and a viewer binding for `reader`."""
    name = f"projects/{project}/services/bench"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{off_port}") as channel:
        await account_service_pb2_grpc.AccountServiceStub(channel).RegisterAccount(
            account_service_pb2.RegisterAccountRequest(
                parent=f"projects/{project}",
                account_id=PROVIDER,
                account=account_pb2.Account(display_name="bench"),
            )
        )
        await provider_service_pb2_grpc.ProviderServiceStub(channel).PublishService(
            provider_service_pb2.PublishServiceRequest(
                parent=f"projects/{project}",
                service_id="bench",
                service=service_pb2.Service(
                    provider_account=f"projects/{project}/accounts/{PROVIDER}",
                    region="us-east-1",
                    load_balancer=service_pb2.LoadBalancer(
                        managed=service_pb2.ManagedLoadBalancer(
                            subnet_ids=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                            listeners=[service_pb2.Listener(port=443)],
                            targets=[service_pb2.Target(id="10.0.1.10")],
                        )
                    ),
                    allowed_principals=["222222222222"],
                ),
            )
        )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{on_port}") as channel:
        await iam_policy_pb2_grpc.IAMPolicyStub(channel).SetIamPolicy(
            iam_policy_pb2.SetIamPolicyRequest(
                resource=f"projects/{project}",
                policy=policy_pb2.Policy(
                    bindings=[
                        policy_pb2.Binding(role="roles/linkplane.viewer", members=["user:reader"])
                    ]
                ),
            ),
            metadata=ROOT,
        )
    return name


async def round_of(port: int, name: str, concurrency: int, calls: int, into: Samples) -> None:
    """`calls` GetService calls from `concurrency` workers on one channel."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = provider_service_pb2_grpc.ProviderServiceStub(channel)
        request = provider_service_pb2.GetServiceRequest(name=name)
        await stub.GetService(request, metadata=READER)  # connect, warm the caches
        remaining = calls

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                await stub.GetService(request, metadata=READER, timeout=30)
                into.latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        into.wall += time.perf_counter() - started


async def check_cost(runtime: Runtime, name: str, calls: int = 20_000) -> float:
    """Microseconds per Authorizer.check of a GetService request, in process, policy cached."""
    authorizer = authz.Authorizer(runtime.db, admins=["root"], enabled=True, ttl=3600)
    request = provider_service_pb2.GetServiceRequest(name=name)
    method = "/linkplane.v1.ProviderService/GetService"
    await authorizer.check(method, request, "reader")
    started = time.perf_counter()
    for _ in range(calls):
        await authorizer.check(method, request, "reader")
    return (time.perf_counter() - started) / calls * 1e6


async def main(args: argparse.Namespace) -> None:
    logs.configure("console", "warning")
    async with rig.fresh_database(args.database_url) as url:
        off = Runtime(settings(), url)
        on = Runtime(settings(auth_tokens=TOKENS, admins=["root"]), url)
        await off.start()
        await on.start()
        try:
            name = await setup(off.port, on.port, f"bench-{uuid.uuid4().hex[:8]}")
            results = {"off": Samples(), "on": Samples()}
            ports = {"off": off.port, "on": on.port}
            for _ in range(args.rounds):
                for mode in ("off", "on"):
                    await round_of(ports[mode], name, args.concurrency, args.calls, results[mode])
            print(
                f"GetService, C={args.concurrency}, {args.rounds} rounds x {args.calls} calls "
                "per mode, alternating"
            )
            print(results["off"].line("authz off"))
            print(results["on"].line("authz on"))
            off_s, on_s = results["off"], results["on"]
            ratio_mean = statistics.fmean(on_s.latencies) / statistics.fmean(off_s.latencies)
            ratio_rate = (len(off_s.latencies) / off_s.wall) / (len(on_s.latencies) / on_s.wall)
            print(f"on/off: mean latency x{ratio_mean:.3f}, throughput cost x{ratio_rate:.3f}")
            print(f"the check alone (policy cached): {await check_cost(on, name):.1f} us per call")
        finally:
            await on.stop()
            await off.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=None,
        help="Postgres to make the run's own database on (rig.fresh_database)",
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--calls", type=int, default=4000, help="calls per round and mode")
    parser.add_argument("--rounds", type=int, default=4)
    asyncio.run(main(parser.parse_args()))
