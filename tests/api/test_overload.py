"""Overload protection: one read per change for every watcher, caps on streams and calls.

A server of this module's own, with small caps and three principals (static tokens, all bootstrap
admins so authorization reads no policy), so statement counts and held slots are this module's
alone. Waits poll the server's own state with generous timeouts; nothing races a sleep.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import grpc
import pytest
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import duration_pb2
from sqlalchemy import event

from linkplane.server.api import watches
from linkplane.server.config import Role, Settings
from linkplane.server.domain import filters
from linkplane.server.runtime import Runtime
from linkplane.server.storage import changes
from linkplane.v1 import (
    account_pb2,
    account_service_pb2,
    account_service_pb2_grpc,
    common_pb2,
    provider_service_pb2,
    provider_service_pb2_grpc,
)
from tests.api.conftest import PROVIDER_ID, managed_service
from tests.support.api import status_details

TOKENS = {"alice-token": "alice", "bob-token": "bob", "carol-token": "carol"}
ALICE = (("authorization", "Bearer alice-token"),)
BOB = (("authorization", "Bearer bob-token"),)
CAROL = (("authorization", "Bearer carol-token"),)
MAX_STREAMS = 6
MAX_STREAMS_PER_PRINCIPAL = 4
MAX_CALLS_PER_PRINCIPAL = 2
TIMEOUT = 30.0
OPENED: list[Any] = []  # every stream a test opened (the `idle` fixture closes leftovers)


@pytest.fixture(scope="module")
async def runtime(database_url: str) -> AsyncIterator[Runtime]:
    server = Runtime(
        Settings(
            listen="127.0.0.1:0",
            role=Role.API,
            shutdown_grace_seconds=1.0,
            auth_tokens=TOKENS,
            admins=sorted(TOKENS.values()),
            max_streams=MAX_STREAMS,
            max_streams_per_principal=MAX_STREAMS_PER_PRINCIPAL,
            max_concurrent_calls_per_principal=MAX_CALLS_PER_PRINCIPAL,
        ),
        database_url,
    )
    await server.start()
    await server.feed.wait_connected(10)
    assert server.deps is not None
    # Small pages, so every initial listing here takes several round trips.
    server.deps.hub.page_size = 2
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="module")
async def channel(runtime: Runtime) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.port}") as chan:
        yield chan


@pytest.fixture
def provider(channel: grpc.aio.Channel) -> provider_service_pb2_grpc.ProviderServiceStub:
    return provider_service_pb2_grpc.ProviderServiceStub(channel)


@pytest.fixture
async def idle(runtime: Runtime) -> AsyncIterator[None]:
    """Every test starts and ends with no stream open (earlier tests' streams are gone)."""
    await until(lambda: _deps(runtime).limits.open_streams == 0)
    yield
    # A failed test leaves its streams open: close them so the next test starts clean.
    while OPENED:
        OPENED.pop().cancel()
    await until(lambda: _deps(runtime).limits.open_streams == 0)


def _deps(runtime: Runtime) -> Any:
    assert runtime.deps is not None
    return runtime.deps


async def until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def setup_project(channel: grpc.aio.Channel, count: int, **labels: str) -> str:
    project = f"o-{uuid.uuid4().hex[:12]}"
    accounts = account_service_pb2_grpc.AccountServiceStub(channel)
    await accounts.RegisterAccount(
        account_service_pb2.RegisterAccountRequest(
            parent=f"projects/{project}",
            account_id=PROVIDER_ID,
            account=account_pb2.Account(display_name="provider"),
            request_id=str(uuid.uuid4()),
        ),
        metadata=ALICE,
    )
    provider = provider_service_pb2_grpc.ProviderServiceStub(channel)
    for i in range(count):
        service = managed_service(project)
        service.labels.clear()
        service.labels.update(labels)
        await provider.PublishService(
            provider_service_pb2.PublishServiceRequest(
                parent=f"projects/{project}", service_id=f"svc-{i}", service=service
            ),
            metadata=ALICE,
        )
    return project


def watch(
    provider: provider_service_pb2_grpc.ProviderServiceStub,
    project: str,
    metadata: tuple[tuple[str, str], ...],
    *,
    filter_text: str = "",
    send_initial: bool = True,
) -> Any:
    stream = provider.WatchServices(
        provider_service_pb2.WatchServicesRequest(
            parent=f"projects/{project}", filter=filter_text, send_initial=send_initial
        ),
        metadata=metadata,
    )
    OPENED.append(stream)
    return stream


async def next_event(stream: Any) -> provider_service_pb2.WatchServicesResponse:
    response: provider_service_pb2.WatchServicesResponse = await asyncio.wait_for(
        stream.read(), TIMEOUT
    )
    return response


async def until_synced(stream: Any) -> list[str]:
    """The EXISTING names up to SYNCED."""
    names = []
    while True:
        response = await next_event(stream)
        if response.type == common_pb2.EVENT_TYPE_SYNCED:
            return names
        assert response.type == common_pb2.EVENT_TYPE_EXISTING
        names.append(response.service.name)


async def touch(database_url: str, names: list[str], display_name: str | None = None) -> None:
    """Change services behind the API's back, the way any writer does: a new revision (etag)
    and a notification in the same transaction."""
    connection = await asyncpg.connect(changes.asyncpg_dsn(database_url))
    try:
        async with connection.transaction():
            for name in names:
                # The message's display_name comes from the spec, filters see the column.
                uid = await connection.fetchval(
                    "UPDATE services SET revision = revision + 1,"
                    " display_name = coalesce($2, display_name),"
                    " spec = jsonb_set(spec, '{display_name}', to_jsonb(coalesce($2,"
                    " spec->>'display_name')))"
                    " WHERE name = $1 RETURNING uid",
                    name,
                    display_name,
                )
                payload = json.dumps({"kind": "service", "name": name, "uid": str(uid)})
                await connection.execute("SELECT pg_notify($1, $2)", changes.CHANNEL, payload)
    finally:
        await connection.close()


def reason_metadata_delay(error: grpc.aio.AioRpcError) -> tuple[str, dict[str, str], int | None]:
    """ErrorInfo reason and metadata, and the RetryInfo delay in seconds (None if absent)."""
    info = status_details(error)
    return info["reason"] or "", info["metadata"], info["retry_delay"]


async def test_one_change_reaches_every_watcher_with_one_read(
    runtime, channel, provider, database_url, idle
):
    project = await setup_project(channel, 5, team="payments")
    streams = [watch(provider, project, ALICE) for _ in range(MAX_STREAMS_PER_PRINCIPAL)]
    streams += [watch(provider, project, BOB) for _ in range(MAX_STREAMS - len(streams))]
    for stream in streams:
        # Five services in pages of two: three reads each, all of them listed.
        assert await until_synced(stream) == [
            f"projects/{project}/services/svc-{i}" for i in range(5)
        ]
    # Idle streams hold no pooled connection.
    pool: Any = runtime.db.engine.pool
    await until(lambda: pool.checkedout() == 0)

    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM services" in statement:
            statements.append(statement)

    event.listen(runtime.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        changed = f"projects/{project}/services/svc-3"
        await touch(database_url, [changed], display_name="renamed")
        for stream in streams:
            response = await next_event(stream)
            assert response.type == common_pb2.EVENT_TYPE_MODIFIED
            assert (response.service.name, response.service.display_name) == (changed, "renamed")
    finally:
        event.remove(runtime.db.engine.sync_engine, "before_cursor_execute", count)
    assert len(statements) == 1, statements
    for stream in streams:
        stream.cancel()


async def test_the_stream_over_each_cap_is_resource_exhausted_with_retry_info(
    runtime, channel, provider, idle
):
    project = await setup_project(channel, 1)
    alice = [watch(provider, project, ALICE) for _ in range(MAX_STREAMS_PER_PRINCIPAL)]
    for stream in alice:
        await until_synced(stream)

    over = watch(provider, project, ALICE)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await next_event(over)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    reason, metadata, delay = reason_metadata_delay(refused.value)
    assert (reason, metadata["scope"], metadata["limit"]) == (
        "TOO_MANY_STREAMS",
        "principal",
        str(MAX_STREAMS_PER_PRINCIPAL),
    )
    assert delay is not None and delay > 0

    # Another principal still gets streams, up to the process's cap.
    bob = [watch(provider, project, BOB) for _ in range(MAX_STREAMS - MAX_STREAMS_PER_PRINCIPAL)]
    for stream in bob:
        await until_synced(stream)
    assert _deps(runtime).limits.open_streams == MAX_STREAMS
    with pytest.raises(grpc.aio.AioRpcError) as full:
        await next_event(watch(provider, project, CAROL))
    assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    reason, metadata, delay = reason_metadata_delay(full.value)
    assert (reason, metadata["scope"]) == ("TOO_MANY_STREAMS", "process")
    assert delay is not None and delay > 0

    # A closed stream frees its slot.
    alice[0].cancel()
    await until(lambda: _deps(runtime).limits.open_streams == MAX_STREAMS - 1)
    again = watch(provider, project, CAROL)
    assert await until_synced(again) == [f"projects/{project}/services/svc-0"]
    for stream in [*alice, *bob, again]:
        stream.cancel()


async def test_concurrent_unary_calls_are_capped_per_principal(runtime, channel, provider, idle):
    project = await setup_project(channel, 1)
    # No worker runs here, so the publish operation never completes: WaitOperation stays in
    # flight for as long as the test needs.
    published = await provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}", service_id="pending", service=managed_service(project)
        ),
        metadata=ALICE,
    )
    operations = operations_pb2_grpc.OperationsStub(channel)
    waiting = [
        asyncio.ensure_future(
            operations.WaitOperation(
                operations_pb2.WaitOperationRequest(
                    name=published.name, timeout=duration_pb2.Duration(seconds=60)
                ),
                metadata=ALICE,
            )
        )
        for _ in range(MAX_CALLS_PER_PRINCIPAL)
    ]
    limits = _deps(runtime).limits
    await until(lambda: limits._calls["alice"] == MAX_CALLS_PER_PRINCIPAL)
    get = provider_service_pb2.GetServiceRequest(name=f"projects/{project}/services/svc-0")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await provider.GetService(get, metadata=ALICE, timeout=TIMEOUT)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    reason, metadata, delay = reason_metadata_delay(refused.value)
    assert (reason, metadata["scope"]) == ("TOO_MANY_CONCURRENT_CALLS", "principal")
    assert delay is not None and delay > 0
    # Others are not affected by alice's calls.
    served = await provider.GetService(get, metadata=BOB, timeout=TIMEOUT)
    assert served.name == get.name

    for call in waiting:
        call.cancel()
    await until(lambda: limits._calls["alice"] == 0)
    served = await provider.GetService(get, metadata=ALICE, timeout=TIMEOUT)
    assert served.name == get.name


