"""Watch streams: snapshot, SYNCED, live changes, several subscribers at once."""

from __future__ import annotations

import asyncio

from google.protobuf import field_mask_pb2

from linkplane.v1 import common_pb2, provider_service_pb2, service_pb2
from tests.api.conftest import managed_service, register_accounts


async def next_event(stream, timeout: float = 10.0):
    return await asyncio.wait_for(stream.read(), timeout)


async def test_two_watchers_see_snapshot_then_every_change(accounts, provider, project):
    await register_accounts(accounts, project)
    parent = f"projects/{project}"
    await provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=parent, service_id="first", service=managed_service(project)
        )
    )
    streams = [
        provider.WatchServices(
            provider_service_pb2.WatchServicesRequest(parent=parent, send_initial=True)
        )
        for _ in range(2)
    ]
    filtered = provider.WatchServices(
        provider_service_pb2.WatchServicesRequest(parent=parent, filter="labels.team = search")
    )
    for stream in streams:
        existing = await next_event(stream)
        assert existing.type == common_pb2.EVENT_TYPE_EXISTING
        assert existing.service.name == f"{parent}/services/first"
        assert (await next_event(stream)).type == common_pb2.EVENT_TYPE_SYNCED

    await provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=parent, service_id="second", service=managed_service(project)
        )
    )
    await provider.UpdateService(
        provider_service_pb2.UpdateServiceRequest(
            service=service_pb2.Service(name=f"{parent}/services/first", display_name="renamed"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        )
    )
    for stream in streams:
        added = await next_event(stream)
        assert added.type == common_pb2.EVENT_TYPE_ADDED
        assert added.service.name == f"{parent}/services/second"
        modified = await next_event(stream)
        assert modified.type == common_pb2.EVENT_TYPE_MODIFIED
        assert modified.service.display_name == "renamed"
        stream.cancel()

    labelled = managed_service(project)
    labelled.labels["team"] = "search"
    await provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=parent, service_id="third", service=labelled
        )
    )
    event = await next_event(filtered)
    assert event.type == common_pb2.EVENT_TYPE_ADDED
    assert event.service.name == f"{parent}/services/third", "the filter hides the others"
    filtered.cancel()
