"""Acceptance policy and service teardown, end to end against the simulator.

What a provider notices: consumers on the accept list are let in without anyone clicking,
up to their connection limit; consumers on the reject list are turned away (and the consumer's
create Operation says so); a service with live connections cannot be deleted by accident, and
a forced delete rejects the connections and leaves nothing behind in AWS.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from linkplane.v1 import (
    connection_pb2,
    consumer_service_pb2,
    provider_service_pb2,
    service_pb2,
)
from tests.reconciler.conftest import (
    CONSUMER,
    OTHER_CONSUMER,
    PROVIDER,
    connection_spec,
    eventually,
    managed_service,
    publish,
    wait_done,
)

Conn = connection_pb2.Connection
Decision = service_pb2.ServiceConnection.Decision


async def create(api, project, networks, service, connection_id, account=CONSUMER):
    created = await api.consumer.CreateConnection(
        consumer_service_pb2.CreateConnectionRequest(
            parent=f"projects/{project}",
            connection_id=connection_id,
            connection=connection_spec(project, networks[account], service, account),
        )
    )
    return created, f"projects/{project}/connections/{connection_id}"


async def get(api, name):
    return await api.consumer.GetConnection(consumer_service_pb2.GetConnectionRequest(name=name))


async def inventory(api, service):
    listed = await api.provider.ListServiceConnections(
        provider_service_pb2.ListServiceConnectionsRequest(parent=service)
    )
    return {c.endpoint_id: c for c in listed.service_connections}


async def test_accept_list_limit_and_reject_list(api, networks, project):
    await api.register(project, PROVIDER, CONSUMER, OTHER_CONSUMER)
    service = managed_service(
        project,
        networks,
        # The rejected consumer must see the service to ask at all.
        allowed=(CONSUMER, OTHER_CONSUMER),
        accept_rules=[service_pb2.AcceptRule(principal=CONSUMER, connection_limit=1)],
        reject_principals=[OTHER_CONSUMER],
    )
    published = await publish(api, project, "policy", service)
    assert published.state == service_pb2.Service.STATE_ACTIVE
    service_name = published.name

    # 1. On the accept list: accepted by the policy, no person involved.
    first_op, first = await create(api, project, networks, service_name, "first")
    done = await wait_done(api, first_op.name)
    assert not done.HasField("error"), done.error
    accepted = await eventually(lambda: get(api, first), lambda c: c.state == Conn.STATE_AVAILABLE)
    seen = await eventually(
        lambda: inventory(api, service_name),
        lambda m: accepted.endpoint_id in m and m[accepted.endpoint_id].decision.verdict,
    )
    decision = seen[accepted.endpoint_id].decision
    assert decision.verdict == Decision.VERDICT_ACCEPTED
    assert decision.automatic
    assert decision.actor == f"policy:accept:{CONSUMER}"

    # 2. Same account, over its connection limit of 1: waits for a person.
    second_op, second = await create(api, project, networks, service_name, "second")
    done = await wait_done(api, second_op.name)
    assert not done.HasField("error"), done.error
    pending = await get(api, second)
    assert pending.state == Conn.STATE_PENDING_ACCEPTANCE
    # The service has seen the request (it is in the inventory) and left it undecided ...
    listed = await eventually(
        lambda: inventory(api, service_name), lambda m: pending.endpoint_id in m
    )
    assert not listed[pending.endpoint_id].decision.verdict
    # ... and keeps leaving it so across several of its passes (transitional resync 0.2 s).
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        current = await get(api, second)
        assert current.state == Conn.STATE_PENDING_ACCEPTANCE, current
        await asyncio.sleep(0.1)

    # 3. On the reject list: REJECTED, and the create Operation fails with that.
    third_op, third = await create(
        api, project, networks, service_name, "third", account=OTHER_CONSUMER
    )
    done = await wait_done(api, third_op.name)
    assert done.HasField("error"), done
    assert "rejected" in done.error.message.lower()
    rejected = await get(api, third)
    assert rejected.state == Conn.STATE_REJECTED
    listed = await inventory(api, service_name)
    decision = listed[rejected.endpoint_id].decision
    assert decision.verdict == Decision.VERDICT_REJECTED and decision.automatic
    assert decision.actor == f"policy:reject:{OTHER_CONSUMER}"
    # The limited consumer's first connection is untouched by all this.
    assert (await get(api, first)).state == Conn.STATE_AVAILABLE


async def test_delete_service_with_live_connections(api, networks, project, sim):
    await api.register(project, PROVIDER, CONSUMER)
    published = await publish(
        api,
        project,
        "doomed",
        managed_service(
            project, networks, accept_rules=[service_pb2.AcceptRule(principal=CONSUMER)]
        ),
    )
    service_name = published.name
    names = []
    for index in range(2):
        _, name = await create(api, project, networks, service_name, f"live-{index}")
        names.append(name)
    for name in names:
        await eventually(lambda n=name: get(api, n), lambda c: c.state == Conn.STATE_AVAILABLE)
    await eventually(
        lambda: inventory(api, service_name),
        lambda m: (
            sum(c.state == service_pb2.ServiceConnection.STATE_AVAILABLE for c in m.values()) == 2
        ),
    )

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await api.provider.DeleteService(
            provider_service_pb2.DeleteServiceRequest(name=service_name)
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    still = await api.provider.GetService(provider_service_pb2.GetServiceRequest(name=service_name))
    assert still.state == service_pb2.Service.STATE_ACTIVE

    removed = await api.provider.DeleteService(
        provider_service_pb2.DeleteServiceRequest(name=service_name, force=True)
    )
    done = await wait_done(api, removed.name)
    assert not done.HasField("error"), done.error
    for name in names:
        await eventually(lambda n=name: get(api, n), lambda c: c.state == Conn.STATE_REJECTED)

    provider_objects = sim.objects(account=PROVIDER)
    uid = published.uid
    assert not [
        s for s in provider_objects["endpoint_services"] if s["tags"].get("linkplane:uid") == uid
    ]
    assert not [s for s in provider_objects["endpoint_services"] if s["id"] == published.service_id]
    arns = set(published.network_load_balancer_arns)
    assert arns
    assert not [lb for lb in provider_objects["load_balancers"] if lb["arn"] in arns]
    assert not [
        lb for lb in provider_objects["load_balancers"] if lb["tags"].get("linkplane:uid") == uid
    ]
    consumer_endpoints = {e["id"]: e["state"] for e in sim.objects(account=CONSUMER)["endpoints"]}
    for name in names:
        endpoint_id = (await get(api, name)).endpoint_id
        assert consumer_endpoints[endpoint_id].lower() == "rejected"