async def test_a_watcher_of_one_project_never_sees_another_projects_changes(
    channel, provider, database_url, idle
):
    x = await setup_project(channel, 1)
    y = await setup_project(channel, 1)
    watch_x = watch(provider, x, ALICE)
    watch_y = watch(provider, y, BOB)
    assert await until_synced(watch_x) == [f"projects/{x}/services/svc-0"]
    assert await until_synced(watch_y) == [f"projects/{y}/services/svc-0"]

    await touch(database_url, [f"projects/{y}/services/svc-0"], display_name="y changed")
    assert (await next_event(watch_y)).service.name == f"projects/{y}/services/svc-0"
    await touch(database_url, [f"projects/{x}/services/svc-0"], display_name="x changed")
    # X's next event is X's own change: Y's, delivered before it, never reached X's stream.
    seen = await next_event(watch_x)
    assert (seen.type, seen.service.name, seen.service.display_name) == (
        common_pb2.EVENT_TYPE_MODIFIED,
        f"projects/{x}/services/svc-0",
        "x changed",
    )
    watch_x.cancel()
    watch_y.cancel()


FILTERS = [
    "labels.team = payments",
    "labels.team != payments",
    'labels.missing = ""',
    'service_name != "x"',
    'NOT service_name = "x"',
    "state = CREATING AND labels.team = search",
    'display_name = "renamed" OR NOT labels.team = payments',
    "NOT (labels.team = payments OR labels.team = search)",
]


