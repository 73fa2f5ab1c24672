"""ModifyVpcEndpoint on interface endpoints: subnets bring/release ENIs, groups, policy."""

import json

import pytest
from botocore.exceptions import ClientError


async def test_add_and_remove_subnets_security_groups_and_policy(aws):
    provider = await aws.account(aws.PROVIDER, azs=3)
    consumer = await aws.account(aws.CONSUMER, azs=3)
    service = await aws.service(provider, allow=["*"], acceptance_required=False)
    first, second, third = consumer.network["subnet_ids"]
    answer = await consumer.ec2.create_vpc_endpoint(
        VpcEndpointType="Interface",
        VpcId=consumer.network["vpc_id"],
        ServiceName=service["ServiceName"],
        SubnetIds=[first],
    )
    endpoint_id = answer["VpcEndpoint"]["VpcEndpointId"]
    group = await consumer.ec2.create_security_group(
        GroupName="extra", Description="extra", VpcId=consumer.network["vpc_id"]
    )
    await consumer.ec2.modify_vpc_endpoint(
        VpcEndpointId=endpoint_id,
        AddSubnetIds=[second, third],
        RemoveSubnetIds=[first],
        AddSecurityGroupIds=[group["GroupId"]],
        PolicyDocument=json.dumps({"Statement": []}),
    )
    described = (await consumer.ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id]))[
        "VpcEndpoints"
    ][0]
    assert sorted(described["SubnetIds"]) == sorted([second, third])
    enis = await consumer.ec2.describe_network_interfaces(
        NetworkInterfaceIds=described["NetworkInterfaceIds"]
    )
    assert sorted(e["SubnetId"] for e in enis["NetworkInterfaces"]) == sorted([second, third])
    assert group["GroupId"] in [g["GroupId"] for g in described["Groups"]]
    assert json.loads(described["PolicyDocument"]) == {"Statement": []}
    assert len(described["DnsEntries"]) == 3  # regional + one per AZ
    await consumer.ec2.modify_vpc_endpoint(VpcEndpointId=endpoint_id, ResetPolicy=True)
    described = (await consumer.ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id]))[
        "VpcEndpoints"
    ][0]
    assert json.loads(described["PolicyDocument"])["Statement"][0]["Effect"] == "Allow"

    with pytest.raises(ClientError) as error:
        await consumer.ec2.modify_vpc_endpoint(VpcEndpointId=endpoint_id, RemoveSubnetIds=[first])
    assert error.value.response["Error"]["Code"] == "InvalidParameter"
    with pytest.raises(ClientError) as error:
        await consumer.ec2.modify_vpc_endpoint(VpcEndpointId="vpce-0000000000000000a")
    assert error.value.response["Error"]["Code"] == "InvalidVpcEndpointId.NotFound"
