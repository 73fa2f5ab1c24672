"""Who may call is decided before what was sent is judged.

A caller without valid credentials gets UNAUTHENTICATED from every RPC, whatever the request:
bytes that are no message, NUL bytes, over-long strings, deep filters. An authenticated caller
without the permission on the resource the request names gets PERMISSION_DENIED before the
rest of the request is checked. Neither learns the server's validation rules or limits. The
same requests from a caller who may call still get INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor, descriptor_pool, message_factory
from google.protobuf.message import Message

from linkplane.server.api import server as api_server
from linkplane.v1 import consumer_service_pb2, provider_service_pb2, service_pb2
from tests.authz.conftest import Caller, new_project
from tests.support.api import status_details

# A length-delimited field 1 claiming far more bytes than follow: no message parses from it.
TRUNCATED = bytes([0x0A, 0xFF, 0xFF, 0xFF, 0x0F]) + b"abc"
METHODS = [
    method
    for name in api_server.SERVICE_NAMES
    for method in descriptor_pool.Default().FindServiceByName(name).methods
]


def _identity(value: bytes) -> bytes:
    return value


async def _call(channel: grpc.aio.Channel, method: descriptor.MethodDescriptor, payload: bytes):
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        if method.server_streaming:
            stream = channel.unary_stream(
                path, request_serializer=_identity, response_deserializer=_identity
            )(payload, timeout=10.0)
            async for _ in stream:
                break
            stream.cancel()
        else:
            await channel.unary_unary(
                path, request_serializer=_identity, response_deserializer=_identity
            )(payload, timeout=10.0)
    except grpc.aio.AioRpcError as error:
        return error
    return None


def _spoiled(method: descriptor.MethodDescriptor) -> Message:
    """The method's request with every top-level string a NUL byte and 5,000 characters."""
    request = message_factory.GetMessageClass(method.input_type)()
    for fd in request.DESCRIPTOR.fields:
        if fd.type == descriptor.FieldDescriptor.TYPE_STRING and not fd.is_repeated:
            setattr(request, fd.name, "a\x00" + "x" * 5000)
    return request


async def test_unauthenticated_malformed_requests_get_unauthenticated(
    callers: dict[str | None, Caller],
) -> None:
    anonymous = callers[None].channel
    answers = {}
    for method in METHODS:
        for shape, payload in (
            ("bytes", TRUNCATED),
            ("spoiled", _spoiled(method).SerializeToString()),
        ):
            error = await _call(anonymous, method, payload)
            answers[f"{method.name} {shape}"] = error.code() if error else grpc.StatusCode.OK
    assert len(answers) >= 2 * 25
    wrong = {
        call: code for call, code in answers.items() if code != grpc.StatusCode.UNAUTHENTICATED
    }
    assert wrong == {}


async def test_unauthorised_caller_is_refused_before_validation(
    callers: dict[str | None, Caller],
) -> None:
    """`nobody` holds no role: refused on the named project, not told what is wrong with
    the request; the bootstrap admin `root` sending the same is told which field is bad."""
    project = new_project()
    publish = provider_service_pb2.PublishServiceRequest(
        parent=f"projects/{project}",
        service_id="Not An Id\x00",
        service=service_pb2.Service(display_name="x" * 5000, region="us-east-1\x00"),
        request_id="not-a-uuid",
        validate_only=True,
    )
    listing = consumer_service_pb2.ListConnectionsRequest(
        parent=f"projects/{project}", filter="(" * 300 + "state = ACTIVE" + ")" * 300
    )
    for call, request in (
        (lambda c: c.provider.PublishService, publish),
        (lambda c: c.consumer.ListConnections, listing),
    ):
        outcomes = {}
        for principal in ("nobody", "root"):
            try:
                await call(callers[principal])(request, timeout=10.0)
                outcomes[principal] = (grpc.StatusCode.OK, [])
            except grpc.aio.AioRpcError as error:
                outcomes[principal] = (error.code(), status_details(error)["fields"])
        assert outcomes["nobody"] == (grpc.StatusCode.PERMISSION_DENIED, [])
        assert outcomes["root"][0] == grpc.StatusCode.INVALID_ARGUMENT
        assert outcomes["root"][1]


async def test_bad_credentials_win_over_malformed_bytes(
    callers: dict[str | None, Caller], authz_server
) -> None:
    """A wrong token with bytes that are no message: UNAUTHENTICATED, not INVALID_ARGUMENT."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{authz_server.port}") as channel:
        method = descriptor_pool.Default().FindMethodByName(
            "linkplane.v1.ProviderService.GetService"
        )
        call = channel.unary_unary(
            f"/{method.containing_service.full_name}/{method.name}",
            request_serializer=_identity,
            response_deserializer=_identity,
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(TRUNCATED, timeout=10.0, metadata=(("authorization", "Bearer wrong"),))
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
