"""Private DNS on endpoints: VPC DNS attributes, verified names, DnsEntries (item 3)."""

import pytest
from botocore.exceptions import ClientError

from linkplane.sim import server as sim_server


async def _verified_service(aws, provider, name="api.example.com"):
    """An Available service whose private DNS name is verified, open to every account."""
    service = await aws.service(
        provider, PrivateDnsName=name, acceptance_required=False, allow=["*"]
    )
    dns = service["PrivateDnsNameConfiguration"]
    zone = await provider.route53.create_hosted_zone(Name="example.com", CallerReference="z")
    await provider.route53.change_resource_record_sets(
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
    await provider.ec2.start_vpc_endpoint_service_private_dns_verification(
        ServiceId=service["ServiceId"]
    )
    return service


async def _describe(account, endpoint_id):
    found = await account.ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])
    return found["VpcEndpoints"][0]


async def test_private_dns_needs_both_vpc_dns_attributes(aws):
    consumer = await aws.account(aws.CONSUMER)
    net = sim_server.seed_network(
        aws.sim, account_id=aws.CONSUMER, cidr="10.5.0.0/16", dns_hostnames=False
    )
    hostnames = await consumer.ec2.describe_vpc_attribute(
        VpcId=net["vpc_id"], Attribute="enableDnsHostnames"
    )
    assert hostnames["EnableDnsHostnames"]["Value"] is False

    def create(**extra):
        return consumer.ec2.create_vpc_endpoint(
            VpcEndpointType="Interface",
            VpcId=net["vpc_id"],
            ServiceName="com.amazonaws.us-east-1.sqs",
            **{"SubnetIds": net["subnet_ids"], **extra},
        )

    for extra in ({"PrivateDnsEnabled": True}, {}):  # AWS's default for SQS is true
        with pytest.raises(ClientError) as error:
            await create(**extra)
        assert error.value.response["Error"]["Code"] == "InvalidParameter"
        assert "enableDnsHostnames" in error.value.response["Error"]["Message"]
    off = (await create(PrivateDnsEnabled=False))["VpcEndpoint"]
    assert off["PrivateDnsEnabled"] is False
    assert "sqs.us-east-1.amazonaws.com" not in [e["DnsName"] for e in off["DnsEntries"]]

    await consumer.ec2.modify_vpc_attribute(VpcId=net["vpc_id"], EnableDnsHostnames={"Value": True})
    hostnames = await consumer.ec2.describe_vpc_attribute(
        VpcId=net["vpc_id"], Attribute="enableDnsHostnames"
    )
    assert hostnames["EnableDnsHostnames"]["Value"] is True
    await consumer.ec2.modify_vpc_endpoint(
        VpcEndpointId=off["VpcEndpointId"], PrivateDnsEnabled=True
    )
    on = await _describe(consumer, off["VpcEndpointId"])
    assert on["PrivateDnsEnabled"] is True
    assert on["DnsEntries"][-1]["DnsName"] == "sqs.us-east-1.amazonaws.com"

    await consumer.ec2.modify_vpc_attribute(VpcId=net["vpc_id"], EnableDnsSupport={"Value": False})
    with pytest.raises(ClientError) as error:
        await create(PrivateDnsEnabled=True, SubnetIds=[])
    assert error.value.response["Error"]["Code"] == "InvalidParameter"


async def test_provider_name_must_be_verified_and_shows_in_dns_entries(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    unverified = await aws.service(
        provider, PrivateDnsName="other.example.com", acceptance_required=False, allow=["*"]
    )
    with pytest.raises(ClientError) as error:
        await aws.endpoint(consumer, unverified["ServiceName"], PrivateDnsEnabled=True)
    assert error.value.response["Error"]["Code"] == "InvalidParameter"
    assert "verified" in error.value.response["Error"]["Message"]
    # Unset: AWS would turn it on; without a usable name the endpoint goes without.
    quiet = await aws.endpoint(consumer, unverified["ServiceName"])
    assert quiet["PrivateDnsEnabled"] is False

    nameless = await aws.service(provider, acceptance_required=False, allow=["*"])
    with pytest.raises(ClientError) as error:
        await aws.endpoint(consumer, nameless["ServiceName"], PrivateDnsEnabled=True)
    assert "does not provide a private DNS name" in error.value.response["Error"]["Message"]

    service = await _verified_service(aws, provider)
    endpoint = await aws.endpoint(consumer, service["ServiceName"], PrivateDnsEnabled=True)
    assert "api.example.com" in [e["DnsName"] for e in endpoint["DnsEntries"]]
    described = await _describe(consumer, endpoint["VpcEndpointId"])
    assert described["PrivateDnsEnabled"] is True

    # Turning it off is a ModifyVpcEndpoint that the next Describe reflects.
    await consumer.ec2.modify_vpc_endpoint(
        VpcEndpointId=endpoint["VpcEndpointId"], PrivateDnsEnabled=False
    )
    described = await _describe(consumer, endpoint["VpcEndpointId"])
    assert described["PrivateDnsEnabled"] is False
    assert "api.example.com" not in [e["DnsName"] for e in described["DnsEntries"]]
    await consumer.ec2.modify_vpc_endpoint(
        VpcEndpointId=endpoint["VpcEndpointId"], PrivateDnsEnabled=True
    )
    described = await _describe(consumer, endpoint["VpcEndpointId"])
    assert described["PrivateDnsEnabled"] is True
    assert "api.example.com" in [e["DnsName"] for e in described["DnsEntries"]]
