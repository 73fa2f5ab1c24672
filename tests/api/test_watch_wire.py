"""A live Watch event is serialized once for all the streams that send it (Hub.wire), and only
the hub's shared responses are: anything else a stream sends is serialized as usual.

Delivery through the server (the bytes clients decode) is tested by tests/api/test_watch.py.
"""

from __future__ import annotations

import asyncio

from google.protobuf.message import Message

from linkplane.server.api import watches
from linkplane.v1 import common_pb2, provider_service_pb2, service_pb2
from tests.api.conftest import managed_service, register_accounts


def _build(event_type: int, message: Message) -> provider_service_pb2.WatchServicesResponse:
    return provider_service_pb2.WatchServicesResponse(type=event_type, service=message)


def test_a_shared_response_is_serialized_once_for_every_stream() -> None:
    hub = watches.Hub(db=None, feed=None)  # type: ignore[arg-type] - no I/O here
    serialized: list[Message] = []

    def serialize(message: Message) -> bytes:
        serialized.append(message)
        return message.SerializeToString()

    service = service_pb2.Service(name="projects/p/services/a", etag="e1", display_name="a")
    response = hub.response(common_pb2.EVENT_TYPE_MODIFIED, service, _build)
    assert hub.response(common_pb2.EVENT_TYPE_MODIFIED, service, _build) is response
    sent = {hub.wire(response, serialize) for _ in range(1000)}
    assert sent == {response.SerializeToString()}
    assert serialized == [response]

    # Not one of the hub's: serialized every time (it may be changed between sends).
    own = _build(common_pb2.EVENT_TYPE_EXISTING, service)
    hub.wire(own, serialize)
    own.service.display_name = "b"
    assert (
        provider_service_pb2.WatchServicesResponse.FromString(
            hub.wire(own, serialize)
        ).service.display_name
        == "b"
    )
    assert serialized == [response, own, own]


def test_evicted_responses_are_forgotten() -> None:
    hub = watches.Hub(db=None, feed=None)  # type: ignore[arg-type] - no I/O here
    first = hub.response(
        common_pb2.EVENT_TYPE_ADDED, service_pb2.Service(name="projects/p/services/0"), _build
    )
    hub.wire(first, lambda m: m.SerializeToString())
    for i in range(1, watches.RESPONSE_CACHE + 1):
        hub.response(
            common_pb2.EVENT_TYPE_ADDED,
            service_pb2.Service(name=f"projects/p/services/{i}"),
            _build,
        )
    assert len(hub._shared) == len(hub._responses) == watches.RESPONSE_CACHE
    assert id(first) not in hub._wire
    assert hub.wire(first, lambda m: b"fresh") == b"fresh"


async def test_streams_send_the_hub_s_bytes(server, accounts, provider, project) -> None:
    """Through the server: two streams receive one change, serialized once (Hub.wire)."""
    await register_accounts(accounts, project)
    parent = f"projects/{project}"
    request = provider_service_pb2.WatchServicesRequest(parent=parent, send_initial=True)
    streams = [provider.WatchServices(request) for _ in range(2)]
    for stream in streams:
        synced = await asyncio.wait_for(stream.read(), 10)
        assert synced.type == common_pb2.EVENT_TYPE_SYNCED
    hub = server.deps.hub
    before = set(hub._wire)
    await provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=parent, service_id="wired", service=managed_service(project)
        )
    )
    received = [await asyncio.wait_for(stream.read(), 10) for stream in streams]
    for stream in streams:
        stream.cancel()
    assert {r.service.name for r in received} == {f"{parent}/services/wired"}
    new = [hub._shared[key] for key in set(hub._wire) - before]
    assert [r.service.name for r in new] == [f"{parent}/services/wired"]
    assert new[0] == received[0] == received[1]
