"""IPv6 and dual-stack: subnets, NLBs, service IP types and endpoint addressing (item 1)."""

import ipaddress

import pytest
from botocore.exceptions import ClientError

from linkplane.sim import server as sim_server


async def _dual_stack_nlb(aws, owner, name="ds-nlb"):
    answer = await owner.elbv2.create_load_balancer(
        Name=name,
        Type="network",
        Scheme="internal",
        Subnets=owner.network["subnet_ids"],
        IpAddressType="dualstack",
    )
    return answer["LoadBalancers"][0]["LoadBalancerArn"]


async def _available(aws, owner, service_id):
    await aws.eventually(lambda: aws.service_state(owner, service_id), "Available")


async def test_seeded_networks_are_dual_stack_and_can_have_ipv6_only_subnets(aws):
    consumer = await aws.account(aws.CONSUMER)
    net = consumer.network
    subnets = (await consumer.ec2.describe_subnets(SubnetIds=net["subnet_ids"]))["Subnets"]
    for subnet in subnets:
        assert subnet["CidrBlock"]
        [v6] = subnet["Ipv6CidrBlockAssociationSet"]
        assert v6["Ipv6CidrBlockState"] == {"State": "associated"}
        assert ipaddress.ip_network(v6["Ipv6CidrBlock"]).subnet_of(
            ipaddress.ip_network(net["ipv6_cidr_block"])
        )

    only = sim_server.seed_network(
        aws.sim, account_id=aws.CONSUMER, cidr="10.7.0.0/16", ipv6_only_subnets=True
    )
    found = await consumer.ec2.describe_subnets(SubnetIds=only["ipv6_only_subnet_ids"])
    for subnet in found["Subnets"]:
        assert "CidrBlock" not in subnet
        assert subnet["Ipv6Native"] is True


async def test_ipv6_on_a_service_needs_dual_stack_nlbs(aws):
    provider = await aws.account(aws.PROVIDER)
    ipv4_nlb = await aws.nlb(provider, name="v4-nlb")
    with pytest.raises(ClientError) as error:
        await provider.ec2.create_vpc_endpoint_service_configuration(
            NetworkLoadBalancerArns=[ipv4_nlb], SupportedIpAddressTypes=["ipv4", "ipv6"]
        )
    assert error.value.response["Error"]["Code"] == "InvalidParameter"
    assert "dualstack" in error.value.response["Error"]["Message"]

    created = await provider.ec2.create_vpc_endpoint_service_configuration(
        NetworkLoadBalancerArns=[ipv4_nlb]
    )
    service_id = created["ServiceConfiguration"]["ServiceId"]
    assert created["ServiceConfiguration"]["SupportedIpAddressTypes"] == ["ipv4"]
    with pytest.raises(ClientError) as error:
        await provider.ec2.modify_vpc_endpoint_service_configuration(
            ServiceId=service_id, AddSupportedIpAddressTypes=["ipv6"]
        )
    assert error.value.response["Error"]["Code"] == "InvalidParameter"

    # Make the NLB dual-stack (its subnets have IPv6 CIDRs): now ipv6 is accepted and visible.
    await provider.elbv2.set_ip_address_type(LoadBalancerArn=ipv4_nlb, IpAddressType="dualstack")
    await provider.ec2.modify_vpc_endpoint_service_configuration(
        ServiceId=service_id, AddSupportedIpAddressTypes=["ipv6"]
    )
    config = (
        await provider.ec2.describe_vpc_endpoint_service_configurations(ServiceIds=[service_id])
    )["ServiceConfigurations"][0]
    assert config["SupportedIpAddressTypes"] == ["ipv4", "ipv6"]
    # The NLB cannot go back to IPv4 while the service offers IPv6.
    with pytest.raises(ClientError) as error:
        await provider.elbv2.set_ip_address_type(LoadBalancerArn=ipv4_nlb, IpAddressType="ipv4")
    assert error.value.response["Error"]["Code"] == "InvalidConfigurationRequest"

    await provider.ec2.modify_vpc_endpoint_service_configuration(
        ServiceId=service_id, RemoveSupportedIpAddressTypes=["ipv4"]
    )
    config = (
        await provider.ec2.describe_vpc_endpoint_service_configurations(ServiceIds=[service_id])
    )["ServiceConfigurations"][0]
    assert config["SupportedIpAddressTypes"] == ["ipv6"]
    with pytest.raises(ClientError) as error:
        await provider.ec2.modify_vpc_endpoint_service_configuration(
            ServiceId=service_id, RemoveSupportedIpAddressTypes=["ipv6"]
        )
    assert error.value.response["Error"]["Code"] == "InvalidParameter"


async def test_dual_stack_nlb_needs_ipv6_subnets(aws):

    provider = await aws.account(aws.PROVIDER)
    v4_only = sim_server.seed_network(
        aws.sim, account_id=aws.PROVIDER, cidr="10.8.0.0/16", dual_stack=False
    )
    with pytest.raises(ClientError) as error:
        await provider.elbv2.create_load_balancer(
            Name="ds",
            Type="network",
            Scheme="internal",
            Subnets=v4_only["subnet_ids"],
            IpAddressType="dualstack",
        )
    assert error.value.response["Error"]["Code"] == "InvalidConfigurationRequest"


