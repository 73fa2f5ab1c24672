"""Interface endpoint lifecycle, ENIs, DNS entries and AZ rules (behaviour 1)."""

import ipaddress

import pytest
from botocore.exceptions import ClientError


async def test_acceptance_required_goes_pending_acceptance_then_available(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER, cidr="10.0.0.0/16")  # overlapping CIDRs are fine
    service = await aws.service(provider, allow=[f"arn:aws:iam::{aws.CONSUMER}:root"])
    endpoint = await aws.endpoint(consumer, service["ServiceName"])
    assert endpoint["State"] == "pendingAcceptance"
    assert endpoint["OwnerId"] == aws.CONSUMER

    answer = await provider.ec2.accept_vpc_endpoint_connections(
        ServiceId=service["ServiceId"], VpcEndpointIds=[endpoint["VpcEndpointId"]]
    )
    assert answer["Unsuccessful"] == []
    aws.sim.set_time_scale(1.0)  # hold the transition still long enough to observe it
    assert await aws.endpoint_state(consumer, endpoint["VpcEndpointId"]) == "pending"
    aws.sim.set_time_scale(1000.0)
    await aws.eventually(
        lambda: aws.endpoint_state(consumer, endpoint["VpcEndpointId"]), "available"
    )


async def test_reject_moves_endpoint_to_rejected(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    service = await aws.service(provider, allow=[f"arn:aws:iam::{aws.CONSUMER}:root"])
    endpoint = await aws.endpoint(consumer, service["ServiceName"])
    answer = await provider.ec2.reject_vpc_endpoint_connections(
        ServiceId=service["ServiceId"], VpcEndpointIds=[endpoint["VpcEndpointId"]]
    )
    assert answer["Unsuccessful"] == []
    assert await aws.endpoint_state(consumer, endpoint["VpcEndpointId"]) == "rejected"


async def test_no_acceptance_goes_pending_then_available(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    service = await aws.service(
        provider, acceptance_required=False, allow=[f"arn:aws:iam::{aws.CONSUMER}:root"]
    )
    aws.sim.set_time_scale(1.0)
    endpoint = await aws.endpoint(consumer, service["ServiceName"])
    assert endpoint["State"] == "pending"
    aws.sim.set_time_scale(1000.0)
    await aws.eventually(
        lambda: aws.endpoint_state(consumer, endpoint["VpcEndpointId"]), "available"
    )


async def test_principal_not_allowed_gets_invalid_service_name(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    service = await aws.service(provider, allow=["arn:aws:iam::333333333333:root"])
    with pytest.raises(ClientError) as error:
        await aws.endpoint(consumer, service["ServiceName"])
    assert error.value.response["Error"]["Code"] == "InvalidServiceName"
    assert "does not exist" in error.value.response["Error"]["Message"]


async def test_allowed_role_principal_and_owner_may_connect(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    # The consumer's clients act as arn:aws:iam::<consumer>:role/linkplane (see conftest).
    service = await aws.service(provider, allow=[f"arn:aws:iam::{aws.CONSUMER}:role/linkplane"])
    assert (await aws.endpoint(consumer, service["ServiceName"]))["State"] == "pendingAcceptance"
    # The owner is always allowed, even though it is not in the allow list.
    own = await aws.endpoint(provider, service["ServiceName"])
    assert own["OwnerId"] == aws.PROVIDER


async def test_enis_are_real_and_carry_subnet_ips_and_dns_entries_look_like_aws(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER, cidr="172.20.0.0/16")
    service = await aws.service(provider, allow=["*"])
    endpoint = await aws.endpoint(consumer, service["ServiceName"])

    enis = await consumer.ec2.describe_network_interfaces(
        NetworkInterfaceIds=endpoint["NetworkInterfaceIds"]
    )
    assert len(enis["NetworkInterfaces"]) == 2
    subnets = await consumer.ec2.describe_subnets(SubnetIds=consumer.network["subnet_ids"])
    cidrs = {s["SubnetId"]: ipaddress.ip_network(s["CidrBlock"]) for s in subnets["Subnets"]}
    for eni in enis["NetworkInterfaces"]:
        assert ipaddress.ip_address(eni["PrivateIpAddress"]) in cidrs[eni["SubnetId"]]
        assert endpoint["VpcEndpointId"] in eni["Description"]

    svc_id = service["ServiceId"]
    names = [entry["DnsName"] for entry in endpoint["DnsEntries"]]
    regional, *zonal = names
    assert regional.startswith(endpoint["VpcEndpointId"] + "-")
    assert regional.endswith(f".{svc_id}.us-east-1.vpce.amazonaws.com")
    suffixes = sorted(name.split(".")[0].rsplit("-", 3)[-1] for name in zonal)
    assert suffixes == sorted(zone[-2:] for zone in consumer.network["availability_zones"])
    assert all(name.endswith(f".{svc_id}.us-east-1.vpce.amazonaws.com") for name in zonal)
    assert all(entry["HostedZoneId"] for entry in endpoint["DnsEntries"])


async def test_subnet_in_unsupported_zone_is_refused(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER, azs=3)
    service = await aws.service(provider, allow=["*"], nlb_subnets=1)  # NLB in one zone only
    details = await consumer.ec2.describe_vpc_endpoint_services(
        ServiceNames=[service["ServiceName"]]
    )
    # The consumer sees that zone by its own name for the same AZ id.
    assert details["ServiceDetails"][0]["AvailabilityZoneIds"] == provider.network["az_ids"][:1]
    assert details["ServiceDetails"][0]["AvailabilityZones"] == [
        consumer.network["availability_zones"][0]
    ]
    with pytest.raises(ClientError) as error:
        await aws.endpoint(consumer, service["ServiceName"])
    assert error.value.response["Error"]["Code"] == "InvalidParameter"
    assert "does not support the availability zone of the subnet" in str(error.value)


async def test_endpoint_to_aws_service_needs_no_acceptance(aws):
    consumer = await aws.account(aws.CONSUMER)
    endpoint = await aws.endpoint(consumer, "com.amazonaws.us-east-1.sqs")
    assert endpoint["State"] == "pending"
    await aws.eventually(
        lambda: aws.endpoint_state(consumer, endpoint["VpcEndpointId"]), "available"
    )
    assert endpoint["DnsEntries"][0]["DnsName"].endswith(".sqs.us-east-1.vpce.amazonaws.com")


async def test_unknown_service_name_is_refused(aws):
    consumer = await aws.account(aws.CONSUMER)
    with pytest.raises(ClientError) as error:
        await aws.endpoint(consumer, "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0")
    assert error.value.response["Error"]["Code"] == "InvalidServiceName"
