"""ProviderService over a real channel and a real Postgres."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from linkplane.v1 import common_pb2, provider_service_pb2, service_pb2
from tests.api.conftest import (
    CONSUMER_ID,
    account_name,
    details,
    managed_service,
    register_accounts,
)


async def publish(provider, project, service_id=None, **kwargs):
    return await provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}",
            service_id=service_id or "",
            service=kwargs.pop("service", None) or managed_service(project),
            request_id=str(uuid.uuid4()),
            **kwargs,
        )
    )


async def test_publish_returns_an_unfinished_operation_and_stores_the_spec(
    accounts, provider, operations, project
):
    await register_accounts(accounts, project)
    operation = await publish(provider, project, "payments-api")
    assert operation.name.startswith("operations/")
    assert not operation.done, "no reconciler yet: the operation must not pretend to be done"
    metadata = common_pb2.OperationMetadata()
    operation.metadata.Unpack(metadata)
    assert metadata.target == f"projects/{project}/services/payments-api"
    assert metadata.verb == "publish"

    service = await provider.GetService(
        provider_service_pb2.GetServiceRequest(name=metadata.target)
    )
    assert service.state == service_pb2.Service.STATE_CREATING
    assert service.reconciling
    assert service.generation == 1
    assert service.observed_generation == 0
    assert service.provider_account == account_name(project, "111111111111")
    assert list(service.allowed_principals) == [CONSUMER_ID]
    assert service.load_balancer.managed.listeners[0].protocol == service_pb2.Listener.PROTOCOL_TCP
    assert service.etag
    assert service.uid

    from google.longrunning import operations_pb2

    fetched = await operations.GetOperation(operations_pb2.GetOperationRequest(name=operation.name))
    assert fetched.name == operation.name
    assert not fetched.done


async def test_publish_twice_with_the_same_name_is_already_exists(accounts, provider, project):
    await register_accounts(accounts, project)
    await publish(provider, project, "dup")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await publish(provider, project, "dup")
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert details(caught.value)["reason"] == "RESOURCE_ALREADY_EXISTS"


async def test_same_request_id_replays_the_same_operation_and_creates_one_service(
    accounts, provider, project
):
    await register_accounts(accounts, project)
    request = provider_service_pb2.PublishServiceRequest(
        parent=f"projects/{project}",
        service=managed_service(project),
        request_id=str(uuid.uuid4()),
    )
    first = await provider.PublishService(request)
    second = await provider.PublishService(request)
    assert first.name == second.name
    listed = await provider.ListServices(
        provider_service_pb2.ListServicesRequest(parent=f"projects/{project}")
    )
    assert len(listed.services) == 1

    request.service.display_name = "something else"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provider.PublishService(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(caught.value)["fields"] == ["request_id"]


async def test_validate_only_writes_nothing(accounts, provider, project):
    await register_accounts(accounts, project)
    preview = await publish(provider, project, "preview", validate_only=True)
    assert preview.done
    assert not preview.name
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provider.GetService(
            provider_service_pb2.GetServiceRequest(name=f"projects/{project}/services/preview")
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_unregistered_provider_account_names_the_field(provider, project):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await publish(provider, project)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(caught.value)["fields"] == ["service.provider_account"]


async def test_list_pages_with_opaque_tokens_bound_to_the_filter(accounts, provider, project):
    await register_accounts(accounts, project)
    for i in range(7):
        await publish(provider, project, f"svc-{i}")
    parent = f"projects/{project}"
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await provider.ListServices(
            provider_service_pb2.ListServicesRequest(parent=parent, page_size=3, page_token=token)
        )
        pages += 1
        seen += [s.name for s in page.services]
        token = page.next_page_token
        if not token:
            break
        assert "svc-" not in token, "page tokens must be opaque"
    assert pages == 3
    assert seen == sorted(seen)
    assert len(set(seen)) == 7

    first = await provider.ListServices(
        provider_service_pb2.ListServicesRequest(parent=parent, page_size=3)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provider.ListServices(
            provider_service_pb2.ListServicesRequest(
                parent=parent,
                page_size=3,
                page_token=first.next_page_token,
                filter='labels.team = "payments"',
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(caught.value)["fields"] == ["page_token"]

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provider.ListServices(
            provider_service_pb2.ListServicesRequest(parent=parent, page_size=-1)
        )
    assert details(caught.value)["fields"] == ["page_size"]

    big = await provider.ListServices(
        provider_service_pb2.ListServicesRequest(parent=parent, page_size=100000)
    )
    assert len(big.services) == 7
    assert not big.next_page_token


async def test_filters(accounts, provider, project):
    await register_accounts(accounts, project)
    await publish(provider, project, "a", service=managed_service(project, display_name="alpha"))
    other = managed_service(project)
    other.labels["team"] = "search"
    await publish(provider, project, "b", service=other)
    parent = f"projects/{project}"

    async def names(text: str) -> list[str]:
        page = await provider.ListServices(
            provider_service_pb2.ListServicesRequest(parent=parent, filter=text)
        )
        return [s.name.rsplit("/", 1)[1] for s in page.services]

    assert await names('labels.team = "payments"') == ["a"]
    assert await names("labels.team != payments") == ["b"]
    assert await names("state = CREATING AND region = us-east-1") == ["a", "b"]
    assert await names('display_name = "alpha" OR labels.team = search') == ["a", "b"]
    assert await names("state = ACTIVE") == []
    for bad in ("colour = red", "state = SHINY", "state =", "(state = ACTIVE"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await names(bad)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert details(caught.value)["fields"] == ["filter"]


async def test_update_bumps_generation_and_checks_etag_and_mask(accounts, provider, project):
    await register_accounts(accounts, project)
    await publish(provider, project, "upd")
    name = f"projects/{project}/services/upd"
    current = await provider.GetService(provider_service_pb2.GetServiceRequest(name=name))

    change = service_pb2.Service(name=name, etag=current.etag, allowed_principals=["*"])
    operation = await provider.UpdateService(
        provider_service_pb2.UpdateServiceRequest(
            service=change,
            update_mask=field_mask_pb2.FieldMask(paths=["allowed_principals"]),
        )
    )
    assert not operation.done
    updated = await provider.GetService(provider_service_pb2.GetServiceRequest(name=name))
    assert list(updated.allowed_principals) == ["*"]
    assert updated.generation == 2
    assert updated.etag != current.etag
    assert updated.labels["team"] == "payments", "fields outside the mask are kept"

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provider.UpdateService(
            provider_service_pb2.UpdateServiceRequest(
                service=change, update_mask=field_mask_pb2.FieldMask(paths=["allowed_principals"])
            )
        )
    assert caught.value.code() == grpc.StatusCode.ABORTED

    for paths, field in (
        (["state"], "update_mask.paths[0]"),
        (["nonsense"], "update_mask.paths[0]"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await provider.UpdateService(
                provider_service_pb2.UpdateServiceRequest(
                    service=service_pb2.Service(name=name),
                    update_mask=field_mask_pb2.FieldMask(paths=paths),
                )
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert details(caught.value)["fields"] == [field]

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provider.UpdateService(
            provider_service_pb2.UpdateServiceRequest(
                service=service_pb2.Service(name=name, region="eu-west-1"),
                update_mask=field_mask_pb2.FieldMask(paths=["region"]),
            )
        )
    assert details(caught.value)["fields"] == ["service.region"]


async def test_delete_marks_deleting_and_refuses_updates(accounts, provider, project):
    await register_accounts(accounts, project)
    await publish(provider, project, "gone")
    name = f"projects/{project}/services/gone"
    operation = await provider.DeleteService(provider_service_pb2.DeleteServiceRequest(name=name))
    assert not operation.done
    service = await provider.GetService(provider_service_pb2.GetServiceRequest(name=name))
    assert service.state == service_pb2.Service.STATE_DELETING
    assert service.HasField("delete_time")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provider.UpdateService(
            provider_service_pb2.UpdateServiceRequest(
                service=service_pb2.Service(name=name, display_name="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            )
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_delete_with_linkplane_connections_needs_force(accounts, provider, consumer, project):
    from linkplane.v1 import consumer_service_pb2
    from tests.api.conftest import connection_to

    await register_accounts(accounts, project)
    await publish(provider, project, "busy")
    name = f"projects/{project}/services/busy"
    await consumer.CreateConnection(
        consumer_service_pb2.CreateConnectionRequest(
            parent=f"projects/{project}", connection=connection_to(project, name)
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provider.DeleteService(provider_service_pb2.DeleteServiceRequest(name=name))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(caught.value)["reason"] == "SERVICE_HAS_CONNECTIONS"
    operation = await provider.DeleteService(
        provider_service_pb2.DeleteServiceRequest(name=name, force=True)
    )
    assert not operation.done


async def test_accept_unknown_endpoint_is_not_found(accounts, provider, project):
    await register_accounts(accounts, project)
    await publish(provider, project, "acc")
    name = f"projects/{project}/services/acc"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provider.AcceptServiceConnections(
            provider_service_pb2.AcceptServiceConnectionsRequest(
                service=name, endpoint_ids=["vpce-0123456789abcdef0"], reason="known customer"
            )
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provider.AcceptServiceConnections(
            provider_service_pb2.AcceptServiceConnectionsRequest(
                service=name, endpoint_ids=["not-an-endpoint"]
            )
        )
    assert details(caught.value)["fields"] == ["endpoint_ids[0]"]
    empty = await provider.ListServiceConnections(
        provider_service_pb2.ListServiceConnectionsRequest(parent=name)
    )
    assert list(empty.service_connections) == []
