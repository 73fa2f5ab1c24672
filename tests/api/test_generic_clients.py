"""What a generic gRPC client with no .proto files sees: health and reflection."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


async def test_health_is_serving(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "linkplane.v1.ProviderService"):
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_every_service_and_resolves_their_files(channel):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def ask(**kwargs):
        call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**kwargs)]))
        async for response in call:
            return response
        raise AssertionError("no reflection response")

    listing = await ask(list_services="")
    names = {s.name for s in listing.list_services_response.service}
    assert {
        "linkplane.v1.ProviderService",
        "linkplane.v1.ConsumerService",
        "linkplane.v1.AccountService",
        "google.longrunning.Operations",
        "grpc.health.v1.Health",
    } <= names
    described = await ask(file_containing_symbol="linkplane.v1.ProviderService")
    assert described.file_descriptor_response.file_descriptor_proto


async def test_unknown_method_is_unimplemented_not_internal(channel):
    call = channel.unary_unary("/linkplane.v1.ProviderService/Nope")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(b"")
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
