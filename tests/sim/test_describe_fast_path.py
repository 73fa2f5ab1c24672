"""DescribeVpcEndpoints written by the simulator (``ec2_describe``) parses exactly as moto's
serialiser's answer does, for every kind of endpoint and filter linkplane uses."""

import asyncio
from typing import Any

import pytest
from moto.ec2.responses import EC2Response

from linkplane.sim import ec2_common, ec2_describe

REGION = "us-east-1"


async def _both(monkeypatch: pytest.MonkeyPatch, ec2: Any, **params: Any) -> tuple[Any, Any]:
    """(the simulator's answer, moto's serialiser's answer) to the same request."""
    fast = await ec2.describe_vpc_endpoints(**params)
    with monkeypatch.context() as patch:
        patch.setattr(
            EC2Response,
            "describe_vpc_endpoints",
            ec2_common.honouring_dry_run(ec2_describe.moto_describe_vpc_endpoints),
        )
        slow = await ec2.describe_vpc_endpoints(**params)
    return fast["VpcEndpoints"], slow["VpcEndpoints"]


async def test_every_kind_of_endpoint_parses_as_moto_serialises_it(aws, monkeypatch):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    service = await aws.service(provider, allow=["*"])
    tags = [{"Key": "linkplane:uid", "Value": "u-1"}, {"Key": "odd", "Value": '<a & "b">'}]
    pending = await aws.endpoint(
        consumer,
        service["ServiceName"],
        TagSpecifications=[{"ResourceType": "vpc-endpoint", "Tags": tags}],
    )
    failed = await aws.endpoint(consumer, service["ServiceName"])
    aws.sim.set_endpoint_state(failed["VpcEndpointId"], "failed", message="No capacity")
    to_sqs = await aws.endpoint(consumer, f"com.amazonaws.{REGION}.sqs")
    gateway = await consumer.ec2.create_vpc_endpoint(
        VpcEndpointType="Gateway",
        VpcId=consumer.network["vpc_id"],
        ServiceName=f"com.amazonaws.{REGION}.s3",
        RouteTableIds=consumer.network["route_table_ids"][:1],
        PolicyDocument='{"Version": "2012-10-17", "Statement": []}',
    )
    ids = {
        pending["VpcEndpointId"],
        failed["VpcEndpointId"],
        to_sqs["VpcEndpointId"],
        gateway["VpcEndpoint"]["VpcEndpointId"],
    }

    # The endpoint to SQS turns pending -> available on the simulator's clock: let it, so the
    # two answers below cannot straddle the change.
    for _ in range(200):
        (found,) = (
            await consumer.ec2.describe_vpc_endpoints(VpcEndpointIds=[to_sqs["VpcEndpointId"]])
        )["VpcEndpoints"]
        if found["State"] == "available":
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail(f"the endpoint to SQS stayed {found['State']}")

    fast, slow = await _both(monkeypatch, consumer.ec2)
    assert {e["VpcEndpointId"] for e in fast} == ids
    assert fast == slow
    by_id = {e["VpcEndpointId"]: e for e in fast}
    assert by_id[pending["VpcEndpointId"]]["Tags"] == tags
    assert by_id[failed["VpcEndpointId"]]["LastError"]["Message"] == "No capacity"
    assert by_id[to_sqs["VpcEndpointId"]]["DnsOptions"] == {"DnsRecordIpType": "ipv4"}

    for params in (
        {"Filters": [{"Name": "tag-key", "Values": ["linkplane:uid"]}]},
        {"Filters": [{"Name": "tag:linkplane:uid", "Values": ["u-1"]}]},
        {
            "Filters": [
                {"Name": "vpc-id", "Values": [consumer.network["vpc_id"]]},
                {"Name": "vpc-endpoint-type", "Values": ["Interface"]},
            ]
        },
        {"VpcEndpointIds": [failed["VpcEndpointId"]]},
    ):
        fast, slow = await _both(monkeypatch, consumer.ec2, **params)
        assert fast == slow, params
        assert fast, params
    tagged, _ = await _both(
        monkeypatch, consumer.ec2, Filters=[{"Name": "tag-key", "Values": ["linkplane:uid"]}]
    )
    assert [e["VpcEndpointId"] for e in tagged] == [pending["VpcEndpointId"]]


async def test_errors_and_dry_run_are_aws_shaped(aws):
    consumer = await aws.account(aws.CONSUMER)
    with pytest.raises(consumer.ec2.exceptions.ClientError) as error:
        await consumer.ec2.describe_vpc_endpoints(VpcEndpointIds=["vpce-0123456789abcdef0"])
    assert error.value.response["Error"]["Code"] == "InvalidVpcEndpointId.NotFound"
    with pytest.raises(consumer.ec2.exceptions.ClientError) as error:
        await consumer.ec2.describe_vpc_endpoints(DryRun=True)
    assert error.value.response["Error"]["Code"] == "DryRunOperation"
