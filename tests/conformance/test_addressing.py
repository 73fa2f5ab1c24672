"""Where and how consumers connect: cross-Region PrivateLink, dual-stack endpoints, and the
pre-flight checks that refuse an unsupported Region or a VPC without endpoint quota left."""

from __future__ import annotations

import ipaddress

from linkplane.v1 import common_pb2, service_pb2
from tests.conformance.harness import (
    REGION,
    SC,
    TRUE,
    Conn,
    Tenant,
    condition,
    eventually,
    live,
)

AUTOMATIC = service_pb2.AcceptancePolicy.MODE_AUTOMATIC
IPV4, IPV6 = common_pb2.IP_ADDRESS_TYPE_IPV4, common_pb2.IP_ADDRESS_TYPE_IPV6
DUALSTACK = common_pb2.IP_ADDRESS_TYPE_DUALSTACK
WEST = "us-west-2"
SQS = f"com.amazonaws.{REGION}.sqs"
SNS = f"com.amazonaws.{REGION}.sns"


async def test_cross_region_connection(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider, consumer = await tenant.account("10.90.0.0/16"), await tenant.account()
    spec = tenant.managed_service(provider, allowed=[consumer.account_id], mode=AUTOMATIC)
    spec.supported_regions[:] = [WEST]
    service = await api.publish("global", spec)
    west = await sim.seed_network(consumer.account_id, "10.91.0.0/16", region=WEST)

    created = await api.connect(
        "from-west",
        tenant.connection(consumer, service=service.name, network=west, service_region=REGION),
    )
    connection = await api.wait_connection(created.name, lambda c: c.state == Conn.STATE_AVAILABLE)
    assert connection.region == WEST and connection.service_region == REGION
    assert connection.resolved_service_name == service.service_name
    assert condition(connection, "Ready").status == TRUE

    # The endpoint lives in the consumer's Region, in its VPC there, pointing at us-east-1.
    described = await sim.endpoint(consumer.account_id, connection.endpoint_id, region=WEST)
    assert described["State"] == "available"
    assert described["VpcId"] == west.vpc_id
    assert described["ServiceName"] == service.service_name
    assert described["ServiceRegion"] == REGION
    assert await sim.endpoint(consumer.account_id, connection.endpoint_id) == {}, (
        "nothing in the consumer's us-east-1"
    )
    # The provider sees the connection, from us-west-2.
    [request] = await eventually(lambda: api.inventory(service.name), lambda found: len(found) == 1)
    assert request.endpoint_id == connection.endpoint_id
    assert request.region == WEST


async def test_preflight_refuses_an_unsupported_region(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider, consumer = await tenant.account("10.92.0.0/16"), await tenant.account()
    service = await api.publish(
        "local", tenant.managed_service(provider, allowed=[consumer.account_id], mode=AUTOMATIC)
    )
    west = await sim.seed_network(consumer.account_id, "10.93.0.0/16", region=WEST)
    done = await api.create_connection(
        "far",
        tenant.connection(consumer, service=service.name, network=west, service_region=REGION),
        timeout=240.0,
    )
    assert done.HasField("error")
    failed = await api.get_connection(api.connection_name("far"))
    assert failed.state == Conn.STATE_FAILED
    assert not failed.endpoint_id
    # linkplane's own check, from the Service's supported regions, before visibility (AWS
    # hides the service from us-west-2, which would only say "not visible" after retries).
    assert failed.last_aws_error.code == "UnsupportedRegion"
    assert WEST in failed.last_aws_error.message and REGION in failed.last_aws_error.message
    # Refused before AWS: no endpoint was even attempted in either Region.
    for region in (REGION, WEST):
        ec2 = await sim.client(consumer.account_id, "ec2", region)
        assert (await ec2.describe_vpc_endpoints())["VpcEndpoints"] == []
    assert await sim.requests(consumer.account_id, "CreateVpcEndpoint") == []


async def test_dual_stack_endpoint(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider, consumer = await tenant.account("10.94.0.0/16"), await tenant.account()
    spec = tenant.managed_service(provider, allowed=[consumer.account_id], mode=AUTOMATIC)
    spec.supported_ip_address_types[:] = [IPV4, IPV6]
    service = await api.publish("dual", spec)
    created = await api.connect(
        "dual", tenant.connection(consumer, service=service.name, ip_address_type=DUALSTACK)
    )
    connection = await api.wait_connection(
        created.name,
        lambda c: (
            c.state == Conn.STATE_AVAILABLE
            and bool(c.network_interfaces)
            and all(n.ipv6_addresses for n in c.network_interfaces)
        ),
    )
    assert connection.ip_address_type == DUALSTACK

    described = await sim.endpoint(consumer.account_id, connection.endpoint_id)
    assert described["State"] == "available"
    assert described["IpAddressType"] == "dualstack"
    assert described["DnsOptions"]["DnsRecordIpType"] == "dualstack"
    ec2 = await sim.client(consumer.account_id, "ec2")
    enis = (
        await ec2.describe_network_interfaces(NetworkInterfaceIds=described["NetworkInterfaceIds"])
    )["NetworkInterfaces"]
    # Both families on every ENI, as AWS assigned them, inside the VPC's ranges.
    assert {
        (n.network_interface_id, n.private_ip_address, tuple(sorted(n.ipv6_addresses)))
        for n in connection.network_interfaces
    } == {
        (
            e["NetworkInterfaceId"],
            e["PrivateIpAddress"],
            tuple(sorted(a["Ipv6Address"] for a in e["Ipv6Addresses"])),
        )
        for e in enis
    }
    assert consumer.network.ipv6_cidr_block
    vpc_v6 = ipaddress.ip_network(consumer.network.ipv6_cidr_block)
    for eni in connection.network_interfaces:
        assert all(ipaddress.ip_address(a) in vpc_v6 for a in eni.ipv6_addresses)
        assert ipaddress.ip_address(eni.private_ip_address) in ipaddress.ip_network(
            consumer.network.cidr
        )
    # The provider's inventory is what the Service's passes last read from AWS: it follows the
    # consumer's view within a pass (CI saw it still PENDING when the consumer saw AVAILABLE).
    [request] = await eventually(
        lambda: api.inventory(service.name),
        lambda found: len(found) == 1 and found[0].state == SC.STATE_AVAILABLE,
    )
    assert request.endpoint_id == connection.endpoint_id


async def test_preflight_refuses_a_vpc_without_endpoint_quota(tenant: Tenant) -> None:
    """The per-VPC endpoint quota is the account's applied value in Service Quotas (here 1),
    not AWS's default of 50."""
    api, sim = tenant.api, tenant.sim
    consumer = await tenant.account("10.95.0.0/16")
    await sim.admin(
        "PUT", "quotas", {"account_id": consumer.account_id, "region": REGION, "value": 1}
    )
    first = await api.connect("first", tenant.connection(consumer, service_name=SQS))
    await api.wait_connection(first.name, lambda c: c.state == Conn.STATE_AVAILABLE)

    done = await api.create_connection("second", tenant.connection(consumer, service_name=SNS))
    assert done.HasField("error")
    failed = await api.get_connection(api.connection_name("second"))
    assert failed.state == Conn.STATE_FAILED and not failed.endpoint_id
    assert failed.last_aws_error.code == "VpcEndpointQuota"
    assert consumer.network.vpc_id in failed.last_aws_error.message
    assert "(quota 1" in failed.last_aws_error.message, "the applied value, not the default 50"
    # linkplane asked Service Quotas, and never sent the create AWS would have refused.
    assert await sim.requests(consumer.account_id, "GetServiceQuota")
    creates = await sim.requests(consumer.account_id, "CreateVpcEndpoint")
    assert [c["outcome"] for c in creates] == ["ok"]
    endpoints = [e for e in await sim.endpoints(consumer.account_id) if live(e["state"])]
    assert [e["id"] for e in endpoints] == [(await api.get_connection(first.name)).endpoint_id]
