"""AuditService.ListAuditEvents: a project's changes, who made them, filtered and paged."""

from __future__ import annotations

import datetime
import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from linkplane.server.api import identity
from linkplane.v1 import (
    account_pb2,
    account_service_pb2,
    audit_service_pb2,
    audit_service_pb2_grpc,
    provider_service_pb2,
)

from .conftest import PROVIDER_ID, account_name, details, managed_service, register_accounts


@pytest.fixture
def audit_stub(channel: grpc.aio.Channel) -> audit_service_pb2_grpc.AuditServiceStub:
    return audit_service_pb2_grpc.AuditServiceStub(channel)


async def events(stub, project: str, filter_text: str = "", page_size: int = 0) -> list:
    out, token = [], ""
    while True:
        page = await stub.ListAuditEvents(
            audit_service_pb2.ListAuditEventsRequest(
                parent=f"projects/{project}",
                filter=filter_text,
                page_size=page_size,
                page_token=token,
            ),
            timeout=30,
        )
        out.extend(page.audit_events)
        token = page.next_page_token
        if not token:
            return out


async def test_every_change_is_listed_with_actor_request_and_changed_fields(
    accounts, provider, audit_stub, project
):
    started = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)
    await register_accounts(accounts, project)
    name = account_name(project, PROVIDER_ID)
    account = await accounts.GetAccount(account_service_pb2.GetAccountRequest(name=name))
    update_id = str(uuid.uuid4())
    await accounts.UpdateAccount(
        account_service_pb2.UpdateAccountRequest(
            account=account_pb2.Account(
                name=name,
                display_name="renamed",
                role_arn=f"arn:aws:iam::{PROVIDER_ID}:role/linkplane",
                external_id="secret-ext-id",
                etag=account.etag,
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name", "role_arn", "external_id"]),
            request_id=update_id,
        )
    )
    publish_id = str(uuid.uuid4())
    await provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}",
            service_id="billing",
            service=managed_service(project),
            request_id=publish_id,
        )
    )

    listed = await events(audit_stub, project)
    assert [(e.method, e.resource) for e in listed] == [
        ("RegisterAccount", account_name(project, PROVIDER_ID)),
        ("RegisterAccount", account_name(project, "222222222222")),
        ("UpdateAccount", name),
        ("PublishService", f"projects/{project}/services/billing"),
    ]
    for event in listed:
        assert event.actor == identity.LOCAL_PRINCIPAL  # dev mode: the local user
        assert event.time.ToDatetime(datetime.UTC) >= started
        assert event.name.startswith(f"projects/{project}/auditEvents/")
        assert event.resource_uid
    update, publish = listed[2], listed[3]
    assert update.request_id == update_id
    assert list(update.changed_fields) == ["display_name", "external_id", "role_arn"]
    assert publish.request_id == publish_id
    assert {"region", "provider_account", "allowed_principals"} <= set(publish.changed_fields)
    assert publish.details["spec"]["region"] == "us-east-1"
    # Secrets never reach the audit log.
    assert all("secret-ext-id" not in str(e.details) for e in listed)


async def test_events_are_filtered_by_resource_actor_method_and_time(accounts, audit_stub, project):
    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)
    await register_accounts(accounts, project)
    provider_account = account_name(project, PROVIDER_ID)
    after = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)

    async def methods(filter_text: str) -> list[str]:
        return [e.resource for e in await events(audit_stub, project, filter_text)]

    assert await methods(f'resource = "{provider_account}"') == [provider_account]
    assert len(await methods(f'resource != "{provider_account}"')) == 1
    assert len(await methods('method = "RegisterAccount"')) == 2
    assert await methods('method = "DeleteAccount"') == []
    assert len(await methods(f'actor = "{identity.LOCAL_PRINCIPAL}"')) == 2
    assert await methods('actor = "mallory"') == []
    assert len(await methods(f'time >= "{before.isoformat()}"')) == 2
    assert await methods(f'time < "{before.isoformat()}"') == []
    assert await methods(f'time > "{after.isoformat().replace("+00:00", "Z")}"') == []
    window = f'time > "{before.isoformat()}" AND time <= "{after.isoformat()}"'
    assert len(await methods(f'{window} AND method = "RegisterAccount"')) == 2


