"""Service Quotas for the per-VPC interface endpoint quota, and its enforcement (item 8)."""

import json
import urllib.request

import pytest
from botocore.exceptions import ClientError

from linkplane.sim import server as sim_server

QUOTA = {"ServiceCode": "vpc", "QuotaCode": "L-29B6F2EB"}


def _admin(sim, method, path, body):
    request = urllib.request.Request(
        f"{sim.admin_url}/{path}", data=json.dumps(body).encode(), method=method
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


async def test_quota_served_per_assumed_account_and_set_through_admin(aws):
    creds = await aws.credentials_for(aws.CONSUMER)
    quotas = await aws.client("service-quotas", creds)
    default = await quotas.get_aws_default_service_quota(**QUOTA)
    assert default["Quota"]["Value"] == 50.0
    assert default["Quota"]["QuotaArn"] == "arn:aws:servicequotas:us-east-1::vpc/L-29B6F2EB"
    applied = await quotas.get_service_quota(**QUOTA)
    assert applied["Quota"]["Value"] == 50.0

    listed = _admin(aws.sim, "PUT", "quotas", {"account_id": aws.CONSUMER, "value": 3})
    assert listed == [
        {
            "account_id": aws.CONSUMER,
            "region": None,
            "service_code": "vpc",
            "quota_code": "L-29B6F2EB",
            "value": 3.0,
        }
    ]
    applied = await quotas.get_service_quota(**QUOTA)
    assert applied["Quota"]["Value"] == 3.0
    assert applied["Quota"]["QuotaArn"].startswith(
        f"arn:aws:servicequotas:us-east-1:{aws.CONSUMER}:"
    )
    # Another account keeps the default; the default quota itself does not change.
    other = await aws.client("service-quotas", await aws.credentials_for(aws.PROVIDER))
    assert (await other.get_service_quota(**QUOTA))["Quota"]["Value"] == 50.0
    assert (await quotas.get_aws_default_service_quota(**QUOTA))["Quota"]["Value"] == 50.0
    logged = [r for r in aws.sim.requests() if r["service"] == "servicequotas"]
    assert {r["action"] for r in logged} == {"GetServiceQuota", "GetAWSDefaultServiceQuota"}
    assert {r["account"] for r in logged} == {aws.CONSUMER, aws.PROVIDER}

    with pytest.raises(ClientError) as error:
        await quotas.get_service_quota(ServiceCode="vpc", QuotaCode="L-00000000")
    assert error.value.response["Error"]["Code"] == "NoSuchResourceException"


async def test_create_vpc_endpoint_enforces_the_applied_quota_per_vpc(aws):
    consumer = await aws.account(aws.CONSUMER)
    aws.sim.set_quota(aws.CONSUMER, 2)
    aws.sim.set_throttling(False)
    first = await aws.endpoint(consumer, "com.amazonaws.us-east-1.sqs")
    await aws.endpoint(consumer, "com.amazonaws.us-east-1.sns")
    with pytest.raises(ClientError) as error:
        await aws.endpoint(consumer, "com.amazonaws.us-east-1.kms")
    assert error.value.response["Error"]["Code"] == "VpcEndpointLimitExceeded"
    # Per VPC: another VPC of the same account still has room.

    other = sim_server.seed_network(aws.sim, account_id=aws.CONSUMER, cidr="10.4.0.0/16")
    await consumer.ec2.create_vpc_endpoint(
        VpcEndpointType="Interface",
        VpcId=other["vpc_id"],
        ServiceName="com.amazonaws.us-east-1.kms",
        SubnetIds=other["subnet_ids"],
    )
    # A deleted endpoint frees its slot once gone.
    await consumer.ec2.delete_vpc_endpoints(VpcEndpointIds=[first["VpcEndpointId"]])

    async def listed():
        found = await consumer.ec2.describe_vpc_endpoints(
            Filters=[{"Name": "vpc-id", "Values": [consumer.network["vpc_id"]]}]
        )
        return len(found["VpcEndpoints"])

    await aws.eventually(listed, 1)
    await aws.endpoint(consumer, "com.amazonaws.us-east-1.kms")
