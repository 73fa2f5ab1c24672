"""Connections to what is not a linkplane Service: an AWS service (SQS) over an interface
endpoint, another provider's endpoint service by name, and S3 over a gateway endpoint."""

from __future__ import annotations

from linkplane.v1 import connection_pb2
from tests.conformance.harness import REGION, TRUE, Conn, Tenant, condition, eventually

SQS = f"com.amazonaws.{REGION}.sqs"
S3 = f"com.amazonaws.{REGION}.s3"


async def test_interface_endpoint_to_an_aws_service(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    consumer = await tenant.account("10.70.0.0/16")
    done = await api.create_connection(
        "queue", tenant.connection(consumer, service_name=SQS, private_dns_enabled=True)
    )
    assert not done.HasField("error"), done.error
    connection = await api.wait_connection(
        api.connection_name("queue"), lambda c: c.state == Conn.STATE_AVAILABLE
    )
    assert condition(connection, "Ready").status == TRUE
    assert connection.resolved_service_name == SQS
    assert len(connection.network_interfaces) == len(consumer.network.subnet_ids)

    described = await sim.endpoint(consumer.account_id, connection.endpoint_id)
    assert described["VpcEndpointType"] == "Interface"
    assert described["ServiceName"] == SQS
    assert described["State"] == "available"
    assert described["PrivateDnsEnabled"] is True
    # SQS's own name resolves to the endpoint in this VPC, and linkplane reports it.
    assert f"sqs.{REGION}.amazonaws.com" in {d["DnsName"] for d in described["DnsEntries"]}
    assert {d.dns_name for d in connection.dns_entries} == {
        d["DnsName"] for d in described["DnsEntries"]
    }
    assert {n.network_interface_id for n in connection.network_interfaces} == set(
        described["NetworkInterfaceIds"]
    )

    done = await api.delete_connection(connection.name)
    assert not done.HasField("error"), done.error
    assert await sim.endpoint(consumer.account_id, connection.endpoint_id) == {}


async def test_interface_endpoint_to_another_providers_service_name(tenant: Tenant) -> None:
    """The provider runs its endpoint service by hand, outside linkplane; the consumer connects
    by service name, waits for the provider's acceptance, and becomes available."""
    api, sim = tenant.api, tenant.sim
    provider = await tenant.account("10.71.0.0/16", register=False)
    consumer = await tenant.account("10.72.0.0/16")
    elbv2 = await sim.client(provider.account_id, "elbv2")
    nlb_arn = (
        await elbv2.create_load_balancer(
            Name="vendor", Type="network", Scheme="internal", Subnets=provider.network.subnet_ids
        )
    )["LoadBalancers"][0]["LoadBalancerArn"]
    provider_ec2 = await sim.client(provider.account_id, "ec2")
    created = (
        await provider_ec2.create_vpc_endpoint_service_configuration(
            NetworkLoadBalancerArns=[nlb_arn], AcceptanceRequired=True
        )
    )["ServiceConfiguration"]
    await provider_ec2.modify_vpc_endpoint_service_permissions(
        ServiceId=created["ServiceId"], AddAllowedPrincipals=[consumer.account_id]
    )
    await eventually(
        lambda: sim.service_configuration(provider.account_id, created["ServiceId"]),
        lambda c: c["ServiceState"] == "Available",
    )

    done = await api.create_connection(
        "vendor", tenant.connection(consumer, service_name=created["ServiceName"])
    )
    assert not done.HasField("error"), done.error
    waiting = Conn()
    done.response.Unpack(waiting)
    assert waiting.state == Conn.STATE_PENDING_ACCEPTANCE
    assert waiting.resolved_service_name == created["ServiceName"]
    assert (await sim.endpoint(consumer.account_id, waiting.endpoint_id))[
        "State"
    ] == "pendingAcceptance"

    # The provider accepts in AWS, by hand; linkplane follows.
    answer = await provider_ec2.accept_vpc_endpoint_connections(
        ServiceId=created["ServiceId"], VpcEndpointIds=[waiting.endpoint_id]
    )
    assert not answer.get("Unsuccessful"), answer
    available = await api.wait_connection(waiting.name, lambda c: c.state == Conn.STATE_AVAILABLE)
    assert condition(available, "Ready").status == TRUE
    described = await sim.endpoint(consumer.account_id, available.endpoint_id)
    assert described["State"] == "available"
    assert described["ServiceName"] == created["ServiceName"]
    assert [d.dns_name for d in available.dns_entries] == [
        d["DnsName"] for d in described["DnsEntries"]
    ]


async def test_gateway_endpoint_to_s3(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    consumer = await tenant.account("10.73.0.0/16")
    tables = consumer.network.route_table_ids
    done = await api.create_connection(
        "bucket",
        tenant.connection(
            consumer,
            service_name=S3,
            endpoint_type=connection_pb2.Connection.ENDPOINT_TYPE_GATEWAY,
            route_table_ids=tables[:1],
        ),
    )
    assert not done.HasField("error"), done.error
    connection = await api.wait_connection(
        api.connection_name("bucket"), lambda c: c.state == Conn.STATE_AVAILABLE
    )
    assert connection.endpoint_type == connection_pb2.Connection.ENDPOINT_TYPE_GATEWAY
    assert list(connection.route_table_ids) == tables[:1]
    assert not connection.network_interfaces, "a gateway endpoint has no ENIs"

    described = await sim.endpoint(consumer.account_id, connection.endpoint_id)
    assert described["VpcEndpointType"] == "Gateway"
    assert described["ServiceName"] == S3
    assert described["State"] == "available"
    assert described["RouteTableIds"] == tables[:1]
    assert not described.get("NetworkInterfaceIds")

    async def routes_via_endpoint() -> dict[str, bool]:
        ec2 = await sim.client(consumer.account_id, "ec2")
        found = (await ec2.describe_route_tables(RouteTableIds=tables))["RouteTables"]
        return {
            table["RouteTableId"]: any(
                route.get("GatewayId") == connection.endpoint_id for route in table["Routes"]
            )
            for table in found
        }

    assert await routes_via_endpoint() == {tables[0]: True, tables[1]: False}

    # Route tables change by update: the route moves in AWS.
    done = await api.update_connection(
        Conn(name=connection.name, route_table_ids=tables[1:]), "route_table_ids"
    )
    assert not done.HasField("error"), done.error
    await eventually(routes_via_endpoint, lambda r: r == {tables[0]: False, tables[1]: True})
    updated = await api.get_connection(connection.name)
    assert list(updated.route_table_ids) == tables[1:]

    done = await api.delete_connection(connection.name)
    assert not done.HasField("error"), done.error
    assert await routes_via_endpoint() == {tables[0]: False, tables[1]: False}
