"""google.longrunning.Operations: get, list, wait (with timeout), cancel, delete."""

from __future__ import annotations

import time

import grpc
import pytest
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2

from linkplane.v1 import provider_service_pb2
from tests.api.conftest import details, managed_service, register_accounts


async def test_get_list_wait_cancel_delete(accounts, provider, operations, project):
    await register_accounts(accounts, project)
    created = await provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}", service_id="ops", service=managed_service(project)
        )
    )
    target = f"projects/{project}/services/ops"
    listed = await operations.ListOperations(
        operations_pb2.ListOperationsRequest(name="operations", filter=f'target = "{target}"')
    )
    assert [o.name for o in listed.operations] == [created.name]
    pending = await operations.ListOperations(
        operations_pb2.ListOperationsRequest(filter="done = false", page_size=1000)
    )
    assert created.name in [o.name for o in pending.operations]

    started = time.monotonic()
    waited = await operations.WaitOperation(
        operations_pb2.WaitOperationRequest(
            name=created.name, timeout=duration_pb2.Duration(nanos=300_000_000)
        )
    )
    assert not waited.done
    assert 0.25 <= time.monotonic() - started < 5

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await operations.CancelOperation(operations_pb2.CancelOperationRequest(name=created.name))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await operations.DeleteOperation(operations_pb2.DeleteOperationRequest(name=created.name))
    assert details(caught.value)["reason"] == "OPERATION_RUNNING"


@pytest.mark.parametrize("name", ["", "operations/", "ops/x", "operations/a/b"])
async def test_malformed_names(operations, name):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await operations.GetOperation(operations_pb2.GetOperationRequest(name=name))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(caught.value)["fields"] == ["name"]


async def test_unknown_operation_is_not_found(operations):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await operations.GetOperation(operations_pb2.GetOperationRequest(name="operations/nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
