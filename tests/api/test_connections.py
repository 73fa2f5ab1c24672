"""ConsumerService over a real channel and a real Postgres."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from linkplane.v1 import (
    common_pb2,
    connection_pb2,
    consumer_service_pb2,
    provider_service_pb2,
)
from tests.api.conftest import connection_to, details, managed_service, register_accounts


async def setup(accounts, provider, project) -> str:
    await register_accounts(accounts, project)
    await provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}", service_id="target", service=managed_service(project)
        )
    )
    return f"projects/{project}/services/target"


async def test_create_get_list_update_delete(accounts, provider, consumer, project):
    service = await setup(accounts, provider, project)
    request = consumer_service_pb2.CreateConnectionRequest(
        parent=f"projects/{project}",
        connection_id="checkout",
        connection=connection_to(project, service, request_message="hi, team checkout here"),
        request_id=str(uuid.uuid4()),
    )
    operation = await consumer.CreateConnection(request)
    assert not operation.done
    assert (await consumer.CreateConnection(request)).name == operation.name

    name = f"projects/{project}/connections/checkout"
    connection = await consumer.GetConnection(consumer_service_pb2.GetConnectionRequest(name=name))
    assert connection.state == connection_pb2.Connection.STATE_CREATING
    assert connection.reconciling
    assert connection.service == service
    assert connection.request_message == "hi, team checkout here"

    listed = await consumer.ListConnections(
        consumer_service_pb2.ListConnectionsRequest(
            parent=f"projects/{project}", filter=f'service = "{service}" AND state = CREATING'
        )
    )
    assert [c.name for c in listed.connections] == [name]

    await consumer.UpdateConnection(
        consumer_service_pb2.UpdateConnectionRequest(
            connection=connection_pb2.Connection(
                name=name, private_dns_enabled=True, etag=connection.etag
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["private_dns_enabled"]),
        )
    )
    updated = await consumer.GetConnection(consumer_service_pb2.GetConnectionRequest(name=name))
    assert updated.private_dns_enabled
    assert updated.generation == 2

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await consumer.DeleteConnection(
            consumer_service_pb2.DeleteConnectionRequest(name=name, etag=connection.etag)
        )
    assert caught.value.code() == grpc.StatusCode.ABORTED
    deleting = await consumer.DeleteConnection(
        consumer_service_pb2.DeleteConnectionRequest(name=name, etag=updated.etag)
    )
    metadata = common_pb2.OperationMetadata()
    deleting.metadata.Unpack(metadata)
    assert metadata.verb == "delete"
    gone = await consumer.GetConnection(consumer_service_pb2.GetConnectionRequest(name=name))
    assert gone.state == connection_pb2.Connection.STATE_DELETING


async def test_aws_service_names_are_accepted_as_targets(accounts, provider, consumer, project):
    await register_accounts(accounts, project)
    connection = connection_to(project, "")
    connection.service_name = "com.amazonaws.us-east-1.sqs"
    operation = await consumer.CreateConnection(
        consumer_service_pb2.CreateConnectionRequest(
            parent=f"projects/{project}", connection=connection
        )
    )
    assert operation.name


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda c: setattr(c, "vpc_id", "vpc-XYZ"), "connection.vpc_id"),
        (lambda c: c.subnet_ids.append("subnet-nope"), "connection.subnet_ids[1]"),
        (lambda c: c.ClearField("subnet_ids"), "connection.subnet_ids"),
        (lambda c: setattr(c, "policy_document", "not json"), "connection.policy_document"),
        (
            lambda c: setattr(c, "policy_document", "{" + " " * 20480 + "}"),
            "connection.policy_document",
        ),
        (lambda c: setattr(c, "request_message", "x" * 1025), "connection.request_message"),
        (lambda c: setattr(c, "ip_address_type", 99), "connection.ip_address_type"),
        (lambda c: setattr(c, "service", "services/x"), "connection.service"),
        (lambda c: setattr(c, "region", "nowhere"), "connection.region"),
        (lambda c: setattr(c, "service_region", "Also-Bad"), "connection.service_region"),
        (
            lambda c: c.security_group_ids.extend(["sg-0123456789abcdef0"] * 2),
            "connection.security_group_ids[1]",
        ),
    ],
)
async def test_bad_input_names_the_field(accounts, provider, consumer, project, mutate, field):
    service = await setup(accounts, provider, project)
    connection = connection_to(project, service)
    mutate(connection)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await consumer.CreateConnection(
            consumer_service_pb2.CreateConnectionRequest(
                parent=f"projects/{project}", connection=connection
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in details(caught.value)["fields"]


async def test_target_service_must_exist(accounts, consumer, project):
    await register_accounts(accounts, project)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await consumer.CreateConnection(
            consumer_service_pb2.CreateConnectionRequest(
                parent=f"projects/{project}",
                connection=connection_to(project, f"projects/{project}/services/missing"),
            )
        )
    assert details(caught.value)["fields"] == ["connection.service"]
