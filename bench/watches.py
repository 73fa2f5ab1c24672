"""GetService latency with 1,000 open Watch streams against none, while services change.

Not a test. Creates a fresh database on the Postgres at --database-url (default:
LINKPLANE_TEST_DATABASE_URL, else an embedded Postgres), migrates it and starts
`linkplane-server serve` as a subprocess on loopback (role api, static tokens, a process cap of
--streams watch streams). Then, in one run:

  1. baseline: GetService at a steady --get-rate per second (open loop) for --seconds while a
     writer changes one of the project's services --rate times a second (UpdateService);
  2. a separate watcher process opens --streams WatchServices streams on that project (100 per
     principal, so ten principals), and waits until every one is SYNCED;
  3. one more stream (an eleventh principal) must be refused: RESOURCE_EXHAUSTED + RetryInfo;
  4. the same measurement as 1 with the streams open; every change must reach every stream.

Steps 1, 2 and 4 repeat --rounds times, alternating, so the load others put on a shared machine
hits both modes alike. Prints GetService p50/p95/p99 per phase and over all rounds (target: p99
< 50 ms with 1,000 streams), the server's CPU and the load average, the changes made and the
watch events delivered. Bounded in count and time, loopback only.

    uv run --frozen python bench/watches.py --streams 1000 --seconds 10 --rate 5 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import rig
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rig import cpu_seconds, free_port

from linkplane.v1 import (
    account_pb2,
    account_service_pb2,
    account_service_pb2_grpc,
    common_pb2,
    provider_service_pb2,
    provider_service_pb2_grpc,
    service_pb2,
)

PROVIDER = "111111111111"
PER_PRINCIPAL = 100
PROFILE = os.environ.get("BENCH_PROFILE", "").split()
SERVICES = 20


def token(principal: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {principal}-token"),)


@dataclass
class Samples:
    """GetService latencies (seconds) of one phase, and the changes made meanwhile."""

    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    changes: int = 0
    server_cpu: float = 0.0  # CPU seconds the server used during the phase
    load: str = ""  # the machine's 1-minute load average at the end (2 cores here)

    def merge(self, other: Samples) -> None:
        self.latencies += other.latencies
        self.wall += other.wall
        self.changes += other.changes
        self.server_cpu += other.server_cpu
        self.load = other.load

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    def line(self, label: str) -> str:
        rate = len(self.latencies) / self.wall
        return (
            f"{label:22} {len(self.latencies):6d} calls {rate:7.0f}/s   p50 {self.pct(0.50):7.2f}"
            f"   p95 {self.pct(0.95):7.2f}   p99 {self.pct(0.99):7.2f}   max "
            f"{self.pct(1.0):7.2f} ms   {self.changes} changes   server CPU "
            f"{self.server_cpu / self.wall:4.2f} cores   load {self.load}"
        )


async def wait_serving(address: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"server at {address} not serving after {seconds} s")
            await asyncio.sleep(0.2)


async def setup(address: str, project: str) -> list[str]:
    names = []
    async with grpc.aio.insecure_channel(address) as channel:
        await account_service_pb2_grpc.AccountServiceStub(channel).RegisterAccount(
            account_service_pb2.RegisterAccountRequest(
                parent=f"projects/{project}",
                account_id=PROVIDER,
                account=account_pb2.Account(display_name="bench"),
            ),
            metadata=token("writer"),
        )
        provider = provider_service_pb2_grpc.ProviderServiceStub(channel)
        for i in range(SERVICES):
            await provider.PublishService(
                provider_service_pb2.PublishServiceRequest(
                    parent=f"projects/{project}",
                    service_id=f"bench-{i}",
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
                ),
                metadata=token("writer"),
            )
            names.append(f"projects/{project}/services/bench-{i}")
    return names


async def measure(
    address: str, names: list[str], args: argparse.Namespace, server_pid: int
) -> Samples:
    """GetService at a steady `get_rate`/s (open loop: each call starts on schedule, whatever
    the others do) while one writer changes services at `rate`/s."""
    samples = Samples()
    phase = uuid.uuid4().hex[:6]  # every change of every phase is a real change
    async with grpc.aio.insecure_channel(address) as channel:
        stub = provider_service_pb2_grpc.ProviderServiceStub(channel)
        await stub.GetService(
            provider_service_pb2.GetServiceRequest(name=names[0]), metadata=token("prober")
        )
        start = time.perf_counter()
        stop = start + args.seconds

        async def probe(i: int) -> None:
            request = provider_service_pb2.GetServiceRequest(name=names[i % len(names)])
            started = time.perf_counter()
            await stub.GetService(request, metadata=token("prober"), timeout=30)
            samples.latencies.append(time.perf_counter() - started)

        async def prober() -> None:
            calls: list[asyncio.Task[None]] = []
            while (at := start + len(calls) / args.get_rate) < stop:
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                calls.append(asyncio.create_task(probe(len(calls))))
            await asyncio.gather(*calls)

        async def writer() -> None:
            while (at := start + samples.changes / args.rate) < stop:
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                name = names[samples.changes % len(names)]
                await stub.UpdateService(
                    provider_service_pb2.UpdateServiceRequest(
                        service=service_pb2.Service(
                            name=name, display_name=f"{phase} {samples.changes}"
                        ),
                        update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
                    ),
                    metadata=token("writer"),
                    timeout=30,
                )
                samples.changes += 1

        cpu = cpu_seconds(server_pid)
        await asyncio.gather(writer(), prober())
        samples.wall = time.perf_counter() - start
        samples.server_cpu = cpu_seconds(server_pid) - cpu
        samples.load = f"{os.getloadavg()[0]:.1f}"
    return samples


async def refused_stream(address: str, project: str) -> str:
    """One stream over the process cap: its status, reason and retry hint."""
    async with grpc.aio.insecure_channel(address) as channel:
        stream = provider_service_pb2_grpc.ProviderServiceStub(channel).WatchServices(
            provider_service_pb2.WatchServicesRequest(parent=f"projects/{project}"),
            metadata=token("extra"),
        )
        try:
            async with asyncio.timeout(30):
                await stream.read()
        except grpc.aio.AioRpcError as error:
            reason, delay = "", ""
            trailers: Any = error.trailing_metadata() or ()
            for key, value in trailers:
                if key == "grpc-status-details-bin":
                    for detail in status_pb2.Status.FromString(value).details:
                        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                            info = error_details_pb2.ErrorInfo()
                            detail.Unpack(info)
                            reason = f"{info.reason} scope={info.metadata.get('scope')}"
                        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                            retry = error_details_pb2.RetryInfo()
                            detail.Unpack(retry)
                            delay = f"RetryInfo {retry.retry_delay.seconds}s"
            return f"{error.code().name} ({reason}, {delay})"
        return "ACCEPTED (the cap did not hold)"


# The watcher process: holds the streams, counts what arrives, answers on stdin/stdout.


async def watchers(address: str, project: str, count: int) -> None:
    principals = [f"w{i}" for i in range((count + PER_PRINCIPAL - 1) // PER_PRINCIPAL)]
    channels = [grpc.aio.insecure_channel(address) for _ in principals]
    received = [0]
    synced = [0]
    failures: list[str] = []

    async def follow(i: int) -> None:
        principal = principals[i // PER_PRINCIPAL]
        stub = provider_service_pb2_grpc.ProviderServiceStub(channels[i // PER_PRINCIPAL])
        stream = stub.WatchServices(
            provider_service_pb2.WatchServicesRequest(
                parent=f"projects/{project}", send_initial=True
            ),
            metadata=token(principal),
        )
        try:
            async for response in stream:
                if response.type == common_pb2.EVENT_TYPE_SYNCED:
                    synced[0] += 1
                elif response.type == common_pb2.EVENT_TYPE_MODIFIED:
                    received[0] += 1
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                failures.append(f"{error.code().name}: {error.details()}")

    tasks = [asyncio.create_task(follow(i)) for i in range(count)]
    started = time.perf_counter()
    while synced[0] < count and not failures:  # noqa: ASYNC110 - counted, not signalled
        await asyncio.sleep(0.1)
    print(
        json.dumps(
            {"synced": synced[0], "seconds": time.perf_counter() - started, "failures": failures}
        ),
        flush=True,
    )
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if line.strip() == "COUNT":
            print(json.dumps({"received": received[0], "failures": failures}), flush=True)
        else:
            break
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close(None)


class WatcherProcess:
    def __init__(self, address: str, project: str, count: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--watchers", address, project, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    async def reply(self, command: str | None = None) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        if command is not None:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        line = await asyncio.to_thread(self.process.stdout.readline)
        if not line:
            raise RuntimeError("the watcher process ended")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            assert self.process.stdin is not None
            self.process.stdin.write("STOP\n")
            self.process.stdin.flush()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def delivered(watcher: WatcherProcess, expected: int, seconds: float = 60.0) -> int:
    """Watch events received once delivery settles (or after `seconds`)."""
    deadline = time.monotonic() + seconds
    while True:
        received = int((await watcher.reply("COUNT"))["received"])
        if received >= expected or time.monotonic() > deadline:
            return received
        await asyncio.sleep(0.5)


async def run(args: argparse.Namespace) -> None:
    async with rig.fresh_database(args.database_url) as url:
        await _run_on(args, url)


async def _run_on(args: argparse.Namespace, url: str) -> None:
    server: subprocess.Popen[bytes] | None = None
    log_file = Path(tempfile.mkdtemp(prefix="linkplane-bench-")) / "server.log"
    try:
        port = free_port()
        address = f"127.0.0.1:{port}"
        principals = ["writer", "prober", "extra"] + [
            f"w{i}" for i in range((args.streams + PER_PRINCIPAL - 1) // PER_PRINCIPAL)
        ]
        env = {
            **os.environ,
            "LINKPLANE_DATABASE_URL": url,
            "LINKPLANE_LISTEN": address,
            "LINKPLANE_ROLE": "api",
            "LINKPLANE_PAGE_TOKEN_SECRET": secrets.token_urlsafe(32),
            "LINKPLANE_AUTH_TOKENS": json.dumps({f"{p}-token": p for p in principals}),
            "LINKPLANE_ADMINS": json.dumps(principals),
            "LINKPLANE_MAX_STREAMS": str(args.streams),
            "LINKPLANE_MAX_STREAMS_PER_PRINCIPAL": str(PER_PRINCIPAL),
            "LINKPLANE_LOG_LEVEL": "warning",
        }
        with log_file.open("wb") as log:
            server = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited
                [*PROFILE, str(Path(sys.executable).parent / "linkplane-server"), "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        await wait_serving(address)
        project = f"bench-{uuid.uuid4().hex[:8]}"
        names = await setup(address, project)
        print(
            f"linkplane-server serve on {address} (a database of "
            "its own), "
            f"{SERVICES} services; GetService at {args.get_rate:.0f}/s (open loop), "
            f"UpdateService at {args.rate:.0f}/s, {args.seconds:.0f} s per phase"
        )

        idle, loaded = Samples(), Samples()
        for round_ in range(1, args.rounds + 1):
            # Alternating phases, so the load others put on a shared machine hits both alike.
            baseline = await measure(address, names, args, server.pid)
            print(baseline.line(f"[{round_}] 0 streams"))
            idle.merge(baseline)
            watcher = WatcherProcess(address, project, args.streams)
            try:
                opened = await watcher.reply()
                print(
                    f"[{round_}] opened {opened['synced']} streams (all SYNCED) in "
                    f"{opened['seconds']:.1f} s; failures: {len(opened['failures'])} "
                    f"{opened['failures'][:3]}"
                )
                if round_ == 1:
                    refusal = await refused_stream(address, project)
                    print(f"[{round_}] stream {args.streams + 1} (over the cap): {refusal}")
                watcher_cpu = cpu_seconds(watcher.process.pid)
                busy = await measure(address, names, args, server.pid)
                watcher_cpu = cpu_seconds(watcher.process.pid) - watcher_cpu
                print(busy.line(f"[{round_}] {args.streams} streams"))
                print(
                    f"[{round_}] the watcher process (same machine) used "
                    f"{watcher_cpu / busy.wall:4.2f} cores receiving"
                )
                loaded.merge(busy)
                expected = busy.changes * args.streams
                got = await delivered(watcher, expected)
                print(f"[{round_}] watch events delivered: {got} of {expected} (changes x streams)")
            finally:
                watcher.stop()
        print(idle.line("all: 0 streams"))
        print(loaded.line(f"all: {args.streams} streams"))
        verdict = "met" if loaded.pct(0.99) < 50 else "NOT met"
        print(f"target p99 < 50 ms with {args.streams} streams: {verdict}")
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        print(f"(server log: {log_file})")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--watchers":
        asyncio.run(watchers(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", default=None, help="admin Postgres URL")
    parser.add_argument("--streams", type=int, default=1000, help="watch streams (≤ 5,000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase (≤ 120)")
    parser.add_argument("--rate", type=float, default=5.0, help="UpdateService per second")
    parser.add_argument("--rounds", type=int, default=2, help="alternations (≤ 5)")
    parser.add_argument("--get-rate", type=float, default=100.0, help="GetService per second")
    args = parser.parse_args()
    # Bounded load: this runs on shared machines.
    args.streams = max(1, min(args.streams, 5000))
    args.seconds = max(1.0, min(args.seconds, 120.0))
    args.rate = max(0.1, min(args.rate, 50.0))
    args.get_rate = max(1.0, min(args.get_rate, 500.0))
    args.rounds = max(1, min(args.rounds, 5))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
