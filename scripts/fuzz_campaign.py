"""Fuzz campaign against a running linkplane server: random and mutated requests to every RPC.

    uv run python scripts/fuzz_campaign.py --address 127.0.0.1:50051 --requests 10000

Requests are generated from the service descriptors (so a new RPC or field is fuzzed without
editing this file): every string field draws from adversarial values (NUL and other control
characters, over-long strings, deeply nested filters and JSON, non-canonical request ids,
valid-looking names), every number from extremes, and a share of the requests are raw bytes
(random, truncated or bit-flipped serializations) sent with an identity serializer. It prints
the count per status code, a sample of every INTERNAL/UNKNOWN answer and the server's health
once done, and exits 1 when there is any such answer (those codes mean a linkplane bug, never
bad input) or health is not SERVING. Health and reflection are fuzzed with the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import descriptor, descriptor_pool, message_factory
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2  # noqa: F401 - puts it in the default pool

from linkplane.server.api import authz
from linkplane.server.api import server as api_server
from linkplane.v1 import (
    account_pb2,
    account_service_pb2,
    connection_pb2,
    consumer_service_pb2,
    provider_service_pb2,
    service_pb2,
)

# Every service the server registers: linkplane's, and the anonymous health and reflection.
SERVICES = tuple(
    descriptor_pool.Default().FindServiceByName(name)
    for name in (*api_server.SERVICE_NAMES, *authz.EXEMPT_SERVICES)
)
PROJECT = f"fuzz-{uuid.uuid4().hex[:8]}"  # a project of this run's own
ACCOUNTS = ("111111111111", "222222222222")
BUGS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
Field = Any  # a FieldDescriptor: the upb and pure-Python classes differ to the type checker


def adversarial_strings(rng: random.Random) -> list[str]:
    """Values that broke, or could break, a layer between gRPC and Postgres."""
    request_id = str(uuid.uuid4())
    return [
        "",
        "a\x00",
        "\x00",
        "x\x01\x7f\x1b[31m",
        "line\nbreak",
        "\ud7ff\ufffd\U0001f600",
        "a" * 64,
        "a" * 300,
        "x" * 5000,
        "(" * 300 + "state = ACTIVE" + ")" * 300,
        "NOT " * 200 + "state = ACTIVE",
        "labels = x",
        'display_name = "a\x00"',
        "state = ACTIVE AND labels.team = payments",
        "done = true",
        'target = "projects/fuzz/services/a"',
        '{"a":' + "[" * 3000 + "]" * 3000 + "}",
        '{"Version": "2012-10-17", "Statement": []}',
        '{"a": ' + "9" * 5000 + "}",
        "-" * 40 + uuid.uuid4().hex,
        request_id,
        request_id.upper(),
        "{" + request_id + "}",
        "urn:uuid:" + request_id,
        uuid.uuid4().hex,
        f"projects/{PROJECT}",
        f"projects/{PROJECT}/accounts/{rng.choice(ACCOUNTS)}",
        f"projects/{PROJECT}/services/svc-a",
        f"projects/{PROJECT}/connections/conn-a",
        "projects/" + "p" * 63 + "/services/" + "s" * 63,
        "operations/" + "o" * 64,
        "operations/" + uuid.uuid4().hex,
        "operations/a\x00",
        "operations",
        "us-east-1",
        "us-" + "east" * 20 + "-1",
        "vpc-0123456789abcdef0",
        "subnet-0123456789abcdef0",
        "sg-0123456789abcdef0",
        "vpce-0123456789abcdef0",
        "arn:aws:iam::111111111111:root",
        "arn:aws:iam::111111111111:role/" + "r" * 64,
        "com.amazonaws.us-east-1.sqs",
        "*",
        "10.0.0.1",
        "i-0123456789abcdef0",
        "eyJhIjoiYiJ9",
        "team",
        "payments",
    ]


def random_string(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return rng.choice(adversarial_strings(rng))
    length = rng.choice((1, 5, 20, 70, 300))
    alphabet = rng.choice(("\x00\x01\x02\t\n\x1f\x7f\x85", "abc-_/.= ()\"'\\", "é✓\U0001f600"))
    return "".join(rng.choice(alphabet) for _ in range(length))


INTEGERS = (descriptor.FieldDescriptor.TYPE_INT32, descriptor.FieldDescriptor.TYPE_INT64)
INT_EXTREMES = (0, 1, -1, 2, 65535, 65536, 2**31 - 1, -(2**31), 2**62, -(2**62))


def fill(message: Message, rng: random.Random, depth: int = 0) -> None:
    """Set a random subset of `message`'s fields to random or adversarial values."""
    for fd in message.DESCRIPTOR.fields:
        if rng.random() < 0.35:
            continue
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            target = getattr(message, fd.name)
            for _ in range(rng.randint(0, 3)):
                key_fd = fd.message_type.fields_by_name["key"]
                value_fd = fd.message_type.fields_by_name["value"]
                key = scalar(key_fd, rng)
                if value_fd.message_type is not None:
                    fill(target[key], rng, depth + 1)
                else:
                    target[key] = scalar(value_fd, rng)
        elif fd.is_repeated:
            target = getattr(message, fd.name)
            for _ in range(rng.choice((0, 1, 2, 3, 20))):
                if fd.message_type is not None:
                    if depth < 6:
                        fill(target.add(), rng, depth + 1)
                else:
                    target.append(scalar(fd, rng))
        elif fd.message_type is not None:
            if depth < 6:
                fill(getattr(message, fd.name), rng, depth + 1)
                getattr(message, fd.name).SetInParent()
        else:
            # a value out of the field's range: the raw-bytes requests cover those
            with contextlib.suppress(ValueError, TypeError):
                setattr(message, fd.name, scalar(fd, rng))


