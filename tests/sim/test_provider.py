"""Idempotency, load balancers, endpoint service lifecycle and private DNS (behaviours 4-6)."""

import pytest
from botocore.exceptions import ClientError


async def test_client_token_replays_endpoint_and_rejects_changed_parameters(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    service = await aws.service(provider, allow=["*"])
    first = await aws.endpoint(consumer, service["ServiceName"], ClientToken="uid-1-gen-1")
    again = await aws.endpoint(consumer, service["ServiceName"], ClientToken="uid-1-gen-1")
    assert again["VpcEndpointId"] == first["VpcEndpointId"]
    listed = await consumer.ec2.describe_vpc_endpoints()
    assert len(listed["VpcEndpoints"]) == 1

    with pytest.raises(ClientError) as error:
        await aws.endpoint(
            consumer,
            service["ServiceName"],
            ClientToken="uid-1-gen-1",
            TagSpecifications=[
                {"ResourceType": "vpc-endpoint", "Tags": [{"Key": "k", "Value": "v"}]}
            ],
        )
    assert error.value.response["Error"]["Code"] == "IdempotentParameterMismatch"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_client_token_replays_service_configuration(aws):
    provider = await aws.account(aws.PROVIDER)
    arn = await aws.nlb(provider)
    first = await provider.ec2.create_vpc_endpoint_service_configuration(
        NetworkLoadBalancerArns=[arn], ClientToken="svc-token"
    )
    again = await provider.ec2.create_vpc_endpoint_service_configuration(
        NetworkLoadBalancerArns=[arn], ClientToken="svc-token"
    )
    assert again["ServiceConfiguration"]["ServiceId"] == first["ServiceConfiguration"]["ServiceId"]
    with pytest.raises(ClientError) as error:
        await provider.ec2.create_vpc_endpoint_service_configuration(
            NetworkLoadBalancerArns=[arn], ClientToken="svc-token", AcceptanceRequired=False
        )
    assert error.value.response["Error"]["Code"] == "IdempotentParameterMismatch"


async def test_nlb_arn_and_provisioning_then_active(aws):
    provider = await aws.account(aws.PROVIDER)
    aws.sim.set_time_scale(1.0)
    arn = await aws.nlb(provider)
    assert ":loadbalancer/net/svc-nlb/" in arn
    described = await provider.elbv2.describe_load_balancers(LoadBalancerArns=[arn])
    assert described["LoadBalancers"][0]["State"]["Code"] == "provisioning"
    assert described["LoadBalancers"][0]["Type"] == "network"
    # Same name, same type: AWS returns the existing load balancer.
    assert await aws.nlb(provider) == arn

    # A service over a provisioning NLB stays Pending until the NLB is active.
    answer = await provider.ec2.create_vpc_endpoint_service_configuration(
        NetworkLoadBalancerArns=[arn],
        TagSpecifications=[
            {
                "ResourceType": "vpc-endpoint-service",
                "Tags": [{"Key": "linkplane:uid", "Value": "u1"}],
            }
        ],
    )
    service = answer["ServiceConfiguration"]
    assert service["ServiceState"] == "Pending"
    assert {"Key": "linkplane:uid", "Value": "u1"} in service["Tags"]
    assert service["AvailabilityZones"] == sorted(provider.network["availability_zones"])
    aws.sim.set_time_scale(1000.0)

    async def lb_state():
        found = await provider.elbv2.describe_load_balancers(LoadBalancerArns=[arn])
        return found["LoadBalancers"][0]["State"]["Code"]

    await aws.eventually(lb_state, "active")
    await aws.eventually(lambda: aws.service_state(provider, service["ServiceId"]), "Available")


async def test_modify_service_configuration_and_permissions(aws):
    provider = await aws.account(aws.PROVIDER)
    service = await aws.service(provider, nlb_subnets=1)
    second = await aws.nlb(provider, name="second")
    await provider.ec2.modify_vpc_endpoint_service_configuration(
        ServiceId=service["ServiceId"],
        AcceptanceRequired=False,
        AddNetworkLoadBalancerArns=[second],
        RemoveNetworkLoadBalancerArns=service["NetworkLoadBalancerArns"],
    )
    found = await provider.ec2.describe_vpc_endpoint_service_configurations(
        ServiceIds=[service["ServiceId"]]
    )
    config = found["ServiceConfigurations"][0]
    assert config["AcceptanceRequired"] is False
    assert config["NetworkLoadBalancerArns"] == [second]
    assert config["AvailabilityZones"] == sorted(provider.network["availability_zones"])

    principal = f"arn:aws:iam::{aws.CONSUMER}:root"
    await provider.ec2.modify_vpc_endpoint_service_permissions(
        ServiceId=service["ServiceId"], AddAllowedPrincipals=[principal]
    )
    allowed = await provider.ec2.describe_vpc_endpoint_service_permissions(
        ServiceId=service["ServiceId"]
    )
    assert [p["Principal"] for p in allowed["AllowedPrincipals"]] == [principal]


async def test_private_dns_verification_needs_the_txt_record(aws):
    provider = await aws.account(aws.PROVIDER)
    service = await aws.service(provider, PrivateDnsName="api.example.com")
    dns = service["PrivateDnsNameConfiguration"]
    assert dns["Type"] == "TXT"
    assert dns["State"] == "pendingVerification"
    assert dns["Name"].startswith("_")
    assert dns["Name"].endswith(".api.example.com")
    assert dns["Value"].startswith("vpce:")

    async def verification_state():
        await provider.ec2.start_vpc_endpoint_service_private_dns_verification(
            ServiceId=service["ServiceId"]
        )
        found = await provider.ec2.describe_vpc_endpoint_service_configurations(
            ServiceIds=[service["ServiceId"]]
        )
        return found["ServiceConfigurations"][0]["PrivateDnsNameConfiguration"]["State"]

    assert await verification_state() == "failed"

    # The record may live in any account's hosted zone (here: a DNS account).
    dns_account = await aws.account("444444444444")
    zone = await dns_account.route53.create_hosted_zone(Name="example.com", CallerReference="r1")
    await dns_account.route53.change_resource_record_sets(
        HostedZoneId=zone["HostedZone"]["Id"],
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": dns["Name"],
                        "Type": "TXT",
                        "TTL": 300,
                        "ResourceRecords": [{"Value": f'"{dns["Value"]}"'}],
                    },
                }
            ]
        },
    )
    assert await verification_state() == "verified"

    # Only now do consumers get the private name among their endpoint's DNS entries.
    await provider.ec2.modify_vpc_endpoint_service_permissions(
        ServiceId=service["ServiceId"], AddAllowedPrincipals=["*"]
    )
    consumer = await aws.account(aws.CONSUMER)
    endpoint = await aws.endpoint(consumer, service["ServiceName"], PrivateDnsEnabled=True)
    assert "api.example.com" in [entry["DnsName"] for entry in endpoint["DnsEntries"]]


async def test_endpoint_service_survives_moto_basics(aws):
    """What moto already did must still work: target groups, listeners, targets, AZ ids."""
    provider = await aws.account(aws.PROVIDER)
    arn = await aws.nlb(provider)
    group = await provider.elbv2.create_target_group(
        Name="tg", Protocol="TCP", Port=443, VpcId=provider.network["vpc_id"], TargetType="ip"
    )
    group_arn = group["TargetGroups"][0]["TargetGroupArn"]
    await provider.elbv2.create_listener(
        LoadBalancerArn=arn,
        Protocol="TCP",
        Port=443,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": group_arn}],
    )
    await provider.elbv2.register_targets(
        TargetGroupArn=group_arn, Targets=[{"Id": "10.0.0.10", "Port": 443}]
    )
    zones = await provider.ec2.describe_availability_zones()
    assert all(zone["ZoneId"].startswith("use1-az") for zone in zones["AvailabilityZones"])
    subnets = await provider.ec2.describe_subnets(SubnetIds=provider.network["subnet_ids"])
    assert [s["AvailabilityZoneId"] for s in subnets["Subnets"]] == provider.network["az_ids"]
