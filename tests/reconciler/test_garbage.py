"""The garbage collector removes AWS objects tagged by linkplane that no resource owns."""

from __future__ import annotations

import uuid
from typing import Any

from linkplane.server.reconciler import garbage
from linkplane.v1 import account_pb2, account_service_pb2, connection_pb2, consumer_service_pb2
from tests.reconciler.conftest import CONSUMER, REGION, eventually
from tests.support import simulator


async def _register_consumer(api, project):
    """The consumer account in the test's project, limited to REGION (where it is swept)."""
    await api.accounts.RegisterAccount(
        account_service_pb2.RegisterAccountRequest(
            parent=f"projects/{project}",
            account_id=CONSUMER,
            account=account_pb2.Account(
                role_arn=f"arn:aws:iam::{CONSUMER}:role/linkplane", allowed_regions=[REGION]
            ),
        )
    )


async def test_orphaned_endpoint_is_deleted(
    api, sim, networks, control_plane, project, monkeypatch
):
    await _register_consumer(api, project)
    orphan_uid = str(uuid.uuid4())
    async with simulator.acting_as(sim.endpoint_url, CONSUMER, "ec2") as ec2:
        created = await ec2.create_vpc_endpoint(
            VpcEndpointType="Interface",
            VpcId=networks[CONSUMER]["vpc_id"],
            ServiceName="com.amazonaws.us-east-1.sqs",
            SubnetIds=networks[CONSUMER]["subnet_ids"][:1],
            TagSpecifications=[
                {
                    "ResourceType": "vpc-endpoint",
                    "Tags": [
                        {"Key": "linkplane:uid", "Value": orphan_uid},
                        {"Key": "linkplane:kind", "Value": "endpoint"},
                    ],
                }
            ],
        )
        orphan = created["VpcEndpoint"]["VpcEndpointId"]
        untagged = (
            await ec2.create_vpc_endpoint(
                VpcEndpointType="Interface",
                VpcId=networks[CONSUMER]["vpc_id"],
                ServiceName="com.amazonaws.us-east-1.sqs",
                SubnetIds=networks[CONSUMER]["subnet_ids"][:1],
            )
        )["VpcEndpoint"]["VpcEndpointId"]

        assert control_plane.collector is not None
        # The account is swept in its allowed Region; then only there: the package's database
        # holds the accounts of every test, and sweeping them all took four minutes.
        place = (f"projects/{project}/accounts/{CONSUMER}", REGION)
        assert place in await control_plane.collector._places()

        async def only_here(self: garbage.Collector) -> set[tuple[str, str]]:
            return {place}

        monkeypatch.setattr(garbage.Collector, "_places", only_here)
        swept = await control_plane.collector.sweep()
        assert orphan in swept.endpoints
        assert untagged not in swept.endpoints, "objects linkplane did not tag are never touched"
        described = await ec2.describe_vpc_endpoints(VpcEndpointIds=[untagged])
        assert described["VpcEndpoints"][0]["State"].lower() not in {"deleting", "deleted"}
        remaining = await ec2.describe_vpc_endpoints(
            Filters=[{"Name": "tag:linkplane:uid", "Values": [orphan_uid]}]
        )
        assert all(e["State"].lower() in {"deleting", "deleted"} for e in remaining["VpcEndpoints"])


async def test_a_sweep_spares_the_endpoint_of_a_connection_created_while_it_ran(
    api, sim, networks, control_plane, project, monkeypatch
):
    """The collector looked at the database, then a Connection was created and its endpoint
    with it, then the collector listed AWS: the endpoint's uid was not in the view read first,
    yet it has a row. Reading AWS first and the rows after spares it (before, the sweep
    deleted the brand-new endpoint of a live Connection)."""
    await _register_consumer(api, project)
    name = f"projects/{project}/connections/meanwhile"
    spec = connection_pb2.Connection(
        service_name=f"com.amazonaws.{REGION}.sqs",
        consumer_account=f"projects/{project}/accounts/{CONSUMER}",
        region=REGION,
        vpc_id=networks[CONSUMER]["vpc_id"],
        subnet_ids=networks[CONSUMER]["subnet_ids"][:1],
    )
    account = f"projects/{project}/accounts/{CONSUMER}"

    async def then_connect(self: garbage.Collector) -> Any:
        # Only this test's place: the package's database holds the accounts of every test, and
        # sweeping them all takes minutes (test_orphaned_endpoint_is_deleted does it once).
        found = {(account, REGION)}
        await api.consumer.CreateConnection(
            consumer_service_pb2.CreateConnectionRequest(
                parent=f"projects/{project}", connection_id="meanwhile", connection=spec
            )
        )
        await eventually(
            lambda: api.consumer.GetConnection(
                consumer_service_pb2.GetConnectionRequest(name=name)
            ),
            lambda c: bool(c.endpoint_id),
            timeout=30.0,
        )
        return found

    monkeypatch.setattr(garbage.Collector, "_places", then_connect)
    assert control_plane.collector is not None
    swept = await control_plane.collector.sweep()
    connection = await api.consumer.GetConnection(
        consumer_service_pb2.GetConnectionRequest(name=name)
    )
    assert connection.endpoint_id not in swept.endpoints
    async with simulator.acting_as(sim.endpoint_url, CONSUMER, "ec2") as ec2:
        (described,) = (await ec2.describe_vpc_endpoints(VpcEndpointIds=[connection.endpoint_id]))[
            "VpcEndpoints"
        ]
    assert described["State"].lower() not in {"deleting", "deleted"}
    await api.consumer.DeleteConnection(consumer_service_pb2.DeleteConnectionRequest(name=name))
