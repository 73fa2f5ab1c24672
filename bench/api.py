"""API speed: linkplane's calls against a bare grpc.aio server, same generator, same run.

Not a test. Creates a fresh database on the Postgres at --database-url (default:
LINKPLANE_TEST_DATABASE_URL, else an embedded Postgres), migrates it, and starts, each as its
own subprocess on loopback:

  - `bare`: a grpc.aio server with one trivial method (GetService answering a constant
    Service), the ceiling any Python gRPC server on this machine can reach;
  - `lp`: `linkplane-server serve` (role api, static bearer tokens, the caller a bootstrap
    administrator, so authentication and authorization run on every call) — and, with
    `--processes 1,2`, one such server per process count.

It seeds the database through the API (two accounts, 60 services) and with SQL (1,200 settled
connections in the measured project, 5,000 in another), then, for every concurrency C and
every call, drives each server in turn with the same closed-loop generator (C tasks over
--channels connections, each task sending its next call as soon as its last one answered) for
--seconds, in this process. Several connections let `serve --processes N` spread the load:
SO_REUSEPORT balances connections, not calls. Targets alternate within each cell (bare, lp,
bare, lp for --rounds 2), so load from other work on a shared machine hits them alike. Prints
RPS, p50 and p99 per (call, C, target), RPS as a ratio of bare's in the same cell, and the
time to list all 5,000 connections (page 1000) through each linkplane server.

    uv run --frozen python bench/api.py --quick
    uv run --frozen python bench/api.py --seconds 3 --rounds 2 --processes 1,2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import rig
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rig import free_port

from linkplane.server.domain import specs
from linkplane.server.storage import changes
from linkplane.v1 import (
    account_pb2,
    account_service_pb2,
    account_service_pb2_grpc,
    consumer_service_pb2,
    consumer_service_pb2_grpc,
    provider_service_pb2,
    provider_service_pb2_grpc,
    service_pb2,
)

PROVIDER = "111111111111"
CONSUMER = "222222222222"
SERVICES = 60
CONNECTIONS = 1200
BIG_LIST = 5000
METADATA = (("authorization", "Bearer bench-token"),)
H2LOAD_CONNECTIONS = 16
PROFILE = os.environ.get("BENCH_PROFILE", "")
CALLS = (
    "GetService",
    "GetConnection",
    "ListServices50",
    "ListConnections50",
    "ListConnections1000",
    "RegisterAccount",
    "RegisterAccountRequestId",
    "PublishValidateOnly",
    "PublishService",
)


@dataclass
class Samples:
    """Latencies (seconds) of one (call, C, target) cell over its rounds."""

    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    errors: int = 0
    codes: set[str] = field(default_factory=set)

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes and their children so far (Linux /proc)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in parts[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def postgres_pids() -> list[int]:
    """The local Postgres's processes (all of them: its backends serve every server here)."""
    pids = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "postgres":
                pids.append(int(entry.name))
    return pids


def per_call(cpu: float, samples: Samples) -> float:
    return 1000 * cpu / len(samples.latencies) if samples.latencies else 0.0


async def wait_serving(address: str, seconds: float = 180.0) -> None:
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


# ---- the bare server (run as `bench/api.py --bare PORT`) -------------------------------------


class BareProvider(provider_service_pb2_grpc.ProviderServiceServicer):
    """One trivial method: a constant Service, no I/O."""

    def __init__(self) -> None:
        self.answer = service_pb2.Service(name="projects/bare/services/bare", display_name="bare")

    async def GetService(  # noqa: N802 - the generated servicer's name
        self, request: provider_service_pb2.GetServiceRequest, context: Any
    ) -> service_pb2.Service:
        return self.answer


async def bare_server(port: int) -> None:
    from grpc_health.v1 import health  # noqa: PLC0415 - only the bare subprocess needs it

    server = grpc.aio.server()
    provider_service_pb2_grpc.add_ProviderServiceServicer_to_server(BareProvider(), server)
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


# ---- seeding ---------------------------------------------------------------------------------


def service_message(project: str) -> service_pb2.Service:
    return service_pb2.Service(
        provider_account=f"projects/{project}/accounts/{PROVIDER}",
        region="us-east-1",
        display_name="bench service",
        labels={"team": "bench"},
        load_balancer=service_pb2.LoadBalancer(
            managed=service_pb2.ManagedLoadBalancer(
                subnet_ids=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                listeners=[service_pb2.Listener(port=443)],
                targets=[service_pb2.Target(id="10.0.1.10")],
            )
        ),
        allowed_principals=[CONSUMER],
    )


