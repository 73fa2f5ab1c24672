"""Bad input gets INVALID_ARGUMENT naming the field and changes nothing; database failures get
the code they mean. One test per defect found by fuzzing (issue 10), against the real server
and the real Postgres."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import grpc
import pytest
import sqlalchemy.exc
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2, field_mask_pb2
from google.rpc import error_details_pb2, status_pb2
from sqlalchemy import String, text

from linkplane.server.domain import errors, validation
from linkplane.server.storage import database, models
from linkplane.v1 import (
    account_pb2,
    account_service_pb2,
    consumer_service_pb2,
    provider_service_pb2,
)
from tests.api.conftest import connection_to, details, managed_service, register_accounts

DEEP_FILTER = "(" * 300 + "state = ACTIVE" + ")" * 300
DEEP_JSON = '{"a":' + "[" * 3000 + "]" * 3000 + "}"


async def invalid(call) -> grpc.aio.AioRpcError:
    """The error of `call`, which must be INVALID_ARGUMENT with at least one field named."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    assert details(error)["fields"], error.details()
    return error


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    return {v.field: v.description for v in bad.field_violations}
    return {}


async def publish(provider, project: str, service_id: str = "svc", **request) -> object:
    return await provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}",
            service_id=service_id,
            service=managed_service(project),
            **request,
        )
    )


# ---- NUL and other control characters --------------------------------------------------------


@pytest.mark.parametrize("validate_only", [True, False])
async def test_nul_in_display_name_is_refused_even_for_validate_only(
    provider, project, validate_only
):
    service = managed_service(project, display_name="a\x00")
    error = await invalid(
        provider.PublishService(
            provider_service_pb2.PublishServiceRequest(
                parent=f"projects/{project}", service=service, validate_only=validate_only
            )
        )
    )
    assert "control characters" in violations(error)["service.display_name"]


async def test_nul_in_filter_operation_name_and_page_token(provider, operations, project):
    error = await invalid(
        provider.ListServices(
            provider_service_pb2.ListServicesRequest(
                parent=f"projects/{project}", filter='display_name = "a\x00"'
            )
        )
    )
    assert list(violations(error)) == ["filter"]
    error = await invalid(
        provider.ListServices(
            provider_service_pb2.ListServicesRequest(
                parent=f"projects/{project}", page_token="abc\x00"
            )
        )
    )
    assert list(violations(error)) == ["page_token"]
    for call, request_class in (
        (operations.GetOperation, operations_pb2.GetOperationRequest),
        (operations.WaitOperation, operations_pb2.WaitOperationRequest),
        (operations.DeleteOperation, operations_pb2.DeleteOperationRequest),
    ):
        error = await invalid(call(request_class(name="operations/a\x00")))
        assert list(violations(error)) == ["name"]


async def test_control_characters_in_nested_fields_name_the_field(consumer, project):
    connection = connection_to(project, f"projects/{project}/services/x")
    connection.request_message = "please\x00"
    connection.labels["te\x1bam"] = "x"
    error = await invalid(
        consumer.CreateConnection(
            consumer_service_pb2.CreateConnectionRequest(
                parent=f"projects/{project}", connection=connection, validate_only=True
            )
        )
    )
    found = violations(error)
    assert "connection.request_message" in found
    assert "connection.labels['te\\x1bam']" in found
    # Free text keeps its line breaks.
    connection = connection_to(project, f"projects/{project}/services/x")
    connection.request_message = "line one\nline two\r\n\tindented"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await consumer.CreateConnection(
            consumer_service_pb2.CreateConnectionRequest(
                parent=f"projects/{project}", connection=connection, validate_only=True
            )
        )
    # Not a complaint about the message: the account simply is not registered here.
    assert "connection.request_message" not in violations(caught.value)


# ---- depth ---------------------------------------------------------------------------------