@pytest.mark.parametrize("filter_text", FILTERS)
async def test_filters_in_memory_agree_with_list(
    channel, provider, database_url, idle, filter_text
):
    """The fan-out filters each subscriber in memory; it must select exactly what the SQL of
    List selects (three-valued logic on NULL columns, missing labels as "")."""
    project = await setup_project(channel, 0)
    teams = ["payments", "search", "payments", "", "ops"]
    for i, team in enumerate(teams):
        service = managed_service(project)
        service.labels.clear()
        if team:
            service.labels["team"] = team
        if i == 2:
            service.display_name = "renamed"
        await provider.PublishService(
            provider_service_pb2.PublishServiceRequest(
                parent=f"projects/{project}", service_id=f"svc-{i}", service=service
            ),
            metadata=ALICE,
        )
    sentinel = managed_service(project)
    sentinel.labels.clear()
    sentinel.labels["sentinel"] = "yes"
    await provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}", service_id="zzz-sentinel", service=sentinel
        ),
        metadata=ALICE,
    )
    combined = f"({filter_text}) OR labels.sentinel = yes"
    listed = await provider.ListServices(
        provider_service_pb2.ListServicesRequest(parent=f"projects/{project}", filter=combined),
        metadata=ALICE,
    )
    expected = [s.name for s in listed.services]
    assert expected[-1].endswith("/zzz-sentinel")

    stream = watch(provider, project, ALICE, filter_text=combined)
    assert await until_synced(stream) == expected  # the listing is SQL's choice too
    # Change everything: each change passes the in-memory filter or not. A resource it selects
    # differently from SQL would arrive as ADDED or DELETED instead of MODIFIED.
    await touch(database_url, [f"projects/{project}/services/svc-{i}" for i in range(len(teams))])
    await touch(database_url, [f"projects/{project}/services/zzz-sentinel"])
    seen: list[tuple[int, str]] = []
    while not seen or not seen[-1][1].endswith("/zzz-sentinel"):
        response = await next_event(stream)
        seen.append((response.type, response.service.name))
    assert seen == [(common_pb2.EVENT_TYPE_MODIFIED, name) for name in expected]
    stream.cancel()


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ('service_name = "x"', {"service_name": None}, False),
        ('service_name != "x"', {"service_name": None}, False),
        ('NOT service_name = "x"', {"service_name": None}, False),
        (
            'NOT service_name = "x" OR state = ACTIVE',
            {"service_name": None, "state": "ACTIVE"},
            True,
        ),
        ('labels.team != "x"', {"labels": {}}, True),
        ('labels.team = ""', {"labels": {"team": ""}}, True),
        ("labels.team = a AND state = ACTIVE", {"labels": {"team": "a"}, "state": "FAILED"}, False),
    ],
)
def test_matches_follows_sql_null_logic(text, values, expected):
    node = filters.parse(text, fields={"service_name", "state", "labels"})
    assert watches.matches(node, values) is expected