@pytest.mark.parametrize(
    ("filter_text", "description"),
    [
        ('time >= "yesterday"', "RFC 3339"),
        ('time >= "2026-01-01T00:00:00"', "RFC 3339"),  # no zone: ambiguous
        ('method < "X"', "only = and !="),
        ('details = "x"', "unknown field"),
        ("time >", "ends unexpectedly"),
    ],
)
async def test_bad_filters_are_invalid_argument(audit_stub, project, filter_text, description):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await events(audit_stub, project, filter_text)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(caught.value)["fields"] == ["filter"]
    assert description in (caught.value.details() or "")


async def test_projects_see_only_their_own_events(accounts, audit_stub, project):
    await register_accounts(accounts, project)
    # A project whose id extends this one's must not match by prefix.
    other = f"{project}-x"
    await register_accounts(accounts, other)
    assert {e.resource.split("/")[1] for e in await events(audit_stub, project)} == {project}
    assert {e.resource.split("/")[1] for e in await events(audit_stub, other)} == {other}


async def test_events_page_in_order_with_signed_tokens(accounts, audit_stub, project):
    await register_accounts(accounts, project)
    name = account_name(project, PROVIDER_ID)
    for n in range(3):
        account = await accounts.GetAccount(account_service_pb2.GetAccountRequest(name=name))
        await accounts.UpdateAccount(
            account_service_pb2.UpdateAccountRequest(
                account=account_pb2.Account(name=name, display_name=f"n{n}", etag=account.etag),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            )
        )
    everything = await events(audit_stub, project)
    assert len(everything) == 5
    paged = await events(audit_stub, project, page_size=2)
    assert [e.name for e in paged] == [e.name for e in everything]
    ids = [int(e.name.rsplit("/", 1)[1]) for e in everything]
    assert ids == sorted(ids)

    first = await audit_stub.ListAuditEvents(
        audit_service_pb2.ListAuditEventsRequest(parent=f"projects/{project}", page_size=2)
    )
    for changed in (
        audit_service_pb2.ListAuditEventsRequest(
            parent=f"projects/{project}", page_token=first.next_page_token, filter="actor = x"
        ),
        audit_service_pb2.ListAuditEventsRequest(
            parent="projects/elsewhere", page_token=first.next_page_token
        ),
        audit_service_pb2.ListAuditEventsRequest(
            parent=f"projects/{project}", page_token=first.next_page_token[:-3] + "abc"
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await audit_stub.ListAuditEvents(changed)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert details(caught.value)["fields"] == ["page_token"]


@pytest.mark.parametrize(
    ("parent", "page_size", "field"),
    [("", 0, "parent"), ("projects/UPPER", 0, "parent"), ("projects/ok", -1, "page_size")],
)
async def test_bad_requests_name_the_field(audit_stub, parent, page_size, field):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await audit_stub.ListAuditEvents(
            audit_service_pb2.ListAuditEventsRequest(parent=parent, page_size=page_size)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(caught.value)["fields"] == [field]


async def test_deleting_a_finished_operation_is_audited_in_its_project(
    server, accounts, provider, operations, audit_stub, project
):
    from google.longrunning import operations_pb2
    from sqlalchemy import text

    await register_accounts(accounts, project)
    created = await provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}", service_id="ops", service=managed_service(project)
        )
    )
    # No reconciler runs in API tests: finish the operation as a worker would.
    async with server.db.transaction() as session:
        await session.execute(
            text("UPDATE operations SET done = true WHERE id = :id"),
            {"id": created.name.removeprefix("operations/")},
        )
    await operations.DeleteOperation(operations_pb2.DeleteOperationRequest(name=created.name))
    deleted = await events(audit_stub, project, 'method = "DeleteOperation"')
    assert [(e.resource, e.actor) for e in deleted] == [(created.name, identity.LOCAL_PRINCIPAL)]
    assert deleted[0].details["target"] == f"projects/{project}/services/ops"
