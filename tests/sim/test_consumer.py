"""Cross-account visibility and the consumer's view of its endpoints (behaviour 7)."""

import pytest
from botocore.exceptions import ClientError


async def test_consumer_sees_service_only_once_allowed(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    service = await aws.service(provider)
    with pytest.raises(ClientError) as error:
        await consumer.ec2.describe_vpc_endpoint_services(ServiceNames=[service["ServiceName"]])
    assert error.value.response["Error"]["Code"] == "InvalidServiceName"

    await provider.ec2.modify_vpc_endpoint_service_permissions(
        ServiceId=service["ServiceId"], AddAllowedPrincipals=[f"arn:aws:iam::{aws.CONSUMER}:root"]
    )
    found = await consumer.ec2.describe_vpc_endpoint_services(ServiceNames=[service["ServiceName"]])
    detail = found["ServiceDetails"][0]
    assert detail["ServiceId"] == service["ServiceId"]
    assert detail["Owner"] == aws.PROVIDER
    assert detail["AcceptanceRequired"] is True
    # Seeded by AZ id, both accounts share the zones; each calls them by its own names.
    shown = dict(zip(detail["AvailabilityZones"], detail["AvailabilityZoneIds"], strict=True))
    assert shown == dict(
        zip(consumer.network["availability_zones"], consumer.network["az_ids"], strict=True)
    )
    assert sorted(detail["AvailabilityZoneIds"]) == sorted(provider.network["az_ids"])
    assert found["ServiceNames"] == [service["ServiceName"]]


async def test_endpoint_lives_in_consumer_account_connection_on_provider_service(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    service = await aws.service(provider, allow=[f"arn:aws:iam::{aws.CONSUMER}:root"])
    endpoint = await aws.endpoint(
        consumer,
        service["ServiceName"],
        TagSpecifications=[
            {"ResourceType": "vpc-endpoint", "Tags": [{"Key": "linkplane:uid", "Value": "e-1"}]}
        ],
    )
    assert (await provider.ec2.describe_vpc_endpoints())["VpcEndpoints"] == []
    mine = await consumer.ec2.describe_vpc_endpoints(
        Filters=[
            {"Name": "tag:linkplane:uid", "Values": ["e-1"]},
            {"Name": "vpc-endpoint-state", "Values": ["pendingAcceptance"]},
        ]
    )
    assert [e["VpcEndpointId"] for e in mine["VpcEndpoints"]] == [endpoint["VpcEndpointId"]]
    none = await consumer.ec2.describe_vpc_endpoints(
        Filters=[{"Name": "tag:linkplane:uid", "Values": ["other"]}]
    )
    assert none["VpcEndpoints"] == []
    connections = await provider.ec2.describe_vpc_endpoint_connections()
    assert [
        (c["VpcEndpointId"], c["VpcEndpointOwner"]) for c in connections["VpcEndpointConnections"]
    ] == [(endpoint["VpcEndpointId"], aws.CONSUMER)]
    # The consumer has no service, so it sees no connections.
    assert (await consumer.ec2.describe_vpc_endpoint_connections())["VpcEndpointConnections"] == []

    await consumer.ec2.modify_vpc_endpoint(
        VpcEndpointId=endpoint["VpcEndpointId"], PolicyDocument='{"Statement": []}'
    )
    objects = aws.sim.objects(account=aws.CONSUMER)
    assert [e["owner"] for e in objects["endpoints"]] == [aws.CONSUMER]
    assert objects["endpoints"][0]["tags"] == {"linkplane:uid": "e-1"}
    requests = [r for r in aws.sim.requests() if r["action"] == "CreateVpcEndpoint"]
    assert [r["account"] for r in requests] == [aws.CONSUMER]