def _update(name: str, epoch: int) -> watches.Update:
    return watches.Update(name=name, epoch=epoch, resource=None)


async def test_updates_read_before_a_listing_page_do_not_overwrite_it():
    """Epoch rules of api/watches.py: a hub read older than the page that listed a name is
    dropped; a newer one is applied; one older than the whole listing is dropped."""
    watcher = watches.Watcher.__new__(watches.Watcher)
    watcher._synced = watches._Synced(first=3, last=5, page_of={"a": 4})
    assert await watcher._settle(_update("a", 4)) is None  # read before a's page
    assert await watcher._settle(_update("a", 5)) == _update("a", 5)  # read after it
    assert await watcher._settle(_update("b", 3)) is None  # before every page
    assert watcher._synced is not None
    assert await watcher._settle(_update("c", 6)) == _update("c", 6)  # after the listing
    assert watcher._synced is None  # epochs only grow: later updates need no check


async def test_the_turnstile_bounds_sends_per_loop_iteration_and_yields_to_calls():
    """Between two turns of the turnstile (one per loop iteration) at most `per_tick` sends
    start, and only one while unary calls are in flight."""
    busy = [False]
    turnstile = watches.Turnstile(per_tick=3, busy=lambda: busy[0])
    passed = [0]
    between_ticks: list[int] = []
    original = turnstile._tick

    def tick() -> None:
        between_ticks.append(passed[0])
        passed[0] = 0
        original()

    turnstile._tick = tick  # type: ignore[method-assign]

    async def send() -> None:
        await turnstile.wait()
        passed[0] += 1

    await asyncio.gather(*(send() for _ in range(9)))
    await asyncio.sleep(0)
    assert sum(between_ticks) + passed[0] == 9
    assert max(between_ticks) == 3
    busy[0] = True
    between_ticks.clear()
    passed[0] = 0
    await asyncio.gather(*(send() for _ in range(4)))
    await asyncio.sleep(0)
    assert max([*between_ticks, passed[0]]) == 1