async def test_deeply_nested_filter_is_refused_in_lists_and_watches(provider, project):
    error = await invalid(
        provider.ListServices(
            provider_service_pb2.ListServicesRequest(
                parent=f"projects/{project}", filter=DEEP_FILTER
            )
        )
    )
    assert "deeper than" in violations(error)["filter"]
    stream = provider.WatchServices(
        provider_service_pb2.WatchServicesRequest(parent=f"projects/{project}", filter=DEEP_FILTER)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stream:
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # A reasonable nesting still works.
    nested = "(" * 10 + "state = ACTIVE" + ")" * 10
    await provider.ListServices(
        provider_service_pb2.ListServicesRequest(parent=f"projects/{project}", filter=nested)
    )


async def test_deeply_nested_policy_document_is_refused(consumer, project):
    connection = connection_to(project, f"projects/{project}/services/x", policy_document=DEEP_JSON)
    error = await invalid(
        consumer.CreateConnection(
            consumer_service_pb2.CreateConnectionRequest(
                parent=f"projects/{project}", connection=connection, validate_only=True
            )
        )
    )
    assert "deeper than" in violations(error)["connection.policy_document"]


# ---- filter types --------------------------------------------------------------------------


async def test_map_field_compared_as_a_whole_is_refused(provider, consumer, accounts, project):
    parent = f"projects/{project}"
    for call in (
        provider.ListServices(
            provider_service_pb2.ListServicesRequest(parent=parent, filter="labels = x")
        ),
        consumer.ListConnections(
            consumer_service_pb2.ListConnectionsRequest(parent=parent, filter="labels != x")
        ),
        accounts.ListAccounts(
            account_service_pb2.ListAccountsRequest(parent=parent, filter="labels = x")
        ),
    ):
        error = await invalid(call)
        assert "is a map" in violations(error)["filter"]


# ---- durations -----------------------------------------------------------------------------


async def test_huge_and_negative_wait_timeouts_clamp(accounts, provider, operations, project):
    await register_accounts(accounts, project)
    created = await publish(provider, project)
    loop = asyncio.get_running_loop()
    started = loop.time()
    waited = await operations.WaitOperation(
        operations_pb2.WaitOperationRequest(
            name=created.name, timeout=duration_pb2.Duration(seconds=2**62)
        ),
        timeout=1.5,  # the call's deadline bounds the wait, as for any caller
    )
    assert waited.name == created.name
    assert loop.time() - started < 10
    waited = await operations.WaitOperation(
        operations_pb2.WaitOperationRequest(
            name=created.name, timeout=duration_pb2.Duration(seconds=-(2**62))
        )
    )
    assert waited.name == created.name


# ---- request ids ---------------------------------------------------------------------------


SOME_ID = "9b2d5c3e-8f1a-4c2b-9d3e-0123456789ab"


@pytest.mark.parametrize(
    "request_id",
    [
        "-" * 40 + SOME_ID.replace("-", ""),  # uuid.UUID accepts it; String(64) does not
        "{" + SOME_ID + "}",
        "urn:uuid:" + SOME_ID,
        SOME_ID.replace("-", ""),
    ],
    ids=["dashes", "braces", "urn", "hex"],
)
async def test_non_canonical_request_ids_are_refused(provider, project, request_id):
    error = await invalid(publish(provider, project, request_id=request_id))
    assert list(violations(error)) == ["request_id"]


async def test_upper_case_request_id_replays_the_first_result(accounts, provider, project):
    await register_accounts(accounts, project)
    request_id = str(uuid.uuid4())
    request = provider_service_pb2.PublishServiceRequest(
        parent=f"projects/{project}", service_id="replayed", service=managed_service(project)
    )
    request.request_id = request_id
    first = await provider.PublishService(request)
    request.request_id = request_id.upper()
    again = await provider.PublishService(request)
    assert again.name == first.name


# ---- lengths -------------------------------------------------------------------------------


async def test_strings_longer_than_their_column_are_refused(accounts, provider, project):
    await register_accounts(accounts, project)
    long_region = "us-" + "east" * 20 + "-1"  # matches the region pattern, overflows String(32)
    error = await invalid(
        provider.PublishService(
            provider_service_pb2.PublishServiceRequest(
                parent=f"projects/{project}",
                service=managed_service(project, region=long_region),
            )
        )
    )
    assert "at most 32" in violations(error)["service.region"]
    error = await invalid(
        accounts.RegisterAccount(
            account_service_pb2.RegisterAccountRequest(
                parent=f"projects/{project}",
                account_id="3" * 300,
                account=account_pb2.Account(
                    display_name="d" * 300,
                    external_id="e" * 5000,
                    allowed_regions=[long_region],
                ),
            )
        )
    )
    assert {
        "account_id",
        "account.display_name",
        "account.external_id",
        "account.allowed_regions[0]",
    } <= set(violations(error))
    listed = await provider.ListServices(
        provider_service_pb2.ListServicesRequest(parent=f"projects/{project}")
    )
    assert not listed.services  # nothing was written


def test_field_limits_fit_the_columns_they_are_stored_in():
    tables = {table.name: table for table in models.Base.metadata.tables.values()}
    checked = 0
    for field, limit in validation.FIELD_LIMITS.items():
        for where in limit.columns:
            table, column = where.split(".")
            column_type = tables[table].c[column].type
            assert isinstance(column_type, String), where
            if column_type.length is not None:
                assert limit.max_length <= column_type.length, (field, where)
                checked += 1
    assert checked >= 15


# ---- malformed messages --------------------------------------------------------------------


def _raw(channel, path: str, streaming: bool = False):
    identity = lambda value: value  # noqa: E731
    factory = channel.unary_stream if streaming else channel.unary_unary
    return factory(path, request_serializer=identity, response_deserializer=identity)


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xff\xff",  # an invalid tag
        b"\n\xff\xff\xff\x0f",  # a string field claiming 4 GiB
        b"\n\x02\xc3\x28",  # a string field holding invalid UTF-8
    ],
    ids=["bad-tag", "long-length", "bad-utf8"],
)
async def test_malformed_protobuf_is_invalid_argument(channel, payload):
    error = await invalid(_raw(channel, "/linkplane.v1.ProviderService/GetService")(payload))
    assert "not a valid GetService message" in error.details()
    stream = _raw(channel, "/linkplane.v1.ProviderService/WatchServices", streaming=True)(payload)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stream:
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = await invalid(_raw(channel, "/google.longrunning.Operations/GetOperation")(payload))


