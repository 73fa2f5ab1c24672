"""Gateway endpoints (S3, DynamoDB): route tables, no ENIs, no acceptance (item 5)."""

import pytest
from botocore.exceptions import ClientError


async def _routes_to(account, route_table_id, endpoint_id):
    tables = await account.ec2.describe_route_tables(RouteTableIds=[route_table_id])
    return [
        route
        for route in tables["RouteTables"][0]["Routes"]
        if route.get("GatewayId") == endpoint_id
    ]


async def test_gateway_endpoint_routes_follow_its_route_tables(aws):
    consumer = await aws.account(aws.CONSUMER)
    first, second = consumer.network["route_table_ids"]
    answer = await consumer.ec2.create_vpc_endpoint(
        VpcEndpointType="Gateway",
        VpcId=consumer.network["vpc_id"],
        ServiceName="com.amazonaws.us-east-1.s3",
        RouteTableIds=[first],
    )
    endpoint = answer["VpcEndpoint"]
    endpoint_id = endpoint["VpcEndpointId"]
    assert endpoint["State"] == "available"
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert endpoint["RouteTableIds"] == [first]
    assert endpoint.get("NetworkInterfaceIds", []) == []
    assert endpoint.get("SubnetIds", []) == []
    [route] = await _routes_to(consumer, first, endpoint_id)
    prefix_lists = await consumer.ec2.describe_prefix_lists(
        Filters=[{"Name": "prefix-list-name", "Values": ["com.amazonaws.us-east-1.s3"]}]
    )
    assert route["DestinationPrefixListId"] == prefix_lists["PrefixLists"][0]["PrefixListId"]
    assert await _routes_to(consumer, second, endpoint_id) == []

    await consumer.ec2.modify_vpc_endpoint(
        VpcEndpointId=endpoint_id, AddRouteTableIds=[second], RemoveRouteTableIds=[first]
    )
    described = (await consumer.ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id]))[
        "VpcEndpoints"
    ][0]
    assert described["RouteTableIds"] == [second]
    assert described["VpcEndpointType"] == "Gateway"
    assert await _routes_to(consumer, first, endpoint_id) == []
    assert len(await _routes_to(consumer, second, endpoint_id)) == 1

    deleted = await consumer.ec2.delete_vpc_endpoints(VpcEndpointIds=[endpoint_id])
    assert deleted["Unsuccessful"] == []
    assert await _routes_to(consumer, second, endpoint_id) == []
    assert (await consumer.ec2.describe_vpc_endpoints())["VpcEndpoints"] == []


async def test_dynamodb_gateway_and_the_rules_of_the_gateway_type(aws):
    consumer = await aws.account(aws.CONSUMER)
    net = consumer.network
    answer = await consumer.ec2.create_vpc_endpoint(
        VpcEndpointType="Gateway",
        VpcId=net["vpc_id"],
        ServiceName="com.amazonaws.us-east-1.dynamodb",
        RouteTableIds=net["route_table_ids"],
    )
    assert answer["VpcEndpoint"]["RouteTableIds"] == net["route_table_ids"]

    async def refused(**kwargs):
        with pytest.raises(ClientError) as error:
            await consumer.ec2.create_vpc_endpoint(VpcId=net["vpc_id"], **kwargs)
        return error.value.response["Error"]

    error = await refused(
        VpcEndpointType="Gateway",
        ServiceName="com.amazonaws.us-east-1.s3",
        SubnetIds=net["subnet_ids"],
    )
    assert error["Code"] == "InvalidParameter"
    assert "Subnet IDs are only supported" in error["Message"]
    error = await refused(
        VpcEndpointType="Interface",
        ServiceName="com.amazonaws.us-east-1.s3",
        SubnetIds=net["subnet_ids"],
        RouteTableIds=net["route_table_ids"],
    )
    assert "Route table IDs are only supported for Gateway" in error["Message"]
    provider = await aws.account(aws.PROVIDER)
    service = await aws.service(provider, allow=["*"])
    error = await refused(
        VpcEndpointType="Gateway",
        ServiceName=service["ServiceName"],
        RouteTableIds=net["route_table_ids"],
    )
    assert "does not match available service types" in error["Message"]
    # Omitting the type means Gateway (AWS's default), which SQS does not offer.
    error = await refused(ServiceName="com.amazonaws.us-east-1.sqs")
    assert "Endpoint type (Gateway)" in error["Message"]


async def test_s3_also_takes_interface_endpoints(aws):
    consumer = await aws.account(aws.CONSUMER)
    endpoint = await aws.endpoint(consumer, "com.amazonaws.us-east-1.s3")
    assert endpoint["VpcEndpointType"] == "Interface"
    assert len(endpoint["NetworkInterfaceIds"]) == 2