async def seed_api(address: str, project: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        accounts = account_service_pb2_grpc.AccountServiceStub(channel)
        for account_id in (PROVIDER, CONSUMER):
            await accounts.RegisterAccount(
                account_service_pb2.RegisterAccountRequest(
                    parent=f"projects/{project}",
                    account_id=account_id,
                    account=account_pb2.Account(display_name="bench"),
                ),
                metadata=METADATA,
            )
        provider = provider_service_pb2_grpc.ProviderServiceStub(channel)
        for i in range(SERVICES):
            await provider.PublishService(
                provider_service_pb2.PublishServiceRequest(
                    parent=f"projects/{project}",
                    service_id=f"bench-{i:03d}",
                    service=service_message(project),
                ),
                metadata=METADATA,
            )


def connection_row(project: str, i: int, now: datetime) -> tuple[Any, ...]:
    """A settled (AVAILABLE) connection as the reconciler leaves it: spec, status with DNS
    entries, ENIs and a condition."""
    consumer = f"projects/{project}/accounts/{CONSUMER}"
    spec = specs.ConnectionSpec(
        consumer_account=consumer,
        region="us-east-1",
        service_name="com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0",
        vpc_id="vpc-0123456789abcdef0",
        subnet_ids=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        security_group_ids=["sg-0123456789abcdef0"],
        private_dns_enabled=True,
        display_name=f"conn {i}",
        labels={"team": "bench"},
    )
    endpoint = f"vpce-{i:017x}"
    stamp = now.isoformat().replace("+00:00", "Z")
    status = {
        "endpoint_id": endpoint,
        "resolved_service_name": spec.service_name,
        "dns_entries": [
            {
                "dns_name": f"{endpoint}-{z}.vpce-svc.us-east-1.vpce.amazonaws.com",
                "hosted_zone_id": "Z7HUB22UULQXV",
            }
            for z in ("a", "b")
        ],
        "network_interfaces": [
            {
                "network_interface_id": f"eni-{i:08x}{n:09x}",
                "subnet_id": f"subnet-0123456789abcdef{n}",
                "availability_zone": f"us-east-1{'ab'[n]}",
                "private_ip_address": f"10.0.{n}.{i % 250 + 4}",
                "ipv6_addresses": [],
            }
            for n in range(2)
        ],
        "conditions": [
            {
                "type": "Ready",
                "status": "TRUE",
                "reason": "Available",
                "message": "the endpoint is available",
                "observed_generation": 1,
                "last_transition_time": stamp,
            }
        ],
    }
    return (
        uuid.uuid4(),
        f"projects/{project}/connections/conn-{i:05d}",
        project,
        spec.display_name,
        json.dumps(spec.labels),
        json.dumps(specs.to_json(spec)),
        "AVAILABLE",
        json.dumps(status),
        now,
        consumer,
        spec.service_name,
        spec.vpc_id,
        endpoint,
    )


async def seed_connections(url: str, project: str, count: int) -> None:
    now = datetime.now(UTC)
    rows = [connection_row(project, i, now) for i in range(count)]
    connection = await asyncpg.connect(changes.asyncpg_dsn(url))
    try:
        await connection.executemany(
            """
            INSERT INTO connections (uid, name, project, display_name, labels, spec, generation,
              observed_generation, state, reconciling, status, revision, create_time,
              update_time, fencing_token, next_reconcile_at, attempts, consumer_account, region,
              service, service_name, vpc_id, endpoint_id)
            VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, 1, 1, $7, false, $8::jsonb, 1,
              $9::timestamptz, $9, 0, $9::timestamptz + interval '1 day', 0, $10, 'us-east-1',
              '', $11, $12, $13)
            """,
            rows,
        )
    finally:
        await connection.close()


# ---- the generator ---------------------------------------------------------------------------


Call = Callable[[grpc.aio.Channel, int], Awaitable[Any]]


def calls(project: str) -> dict[str, Call]:
    """One coroutine factory per measured call; `n` makes writes unique."""
    run = uuid.uuid4().hex[:6]
    get_service = provider_service_pb2.GetServiceRequest(
        name=f"projects/{project}/services/bench-007"
    )
    get_connection = consumer_service_pb2.GetConnectionRequest(
        name=f"projects/{project}/connections/conn-00007"
    )
    list_services = provider_service_pb2.ListServicesRequest(
        parent=f"projects/{project}", page_size=50
    )
    list_50 = consumer_service_pb2.ListConnectionsRequest(
        parent=f"projects/{project}", page_size=50
    )
    list_1000 = consumer_service_pb2.ListConnectionsRequest(
        parent=f"projects/{project}", page_size=1000
    )
    validate = provider_service_pb2.PublishServiceRequest(
        parent=f"projects/{project}",
        service_id="bench-preview",
        service=service_message(project),
        validate_only=True,
    )

    def provider(channel: grpc.aio.Channel) -> Any:
        return provider_service_pb2_grpc.ProviderServiceStub(channel)

    def consumer(channel: grpc.aio.Channel) -> Any:
        return consumer_service_pb2_grpc.ConsumerServiceStub(channel)

    def register(channel: grpc.aio.Channel, n: int, request_id: str = "") -> Awaitable[Any]:
        # A fresh 12-digit AWS account id per call: each call registers a new account.
        digits = int(run, 16) % 10**6 * 10**6 + n % 10**6
        return account_service_pb2_grpc.AccountServiceStub(channel).RegisterAccount(
            account_service_pb2.RegisterAccountRequest(
                parent=f"projects/{project}",
                account_id=f"{3 * 10**11 + digits % 10**11:012d}",
                account=account_pb2.Account(display_name="bench"),
                request_id=request_id,
            ),
            metadata=METADATA,
        )

    def publish(channel: grpc.aio.Channel, n: int) -> Awaitable[Any]:
        return provider(channel).PublishService(
            provider_service_pb2.PublishServiceRequest(
                parent=f"projects/{project}",
                service_id=f"pub-{run}-{n}",
                service=service_message(project),
            ),
            metadata=METADATA,
        )

    return {
        "GetService": lambda c, n: provider(c).GetService(get_service, metadata=METADATA),
        "GetConnection": lambda c, n: consumer(c).GetConnection(get_connection, metadata=METADATA),
        "ListServices50": lambda c, n: provider(c).ListServices(list_services, metadata=METADATA),
        "ListConnections50": lambda c, n: consumer(c).ListConnections(list_50, metadata=METADATA),
        "ListConnections1000": lambda c, n: consumer(c).ListConnections(
            list_1000, metadata=METADATA
        ),
        "RegisterAccount": register,
        # As linkplane.client sends it: with a request_id, which the server records.
        "RegisterAccountRequestId": lambda c, n: register(c, n, str(uuid.uuid4())),
        "PublishValidateOnly": lambda c, n: provider(c).PublishService(validate, metadata=METADATA),
        "PublishService": publish,
    }


@dataclass(frozen=True)
class Fixed:
    """A call whose request never changes (a read), as h2load sends it: path and message."""

    path: str
    request: Message


def fixed_calls(project: str) -> dict[str, Fixed]:
    """The reads h2load can drive (it repeats one request body; writes must differ per call)."""
    provider, consumer = "/linkplane.v1.ProviderService/", "/linkplane.v1.ConsumerService/"
    return {
        "GetService": Fixed(
            provider + "GetService",
            provider_service_pb2.GetServiceRequest(name=f"projects/{project}/services/bench-007"),
        ),
        "GetConnection": Fixed(
            consumer + "GetConnection",
            consumer_service_pb2.GetConnectionRequest(
                name=f"projects/{project}/connections/conn-00007"
            ),
        ),
        "ListServices50": Fixed(
            provider + "ListServices",
            provider_service_pb2.ListServicesRequest(parent=f"projects/{project}", page_size=50),
        ),
    }


BARE_FIXED = Fixed(
    "/linkplane.v1.ProviderService/GetService",
    provider_service_pb2.GetServiceRequest(name="projects/bare/services/bare"),
)


def bare_call(channel: grpc.aio.Channel, n: int) -> Awaitable[Any]:
    return provider_service_pb2_grpc.ProviderServiceStub(channel).GetService(
        provider_service_pb2.GetServiceRequest(name="projects/bare/services/bare"),
        metadata=METADATA,
    )


counter = itertools.count()


async def drive(
    channels: list[grpc.aio.Channel],
    call: Call,
    concurrency: int,
    seconds: float,
    samples: Samples,
) -> None:
    """Closed loop: `concurrency` tasks, each sending its next call when the last answered;
    task i uses connection i mod len(channels)."""
    warm_until = time.perf_counter() + min(0.3, seconds / 4)
    while time.perf_counter() < warm_until:
        await asyncio.gather(*(call(channel, next(counter)) for channel in channels))
    start = time.perf_counter()
    stop = start + seconds

    async def worker(channel: grpc.aio.Channel) -> None:
        while (started := time.perf_counter()) < stop:
            try:
                await call(channel, next(counter))
            except grpc.aio.AioRpcError as error:
                samples.errors += 1
                samples.codes.add(error.code().name)
                continue
            samples.latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker(channels[i % len(channels)]) for i in range(concurrency)))
    samples.wall += time.perf_counter() - start


