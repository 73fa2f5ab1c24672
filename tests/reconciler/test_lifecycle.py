"""End to end against the simulator: publish, connect, accept, tear down."""

from __future__ import annotations

from linkplane.v1 import (
    connection_pb2,
    consumer_service_pb2,
    provider_service_pb2,
    service_pb2,
)
from tests.support.api import eventually, wait_done
from tests.support.simulator import CONSUMER, PROVIDER, REGION
from tests.support.specs import managed_service


def connection(
    project: str, networks, service: str, account: str = CONSUMER
) -> connection_pb2.Connection:
    return connection_pb2.Connection(
        service=service,
        consumer_account=f"projects/{project}/accounts/{account}",
        region=REGION,
        vpc_id=networks[account]["vpc_id"],
        subnet_ids=networks[account]["subnet_ids"],
        request_message="team checkout asks for access",
    )


async def test_publish_connect_accept_delete(api, networks, project):
    await api.register(project, PROVIDER, CONSUMER)
    published = await api.provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}",
            service_id="payments",
            service=managed_service(project, networks),
        )
    )
    done = await wait_done(api, published.name)
    assert not done.HasField("error"), done.error
    service_name = f"projects/{project}/services/payments"
    service = await api.provider.GetService(
        provider_service_pb2.GetServiceRequest(name=service_name)
    )
    assert service.state == service_pb2.Service.STATE_ACTIVE
    assert not service.reconciling
    assert service.service_name.startswith("com.amazonaws.vpce.us-east-1.vpce-svc-")
    assert "/net/" in service.network_load_balancer_arns[0]

    created = await api.consumer.CreateConnection(
        consumer_service_pb2.CreateConnectionRequest(
            parent=f"projects/{project}",
            connection_id="checkout",
            connection=connection(project, networks, service_name),
        )
    )
    done = await wait_done(api, created.name)
    assert not done.HasField("error"), done.error
    name = f"projects/{project}/connections/checkout"
    conn = await api.consumer.GetConnection(consumer_service_pb2.GetConnectionRequest(name=name))
    assert conn.state == connection_pb2.Connection.STATE_PENDING_ACCEPTANCE
    assert conn.endpoint_id.startswith("vpce-")

    inventory = await eventually(
        lambda: api.provider.ListServiceConnections(
            provider_service_pb2.ListServiceConnectionsRequest(parent=service_name)
        ),
        lambda r: len(r.service_connections) == 1,
    )
    listed = inventory.service_connections[0]
    assert listed.endpoint_id == conn.endpoint_id and listed.owner_account_id == CONSUMER
    assert listed.connection == name
    assert listed.state == service_pb2.ServiceConnection.STATE_PENDING_ACCEPTANCE

    accepted = await api.provider.AcceptServiceConnections(
        provider_service_pb2.AcceptServiceConnectionsRequest(
            service=service_name, endpoint_ids=[conn.endpoint_id], reason="ticket OPS-1"
        )
    )
    done = await wait_done(api, accepted.name)
    assert not done.HasField("error"), done.error
    available = await eventually(
        lambda: api.consumer.GetConnection(consumer_service_pb2.GetConnectionRequest(name=name)),
        lambda c: c.state == connection_pb2.Connection.STATE_AVAILABLE,
    )
    assert available.dns_entries and available.dns_entries[0].dns_name.endswith("amazonaws.com")
    assert {n.subnet_id for n in available.network_interfaces} == set(
        networks[CONSUMER]["subnet_ids"]
    )
    assert all(n.private_ip_address.startswith("10.2.") for n in available.network_interfaces)
    decided = await api.provider.ListServiceConnections(
        provider_service_pb2.ListServiceConnectionsRequest(parent=service_name)
    )
    decision = decided.service_connections[0].decision
    assert decision.verdict == service_pb2.ServiceConnection.Decision.VERDICT_ACCEPTED
    assert decision.reason == "ticket OPS-1" and not decision.automatic

    deleting = await api.consumer.DeleteConnection(
        consumer_service_pb2.DeleteConnectionRequest(name=name)
    )
    done = await wait_done(api, deleting.name)
    assert not done.HasField("error"), done.error
    removed = await api.provider.DeleteService(
        provider_service_pb2.DeleteServiceRequest(name=service_name)
    )
    done = await wait_done(api, removed.name)
    assert not done.HasField("error"), done.error
