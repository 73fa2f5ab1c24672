"""Fixtures for the AWS adapter's tests: a real moto server over HTTP and a virtual clock.

The integration tests talk to moto exactly as to AWS (aiobotocore, SigV4, the query/JSON wire
protocols, STS AssumeRole into other account ids), so they exercise the adapter's real client,
credential and error paths. The throttler tests run on :class:`FakeClock` instead of wall time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
from moto.server import ThreadedMotoServer

from linkplane.server.aws import sessions

T = TypeVar("T")

BASE_ACCOUNT = "123456789012"  # moto's account for credentials it does not know


def _free_port() -> int:
    # ThreadedMotoServer needs a concrete port and cannot report the one it bound, so let the
    # kernel pick a free one first. The tiny window between close and bind is acceptable here.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    # moto's backends are process-global and may be shared with other suites' in-process
    # simulators, so these tests never reset them: they isolate themselves by account id
    # (see ``fresh_account``) and by unique names instead.
    # Every new account/Region backend would otherwise load moto's catalogue of AMIs: seconds
    # per account. Set only while this module's server runs, so other suites are unaffected.
    previous = os.environ.get("MOTO_EC2_LOAD_DEFAULT_AMIS")
    os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        if previous is None:
            os.environ.pop("MOTO_EC2_LOAD_DEFAULT_AMIS", None)
        else:
            os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = previous


@pytest.fixture
def fresh_account() -> Callable[[], str]:
    """Makes random 12-digit account ids: each an empty moto backend of the test's own."""
    return lambda: f"9{secrets.randbelow(10**11):011d}"


@pytest.fixture
def settings(moto_url: str) -> sessions.Settings:
    return sessions.Settings(
        endpoint_url=moto_url,
        access_key_id="testing",
        secret_access_key="testing",
        connect_timeout=2,
        read_timeout=10,
    )


@pytest.fixture
async def clients(settings: sessions.Settings) -> AsyncIterator[sessions.AwsClients]:
    async with sessions.AwsClients(settings) as aws:
        yield aws


class FakeClock:
    """Virtual time for the limiter: sleeps park on futures until :func:`drive` advances time.

    Time only moves when every task is blocked on a sleep, and then jumps to the earliest wake
    time, so results are exact and a test of minutes of AWS refill runs in milliseconds.
    """

    def __init__(self) -> None:
        self.now = 1000.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._seq), future))
        await future

    def advance_to_next(self) -> bool:
        """Jump to the earliest wake time and wake everything due; False if nobody sleeps."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)  # Cancelled sleepers.
        if not self._sleepers:
            return False
        self.now = max(self.now, self._sleepers[0][0])
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
        return True

    async def settle(self) -> None:
        """Let every runnable task run until all are blocked."""
        for _ in range(50):
            await asyncio.sleep(0)

    async def drive(self, *aws: Awaitable[T]) -> list[T]:
        """Run the awaitables to completion, advancing virtual time whenever all are blocked."""
        tasks = [asyncio.ensure_future(a) for a in aws]
        while not all(t.done() for t in tasks):
            await self.settle()
            if all(t.done() for t in tasks):
                break
            if not self.advance_to_next():
                raise AssertionError("deadlock: tasks pending but nobody sleeps")
        return [t.result() for t in tasks]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
