"""The client honours the server's RetryInfo on RESOURCE_EXHAUSTED: against a real server whose
per-caller caps are tiny, unary calls over the call cap are retried after the advised delay (a
bounded number of times) and a watch over the stream cap reconnects after it."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from linkplane.client import AsyncClient, Backoff, Client, ClientConfig, errors
from linkplane.server.api import identity
from linkplane.server.config import Role, Settings
from linkplane.server.runtime import Runtime

FAST = Backoff(initial=0.01, maximum=0.05, multiplier=2.0, jitter=0.2)


@pytest.fixture
async def capped_server(database_url: str) -> AsyncIterator[Runtime]:
    """A real API server allowing each caller one call in flight and one watch stream."""
    settings = Settings(
        listen="127.0.0.1:0",
        shutdown_grace_seconds=1.0,
        role=Role.API,
        max_streams_per_principal=1,
        max_concurrent_calls_per_principal=1,
    )
    runtime = Runtime(settings, database_url)
    await runtime.start()
    await runtime.feed.wait_connected(10)
    try:
        yield runtime
    finally:
        await runtime.stop()


def _config(server: Runtime, **changes: object) -> ClientConfig:
    base = ClientConfig(
        address=f"127.0.0.1:{server.port}",
        default_timeout=60.0,
        retry_backoff=FAST,
        watch_backoff=FAST,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


async def _burst(client: AsyncClient, project: str, calls: int) -> list[BaseException | None]:
    async def one() -> BaseException | None:
        try:
            await client.list_services(parent=f"projects/{project}").collect()
        except errors.LinkplaneError as error:
            return error
        return None

    return list(await asyncio.gather(*(one() for _ in range(calls))))


async def test_calls_over_the_cap_are_refused_with_retry_info_without_retries(
    capped_server: Runtime, project: str
) -> None:
    # One attempt: what the server answers is what the caller sees. The caller's one call slot
    # is taken, so the call is refused whatever the machine's speed.
    assert capped_server.deps is not None
    held = capped_server.deps.limits.acquire_call(identity.LOCAL_PRINCIPAL)
    try:
        async with AsyncClient(_config(capped_server, max_exhausted_attempts=1)) as client:
            with pytest.raises(errors.ResourceExhausted) as refused:
                await client.list_services(parent=f"projects/{project}").collect()
    finally:
        held.release()
    assert refused.value.retry_delay == 1.0
    assert refused.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_calls_over_the_cap_succeed_after_the_advised_delay(
    capped_server: Runtime, project: str
) -> None:
    # The caller's one call slot is taken (as by a call of its own still in flight), so the
    # first attempt is refused whatever the machine's speed; the slot is freed long before the
    # advised second has passed, and the retry after it succeeds.
    assert capped_server.deps is not None
    held = capped_server.deps.limits.acquire_call(identity.LOCAL_PRINCIPAL)
    asyncio.get_running_loop().call_later(0.2, held.release)
    async with AsyncClient(_config(capped_server, max_exhausted_attempts=2)) as client:
        started = time.monotonic()
        await client.list_services(parent=f"projects/{project}").collect()
        elapsed = time.monotonic() - started
    assert elapsed >= 1.0, "the retry did not wait the advised second"


async def test_a_burst_over_the_cap_completes_with_retries(
    capped_server: Runtime, project: str
) -> None:
    # Each round of retries lets at least the slot holder finish, so 12 attempts always suffice
    # for 12 calls (how many are refused depends on timing; that they all complete does not).
    async with AsyncClient(_config(capped_server, max_exhausted_attempts=12)) as client:
        outcomes = await _burst(client, project, 12)
    assert outcomes == [None] * 12


async def test_watch_over_the_stream_cap_reconnects_after_the_advised_delay(
    capped_server: Runtime, project: str
) -> None:
    parent = f"projects/{project}"
    async with AsyncClient(_config(capped_server)) as client:
        first = client.watch_services(parent=parent)
        first_events = aiter(first)
        assert (await anext(first_events)).type_name == "SYNCED"  # holds the only stream slot

        second = client.watch_services(parent=parent)
        second_events = aiter(second)
        waiting = asyncio.ensure_future(anext(second_events))
        # Refused (stream cap) and waiting out the RetryInfo (5 s) instead of failing.
        await asyncio.sleep(0.5)
        assert not waiting.done()
        await first.aclose()  # frees the slot; the reconnect after the advised delay gets it
        event = await asyncio.wait_for(waiting, timeout=60)
        assert event.type_name == "SYNCED"
        await second.aclose()


async def test_watch_over_the_stream_cap_gives_up_with_the_cap_error(
    capped_server: Runtime, project: str
) -> None:
    parent = f"projects/{project}"
    config = _config(capped_server, watch_max_reconnects=0)
    async with AsyncClient(config) as client:
        first = client.watch_services(parent=parent)
        assert (await anext(aiter(first))).type_name == "SYNCED"
        with pytest.raises(errors.ResourceExhausted) as refused:
            await anext(aiter(client.watch_services(parent=parent)))
        assert refused.value.retry_delay == 5.0
        await first.aclose()


async def test_blocking_client_retries_and_reconnects_too(
    capped_server: Runtime, project: str
) -> None:
    # The blocking twins (call_sync, Watch) run in threads: the server shares this event loop.
    parent = f"projects/{project}"
    config = _config(capped_server, max_exhausted_attempts=12)
    with Client(config) as client:

        def one_call() -> None:
            client.list_services(parent=parent).collect()

        await asyncio.gather(*(asyncio.to_thread(one_call) for _ in range(12)))

        async with AsyncClient(config) as holder:
            first = holder.watch_services(parent=parent)
            assert (await anext(aiter(first))).type_name == "SYNCED"
            second = client.watch_services(parent=parent)
            waiting = asyncio.ensure_future(asyncio.to_thread(next, iter(second)))
            await asyncio.sleep(0.5)
            assert not waiting.done()  # refused, waiting out the advised delay
            await first.aclose()
            event = await asyncio.wait_for(waiting, timeout=60)
            assert event.type_name == "SYNCED"
            second.close()
