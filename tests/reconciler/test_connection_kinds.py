"""Connections to what is not a linkplane Service: AWS services over interface endpoints (SQS),
gateway endpoints (S3, with route tables), and the checks that pick the right kind; plus the
per-VPC quota read from Service Quotas and create's validate_only preview.

Each test seeds a VPC of its own (the per-VPC endpoint quota is per VPC) and checks both what
linkplane reports and what the simulator holds."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import grpc
import pytest

from linkplane.sim import server as sim_server
from linkplane.v1 import common_pb2, connection_pb2, consumer_service_pb2
from tests.reconciler.conftest import CONSUMER, REGION, wait_done
from tests.support import simulator
from tests.support.api import status_details

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
    async with simulator.acting_as(sim.endpoint_url, CONSUMER, "ec2") as ec2:
        found = await ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])
    (endpoint,) = found["VpcEndpoints"]
    return dict(endpoint)


def modify_calls(sim: sim_server.SimHandle) -> int:
    return sum(
        1 for r in sim.requests() if r["action"] == "ModifyVpcEndpoint" and r["account"] == CONSUMER
    )


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


async def test_s3_gateway_endpoint_with_route_tables(api, networks, project, sim, control_plane):
    await api.register(project, CONSUMER)
    network = own_network(sim)
    tables = network["route_table_ids"]
    # Created with lpctl, as an operator would.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LINKPLANE_")}
    environment.update(
        {"LINKPLANE_ADDRESS": f"127.0.0.1:{control_plane.port}", "LINKPLANE_PROJECT": project}
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable, "-m", "linkplane.client.cli", "-o", "json",
            "connections", "create", "s3", "--account", CONSUMER, "--region", REGION,
            "--service-name", S3, "--endpoint-type", "gateway", "--vpc", network["vpc_id"],
            "--route-table", tables[0], "--wait", "--wait-timeout", "60",
        ],
        capture_output=True, text=True, env=environment, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["endpointType"] == "ENDPOINT_TYPE_GATEWAY"
    assert created["routeTableIds"] == [tables[0]]
    assert created["state"] == "STATE_AVAILABLE"
    name = f"projects/{project}/connections/s3"
    connection = await get(api, name)
    assert not connection.network_interfaces and not connection.dns_entries

    async def routes_to(endpoint_id: str) -> set[str]:
        async with simulator.acting_as(sim.endpoint_url, CONSUMER, "ec2") as ec2:
            found = await ec2.describe_route_tables(RouteTableIds=tables)
        return {
            t["RouteTableId"]
            for t in found["RouteTables"]
            for r in t.get("Routes", [])
            if r.get("GatewayId") == endpoint_id
        }

    endpoint = await sim_endpoint(sim, connection.endpoint_id)
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert sorted(endpoint["RouteTableIds"]) == [tables[0]]
    assert await routes_to(connection.endpoint_id) == {tables[0]}

    # Route tables are updated by diff (ModifyVpcEndpoint Add/RemoveRouteTableIds).
    update = await api.consumer.UpdateConnection(
        consumer_service_pb2.UpdateConnectionRequest(
            connection=Conn(name=name, route_table_ids=[tables[1]]),
            update_mask={"paths": ["route_table_ids"]},
            request_id=str(uuid.uuid4()),
        )
    )
    done = await wait_done(api, update.name, 60.0)
    assert not done.HasField("error"), done.error
    endpoint = await sim_endpoint(sim, connection.endpoint_id)
    assert sorted(endpoint["RouteTableIds"]) == [tables[1]]
    assert await routes_to(connection.endpoint_id) == {tables[1]}
    await delete(api, name)
    async with simulator.acting_as(sim.endpoint_url, CONSUMER, "ec2") as ec2:
        gone = await ec2.describe_vpc_endpoints(
            Filters=[{"Name": "vpc-id", "Values": [network["vpc_id"]]}]
        )
    assert all(str(e["State"]).lower() == "deleted" for e in gone["VpcEndpoints"])


async def test_the_endpoint_quota_comes_from_service_quotas(api, networks, project, sim):
    # A Region of its own: linkplane keeps quota answers for an hour per account and Region.
    region = "eu-west-1"
    sqs = f"com.amazonaws.{region}.sqs"
    await api.register(project, CONSUMER)
    network = sim_server.seed_network(sim, account_id=CONSUMER, region=region, cidr="10.40.0.0/16")
    sim.set_quota(CONSUMER, 2, region=region)
    try:
        for index in range(3):
            op = await create(
                api,
                project,
                f"q{index}",
                Conn(
                    consumer_account=f"projects/{project}/accounts/{CONSUMER}",
                    region=region,
                    vpc_id=network["vpc_id"],
                    subnet_ids=network["subnet_ids"],
                    service_name=sqs,
                ),
            )
            done = await wait_done(api, op.name, 60.0)
            assert done.HasField("error") == (index == 2), done
        third = await get(api, f"projects/{project}/connections/q2")
        assert third.state == Conn.STATE_FAILED
        assert third.last_aws_error.code == "VpcEndpointQuota"
        assert "quota 2" in third.last_aws_error.message
        assert not third.endpoint_id
        # Pre-flight refused it: AWS was never asked to create a third endpoint.
        refused = [
            r
            for r in sim.requests()
            if r["action"] == "CreateVpcEndpoint"
            and r["region"] == region
            and r["error_code"] == "VpcEndpointLimitExceeded"
        ]
        assert refused == []
    finally:
        sim.set_quota(CONSUMER, 50, region=region)
    for index in range(2):
        await delete(api, f"projects/{project}/connections/q{index}")


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
    found = status_details(caught.value)["violations"]
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
