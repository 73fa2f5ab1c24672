"""Every field is modelled or refused; DryRun answers DryRunOperation (item 9)."""

import pytest
from botocore.exceptions import ClientError


async def _code_and_message(call):
    with pytest.raises(ClientError) as error:
        await call
    return error.value.response["Error"]["Code"], error.value.response["Error"]["Message"]


async def test_unmodelled_fields_are_refused_naming_the_field(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    service = await aws.service(provider, allow=["*"], acceptance_required=False)
    endpoint = await aws.endpoint(consumer, service["ServiceName"])
    endpoint_id = endpoint["VpcEndpointId"]

    cases = [
        (
            aws.endpoint(
                consumer,
                service["ServiceName"],
                DnsOptions={
                    "DnsRecordIpType": "ipv4",
                    "PrivateDnsOnlyForInboundResolverEndpoint": True,
                },
            ),
            "DnsOptions.PrivateDnsOnlyForInboundResolverEndpoint",
        ),
        (
            aws.endpoint(
                consumer,
                service["ServiceName"],
                ResourceConfigurationArn="arn:aws:vpc-lattice:us-east-1:1:resourceconfiguration/r",
            ),
            "ResourceConfigurationArn",
        ),
        (
            consumer.ec2.modify_vpc_endpoint(
                VpcEndpointId=endpoint_id,
                SubnetConfigurations=[{"SubnetId": consumer.network["subnet_ids"][0]}],
            ),
            "SubnetConfigurations",
        ),
        (
            consumer.ec2.modify_vpc_endpoint(
                VpcEndpointId=endpoint_id,
                DnsOptions={"PrivateDnsPreference": "VERIFIED_DOMAINS_ONLY"},
            ),
            "DnsOptions.PrivateDnsPreference",
        ),
    ]
    for call, field in cases:
        code, message = await _code_and_message(call)
        assert code == "InvalidParameter"
        assert f"linkplane-sim does not model {field}" in message

    code, message = await _code_and_message(
        provider.ec2.modify_vpc_endpoint_service_payer_responsibility(
            ServiceId=service["ServiceId"], PayerResponsibility="ServiceOwner"
        )
    )
    assert code == "UnsupportedOperation"
    assert "ModifyVpcEndpointServicePayerResponsibility" in message


async def test_dry_run_answers_dry_run_operation_and_changes_nothing(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    service = await aws.service(provider, allow=["*"], acceptance_required=False)
    code, _ = await _code_and_message(aws.endpoint(consumer, service["ServiceName"], DryRun=True))
    assert code == "DryRunOperation"
    assert (await consumer.ec2.describe_vpc_endpoints())["VpcEndpoints"] == []
    arn = service["NetworkLoadBalancerArns"][0]
    code, _ = await _code_and_message(
        provider.ec2.create_vpc_endpoint_service_configuration(
            NetworkLoadBalancerArns=[arn], DryRun=True
        )
    )
    assert code == "DryRunOperation"
    code, _ = await _code_and_message(
        provider.ec2.modify_vpc_endpoint_service_configuration(
            ServiceId=service["ServiceId"], AcceptanceRequired=True, DryRun=True
        )
    )
    assert code == "DryRunOperation"
    found = await provider.ec2.describe_vpc_endpoint_service_configurations()
    assert [s["AcceptanceRequired"] for s in found["ServiceConfigurations"]] == [False]


async def test_service_configurations_filter_by_tag_and_state_and_page(aws):
    provider = await aws.account(aws.PROVIDER)
    tagged = await aws.service(
        provider,
        TagSpecifications=[
            {
                "ResourceType": "vpc-endpoint-service",
                "Tags": [{"Key": "linkplane:uid", "Value": "u-1"}],
            }
        ],
    )
    await aws.service(provider)
    found = await provider.ec2.describe_vpc_endpoint_service_configurations(
        Filters=[{"Name": "tag:linkplane:uid", "Values": ["u-1"]}]
    )
    assert [s["ServiceId"] for s in found["ServiceConfigurations"]] == [tagged["ServiceId"]]
    found = await provider.ec2.describe_vpc_endpoint_service_configurations(
        Filters=[{"Name": "service-state", "Values": ["available"]}], MaxResults=1
    )
    assert len(found["ServiceConfigurations"]) == 1
    rest = await provider.ec2.describe_vpc_endpoint_service_configurations(
        Filters=[{"Name": "service-state", "Values": ["available"]}], NextToken=found["NextToken"]
    )
    assert len(rest["ServiceConfigurations"]) == 1
    assert "NextToken" not in rest