async def test_dual_stack_endpoint_gets_ipv6_addresses_and_checks_service_and_subnets(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    arn = await _dual_stack_nlb(aws, provider)
    created = await provider.ec2.create_vpc_endpoint_service_configuration(
        NetworkLoadBalancerArns=[arn], AcceptanceRequired=False
    )
    service = created["ServiceConfiguration"]
    await provider.ec2.modify_vpc_endpoint_service_permissions(
        ServiceId=service["ServiceId"], AddAllowedPrincipals=[aws.CONSUMER]
    )
    await _available(aws, provider, service["ServiceId"])

    # The service accepts IPv4 only: a dual-stack endpoint is refused.
    with pytest.raises(ClientError) as error:
        await aws.endpoint(consumer, service["ServiceName"], IpAddressType="dualstack")
    assert error.value.response["Error"]["Code"] == "InvalidParameter"

    await provider.ec2.modify_vpc_endpoint_service_configuration(
        ServiceId=service["ServiceId"], AddSupportedIpAddressTypes=["ipv6"]
    )
    seen = await consumer.ec2.describe_vpc_endpoint_services(ServiceNames=[service["ServiceName"]])
    assert seen["ServiceDetails"][0]["SupportedIpAddressTypes"] == ["ipv4", "ipv6"]

    endpoint = await aws.endpoint(
        consumer,
        service["ServiceName"],
        IpAddressType="dualstack",
        DnsOptions={"DnsRecordIpType": "dualstack"},
    )
    assert endpoint["IpAddressType"] == "dualstack"
    assert endpoint["DnsOptions"] == {"DnsRecordIpType": "dualstack"}
    enis = await consumer.ec2.describe_network_interfaces(
        NetworkInterfaceIds=endpoint["NetworkInterfaceIds"]
    )
    subnet_v6 = dict(
        zip(
            consumer.network["subnet_ids"], consumer.network["subnet_ipv6_cidr_blocks"], strict=True
        )
    )
    for eni in enis["NetworkInterfaces"]:
        assert eni["PrivateIpAddress"]
        [v6] = eni["Ipv6Addresses"]
        assert ipaddress.ip_address(v6["Ipv6Address"]) in ipaddress.ip_network(
            subnet_v6[eni["SubnetId"]]
        )
    described = (
        await consumer.ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint["VpcEndpointId"]])
    )["VpcEndpoints"][0]
    assert described["IpAddressType"] == "dualstack"

    # Back to IPv4 with ModifyVpcEndpoint: the IPv6 addresses go, and Describe shows it.
    await consumer.ec2.modify_vpc_endpoint(
        VpcEndpointId=endpoint["VpcEndpointId"], IpAddressType="ipv4"
    )
    described = (
        await consumer.ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint["VpcEndpointId"]])
    )["VpcEndpoints"][0]
    assert described["IpAddressType"] == "ipv4"
    assert described["DnsOptions"] == {"DnsRecordIpType": "ipv4"}
    enis = await consumer.ec2.describe_network_interfaces(
        NetworkInterfaceIds=endpoint["NetworkInterfaceIds"]
    )
    assert all(not eni.get("Ipv6Addresses") for eni in enis["NetworkInterfaces"])

    # A record type that does not fit the address type is refused.
    with pytest.raises(ClientError) as error:
        await consumer.ec2.modify_vpc_endpoint(
            VpcEndpointId=endpoint["VpcEndpointId"], DnsOptions={"DnsRecordIpType": "ipv6"}
        )
    assert error.value.response["Error"]["Code"] == "InvalidParameter"


async def test_ipv6_endpoint_needs_ipv6_only_subnets(aws):

    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    arn = await _dual_stack_nlb(aws, provider)
    created = await provider.ec2.create_vpc_endpoint_service_configuration(
        NetworkLoadBalancerArns=[arn],
        AcceptanceRequired=False,
        SupportedIpAddressTypes=["ipv4", "ipv6"],
    )
    service = created["ServiceConfiguration"]
    await provider.ec2.modify_vpc_endpoint_service_permissions(
        ServiceId=service["ServiceId"], AddAllowedPrincipals=[aws.CONSUMER]
    )
    await _available(aws, provider, service["ServiceId"])
    # Dual-stack subnets are not IPv6-only.
    with pytest.raises(ClientError) as error:
        await aws.endpoint(consumer, service["ServiceName"], IpAddressType="ipv6")
    assert error.value.response["Error"]["Code"] == "InvalidParameter"

    net = sim_server.seed_network(
        aws.sim, account_id=aws.CONSUMER, cidr="10.6.0.0/16", ipv6_only_subnets=True
    )
    answer = await consumer.ec2.create_vpc_endpoint(
        VpcEndpointType="Interface",
        VpcId=net["vpc_id"],
        ServiceName=service["ServiceName"],
        SubnetIds=net["ipv6_only_subnet_ids"],
        IpAddressType="ipv6",
        PrivateDnsEnabled=False,
    )
    endpoint = answer["VpcEndpoint"]
    assert endpoint["IpAddressType"] == "ipv6"
    assert endpoint["DnsOptions"] == {"DnsRecordIpType": "ipv6"}
    enis = await consumer.ec2.describe_network_interfaces(
        NetworkInterfaceIds=endpoint["NetworkInterfaceIds"]
    )
    for eni in enis["NetworkInterfaces"]:
        assert not eni.get("PrivateIpAddress")
        assert len(eni["Ipv6Addresses"]) == 1
