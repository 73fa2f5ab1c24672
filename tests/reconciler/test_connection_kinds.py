"""Connections to what is not a linkplane Service: AWS services over interface endpoints (SQS),
gateway endpoints (S3, with route tables), and the checks that pick the right kind; plus the
per-VPC quota read from Service Quotas and create's validate_only preview.

Each test seeds a VPC of its own (the per-VPC endpoint quota is per VPC) and checks both what
linkplane reports and what the simulator holds."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from linkplane.sim import server as sim_server
from linkplane.v1 import common_pb2, connection_pb2, consumer_service_pb2
from tests.reconciler.conftest import CONSUMER, REGION, wait_done
from tests.reconciler.test_features import as_account

Conn = connection_pb2.Connection
SQS = f"com.amazonaws.{REGION}.sqs"
S3 = f"com.amazonaws.{REGION}.s3"


def own_network(sim: sim_server.SimHandle, **options: Any) -> dict[str, Any]:
    """A fresh consumer VPC (one per test: the endpoint quota is per VPC)."""
    octet = uuid.uuid4().int % 200 + 20
    return sim_server.seed_network(
        sim, account_id=CONSUMER, region=REGION, cidr=f"10.{octet}.0.0/16", **options
    )


def consumer(project: str, network: dict[str, Any], **fields: Any) -> Conn:
    values: dict[str, Any] = {
        "consumer_account": f"projects/{project}/accounts/{CONSUMER}",
        "region": REGION,
        "vpc_id": network["vpc_id"],
    }
    values.update(fields)
    return Conn(**values)


async def create(api: Any, project: str, connection_id: str, connection: Conn, **kw: Any) -> Any:
    return await api.consumer.CreateConnection(
        consumer_service_pb2.CreateConnectionRequest(
            parent=f"projects/{project}",
            connection_id=connection_id,
            connection=connection,
            request_id=str(uuid.uuid4()),
            **kw,
        )
    )


async def get(api: Any, name: str) -> Conn:
    return await api.consumer.GetConnection(consumer_service_pb2.GetConnectionRequest(name=name))


async def delete(api: Any, name: str) -> None:
    op = await api.consumer.DeleteConnection(
        consumer_service_pb2.DeleteConnectionRequest(name=name, request_id=str(uuid.uuid4()))
    )
    done = await wait_done(api, op.name, 60.0)
    assert not done.HasField("error"), done.error


async def sim_endpoint(sim: sim_server.SimHandle, endpoint_id: str) -> dict[str, Any]:
    async with as_account(sim, CONSUMER, "ec2") as ec2:
        found = await ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])
    (endpoint,) = found["VpcEndpoints"]
    return dict(endpoint)


def modify_calls(sim: sim_server.SimHandle) -> int:
    return sum(
        1 for r in sim.requests() if r["action"] == "ModifyVpcEndpoint" and r["account"] == CONSUMER
    )


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The BadRequest field violations of an INVALID_ARGUMENT answer."""
    found: dict[str, str] = {}
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    found.update({v.field: v.description for v in bad.field_violations})
    return found


async def test_sqs_interface_endpoint_with_private_dns_reaches_available(
    api, networks, project, sim
):
    await api.register(project, CONSUMER)
    network = own_network(sim)
    before = modify_calls(sim)
    op = await create(
        api,
        project,
        "sqs",
        consumer(
            project, network, service_name=SQS, subnet_ids=network["subnet_ids"],
            private_dns_enabled=True,
        ),
    )  # fmt: skip
    done = await wait_done(api, op.name, 60.0)
    assert not done.HasField("error"), done.error
    connection = await get(api, f"projects/{project}/connections/sqs")
    assert connection.state == Conn.STATE_AVAILABLE
    assert connection.resolved_service_name == SQS
    assert len(connection.network_interfaces) == len(network["subnet_ids"])
    conditions = {c.type: c for c in connection.conditions}
    assert conditions["Ready"].status == common_pb2.Condition.STATUS_TRUE
    assert conditions["PrivateDns"].reason == "Enabled"
    # The simulator holds an interface endpoint to SQS with private DNS on, set at creation:
    # no ModifyVpcEndpoint was needed (an AWS service needs no acceptance).
    endpoint = await sim_endpoint(sim, connection.endpoint_id)
    assert endpoint["VpcEndpointType"] == "Interface"
    assert endpoint["ServiceName"] == SQS
    assert endpoint["PrivateDnsEnabled"] is True
    assert str(endpoint["State"]).lower() == "available"
    assert f"sqs.{REGION}.amazonaws.com" in {d["DnsName"] for d in endpoint["DnsEntries"]}
    assert modify_calls(sim) == before
    await delete(api, connection.name)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        (  # a gateway to a service that has none
            {"service_name": SQS, "endpoint_type": Conn.ENDPOINT_TYPE_GATEWAY,
             "route_table_ids": ["rtb-0123456789abcdef0"]},
            "connection.endpoint_type", "gateway endpoints only for",
        ),
        (  # a gateway without route tables
            {"service_name": S3, "endpoint_type": Conn.ENDPOINT_TYPE_GATEWAY},
            "connection.route_table_ids", "at least 1",
        ),
        (  # a gateway with subnets
            {"service_name": S3, "endpoint_type": Conn.ENDPOINT_TYPE_GATEWAY,
             "route_table_ids": ["rtb-0123456789abcdef0"],
             "subnet_ids": ["subnet-0123456789abcdef0"]},
            "connection.subnet_ids", "not used by a gateway",
        ),
        (  # route tables on an interface endpoint
            {"service_name": S3, "subnet_ids": ["subnet-0123456789abcdef0"],
             "route_table_ids": ["rtb-0123456789abcdef0"]},
            "connection.route_table_ids", "ENDPOINT_TYPE_GATEWAY",
        ),
        (  # a cross-region gateway
            {"service_name": S3, "endpoint_type": Conn.ENDPOINT_TYPE_GATEWAY,
             "route_table_ids": ["rtb-0123456789abcdef0"], "service_region": "us-west-2"},
            "connection.service_region", "cannot be cross-region",
        ),
    ],
)  # fmt: skip
async def test_the_wrong_endpoint_kind_is_invalid_argument_naming_the_field(
    api, project, fields, field, words
):
    await api.register(project, CONSUMER)
    connection = Conn(
        consumer_account=f"projects/{project}/accounts/{CONSUMER}",
        region=REGION,
        vpc_id="vpc-0123456789abcdef0",
        **fields,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(api, project, "wrong", connection)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = violations(caught.value)
    assert field in found, found
    assert words in found[field]


async def test_validate_only_create_answers_the_would_be_connection(api, networks, project, sim):
    await api.register(project, CONSUMER)
    network = own_network(sim)
    op = await create(
        api,
        project,
        "preview",
        consumer(project, network, service_name=SQS, subnet_ids=network["subnet_ids"]),
        validate_only=True,
    )
    assert op.done and not op.name
    preview = Conn()
    op.response.Unpack(preview)
    assert preview.name == f"projects/{project}/connections/preview"
    assert preview.service_name == SQS
    assert list(preview.subnet_ids) == network["subnet_ids"]
    assert preview.state == Conn.STATE_CREATING
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get(api, preview.name)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
