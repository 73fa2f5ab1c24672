"""Throttling, time scale, injected faults (behaviours 8-10)."""

import asyncio
import time

from botocore.exceptions import ClientError


async def _count_errors(calls):
    codes = []
    for call in calls:
        try:
            await call()
        except ClientError as error:
            codes.append(
                (
                    error.response["Error"]["Code"],
                    error.response["ResponseMetadata"]["HTTPStatusCode"],
                )
            )
    return codes


async def test_ec2_create_vpc_endpoint_burst_is_four_then_request_limit_exceeded(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    service = await aws.service(provider, allow=["*"])
    aws.sim.set_time_scale(1.0)  # refill 0.3/s: nothing refills during the burst
    codes = await _count_errors(
        [lambda: aws.endpoint(consumer, service["ServiceName"]) for _ in range(6)]
    )
    assert codes == [("RequestLimitExceeded", 503)] * 2
    assert aws.sim.throttle_counts()[aws.CONSUMER]["CreateVpcEndpoint"] == 2
    # Other accounts have their own buckets.
    assert (await aws.endpoint(provider, service["ServiceName"]))["State"] == "pendingAcceptance"
    # Describe calls use the non-mutating bucket, untouched.
    await consumer.ec2.describe_vpc_endpoints()
    outcomes = [r["outcome"] for r in aws.sim.requests() if r["action"] == "CreateVpcEndpoint"]
    assert outcomes.count("throttled") == 2


async def test_refill_rate_is_multiplied_by_time_scale(aws):
    consumer = await aws.account(aws.CONSUMER)
    aws.sim.set_time_scale(100.0)  # 0.3 tokens/s becomes 30/s
    endpoints = [lambda: aws.endpoint(consumer, "com.amazonaws.us-east-1.sqs") for _ in range(4)]
    assert await _count_errors(endpoints) == []
    await asyncio.sleep(0.1)  # ≈ 3 tokens at 30/s
    assert await _count_errors([endpoints[0]]) == []


async def test_elbv2_throttling_exception_and_switch_off(aws):
    provider = await aws.account(aws.PROVIDER)
    aws.sim.set_time_scale(1.0)
    calls = [lambda i=i: aws.nlb(provider, name=f"lb-{i}") for i in range(11)]
    assert await _count_errors(calls) == [("ThrottlingException", 400)]
    aws.sim.set_throttling(False)
    assert await _count_errors([lambda: aws.nlb(provider, name="lb-extra")]) == []


async def test_concurrent_requests_are_all_served(aws):
    consumer = await aws.account(aws.CONSUMER)
    aws.sim.set_throttling(False)
    answers = await asyncio.gather(*(consumer.ec2.describe_vpcs() for _ in range(60)))
    assert all(len(answer["Vpcs"]) >= 1 for answer in answers)
    assert sum(r["outcome"] == "ok" for r in aws.sim.requests()) >= 60


async def test_faults_seeded_errors_latency_and_eventual_consistency(aws):
    consumer = await aws.account(aws.CONSUMER)
    aws.sim.set_faults({"DescribeVpcs": {"internal_error_rate": 1.0}})
    assert await _count_errors([consumer.ec2.describe_vpcs]) == [("InternalError", 500)]
    aws.sim.set_faults({"DescribeVpcs": {"unavailable_rate": 1.0}})
    assert await _count_errors([consumer.ec2.describe_vpcs]) == [("ServiceUnavailable", 503)]

    aws.sim.set_faults({"DescribeSubnets": {"internal_error_rate": 0.5}}, seed=7)
    first = await _count_errors([consumer.ec2.describe_subnets for _ in range(20)])
    aws.sim.set_faults({"DescribeSubnets": {"internal_error_rate": 0.5}}, seed=7)
    second = await _count_errors([consumer.ec2.describe_subnets for _ in range(20)])
    assert first == second
    assert 0 < len(first) < 20

    aws.sim.set_faults({"DescribeAvailabilityZones": {"latency_ms": 200}})
    started = time.monotonic()
    await consumer.ec2.describe_availability_zones()
    assert time.monotonic() - started >= 0.2

    aws.sim.set_time_scale(10.0)
    aws.sim.set_faults({"CreateVpcEndpoint": {"consistency_delay_s": 3.0}})  # 0.3 s real
    endpoint = await aws.endpoint(consumer, "com.amazonaws.us-east-1.sqs")
    codes = await _count_errors(
        [lambda: consumer.ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint["VpcEndpointId"]])]
    )
    assert codes == [("InvalidVpcEndpointId.NotFound", 400)]
    aws.sim.set_time_scale(1000.0)  # endpoints to AWS services take endpoint_pending too

    async def state_or_error():
        try:
            return await aws.endpoint_state(consumer, endpoint["VpcEndpointId"])
        except ClientError as error:
            return error.response["Error"]["Code"]

    await aws.eventually(state_or_error, "available")
    faults = [r for r in aws.sim.requests() if r["outcome"] == "fault"]
    assert {r["error_code"] for r in faults} >= {"InternalError", "InvalidVpcEndpointId.NotFound"}