async def drive_h2load(
    target: Target, fixed: Fixed, concurrency: int, seconds: float, samples: Samples
) -> None:
    """Closed loop by h2load (nghttp2's HTTP/2 load generator, in C): `concurrency` streams
    over min(concurrency, 16) connections, each sending the same framed request again as
    soon as its last one answered. A generator that needs a small share of a core leaves the
    rest to the servers, which the Python generator cannot on 2 cores.

    h2load sees HTTP statuses only, and gRPC errors are HTTP 200. An answer is counted as a
    success only by its bytes: the run's DATA bytes must be those of every answer being the
    expected message (an error is a trailers-only answer, without DATA)."""
    channel = target.channels[0]
    expected = await grpc_call(channel, fixed)
    body = fixed.request.SerializeToString()
    # Up to 16 connections: SO_REUSEPORT balances connections, and 4 of them may well land
    # 3:1 (or 4:0) on two processes.
    clients = min(concurrency, H2LOAD_CONNECTIONS)
    streams = -(-concurrency // clients)
    with tempfile.TemporaryDirectory(prefix="linkplane-h2load-") as scratch:
        request_file, log_file = Path(scratch) / "request", Path(scratch) / "log"
        request_file.write_bytes(b"\0" + len(body).to_bytes(4, "big") + body)
        common = [
            f"--clients={clients}",
            f"--max-concurrent-streams={streams}",
            "--threads=1",
            f"--data={request_file}",
            "--header=content-type: application/grpc",
            "--header=te: trailers",
            f"--header={METADATA[0][0]}: {METADATA[0][1]}",
            f"http://{target.address}{fixed.path}",
        ]
        # Warm up in a run of its own: the measured run's byte count must cover its calls only.
        await h2load(f"--requests={max(200, 20 * concurrency)}", *common)
        output = await h2load(
            f"--duration={round(seconds * 1000)}ms", f"--log-file={log_file}", *common
        )
        latencies = [
            int(line.split("\t")[2]) / 1e6
            for line in log_file.read_text().splitlines()
            if line.split("\t")[1] == "200"
        ]
    done = int(re.search(r"(\d+) done", output).group(1))  # type: ignore[union-attr]
    data = int(re.search(r"\((\d+)\) data", output).group(1))  # type: ignore[union-attr]
    answered = min(done, data // (5 + len(expected)))
    samples.errors += done - answered
    if done != answered:
        samples.codes.add("not the expected answer")
    samples.latencies += latencies[:answered]
    samples.wall += seconds


async def h2load(*arguments: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "h2load", *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output = (await process.communicate())[0].decode()
    if process.returncode != 0:
        raise RuntimeError(f"h2load failed:\n{output}")
    return output


async def grpc_call(channel: grpc.aio.Channel, fixed: Fixed) -> bytes:
    """One call of `fixed` through grpc, which must succeed: its answer's bytes."""
    method = channel.unary_unary(
        fixed.path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=None
    )
    answer: bytes = await method(fixed.request, metadata=METADATA)
    return answer


async def list_all(channel: grpc.aio.Channel, project: str) -> tuple[float, int]:
    """Seconds to list every connection of `project` at page size 1000, and how many."""
    stub = consumer_service_pb2_grpc.ConsumerServiceStub(channel)
    token, total = "", 0
    started = time.perf_counter()
    while True:
        reply = await stub.ListConnections(
            consumer_service_pb2.ListConnectionsRequest(
                parent=f"projects/{project}", page_size=1000, page_token=token
            ),
            metadata=METADATA,
            timeout=60,
        )
        total += len(reply.connections)
        token = reply.next_page_token
        if not token:
            return time.perf_counter() - started, total


# ---- the run -------------------------------------------------------------------------------


@dataclass
class Target:
    label: str
    address: str
    process: subprocess.Popen[bytes]
    channels: list[grpc.aio.Channel] = field(default_factory=list)


def start_linkplane(
    url: str, processes: int, log_dir: Path, *, pool_size: int, source: str | None = None
) -> Target:
    """`linkplane-server serve`; with `source`, that checkout's server package instead of this
    one (PYTHONPATH before the installed one), to compare two versions in one run."""
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        **({"PYTHONPATH": source} if source else {}),
        "LINKPLANE_DATABASE_URL": url,
        "LINKPLANE_LISTEN": address,
        "LINKPLANE_ROLE": "api",
        "LINKPLANE_PAGE_TOKEN_SECRET": "bench-page-token-secret",
        "LINKPLANE_AUTH_TOKENS": json.dumps({"bench-token": "bench"}),
        "LINKPLANE_ADMINS": json.dumps(["bench"]),
        "LINKPLANE_LOG_LEVEL": "warning",
        "LINKPLANE_MAX_CONCURRENT_CALLS_PER_PRINCIPAL": "1000",
        # A shared Postgres has max_connections for everyone: each process holds up to 2x this.
        "LINKPLANE_DATABASE_POOL_SIZE": str(pool_size),
    }
    command = [str(Path(sys.executable).parent / "linkplane-server"), "serve"]
    if PROFILE and source is None and processes == 1:
        # BENCH_PROFILE=FILE: the `lp` server under cProfile, written when it stops.
        command = [sys.executable, "-m", "cProfile", "-o", PROFILE, *command]
    if processes > 1:
        command += ["--processes", str(processes)]
    label = "before" if source else f"lp*{processes}" if processes > 1 else "lp"
    with (log_dir / f"{label}.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Target(label, address, process)


def start_bare() -> Target:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--bare", str(port)])
    return Target("bare", f"127.0.0.1:{port}", process)


def process_tree(pid: int) -> list[int]:
    """`pid` and its children (the API processes of `--processes N`)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        kids = [int(x) for x in children.read_text().split()]
    except OSError:
        kids = []
    return [pid, *(p for k in kids for p in process_tree(k))]


async def run(args: argparse.Namespace) -> None:
    async with rig.fresh_database(args.database_url) as url:
        await _run_on(args, url)


async def _run_on(args: argparse.Namespace, url: str) -> None:
    log_dir = Path(tempfile.mkdtemp(prefix="linkplane-bench-"))
    targets: list[Target] = []
    try:
        targets.append(start_bare())
        if args.before_src:
            targets.append(
                start_linkplane(url, 1, log_dir, pool_size=args.pool_size, source=args.before_src)
            )
        for count in args.processes:
            targets.append(start_linkplane(url, count, log_dir, pool_size=args.pool_size))
        for target in targets:
            await wait_serving(target.address)
            # A local subchannel pool each: separate TCP connections, not one shared.
            target.channels = [
                grpc.aio.insecure_channel(
                    target.address, options=[("grpc.use_local_subchannel_pool", 1)]
                )
                for _ in range(args.channels)
            ]
        project, big = f"bench-{uuid.uuid4().hex[:6]}", f"big-{uuid.uuid4().hex[:6]}"
        await seed_api(targets[-1].address, project)
        await seed_connections(url, project, CONNECTIONS)
        await seed_connections(url, big, BIG_LIST)
        table = calls(project)
        fixed_table = fixed_calls(project)
        if args.generator == "h2load" and set(args.calls) - set(fixed_table):
            raise SystemExit(f"h2load drives only {', '.join(fixed_table)}")
        print(
            f"servers: {', '.join(f'{t.label} {t.address}' for t in targets)}; "
            f"a database of its own; {args.seconds} s per cell and "
            f"target, {args.rounds} round(s), generator {args.generator}, "
            f"load average {os.getloadavg()[0]:.1f}; "
            f"server logs in {log_dir}"
        )
        header = f"{'call':20} {'C':>3} " + " ".join(
            f"{t.label + ' RPS':>10} {'p50':>7} {'p99':>7}" for t in targets
        )
        print(header + "   " + " ".join(f"{t.label + '/bare':>9}" for t in targets[1:]))
        results: dict[str, Any] = {}
        for concurrency in args.concurrency:
            for call_name in args.calls:
                cell = {t.label: Samples() for t in targets}
                cpu = {t.label: 0.0 for t in targets}
                database_cpu = {t.label: 0.0 for t in targets}
                for _ in range(args.rounds):
                    for target in targets:
                        call = bare_call if target.label == "bare" else table[call_name]
                        pids = process_tree(target.process.pid)
                        before = cpu_seconds(pids)
                        database_pids = postgres_pids()
                        database_before = cpu_seconds(database_pids)
                        if args.generator == "h2load":
                            fixed = BARE_FIXED if target.label == "bare" else fixed_table[call_name]
                            await drive_h2load(
                                target, fixed, concurrency, args.seconds, cell[target.label]
                            )
                        else:
                            await drive(
                                target.channels, call, concurrency, args.seconds, cell[target.label]
                            )
                        cpu[target.label] += cpu_seconds(pids) - before
                        database_cpu[target.label] += cpu_seconds(database_pids) - database_before
                bare = cell["bare"]
                line = f"{call_name:20} {concurrency:3d} " + " ".join(
                    f"{cell[t.label].rps:10.0f} {cell[t.label].pct(0.5):7.2f} "
                    f"{cell[t.label].pct(0.99):7.2f}"
                    for t in targets
                )
                ratios = " ".join(f"{cell[t.label].rps / bare.rps:9.3f}" for t in targets[1:])
                errors = sum(s.errors for s in cell.values())
                codes = sorted({c for s in cell.values() for c in s.codes})
                print(line + "   " + ratios + (f"   ({errors} errors: {codes})" if errors else ""))
                if args.cpu:
                    print(
                        f"{'  CPU ms per call':24} "
                        + " ".join(
                            f"{t.label}: server {per_call(cpu[t.label], cell[t.label]):.3f}, "
                            f"postgres {per_call(database_cpu[t.label], cell[t.label]):.3f};"
                            for t in targets
                        )
                    )
                results[f"{call_name}/C{concurrency}"] = {
                    label: {
                        "rps": s.rps,
                        "p50_ms": s.pct(0.5),
                        "p99_ms": s.pct(0.99),
                        "errors": s.errors,
                        "server_cpu_cores": cpu[label] / s.wall if s.wall else 0.0,
                        "postgres_cpu_cores": database_cpu[label] / s.wall if s.wall else 0.0,
                    }
                    for label, s in cell.items()
                }
        for target in targets[1:]:
            await list_all(target.channels[0], big)  # warm
            timings, total = [], 0
            for _ in range(3):
                seconds, total = await list_all(target.channels[0], big)
                timings.append(seconds)
            print(
                f"{target.label}: listing all {total} connections (page 1000): "
                f"best {min(timings):.3f} s, worst {max(timings):.3f} s of 3"
            )
            results[f"list_all/{target.label}"] = {"best_s": min(timings), "worst_s": max(timings)}
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))  # noqa: ASYNC240
    finally:
        for target in targets:
            for channel in target.channels:
                await channel.close(None)
            target.process.terminate()
        for target in targets:
            try:
                target.process.wait(30)
            except subprocess.TimeoutExpired:
                target.process.kill()
                target.process.wait()


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--bare":
        asyncio.run(bare_server(int(sys.argv[2])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--seconds", type=float, default=3.0, help="per cell, target and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64]
    )
    parser.add_argument(
        "--pool-size", type=int, default=5, help="LINKPLANE_DATABASE_POOL_SIZE of each server"
    )
    parser.add_argument("--channels", type=int, default=4, help="connections per server")
    parser.add_argument("--calls", type=lambda s: s.split(","), default=list(CALLS))
    parser.add_argument(
        "--processes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1],
        help="linkplane servers to run side by side, by `--processes` count (e.g. 1,2)",
    )
    parser.add_argument(
        "--before-src",
        default=None,
        help="also run a `before` server from this server/src (e.g. a `git archive` of an "
        "earlier commit), side by side",
    )
    parser.add_argument(
        "--generator",
        choices=("python", "h2load"),
        default="python",
        help="the closed loop: this process's grpc.aio tasks, or h2load (nghttp2-client; "
        "reads only), which leaves the servers nearly both cores",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="also print each target's CPU per call: its processes', and the local Postgres's",
    )
    parser.add_argument("--quick", action="store_true", help="1 s cells, 1 round")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 1.0, 1
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
