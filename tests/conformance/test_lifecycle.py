"""Lifecycle guarantees: ordered teardown, pre-flight checks, drift repair and watches."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from linkplane.v1 import common_pb2, consumer_service_pb2, provider_service_pb2, service_pb2
from tests.conformance.harness import TIMEOUT, Conn, Svc, Tenant, condition, eventually, live

AUTOMATIC = service_pb2.AcceptancePolicy.MODE_AUTOMATIC


async def test_ordered_teardown(tenant: Tenant) -> None:
    """Force-deleting a service with live connections: reject them, then delete the endpoint
    service, then the NLB, then its target groups — each step only after the previous one."""
    api, sim = tenant.api, tenant.sim
    provider, consumer = await tenant.account("10.60.0.0/16"), await tenant.account()
    service = await api.publish(
        "doomed", tenant.managed_service(provider, allowed=[consumer.account_id], mode=AUTOMATIC)
    )
    created = await api.connect("doomed", tenant.connection(consumer, service=service.name))
    connection = await api.wait_connection(created.name, lambda c: c.state == Conn.STATE_AVAILABLE)

    # Not forced: refused at once while connections live.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await api.delete_service(service.name)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (await sim.objects(provider.account_id))["endpoint_services"], "nothing deleted"

    done = await api.delete_service(service.name, force=True)
    assert not done.HasField("error"), done.error
    log = await sim.requests(provider.account_id)
    teardown = [
        entry["action"]
        for entry in log
        if entry["outcome"] == "ok"
        and entry["action"]
        in {
            "RejectVpcEndpointConnections",
            "DeleteVpcEndpointServiceConfigurations",
            "DeleteLoadBalancer",
            "DeleteTargetGroup",
        }
    ]
    first_of = {action: teardown.index(action) for action in set(teardown)}
    assert (
        first_of["RejectVpcEndpointConnections"]
        < first_of["DeleteVpcEndpointServiceConfigurations"]
        < first_of["DeleteLoadBalancer"]
        < first_of["DeleteTargetGroup"]
    ), teardown
    # No step was refused by AWS for being out of order.
    refusals = [e for e in log if e["action"].startswith("Delete") and e["outcome"] == "error"]
    assert refusals == [], refusals

    inventory = await sim.objects(provider.account_id)
    assert inventory["endpoint_services"] == [] and inventory["load_balancers"] == []
    elbv2 = await sim.client(provider.account_id, "elbv2")
    assert (await elbv2.describe_target_groups())["TargetGroups"] == []
    # The consumer's endpoint was rejected, and its Connection says why.
    assert (await sim.endpoint(consumer.account_id, connection.endpoint_id))["State"] == "rejected"
    orphan = await api.wait_connection(
        connection.name, lambda c: condition(c, "TargetService") is not None
    )
    assert orphan.state == Conn.STATE_REJECTED


async def test_preflight_rejects_a_subnet_in_an_unsupported_zone(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider, consumer = await tenant.account("10.61.0.0/16"), await tenant.account()
    # Offered in the first AZ only (its NLB has one subnet).
    service = await api.publish(
        "onezone", tenant.managed_service(provider, allowed=[consumer.account_id], subnets=1)
    )
    assert list(service.availability_zones) == provider.network.availability_zones[:1]
    spec = tenant.connection(consumer, service=service.name)
    spec.subnet_ids[:] = consumer.network.subnet_ids[1:]  # the other AZ
    done = await api.create_connection("wrongzone", spec)
    assert done.HasField("error")
    assert "UnsupportedAvailabilityZone" in done.error.message
    assert consumer.network.subnet_ids[1] in done.error.message
    failed = await api.get_connection(api.connection_name("wrongzone"))
    assert failed.state == Conn.STATE_FAILED
    assert failed.last_aws_error.code == "UnsupportedAvailabilityZone"
    assert not failed.endpoint_id
    # Caught before AWS: linkplane never even tried to create the endpoint.
    assert await sim.requests(consumer.account_id, "CreateVpcEndpoint") == []
    assert await sim.endpoints(consumer.account_id) == []


async def test_drift_repair_recreates_an_endpoint_deleted_in_aws(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider, consumer = await tenant.account("10.62.0.0/16"), await tenant.account()
    service = await api.publish(
        "drifty", tenant.managed_service(provider, allowed=[consumer.account_id], mode=AUTOMATIC)
    )
    created = await api.connect("victim", tenant.connection(consumer, service=service.name))
    before = await api.wait_connection(
        created.name, lambda c: c.state == Conn.STATE_AVAILABLE and not c.reconciling
    )
    # Someone deletes the endpoint by hand in the consumer account.
    ec2 = await sim.client(consumer.account_id, "ec2")
    answer = await ec2.delete_vpc_endpoints(VpcEndpointIds=[before.endpoint_id])
    assert not answer.get("Unsuccessful"), answer

    after = await api.wait_connection(
        created.name,
        lambda c: (
            bool(c.endpoint_id)
            and c.endpoint_id != before.endpoint_id
            and c.state == Conn.STATE_AVAILABLE
        ),
    )
    drift = condition(after, "Drift")
    assert drift is not None and drift.reason == "EndpointDeletedOutOfBand"
    assert before.endpoint_id in drift.message
    endpoints = [
        e
        for e in await sim.endpoints(consumer.account_id)
        if e["tags"].get("linkplane:uid") == after.uid and live(e["state"])
    ]
    assert [e["id"] for e in endpoints] == [after.endpoint_id]
    assert endpoints[0]["state"] == "available"
    assert {n.network_interface_id for n in after.network_interfaces} == set(
        endpoints[0]["network_interface_ids"]
    )


async def test_watches_stream_the_lifecycle(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider, consumer = await tenant.account("10.63.0.0/16"), await tenant.account()
    service = await api.publish(
        "watched", tenant.managed_service(provider, allowed=[consumer.account_id], mode=AUTOMATIC)
    )
    events: list[consumer_service_pb2.WatchConnectionsResponse] = []
    synced = asyncio.Event()
    stream = api.consumer.WatchConnections(
        consumer_service_pb2.WatchConnectionsRequest(parent=api.parent, send_initial=True)
    )

    async def collect() -> None:
        async for event in stream:
            events.append(event)
            if event.type == common_pb2.EVENT_TYPE_SYNCED:
                synced.set()

    collector = asyncio.create_task(collect())
    try:
        await asyncio.wait_for(synced.wait(), TIMEOUT)
        created = await api.connect("streamed", tenant.connection(consumer, service=service.name))

        def seen(kind: Any, state: Any = None) -> list[Conn]:
            return [
                e.connection
                for e in events
                if e.type == kind
                and e.connection.name == created.name
                and (state is None or e.connection.state == state)
            ]

        async def snapshot() -> list[Any]:
            return list(events)

        await eventually(
            snapshot, lambda _: bool(seen(common_pb2.EVENT_TYPE_MODIFIED, Conn.STATE_AVAILABLE))
        )
        assert seen(common_pb2.EVENT_TYPE_ADDED)
        available = seen(common_pb2.EVENT_TYPE_MODIFIED, Conn.STATE_AVAILABLE)[-1]
        described = await sim.endpoint(consumer.account_id, available.endpoint_id)
        assert described["State"] == "available"
        assert [d.dns_name for d in available.dns_entries] == [
            d["DnsName"] for d in described["DnsEntries"]
        ]

        done = await api.delete_connection(created.name)
        assert not done.HasField("error"), done.error
        await eventually(snapshot, lambda _: bool(seen(common_pb2.EVENT_TYPE_DELETED)))
        assert await sim.endpoint(consumer.account_id, available.endpoint_id) == {}
        # The events arrived in the order things happened.
        kinds = [e.type for e in events if e.connection.name == created.name]
        assert kinds[0] == common_pb2.EVENT_TYPE_ADDED
        assert kinds[-1] == common_pb2.EVENT_TYPE_DELETED
        states = [e.connection.state for e in events if e.connection.name == created.name]
        assert states.index(Conn.STATE_AVAILABLE) > states.index(Conn.STATE_CREATING)
    finally:
        stream.cancel()
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)


async def test_service_watch_streams_publish_and_delete(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider = await tenant.account("10.64.0.0/16")
    events: list[provider_service_pb2.WatchServicesResponse] = []
    synced = asyncio.Event()
    stream = api.provider.WatchServices(
        provider_service_pb2.WatchServicesRequest(parent=api.parent, send_initial=True)
    )

    async def collect() -> None:
        async for event in stream:
            events.append(event)
            if event.type == common_pb2.EVENT_TYPE_SYNCED:
                synced.set()

    async def snapshot() -> list[Any]:
        return list(events)

    def seen(kind: Any, state: Any = None) -> list[Svc]:
        return [
            e.service
            for e in events
            if e.type == kind and (state is None or e.service.state == state)
        ]

    collector = asyncio.create_task(collect())
    try:
        await asyncio.wait_for(synced.wait(), TIMEOUT)
        assert [e.type for e in events] == [common_pb2.EVENT_TYPE_SYNCED], "an empty project"
        service = await api.publish("streamed", tenant.managed_service(provider))
        await eventually(
            snapshot, lambda _: bool(seen(common_pb2.EVENT_TYPE_MODIFIED, Svc.STATE_ACTIVE))
        )
        [added] = seen(common_pb2.EVENT_TYPE_ADDED)
        assert added.name == service.name and added.state == Svc.STATE_CREATING
        active = seen(common_pb2.EVENT_TYPE_MODIFIED, Svc.STATE_ACTIVE)[-1]
        [aws_service] = (await sim.objects(provider.account_id))["endpoint_services"]
        assert aws_service["id"] == active.service_id and aws_service["state"] == "Available"

        done = await api.delete_service(service.name)
        assert not done.HasField("error"), done.error
        await eventually(snapshot, lambda _: bool(seen(common_pb2.EVENT_TYPE_DELETED)))
        assert (await sim.objects(provider.account_id))["endpoint_services"] == []
        assert events[-1].type == common_pb2.EVENT_TYPE_DELETED
    finally:
        stream.cancel()
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
