"""Accept/Reject/DescribeVpcEndpointConnections and teardown rules (behaviours 2 and 3)."""

import pytest
from botocore.exceptions import ClientError


async def _provider_with_endpoints(aws, count):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    service = await aws.service(provider, allow=[f"arn:aws:iam::{aws.CONSUMER}:root"])
    aws.sim.set_throttling(False)  # CreateVpcEndpoint's burst is 4; this is not about throttling
    endpoints = [await aws.endpoint(consumer, service["ServiceName"]) for _ in range(count)]
    aws.sim.set_throttling(True)
    return provider, consumer, service, endpoints


async def test_connections_describe_filter_and_paginate(aws):
    provider, _, service, endpoints = await _provider_with_endpoints(aws, 7)
    ids = [e["VpcEndpointId"] for e in endpoints]
    await provider.ec2.accept_vpc_endpoint_connections(
        ServiceId=service["ServiceId"], VpcEndpointIds=ids[:2]
    )

    seen, token = [], None
    while True:
        kwargs = {
            "MaxResults": 5,
            "Filters": [{"Name": "service-id", "Values": [service["ServiceId"]]}],
        }
        if token:
            kwargs["NextToken"] = token
        page = await provider.ec2.describe_vpc_endpoint_connections(**kwargs)
        assert len(page["VpcEndpointConnections"]) <= 5
        seen.extend(page["VpcEndpointConnections"])
        token = page.get("NextToken")
        if not token:
            break
    assert sorted(c["VpcEndpointId"] for c in seen) == sorted(ids)
    first = seen[0]
    assert first["VpcEndpointOwner"] == aws.CONSUMER
    assert first["ServiceId"] == service["ServiceId"]
    assert first["VpcEndpointConnectionId"].startswith("vpce-con-")
    assert first["NetworkLoadBalancerArns"]
    assert "/net/" in first["NetworkLoadBalancerArns"][0]
    assert first["VpcEndpointRegion"] == "us-east-1"
    assert first["DnsEntries"]
    assert first["CreationTimestamp"]
    assert first["IpAddressType"] == "ipv4"

    pending = await provider.ec2.describe_vpc_endpoint_connections(
        Filters=[{"Name": "vpc-endpoint-state", "Values": ["pendingAcceptance"]}]
    )
    assert {c["VpcEndpointId"] for c in pending["VpcEndpointConnections"]} == set(ids[2:])
    one = await provider.ec2.describe_vpc_endpoint_connections(
        Filters=[
            {"Name": "vpc-endpoint-id", "Values": [ids[0]]},
            {"Name": "vpc-endpoint-owner", "Values": [aws.CONSUMER]},
        ]
    )
    assert [c["VpcEndpointId"] for c in one["VpcEndpointConnections"]] == [ids[0]]
    nobody = await provider.ec2.describe_vpc_endpoint_connections(
        Filters=[{"Name": "vpc-endpoint-owner", "Values": ["999999999999"]}]
    )
    assert nobody["VpcEndpointConnections"] == []


async def test_accept_reports_unknown_and_wrong_state_ids_in_unsuccessful(aws):
    provider, _, service, endpoints = await _provider_with_endpoints(aws, 2)
    ids = [e["VpcEndpointId"] for e in endpoints]
    await provider.ec2.accept_vpc_endpoint_connections(
        ServiceId=service["ServiceId"], VpcEndpointIds=[ids[0]]
    )
    answer = await provider.ec2.accept_vpc_endpoint_connections(
        ServiceId=service["ServiceId"], VpcEndpointIds=[ids[0], ids[1], "vpce-0000000000000000f"]
    )
    failures = {item["ResourceId"]: item["Error"]["Code"] for item in answer["Unsuccessful"]}
    assert failures == {
        ids[0]: "IncorrectState",
        "vpce-0000000000000000f": "InvalidVpcEndpointId.NotFound",
    }


