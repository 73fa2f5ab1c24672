"""Fixtures of the client tests: one scripted fake server per session, fresh state per test.

The fake (`linkplane_fake.FakeServer`) runs in a thread with its own event loop, so the async
client (on pytest's session loop), the blocking client and `lpctl` subprocesses all reach it
over real gRPC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from linkplane.client import AsyncClient, Backoff, Client, ClientConfig
from tests.client.linkplane_fake import Backend, FakeServer

FAST = Backoff(initial=0.01, maximum=0.05, multiplier=2.0, jitter=0.2)


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeServer]:
    server = FakeServer().start()
    yield server
    server.stop()


@pytest.fixture
def backend(fake_server: FakeServer) -> Backend:
    """The fake's state, reset before each test; dev accounts are pre-registered as the
    dev server does (with the `dev-*` labels the demo reads)."""
    fresh = Backend()
    fake_server.call(lambda: _reset(fake_server, fresh))
    return fake_server.backend


def _reset(server: FakeServer, fresh: Backend) -> None:
    server.backend.__dict__.update(fresh.__dict__)
    server.backend.register(
        "default",
        "111111111111",
        {
            "dev-vpc-id": "vpc-provider",
            "dev-subnet-ids": "subnet-p1_subnet-p2",
            "dev-security-group-id": "sg-provider",
        },
    )
    server.backend.register(
        "default",
        "222222222222",
        {
            "dev-vpc-id": "vpc-consumer",
            "dev-subnet-ids": "subnet-c1_subnet-c2",
            "dev-security-group-id": "sg-consumer",
        },
    )


@pytest.fixture
def config(fake_server: FakeServer) -> ClientConfig:
    return ClientConfig(
        address=fake_server.address,
        default_timeout=5.0,
        retry_backoff=FAST,
        poll_backoff=FAST,
        watch_backoff=FAST,
    )


@pytest.fixture
async def aclient(config: ClientConfig, backend: Backend) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(config) as client:
        yield client


@pytest.fixture
def client(config: ClientConfig, backend: Backend) -> Iterator[Client]:
    with Client(config) as sync_client:
        yield sync_client
