"""AccountService CRUD, replay, etags and dependants."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from linkplane.v1 import (
    account_pb2,
    account_service_pb2,
    audit_service_pb2,
    audit_service_pb2_grpc,
    provider_service_pb2,
)
from tests.api.conftest import details, managed_service


def register(project: str, account_id: str = "123456789012", **fields):
    return account_service_pb2.RegisterAccountRequest(
        parent=f"projects/{project}",
        account_id=account_id,
        account=account_pb2.Account(**fields),
        request_id=str(uuid.uuid4()),
    )


async def test_register_get_list_update_delete(accounts, project):
    created = await accounts.RegisterAccount(
        register(
            project,
            role_arn="arn:aws:iam::123456789012:role/linkplane",
            external_id="ext-123",
            allowed_regions=["us-east-1"],
            labels={"env": "prod"},
        )
    )
    name = f"projects/{project}/accounts/123456789012"
    assert created.name == name
    assert created.aws_account_id == "123456789012"
    fetched = await accounts.GetAccount(account_service_pb2.GetAccountRequest(name=name))
    assert fetched == created

    listed = await accounts.ListAccounts(
        account_service_pb2.ListAccountsRequest(
            parent=f"projects/{project}", filter="labels.env = prod"
        )
    )
    assert [a.name for a in listed.accounts] == [name]

    updated = await accounts.UpdateAccount(
        account_service_pb2.UpdateAccountRequest(
            account=account_pb2.Account(name=name, etag=created.etag, display_name="prod"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        )
    )
    assert updated.display_name == "prod"
    assert updated.role_arn == created.role_arn
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await accounts.UpdateAccount(
            account_service_pb2.UpdateAccountRequest(
                account=account_pb2.Account(name=name, etag=created.etag, display_name="stale"),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            )
        )
    assert caught.value.code() == grpc.StatusCode.ABORTED

    await accounts.DeleteAccount(account_service_pb2.DeleteAccountRequest(name=name))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await accounts.GetAccount(account_service_pb2.GetAccountRequest(name=name))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_register_replays_and_refuses_duplicates(accounts, project):
    request = register(project)
    first = await accounts.RegisterAccount(request)
    # The replay answers the first response, times included: the registration's, as stored.
    assert await accounts.RegisterAccount(request) == first
    got = await accounts.GetAccount(account_service_pb2.GetAccountRequest(name=first.name))
    assert (got.create_time, got.update_time) == (first.create_time, first.create_time)
    assert first.create_time.seconds > 0
    request.request_id = str(uuid.uuid4())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await accounts.RegisterAccount(request)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_racing_retries_of_one_request_register_once(accounts, channel, project):
    # A client that retries while its first attempt is still in flight: every attempt answers
    # the same account, and one account and one audit entry exist.
    request = register(project, account_id="123456789099", display_name="raced")
    answers = await asyncio.gather(*(accounts.RegisterAccount(request) for _ in range(8)))
    assert all(answer == answers[0] for answer in answers)
    listed = await accounts.ListAccounts(
        account_service_pb2.ListAccountsRequest(parent=f"projects/{project}")
    )
    assert [a.name for a in listed.accounts] == [answers[0].name]
    events = await audit_service_pb2_grpc.AuditServiceStub(channel).ListAuditEvents(
        audit_service_pb2.ListAuditEventsRequest(parent=f"projects/{project}")
    )
    assert [e.method for e in events.audit_events] == ["RegisterAccount"]


@pytest.mark.parametrize(
    ("fields", "account_id", "bad_field"),
    [
        ({}, "12345", "account_id"),
        ({"role_arn": "arn:aws:iam::999999999999:role/x"}, "123456789012", "account.role_arn"),
        ({"role_arn": "not-an-arn"}, "123456789012", "account.role_arn"),
        ({"external_id": "abc"}, "123456789012", "account.external_id"),
        ({"allowed_regions": ["mars-1"]}, "123456789012", "account.allowed_regions[0]"),
        ({"labels": {"Bad Key": "v"}}, "123456789012", "account.labels['Bad Key']"),
        ({"display_name": "x" * 64}, "123456789012", "account.display_name"),
    ],
)
async def test_bad_input_names_the_field(accounts, project, fields, account_id, bad_field):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await accounts.RegisterAccount(register(project, account_id, **fields))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = details(caught.value)
    assert bad_field in info["fields"]
    assert info["domain"] == "linkplane.dev"


async def test_account_in_use_cannot_be_deleted(accounts, provider, project):
    await accounts.RegisterAccount(register(project, "111111111111"))
    await provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}", service=managed_service(project)
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await accounts.DeleteAccount(
            account_service_pb2.DeleteAccountRequest(
                name=f"projects/{project}/accounts/111111111111"
            )
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(caught.value)["reason"] == "ACCOUNT_IN_USE"


async def test_region_outside_allowed_regions_is_refused(accounts, provider, project):
    await accounts.RegisterAccount(register(project, "111111111111", allowed_regions=["eu-west-1"]))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provider.PublishService(
            provider_service_pb2.PublishServiceRequest(
                parent=f"projects/{project}", service=managed_service(project)
            )
        )
    assert details(caught.value)["fields"] == ["service.region"]