async def test_only_the_service_owner_can_accept(aws):
    _, consumer, service, endpoints = await _provider_with_endpoints(aws, 1)
    with pytest.raises(ClientError) as error:
        await consumer.ec2.accept_vpc_endpoint_connections(
            ServiceId=service["ServiceId"], VpcEndpointIds=[endpoints[0]["VpcEndpointId"]]
        )
    assert error.value.response["Error"]["Code"] == "InvalidVpcEndpointServiceId.NotFound"


async def test_service_cannot_be_deleted_while_connections_live(aws):
    provider, _, service, endpoints = await _provider_with_endpoints(aws, 1)
    endpoint_id = endpoints[0]["VpcEndpointId"]
    answer = await provider.ec2.delete_vpc_endpoint_service_configurations(
        ServiceIds=[service["ServiceId"]]
    )
    assert answer["Unsuccessful"][0]["Error"]["Code"] == "ExistingVpcEndpointConnections"
    await provider.ec2.accept_vpc_endpoint_connections(
        ServiceId=service["ServiceId"], VpcEndpointIds=[endpoint_id]
    )
    answer = await provider.ec2.delete_vpc_endpoint_service_configurations(
        ServiceIds=[service["ServiceId"]]
    )
    assert answer["Unsuccessful"][0]["Error"]["Code"] == "ExistingVpcEndpointConnections"

    await provider.ec2.reject_vpc_endpoint_connections(
        ServiceId=service["ServiceId"], VpcEndpointIds=[endpoint_id]
    )
    answer = await provider.ec2.delete_vpc_endpoint_service_configurations(
        ServiceIds=[service["ServiceId"], "vpce-svc-00000000000000000"]
    )
    assert [u["ResourceId"] for u in answer["Unsuccessful"]] == ["vpce-svc-00000000000000000"]
    left = await provider.ec2.describe_vpc_endpoint_service_configurations()
    assert left["ServiceConfigurations"] == []


async def test_nlb_attached_to_a_service_cannot_be_deleted(aws):
    provider = await aws.account(aws.PROVIDER)
    service = await aws.service(provider)
    arn = service["NetworkLoadBalancerArns"][0]
    with pytest.raises(ClientError) as error:
        await provider.elbv2.delete_load_balancer(LoadBalancerArn=arn)
    assert error.value.response["Error"]["Code"] == "ResourceInUse"
    await provider.ec2.delete_vpc_endpoint_service_configurations(ServiceIds=[service["ServiceId"]])
    await provider.elbv2.delete_load_balancer(LoadBalancerArn=arn)
    left = await provider.elbv2.describe_load_balancers()
    assert left["LoadBalancers"] == []


async def test_delete_endpoint_goes_deleting_then_gone_and_frees_enis(aws):
    provider, consumer, _service, endpoints = await _provider_with_endpoints(aws, 1)
    endpoint = endpoints[0]
    aws.sim.set_time_scale(1.0)
    answer = await consumer.ec2.delete_vpc_endpoints(VpcEndpointIds=[endpoint["VpcEndpointId"]])
    assert answer["Unsuccessful"] == []
    assert await aws.endpoint_state(consumer, endpoint["VpcEndpointId"]) == "deleting"
    aws.sim.set_time_scale(1000.0)

    async def gone():
        found = await consumer.ec2.describe_vpc_endpoints(
            Filters=[{"Name": "vpc-id", "Values": [consumer.network["vpc_id"]]}]
        )
        return [e["VpcEndpointId"] for e in found["VpcEndpoints"]]

    await aws.eventually(gone, [])
    enis = await consumer.ec2.describe_network_interfaces(
        Filters=[{"Name": "vpc-id", "Values": [consumer.network["vpc_id"]]}]
    )
    assert enis["NetworkInterfaces"] == []
    connections = await provider.ec2.describe_vpc_endpoint_connections()
    assert connections["VpcEndpointConnections"][0]["VpcEndpointState"] == "deleted"
    answer = await consumer.ec2.delete_vpc_endpoints(VpcEndpointIds=[endpoint["VpcEndpointId"]])
    assert answer["Unsuccessful"][0]["Error"]["Code"] == "InvalidVpcEndpointId.NotFound"