def scalar(fd: Field, rng: random.Random) -> Any:
    kind = fd.type
    if kind == descriptor.FieldDescriptor.TYPE_STRING:
        return random_string(rng)
    if kind == descriptor.FieldDescriptor.TYPE_BYTES:
        return rng.randbytes(rng.choice((0, 3, 40)))
    if kind == descriptor.FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if kind == descriptor.FieldDescriptor.TYPE_ENUM:
        numbers = [v.number for v in fd.enum_type.values] if fd.enum_type else [0]
        return rng.choice([*numbers, 99, -1, 2**31 - 1])
    if kind in (descriptor.FieldDescriptor.TYPE_DOUBLE, descriptor.FieldDescriptor.TYPE_FLOAT):
        return rng.choice((0.0, -1.5, 1e300, float("inf"), float("nan")))
    value = rng.choice(INT_EXTREMES)
    unsigned = kind in (
        descriptor.FieldDescriptor.TYPE_UINT32,
        descriptor.FieldDescriptor.TYPE_UINT64,
        descriptor.FieldDescriptor.TYPE_FIXED32,
        descriptor.FieldDescriptor.TYPE_FIXED64,
    )
    return abs(value) if unsigned else value


def valid_string(name: str, method: str, rng: random.Random) -> str:
    """A plausible value for a string field named `name`, so one bad field is what gets tested."""
    account = f"projects/{PROJECT}/accounts/{rng.choice(ACCOUNTS)}"
    collection = next(
        (c for c in ("services", "connections", "accounts") if c[:-1].title() in method), ""
    )
    by_name: dict[str, Callable[[], str]] = {
        "parent": lambda: (
            f"projects/{PROJECT}/services/svc-a"
            if method == "ListServiceConnections"
            else ("operations" if "Operation" in method else f"projects/{PROJECT}")
        ),
        "name": lambda: (
            f"operations/{uuid.uuid4().hex}"
            if "Operation" in method
            else f"projects/{PROJECT}/{collection or 'services'}/"
            + (rng.choice(ACCOUNTS) if collection == "accounts" else "svc-a")
        ),
        "service": lambda: f"projects/{PROJECT}/services/svc-a",
        "provider_account": lambda: account,
        "consumer_account": lambda: account,
        "account_id": lambda: f"{rng.randrange(10**12):012d}",
        "region": lambda: "us-east-1",
        "vpc_id": lambda: f"vpc-{rng.getrandbits(68):017x}",
        "subnet_ids": lambda: f"subnet-{rng.getrandbits(68):017x}",
        "security_group_ids": lambda: f"sg-{rng.getrandbits(68):017x}",
        "endpoint_ids": lambda: f"vpce-{rng.getrandbits(68):017x}",
        "request_id": lambda: str(uuid.uuid4()),
        "service_id": lambda: f"svc-{rng.getrandbits(40):010x}",
        "connection_id": lambda: f"conn-{rng.getrandbits(40):010x}",
        "id": lambda: "10.0.0.1",
        "allowed_principals": lambda: ACCOUNTS[1],
        "principal": lambda: ACCOUNTS[1],
        "filter": lambda: rng.choice(("", "state = ACTIVE", 'labels.team = "x"')),
        "page_token": lambda: "",
        "policy_document": lambda: '{"Statement": []}',
        "etag": lambda: "",
        "paths": lambda: "display_name",
    }
    return by_name.get(name, lambda: "fuzz")()


