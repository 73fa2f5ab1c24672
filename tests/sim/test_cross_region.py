"""Cross-Region PrivateLink: SupportedRegions on the service, ServiceRegion on the endpoint
(item 2)."""

import pytest
from botocore.exceptions import ClientError

from linkplane.sim import server as sim_server

WEST = "us-west-2"


async def _west_consumer(aws):
    """The consumer account's clients and network in us-west-2."""
    creds = await aws.credentials_for(aws.CONSUMER)
    ec2 = await aws.client("ec2", creds, region=WEST)
    network = sim_server.seed_network(
        aws.sim, account_id=aws.CONSUMER, region=WEST, cidr="10.9.0.0/16"
    )
    return ec2, network


async def test_supported_regions_are_reported_with_their_state(aws):
    provider = await aws.account(aws.PROVIDER)
    service = await aws.service(provider, SupportedRegions=[WEST])
    config = (
        await provider.ec2.describe_vpc_endpoint_service_configurations(
            ServiceIds=[service["ServiceId"]]
        )
    )["ServiceConfigurations"][0]
    assert config["SupportedRegions"] == [
        {"Region": "us-east-1", "ServiceState": "Available"},
        {"Region": WEST, "ServiceState": "Available"},
    ]
    aws.sim.set_time_scale(1.0)  # a newly added Region stays Pending for a while
    await provider.ec2.modify_vpc_endpoint_service_configuration(
        ServiceId=service["ServiceId"],
        AddSupportedRegions=["eu-west-1"],
        RemoveSupportedRegions=[WEST],
    )
    config = (
        await provider.ec2.describe_vpc_endpoint_service_configurations(
            ServiceIds=[service["ServiceId"]]
        )
    )["ServiceConfigurations"][0]
    assert config["SupportedRegions"] == [
        {"Region": "us-east-1", "ServiceState": "Available"},
        {"Region": "eu-west-1", "ServiceState": "Pending"},
    ]
    with pytest.raises(ClientError) as error:
        await provider.ec2.modify_vpc_endpoint_service_configuration(
            ServiceId=service["ServiceId"], RemoveSupportedRegions=["us-east-1"]
        )
    assert error.value.response["Error"]["Code"] == "InvalidParameter"
    with pytest.raises(ClientError) as error:
        await provider.ec2.modify_vpc_endpoint_service_configuration(
            ServiceId=service["ServiceId"], AddSupportedRegions=["mars-north-1"]
        )
    assert error.value.response["Error"]["Code"] == "InvalidParameter"


async def test_cross_region_endpoint_needs_the_consumer_region_supported(aws):
    provider = await aws.account(aws.PROVIDER)
    service = await aws.service(provider, acceptance_required=False, allow=[aws.CONSUMER])
    west_ec2, network = await _west_consumer(aws)

    # Without ServiceRegions only the caller's Region is searched.
    with pytest.raises(ClientError) as error:
        await west_ec2.describe_vpc_endpoint_services(ServiceNames=[service["ServiceName"]])
    assert error.value.response["Error"]["Code"] == "InvalidServiceName"

    def create():
        return west_ec2.create_vpc_endpoint(
            VpcEndpointType="Interface",
            VpcId=network["vpc_id"],
            ServiceName=service["ServiceName"],
            ServiceRegion="us-east-1",
            SubnetIds=network["subnet_ids"],
        )

    # us-west-2 is not a supported Region yet: the service does not exist for this caller.
    with pytest.raises(ClientError) as error:
        await create()
    assert error.value.response["Error"]["Code"] == "InvalidServiceName"

    await provider.ec2.modify_vpc_endpoint_service_configuration(
        ServiceId=service["ServiceId"], AddSupportedRegions=[WEST]
    )

    async def visible_in_west():
        try:
            found = await west_ec2.describe_vpc_endpoint_services(
                ServiceNames=[service["ServiceName"]], ServiceRegions=["us-east-1"]
            )
        except ClientError as exc:
            return exc.response["Error"]["Code"]
        return found["ServiceDetails"][0]["ServiceRegion"]

    await aws.eventually(visible_in_west, "us-east-1")
    endpoint = (await create())["VpcEndpoint"]
    assert endpoint["ServiceRegion"] == "us-east-1"
    assert endpoint["State"] == "pending"
    endpoint_id = endpoint["VpcEndpointId"]

    async def west_state():
        found = await west_ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])
        return found["VpcEndpoints"][0]["State"]

    await aws.eventually(west_state, "available")
    # The provider sees the connection, from the consumer's Region.
    connections = await provider.ec2.describe_vpc_endpoint_connections()
    [connection] = connections["VpcEndpointConnections"]
    assert connection["VpcEndpointId"] == endpoint_id
    assert connection["VpcEndpointRegion"] == WEST


async def test_service_region_is_interface_only(aws):
    provider = await aws.account(aws.PROVIDER)
    service = await aws.service(provider, SupportedRegions=[WEST], allow=[aws.CONSUMER])
    west_ec2, network = await _west_consumer(aws)
    with pytest.raises(ClientError) as error:
        await west_ec2.create_vpc_endpoint(
            VpcEndpointType="Gateway",
            VpcId=network["vpc_id"],
            ServiceName=service["ServiceName"],
            ServiceRegion="us-east-1",
            RouteTableIds=network["route_table_ids"],
        )
    assert error.value.response["Error"]["Code"] == "InvalidParameter"
