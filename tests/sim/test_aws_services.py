"""AWS's own endpoint services (SQS, S3, DynamoDB) as consumers see and use them (item 4)."""

import pytest
from botocore.exceptions import ClientError


async def test_aws_services_are_listed_with_types_zones_and_private_dns(aws):
    consumer = await aws.account(aws.CONSUMER)
    names = ["com.amazonaws.us-east-1.sqs", "com.amazonaws.us-east-1.s3"]
    names.append("com.amazonaws.us-east-1.dynamodb")
    found = await consumer.ec2.describe_vpc_endpoint_services(ServiceNames=names)
    details = {
        (d["ServiceName"], d["ServiceType"][0]["ServiceType"]): d for d in found["ServiceDetails"]
    }
    assert set(details) == {
        ("com.amazonaws.us-east-1.sqs", "Interface"),
        ("com.amazonaws.us-east-1.s3", "Interface"),
        ("com.amazonaws.us-east-1.s3", "Gateway"),
        ("com.amazonaws.us-east-1.dynamodb", "Gateway"),
    }
    assert sorted(found["ServiceNames"]) == sorted(names)
    sqs = details[("com.amazonaws.us-east-1.sqs", "Interface")]
    assert sqs["AcceptanceRequired"] is False
    assert sqs["Owner"] == "amazon"
    assert sqs["PrivateDnsName"] == "sqs.us-east-1.amazonaws.com"
    assert sqs["ServiceRegion"] == "us-east-1"
    assert sqs["SupportedIpAddressTypes"] == ["ipv4"]
    assert set(consumer.network["availability_zones"]) <= set(sqs["AvailabilityZones"])
    # Zone ids in the caller's own mapping.
    zones = await consumer.ec2.describe_availability_zones()
    mapping = {z["ZoneName"]: z["ZoneId"] for z in zones["AvailabilityZones"]}
    assert [mapping[n] for n in sqs["AvailabilityZones"]] == sqs["AvailabilityZoneIds"]
    # Gateway services publish no private DNS name.
    assert "PrivateDnsName" not in details[("com.amazonaws.us-east-1.dynamodb", "Gateway")]


async def test_endpoint_to_sqs_goes_pending_then_available_with_enis_and_dns(aws):
    consumer = await aws.account(aws.CONSUMER)
    endpoint = await aws.endpoint(consumer, "com.amazonaws.us-east-1.sqs")
    assert endpoint["State"] == "pending"
    endpoint_id = endpoint["VpcEndpointId"]
    await aws.eventually(lambda: aws.endpoint_state(consumer, endpoint_id), "available")
    described = (await consumer.ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id]))[
        "VpcEndpoints"
    ][0]
    assert described["VpcEndpointType"] == "Interface"
    assert described["ServiceRegion"] == "us-east-1"
    assert len(described["NetworkInterfaceIds"]) == 2
    names = [entry["DnsName"] for entry in described["DnsEntries"]]
    assert names[0].endswith(".sqs.us-east-1.vpce.amazonaws.com")
    # AWS services bring private DNS, on by default.
    assert described["PrivateDnsEnabled"] is True
    assert "sqs.us-east-1.amazonaws.com" in names


@pytest.mark.parametrize(
    ("service", "endpoint_type", "message"),
    [
        ("dynamodb", "Interface", "Endpoint type (Interface) does not match available service"),
        ("sqs", "Gateway", "Endpoint type (Gateway) does not match available service types"),
    ],
)
async def test_wrong_endpoint_type_for_aws_service_is_refused(aws, service, endpoint_type, message):
    consumer = await aws.account(aws.CONSUMER)
    kwargs = (
        {"SubnetIds": consumer.network["subnet_ids"]}
        if endpoint_type == "Interface"
        else {"RouteTableIds": consumer.network["route_table_ids"]}
    )
    with pytest.raises(ClientError) as error:
        await consumer.ec2.create_vpc_endpoint(
            VpcEndpointType=endpoint_type,
            VpcId=consumer.network["vpc_id"],
            ServiceName=f"com.amazonaws.us-east-1.{service}",
            **kwargs,
        )
    assert error.value.response["Error"]["Code"] == "InvalidParameter"
    assert message in error.value.response["Error"]["Message"]


async def test_endpoint_to_another_providers_service_by_name(aws):
    """A service linkplane does not manage, owned by a third account, reached by its name."""
    other = await aws.account("333333333333")
    consumer = await aws.account(aws.CONSUMER)
    service = await aws.service(other, acceptance_required=False, allow=[aws.CONSUMER])
    endpoint = await aws.endpoint(consumer, service["ServiceName"])
    assert endpoint["State"] == "pending"
    await aws.eventually(
        lambda: aws.endpoint_state(consumer, endpoint["VpcEndpointId"]), "available"
    )
    described = await consumer.ec2.describe_vpc_endpoint_services(
        ServiceNames=[service["ServiceName"]]
    )
    assert described["ServiceDetails"][0]["Owner"] == "333333333333"