def fill_valid(message: Message, method: str, rng: random.Random, depth: int = 0) -> None:
    """Plausible values everywhere; a oneof gets its first member."""
    seen_oneofs: set[str] = set()
    for fd in message.DESCRIPTOR.fields:
        if fd.containing_oneof is not None:
            if fd.containing_oneof.name in seen_oneofs or rng.random() < 0.5:
                continue
            seen_oneofs.add(fd.containing_oneof.name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            getattr(message, fd.name)["team"] = "fuzz"
        elif fd.message_type is not None:
            if depth >= 6 or fd.message_type.full_name.startswith("google.protobuf."):
                continue
            child = getattr(message, fd.name).add() if fd.is_repeated else getattr(message, fd.name)
            fill_valid(child, method, rng, depth + 1)
            child.SetInParent()
        elif fd.type == descriptor.FieldDescriptor.TYPE_STRING:
            value = valid_string(fd.name, method, rng)
            if fd.is_repeated:
                getattr(message, fd.name).append(value)
            else:
                setattr(message, fd.name, value)
        elif fd.type in INTEGERS and not fd.is_repeated:
            setattr(message, fd.name, 443 if "port" in fd.name else 0)


def leaves(message: Message, path: str = "") -> list[tuple[Message, Field, str]]:
    """Every scalar field of `message` and its set sub-messages, with its path."""
    out: list[tuple[Message, Field, str]] = []
    for fd in message.DESCRIPTOR.fields:
        where = f"{path}{fd.name}"
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            out.append((message, fd, where))
        elif fd.message_type is not None:
            children = (
                getattr(message, fd.name)
                if fd.is_repeated
                else ([getattr(message, fd.name)] if message.HasField(fd.name) else [])
            )
            for child in children:
                out += leaves(child, f"{where}.")
        else:
            out.append((message, fd, where))
    return out


def spoil(message: Message, rng: random.Random) -> str:
    """Give one or two fields of a plausible request an adversarial value; their paths."""
    spoiled = []
    candidates = leaves(message)
    for owner, fd, where in rng.sample(candidates, min(len(candidates), rng.choice((1, 1, 2)))):
        if fd.message_type is not None:  # a map: an adversarial key or value
            target = getattr(owner, fd.name)
            if (
                fd.message_type.fields_by_name["value"].type
                == descriptor.FieldDescriptor.TYPE_STRING
            ):
                target[random_string(rng)] = random_string(rng)
        elif fd.is_repeated:
            getattr(owner, fd.name).append(scalar(fd, rng))
        else:
            try:
                setattr(owner, fd.name, scalar(fd, rng))
            except (ValueError, TypeError):
                continue
        spoiled.append(where)
    return ",".join(spoiled)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Random bytes, or a valid serialization truncated, bit-flipped or spliced."""
    choice = rng.random()
    if choice < 0.25 or not data:
        return rng.randbytes(rng.randint(1, 64))
    if choice < 0.5:
        return data[: rng.randint(0, len(data) - 1)]
    if choice < 0.8:
        raw = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        return bytes(raw)
    # a length-delimited field claiming far more bytes than follow
    return data + bytes([0x0A, 0xFF, 0xFF, 0xFF, 0x0F]) + rng.randbytes(8)


@dataclass
class Method:
    path: str
    request_class: type[Message]
    server_streaming: bool
    client_streaming: bool = False


@dataclass
class Tally:
    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    bugs: list[str] = field(default_factory=list)
    health_after: str = ""  # the server's overall health once the campaign is over


def methods() -> list[Method]:
    out = []
    for service in SERVICES:
        for method in service.methods:
            request_class = message_factory.GetMessageClass(method.input_type)
            out.append(
                Method(
                    f"/{service.full_name}/{method.name}",
                    request_class,
                    method.server_streaming,
                    method.client_streaming,
                )
            )
    return out


def identity(value: bytes) -> bytes:
    return value


async def send(channel: grpc.aio.Channel, method: Method, payload: bytes) -> grpc.StatusCode:
    try:
        if method.client_streaming:  # reflection: one request, the first answer
            both: Any = channel.stream_stream(
                method.path, request_serializer=identity, response_deserializer=identity
            )(iter([payload]), timeout=5.0)
            async for _ in both:
                break
            both.cancel()
            return grpc.StatusCode.OK
        if method.server_streaming:
            stream: Any = channel.unary_stream(
                method.path, request_serializer=identity, response_deserializer=identity
            )(payload, timeout=1.0)
            async for _ in stream:
                break
            stream.cancel()
            return grpc.StatusCode.OK
        unary: Callable[..., Any] = channel.unary_unary(
            method.path, request_serializer=identity, response_deserializer=identity
        )
        await unary(payload, timeout=10.0)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def prepare(channel: grpc.aio.Channel) -> None:
    """Accounts, a service and a connection that the plausible names refer to, so requests
    get past the existence checks to the code behind them."""
    parent = f"projects/{PROJECT}"
    steps: list[tuple[str, Message]] = [
        (
            "/linkplane.v1.AccountService/RegisterAccount",
            account_service_pb2.RegisterAccountRequest(
                parent=parent, account_id=account_id, account=account_pb2.Account()
            ),
        )
        for account_id in ACCOUNTS
    ]
    subnet = "subnet-0123456789abcdef0"
    steps.append(
        (
            "/linkplane.v1.ProviderService/PublishService",
            provider_service_pb2.PublishServiceRequest(
                parent=parent,
                service_id="svc-a",
                service=service_pb2.Service(
                    provider_account=f"{parent}/accounts/{ACCOUNTS[0]}",
                    region="us-east-1",
                    load_balancer=service_pb2.LoadBalancer(
                        managed=service_pb2.ManagedLoadBalancer(
                            subnet_ids=[subnet],
                            listeners=[service_pb2.Listener(port=443)],
                            targets=[service_pb2.Target(id="10.0.0.1")],
                        )
                    ),
                    allowed_principals=[ACCOUNTS[1]],
                ),
            ),
        )
    )
    steps.append(
        (
            "/linkplane.v1.ConsumerService/CreateConnection",
            consumer_service_pb2.CreateConnectionRequest(
                parent=parent,
                connection_id="conn-a",
                connection=connection_pb2.Connection(
                    service=f"{parent}/services/svc-a",
                    consumer_account=f"{parent}/accounts/{ACCOUNTS[1]}",
                    region="us-east-1",
                    vpc_id="vpc-0123456789abcdef0",
                    subnet_ids=[subnet],
                ),
            ),
        )
    )
    for path, request in steps:
        call = channel.unary_unary(
            path, request_serializer=identity, response_deserializer=identity
        )
        await call(request.SerializeToString(), timeout=10.0)


async def campaign(address: str, total: int, seconds: float, seed: int, parallel: int) -> Tally:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    all_methods = methods()
    tally = Tally()
    deadline = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(address) as channel:
        await prepare(channel)
        queue: asyncio.Queue[tuple[Method, bytes, str] | None] = asyncio.Queue(parallel * 2)

        async def worker() -> None:
            while (item := await queue.get()) is not None:
                method, payload, shape = item
                code = await send(channel, method, payload)
                tally.codes[code.name] += 1
                if code in BUGS and len(tally.bugs) < 200:
                    tally.bugs.append(f"{code.name} {method.path} {shape} {payload[:160]!r}")

        workers = [asyncio.create_task(worker()) for _ in range(parallel)]
        for _ in range(total):
            if time.monotonic() > deadline:
                break
            method = rng.choice(all_methods)
            request = method.request_class()
            if rng.random() < 0.6:
                fill_valid(request, method.path.rsplit("/", 1)[1], rng)
                shape = "spoiled:" + spoil(request, rng)
            else:
                fill(request, rng)
                shape = "random"
            payload = request.SerializeToString()
            if rng.random() < 0.15:
                payload, shape = mutate(payload, rng), "bytes"
            await queue.put((method, payload, shape))
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
        health = health_pb2_grpc.HealthStub(channel)
        answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=10.0)
        tally.health_after = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1:50051")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=600.0, help="stop generating after this")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args()
    started = time.monotonic()
    tally = asyncio.run(
        campaign(args.address, args.requests, args.seconds, args.seed, args.parallel)
    )
    elapsed = time.monotonic() - started
    sent = sum(tally.codes.values())
    print(f"{sent} requests in {elapsed:.1f} s (seed {args.seed})")
    for code, count in tally.codes.most_common():
        print(f"  {code:<20} {count}")
    for line in tally.bugs[:40]:
        print("BUG", line)
    print(f"health after: {tally.health_after}")
    bugs = any(tally.codes[c.name] for c in BUGS)
    return 1 if bugs or tally.health_after != "SERVING" else 0


if __name__ == "__main__":
    sys.exit(main())
