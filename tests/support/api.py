"""Talking to a server under test over gRPC: stubs, polling until a condition holds, waiting for
an Operation, publishing a Service, and reading the rich details of an error."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
from google.longrunning import operations_pb2, operations_pb2_grpc

from linkplane.v1 import (
    account_pb2,
    account_service_pb2,
    account_service_pb2_grpc,
    consumer_service_pb2_grpc,
    provider_service_pb2,
    provider_service_pb2_grpc,
    service_pb2,
)


class Api:
    """The stubs of the linkplane services on one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.accounts = account_service_pb2_grpc.AccountServiceStub(channel)
        self.provider = provider_service_pb2_grpc.ProviderServiceStub(channel)
        self.consumer = consumer_service_pb2_grpc.ConsumerServiceStub(channel)
        self.operations = operations_pb2_grpc.OperationsStub(channel)

    async def register(self, project: str, *account_ids: str) -> None:
        """Register `account_ids` in `project`, each with the role linkplane assumes in it."""
        for account_id in account_ids:
            await self.accounts.RegisterAccount(
                account_service_pb2.RegisterAccountRequest(
                    parent=f"projects/{project}",
                    account_id=account_id,
                    account=account_pb2.Account(
                        role_arn=f"arn:aws:iam::{account_id}:role/linkplane",
                        external_id="linkplane-tests",
                    ),
                    request_id=str(uuid.uuid4()),
                )
            )


async def eventually(
    probe: Callable[[], Any], predicate: Callable[[Any], bool], timeout: float = 30.0
) -> Any:
    """Poll `probe` until `predicate` holds; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = await probe()
        if predicate(value):
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not reached in {timeout}s; last value:\n{value}")


async def wait_done(api: Api, name: str, timeout: float = 30.0) -> operations_pb2.Operation:
    """The Operation `name` once done (success or error)."""
    return await eventually(
        lambda: api.operations.GetOperation(operations_pb2.GetOperationRequest(name=name)),
        lambda op: op.done,
        timeout,
    )


async def publish(
    api: Api, project: str, service_id: str, service: service_pb2.Service
) -> service_pb2.Service:
    """Publish `service` and wait until its operation succeeds; returns the Service."""
    published = await api.provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}", service_id=service_id, service=service
        )
    )
    done = await wait_done(api, published.name)
    assert not done.HasField("error"), done.error
    return await api.provider.GetService(
        provider_service_pb2.GetServiceRequest(name=f"projects/{project}/services/{service_id}")
    )


def status_details(error: grpc.aio.AioRpcError) -> dict[str, Any]:
    """The decoded `google.rpc.Status` details of an error: ErrorInfo `reason`, `domain` and
    `metadata`, the BadRequest field violations' `fields` (and `violations`, field to description),
    and RetryInfo's `retry_delay` in
    whole seconds (None without one)."""
    from google.rpc import error_details_pb2, status_pb2

    out: dict[str, Any] = {
        "reason": None,
        "domain": None,
        "metadata": {},
        "fields": [],
        "violations": {},
        "retry_delay": None,
    }
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    out["reason"] = info.reason
                    out["domain"] = info.domain
                    out["metadata"] = dict(info.metadata)
                elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    out["fields"] = [v.field for v in bad.field_violations]
                    out["violations"] = {v.field: v.description for v in bad.field_violations}
                elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    retry = error_details_pb2.RetryInfo()
                    detail.Unpack(retry)
                    out["retry_delay"] = retry.retry_delay.seconds
    return out
