"""The fast read paths answer what is stored: cached messages never go stale, a broken pooled
connection costs the caller nothing, timestamps convert exactly as protobuf's own code does."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import grpc
import pytest
from google.protobuf import timestamp_pb2
from sqlalchemy import update

from linkplane.server.protocol import converters
from linkplane.server.storage import changes, models
from linkplane.v1 import account_pb2, account_service_pb2, provider_service_pb2, service_pb2
from tests.api.conftest import managed_service, register_accounts


async def publish(accounts, provider, project: str, service_id: str) -> str:
    await register_accounts(accounts, project)
    await provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}", service_id=service_id, service=managed_service(project)
        )
    )
    return f"projects/{project}/services/{service_id}"


async def kill_idle_pooled_connections(database_url: str) -> int:
    """From a connection of our own (another application_name): every idle pooled one goes."""
    killer = await asyncpg.connect(changes.asyncpg_dsn(database_url))
    try:
        killed: int = await killer.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'linkplane' "
            "AND state = 'idle'"
        )
    finally:
        await killer.close()
    return killed


async def test_a_status_write_that_keeps_the_revision_is_read_at_once(
    server, accounts, provider, project
):
    """Reconcilers write status without always bumping the revision: Get and List must not
    answer from the message cached before that write."""
    name = await publish(accounts, provider, project, "cached")
    before = await provider.GetService(provider_service_pb2.GetServiceRequest(name=name))
    listed = await provider.ListServices(
        provider_service_pb2.ListServicesRequest(parent=f"projects/{project}")
    )
    assert before.service_id == "" and listed.services[0].service_id == ""

    async with server.db.transaction() as session:
        await session.execute(
            update(models.Service)
            .where(models.Service.name == name)
            .values(
                state="ACTIVE",
                status={"service_id": "vpce-svc-0123456789abcdef0", "conditions": []},
            )
        )

    after = await provider.GetService(provider_service_pb2.GetServiceRequest(name=name))
    assert after.etag == before.etag  # same revision
    assert after.state == service_pb2.Service.STATE_ACTIVE
    assert after.service_id == "vpce-svc-0123456789abcdef0"
    listed = await provider.ListServices(
        provider_service_pb2.ListServicesRequest(parent=f"projects/{project}")
    )
    assert listed.services[0].service_id == "vpce-svc-0123456789abcdef0"


async def test_reads_recover_from_pooled_connections_killed_meanwhile(
    server, database_url, accounts, provider, project
):
    """Without a ping per checkout, an idle pooled connection that Postgres dropped (restart,
    failover, idle timeout) fails its next statement; the read retries on a fresh one, so
    the caller sees its answer, not UNAVAILABLE."""
    name = await publish(accounts, provider, project, "survivor")
    await provider.GetService(provider_service_pb2.GetServiceRequest(name=name))
    killed = await kill_idle_pooled_connections(database_url)
    assert killed >= 1

    got = await provider.GetService(provider_service_pb2.GetServiceRequest(name=name), timeout=30)
    assert got.name == name
    listed = await provider.ListServices(
        provider_service_pb2.ListServicesRequest(parent=f"projects/{project}"), timeout=30
    )
    assert [s.name for s in listed.services] == [name]
    # Writes are not retried (their callers retry with the request id), so the pool must hold
    # no dead connection any more: the first one met replaced the pool's idle ones.
    await provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}", service_id="after", service=managed_service(project)
        ),
        timeout=30,
    )


async def test_a_write_meets_at_most_one_dead_pooled_connection(
    server, database_url, accounts, project
):
    """Writes are not retried by the server: after Postgres dropped the pool's connections, the
    first write that meets one is UNAVAILABLE (its caller retries), and that replaces the idle
    ones, so the next write does not meet another."""
    # Two connections in the server's pool at once, then both idle there.
    async with server.db.engine.connect() as one, server.db.engine.connect() as two:
        await one.exec_driver_sql("SELECT 1")
        await two.exec_driver_sql("SELECT 1")
    killed = await kill_idle_pooled_connections(database_url)
    assert killed >= 2

    def register(account_id: str) -> account_service_pb2.RegisterAccountRequest:
        return account_service_pb2.RegisterAccountRequest(
            parent=f"projects/{project}",
            account_id=account_id,
            account=account_pb2.Account(display_name="after the kill"),
            request_id=str(uuid.uuid4()),
        )

    with contextlib.suppress(grpc.aio.AioRpcError):
        await accounts.RegisterAccount(register("333333333301"), timeout=30)
    await accounts.RegisterAccount(register("333333333302"), timeout=30)


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 11, 30, 10, 20, 31, 123456, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        datetime(2026, 3, 1, 0, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2020, 1, 1, 1, 1, 1, 1),  # naive: UTC, as protobuf reads it
    ],
)
def test_timestamps_convert_as_protobuf_does(value):
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(value)
    assert converters.timestamp(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-30T10:20:31.123456Z",
        "2026-11-30T10:20:31Z",
        "2026-11-30T10:20:31.1Z",
        "2026-11-30T10:20:31.123+02:00",
        "2026-11-30T10:20:31.123456789Z",  # nanoseconds: protobuf's own parser
    ],
)
def test_rfc3339_strings_convert_as_protobuf_does(value):
    expected = timestamp_pb2.Timestamp()
    expected.FromJsonString(value)
    assert converters._iso_timestamp(value) == expected


async def test_gets_asked_together_are_each_answered_with_their_own_resource(
    server, accounts, provider, project
):
    """Concurrent Gets share statements (storage/coalescing.py): through the API, each caller
    still gets its own resource, a missing one NOT_FOUND, and a status written just before
    a Get is in its answer."""
    names = [await publish(accounts, provider, project, "together-0")]
    for service_id in ("together-1", "together-2"):
        await provider.PublishService(
            provider_service_pb2.PublishServiceRequest(
                parent=f"projects/{project}",
                service_id=service_id,
                service=managed_service(project),
            )
        )
        names.append(f"projects/{project}/services/{service_id}")
    missing = f"projects/{project}/services/missing"
    asked = [names[i % 3] for i in range(24)] + [missing]

    answers = await asyncio.gather(
        *(provider.GetService(provider_service_pb2.GetServiceRequest(name=n)) for n in asked),
        return_exceptions=True,
    )

    for name, answer in zip(asked[:-1], answers[:-1], strict=True):
        assert isinstance(answer, service_pb2.Service) and answer.name == name
    assert isinstance(answers[-1], grpc.aio.AioRpcError)
    assert answers[-1].code() == grpc.StatusCode.NOT_FOUND

    async with server.db.transaction() as session:
        await session.execute(
            update(models.Service).where(models.Service.name == names[1]).values(state="ACTIVE")
        )
    again = await asyncio.gather(
        *(provider.GetService(provider_service_pb2.GetServiceRequest(name=n)) for n in names * 4)
    )
    assert [a.state == service_pb2.Service.STATE_ACTIVE for a in again] == [
        n == names[1] for n in names * 4
    ]
