"""IP address types and Regions of connections: dual-stack is checked before AWS is asked and
reaches AWS (create and update); a cross-region connection finds its service in the service's
Region and is created with ServiceRegion."""

from __future__ import annotations

import uuid
from typing import Any

from google.protobuf import field_mask_pb2

from linkplane.sim import server as sim_server
from linkplane.v1 import common_pb2, connection_pb2, consumer_service_pb2, service_pb2
from tests.reconciler.conftest import (
    CONSUMER,
    PROVIDER,
    REGION,
    eventually,
    managed_service,
    publish,
    wait_done,
)
from tests.reconciler.test_connection_kinds import consumer, create, delete, get, own_network
from tests.support import simulator

Conn = connection_pb2.Connection
AUTOMATIC = service_pb2.AcceptancePolicy.MODE_AUTOMATIC
OTHER_REGION = "us-west-2"


async def endpoint_in(sim: Any, endpoint_id: str) -> dict[str, Any]:
    async with simulator.acting_as(sim.endpoint_url, CONSUMER, "ec2") as ec2:
        found = await ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])
    (endpoint,) = found["VpcEndpoints"]
    return dict(endpoint)


async def test_dual_stack_to_an_ipv4_only_service_fails_before_aws(api, networks, project, sim):
    await api.register(project, PROVIDER, CONSUMER)
    service = await publish(api, project, "v4only", managed_service(project, networks))
    network = own_network(sim)
    op = await create(
        api,
        project,
        "ds",
        consumer(
            project, network, service=service.name, subnet_ids=network["subnet_ids"],
            ip_address_type=common_pb2.IP_ADDRESS_TYPE_DUALSTACK,
        ),
    )  # fmt: skip
    done = await wait_done(api, op.name, 60.0)
    assert done.HasField("error")
    failed = await get(api, f"projects/{project}/connections/ds")
    assert failed.state == Conn.STATE_FAILED
    assert failed.last_aws_error.code == "UnsupportedIpAddressType"
    assert "ipv6" in failed.last_aws_error.message.lower()
    assert not failed.endpoint_id, "nothing was created in AWS"


async def test_ip_address_type_update_reaches_aws(api, networks, project, sim):
    await api.register(project, PROVIDER, CONSUMER)
    spec = managed_service(project, networks, mode=AUTOMATIC)
    spec.supported_ip_address_types[:] = [
        common_pb2.IP_ADDRESS_TYPE_IPV4,
        common_pb2.IP_ADDRESS_TYPE_IPV6,
    ]
    service = await publish(api, project, "dual", spec)
    network = own_network(sim)
    name = f"projects/{project}/connections/v4"
    op = await create(
        api,
        project,
        "v4",
        consumer(
            project, network, service=service.name, subnet_ids=network["subnet_ids"],
            ip_address_type=common_pb2.IP_ADDRESS_TYPE_IPV4,
        ),
    )  # fmt: skip
    done = await wait_done(api, op.name, 60.0)
    assert not done.HasField("error"), done.error
    available = await eventually(
        lambda: get(api, name), lambda c: c.state == Conn.STATE_AVAILABLE, timeout=60.0
    )
    before = await endpoint_in(sim, available.endpoint_id)
    assert before["IpAddressType"] == "ipv4"
    assert all(not n.ipv6_addresses for n in available.network_interfaces)

    update = await api.consumer.UpdateConnection(
        consumer_service_pb2.UpdateConnectionRequest(
            connection=Conn(name=name, ip_address_type=common_pb2.IP_ADDRESS_TYPE_DUALSTACK),
            update_mask=field_mask_pb2.FieldMask(paths=["ip_address_type"]),
            request_id=str(uuid.uuid4()),
        )
    )
    done = await wait_done(api, update.name, 60.0)
    assert not done.HasField("error"), done.error
    after = await endpoint_in(sim, available.endpoint_id)
    assert after["IpAddressType"] == "dualstack"
    assert after["DnsOptions"]["DnsRecordIpType"] == "dualstack"
    updated = await eventually(
        lambda: get(api, name),
        lambda c: (
            bool(c.network_interfaces) and all(n.ipv6_addresses for n in c.network_interfaces)
        ),
        timeout=30.0,
    )
    assert updated.ip_address_type == common_pb2.IP_ADDRESS_TYPE_DUALSTACK
    await delete(api, name)


async def test_cross_region_connection_uses_service_regions(api, networks, project, sim):
    await api.register(project, PROVIDER, CONSUMER)
    spec = managed_service(project, networks, mode=AUTOMATIC)
    spec.supported_regions[:] = [OTHER_REGION]
    service = await publish(api, project, "global", spec)
    west = sim_server.seed_network(
        sim, account_id=CONSUMER, region=OTHER_REGION, cidr="10.30.0.0/16"
    )
    name = f"projects/{project}/connections/west"
    op = await create(
        api,
        project,
        "west",
        Conn(
            service=service.name,
            consumer_account=f"projects/{project}/accounts/{CONSUMER}",
            region=OTHER_REGION,
            service_region=REGION,
            vpc_id=west["vpc_id"],
            subnet_ids=west["subnet_ids"],
        ),
    )
    done = await wait_done(api, op.name, 60.0)
    assert not done.HasField("error"), done.error
    connection = await eventually(
        lambda: get(api, name), lambda c: c.state == Conn.STATE_AVAILABLE, timeout=60.0
    )
    assert connection.resolved_service_name == service.service_name
    # The endpoint lives in the consumer's Region and points at the service's.
    objects = sim.objects(account=CONSUMER, region=OTHER_REGION)
    assert connection.endpoint_id in str(objects)
    visible = [
        r
        for r in sim.requests()
        if r["action"] == "DescribeVpcEndpointServices"
        and r["account"] == CONSUMER
        and r["region"] == OTHER_REGION
        and r["outcome"] == "ok"
    ]
    assert visible, "pre-flight asked the consumer's Region about the service"
    await delete(api, name)