# ---- update masks --------------------------------------------------------------------------


async def test_update_mask_offers_only_updatable_fields(accounts, provider, project):
    await register_accounts(accounts, project)
    await publish(provider, project, service_id="masked")
    service = await provider.GetService(
        provider_service_pb2.GetServiceRequest(name=f"projects/{project}/services/masked")
    )
    error = await invalid(
        provider.UpdateService(
            provider_service_pb2.UpdateServiceRequest(
                service=service, update_mask=field_mask_pb2.FieldMask(paths=["bogus"])
            )
        )
    )
    description = violations(error)["update_mask.paths[0]"]
    offered = set(description.split("updatable: ")[1].split(", "))
    assert "display_name" in offered
    assert not offered & {"region", "provider_account"}
    service.region = "eu-west-1"
    error = await invalid(
        provider.UpdateService(
            provider_service_pb2.UpdateServiceRequest(
                service=service, update_mask=field_mask_pb2.FieldMask(paths=["region"])
            )
        )
    )
    assert "is immutable" in violations(error)["service.region"]


# ---- database errors -----------------------------------------------------------------------


def _wrapped(orig: Exception) -> sqlalchemy.exc.DBAPIError:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    "orig",
    [
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    ],
)
def test_unreachable_database_sqlstates_are_unavailable(orig):
    classified = database.classify(_wrapped(orig))
    assert isinstance(classified, errors.Unavailable)
    assert classified.metadata["sqlstate"] == orig.sqlstate


async def test_data_error_on_connections_table_is_not_unreachable(server, project):
    """Postgres's own error for a too-long value in `connections` names the table: a bug
    (INTERNAL), never "database unreachable", which clients would retry forever."""
    # 22P02, with "connection" in Postgres's message (the old classifier's trigger).
    query = text("SELECT 'connection refused'::int FROM connections UNION SELECT 1")
    with pytest.raises(sqlalchemy.exc.DBAPIError) as caught:
        async with server.db.transaction() as session:
            await session.execute(query)
    assert "connection" in str(caught.value).lower()
    assert database.classify(caught.value) is None
    assert database.sqlstate(caught.value) == "22P02"


async def test_terminated_backend_is_unavailable_and_retry_succeeds(server):
    with pytest.raises(errors.Unavailable) as caught:
        async with server.db.transaction() as session:
            await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
    assert caught.value.reason == "DATABASE_UNAVAILABLE"
    async with server.db.transaction() as session:
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1


def test_concurrency_conflicts_are_aborted():
    for orig in (
        asyncpg.exceptions.SerializationError("could not serialize access"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        asyncpg.exceptions.UniqueViolationError("duplicate key value"),
    ):
        assert isinstance(database.classify(_wrapped(orig)), errors.Aborted)
