"""Per-account AZ name ↔ AZ id mapping (item 7) and the request log under load (item 10)."""

import asyncio
import json
import threading
import urllib.request

import pytest
from botocore.exceptions import ClientError


async def _mapping(account):
    zones = await account.ec2.describe_availability_zones()
    return {zone["ZoneName"]: zone["ZoneId"] for zone in zones["AvailabilityZones"]}


async def test_each_account_maps_zone_names_to_ids_its_own_way(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    mine, theirs = await _mapping(provider), await _mapping(consumer)
    assert sorted(mine.values()) == sorted(theirs.values())  # the same physical zones
    assert mine != theirs  # named differently
    filtered = await consumer.ec2.describe_availability_zones(ZoneIds=["use1-az1"])
    [zone] = filtered["AvailabilityZones"]
    assert theirs[zone["ZoneName"]] == "use1-az1"

    # Subnets show the id behind their account's name; creating by id lands in that zone.
    subnets = await consumer.ec2.describe_subnets(SubnetIds=consumer.network["subnet_ids"])
    for subnet in subnets["Subnets"]:
        assert subnet["AvailabilityZoneId"] == theirs[subnet["AvailabilityZone"]]
    created = await consumer.ec2.create_subnet(
        VpcId=consumer.network["vpc_id"], CidrBlock="10.0.200.0/24", AvailabilityZoneId="use1-az3"
    )
    assert created["Subnet"]["AvailabilityZoneId"] == "use1-az3"
    assert theirs[created["Subnet"]["AvailabilityZone"]] == "use1-az3"


async def test_service_zones_are_shown_in_the_callers_names_and_checked_by_id(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    mine, theirs = await _mapping(provider), await _mapping(consumer)
    service = await aws.service(provider, allow=[aws.CONSUMER])
    seen = await consumer.ec2.describe_vpc_endpoint_services(ServiceNames=[service["ServiceName"]])
    detail = seen["ServiceDetails"][0]
    ids = sorted(mine[name] for name in provider.network["availability_zones"])
    assert sorted(detail["AvailabilityZoneIds"]) == ids
    assert [theirs[name] for name in detail["AvailabilityZones"]] == detail["AvailabilityZoneIds"]
    # A consumer subnet with the provider's zone *name* but another zone id is refused.
    same_name = provider.network["availability_zones"][0]
    assert theirs[same_name] not in ids  # true for these two accounts' mappings
    vpc = (await consumer.ec2.create_vpc(CidrBlock="10.3.0.0/16"))["Vpc"]["VpcId"]
    subnet = await consumer.ec2.create_subnet(
        VpcId=vpc, CidrBlock="10.3.0.0/24", AvailabilityZone=same_name
    )
    with pytest.raises(ClientError) as error:
        await consumer.ec2.create_vpc_endpoint(
            VpcEndpointType="Interface",
            VpcId=vpc,
            ServiceName=service["ServiceName"],
            SubnetIds=[subnet["Subnet"]["SubnetId"]],
        )
    assert "does not support the availability zone" in error.value.response["Error"]["Message"]


async def test_request_log_can_be_read_while_requests_pour_in(aws):
    consumer = await aws.account(aws.CONSUMER)
    aws.sim.set_throttling(False)
    failures: list[str] = []
    stop = threading.Event()

    def read_log() -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(f"{aws.sim.admin_url}/requests", timeout=10) as r:
                    json.loads(r.read())
            except Exception as error:  # any failure is the bug
                failures.append(repr(error))

    readers = [threading.Thread(target=read_log) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        await asyncio.gather(*(consumer.ec2.describe_vpcs() for _ in range(300)))
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert failures == []
    assert len(aws.sim.requests()) >= 300
