"""The documented PrivateLink scenario, end to end, in plain aiobotocore (docs/sim.md).

Run it against a standalone simulator (``linkplane-sim --listen 127.0.0.1:4566 --time-scale
100``) with ``python -m linkplane.sim.scenario http://127.0.0.1:4566``, or without an argument to
start one in-process. Nothing here is simulator-specific: the same calls work against AWS with
real credentials and account ids. tests/sim/test_scenario.py proves it stays true.
"""

import asyncio
import contextlib
import sys
from typing import Any

from aiobotocore.session import get_session

PROVIDER = "111111111111"
CONSUMER = "222222222222"
REGION = "us-east-1"


async def _poll(probe: Any, wanted: str, attempts: int = 600) -> None:
    """No botocore waiters exist for endpoints or services: poll, as against AWS."""
    for _ in range(attempts):
        if await probe() == wanted:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"never reached {wanted!r}")


async def _network(ec2: Any, cidr_prefix: str) -> tuple[str, list[str]]:
    """A VPC with one subnet in each of two AZs, chosen by AZ id: each account maps AZ names
    to zones differently, so ``us-east-1a`` of the provider may not be the consumer's."""
    vpc = (await ec2.create_vpc(CidrBlock=f"{cidr_prefix}.0.0/16"))["Vpc"]["VpcId"]
    subnets = []
    for index, zone_id in enumerate(("use1-az1", "use1-az2")):
        subnet = await ec2.create_subnet(
            VpcId=vpc, CidrBlock=f"{cidr_prefix}.{index}.0/24", AvailabilityZoneId=zone_id
        )
        subnets.append(subnet["Subnet"]["SubnetId"])
    return vpc, subnets


async def run(endpoint_url: str) -> dict[str, Any]:
    """Play the scenario; return what a reader would check (ids, states, ENIs, DNS names)."""
    session = get_session()
    base = {"endpoint_url": endpoint_url, "region_name": REGION}
    async with contextlib.AsyncExitStack() as stack:

        async def client(service: str, creds: dict[str, str]) -> Any:
            return await stack.enter_async_context(session.create_client(service, **base, **creds))

        root = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
        sts = await client("sts", root)

        async def as_account(account: str) -> dict[str, str]:
            answer = await sts.assume_role(
                RoleArn=f"arn:aws:iam::{account}:role/linkplane", RoleSessionName="scenario"
            )
            creds = answer["Credentials"]
            return {
                "aws_access_key_id": creds["AccessKeyId"],
                "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"],
            }

        provider_creds, consumer_creds = await as_account(PROVIDER), await as_account(CONSUMER)
        provider_ec2 = await client("ec2", provider_creds)
        provider_elb = await client("elbv2", provider_creds)
        consumer_ec2 = await client("ec2", consumer_creds)

        # Provider: an internal NLB, then an endpoint service that requires acceptance.
        _, provider_subnets = await _network(provider_ec2, "10.0")
        nlb = await provider_elb.create_load_balancer(
            Name="orders", Type="network", Scheme="internal", Subnets=provider_subnets
        )
        nlb_arn = nlb["LoadBalancers"][0]["LoadBalancerArn"]
        created = await provider_ec2.create_vpc_endpoint_service_configuration(
            NetworkLoadBalancerArns=[nlb_arn], AcceptanceRequired=True, ClientToken="orders-1"
        )
        service_id = created["ServiceConfiguration"]["ServiceId"]
        service_name = created["ServiceConfiguration"]["ServiceName"]
        await provider_ec2.modify_vpc_endpoint_service_permissions(
            ServiceId=service_id, AddAllowedPrincipals=[f"arn:aws:iam::{CONSUMER}:root"]
        )

        async def service_state() -> str:
            found = await provider_ec2.describe_vpc_endpoint_service_configurations(
                ServiceIds=[service_id]
            )
            return str(found["ServiceConfigurations"][0]["ServiceState"])

        await _poll(service_state, "Available")

        # Consumer (another account, overlapping CIDR): an interface endpoint to the service.
        consumer_vpc, consumer_subnets = await _network(consumer_ec2, "10.0")
        endpoint = await consumer_ec2.create_vpc_endpoint(
            VpcEndpointType="Interface",
            VpcId=consumer_vpc,
            ServiceName=service_name,
            SubnetIds=consumer_subnets,
            ClientToken="orders-consumer-1",
        )
        endpoint_id = endpoint["VpcEndpoint"]["VpcEndpointId"]
        initial_state = endpoint["VpcEndpoint"]["State"]

        async def endpoint_state() -> str:
            found = await consumer_ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])
            return str(found["VpcEndpoints"][0]["State"])

        # Provider: accept; the endpoint becomes available with ENIs and DNS entries.
        await provider_ec2.accept_vpc_endpoint_connections(
            ServiceId=service_id, VpcEndpointIds=[endpoint_id]
        )
        await _poll(endpoint_state, "available")
        described = (await consumer_ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id]))[
            "VpcEndpoints"
        ][0]
        enis = await consumer_ec2.describe_network_interfaces(
            NetworkInterfaceIds=described["NetworkInterfaceIds"]
        )

        # Teardown order: the service cannot go while the connection is live; reject first.
        blocked = await provider_ec2.delete_vpc_endpoint_service_configurations(
            ServiceIds=[service_id]
        )
        await provider_ec2.reject_vpc_endpoint_connections(
            ServiceId=service_id, VpcEndpointIds=[endpoint_id]
        )
        deleted = await provider_ec2.delete_vpc_endpoint_service_configurations(
            ServiceIds=[service_id]
        )
        await provider_elb.delete_load_balancer(LoadBalancerArn=nlb_arn)

        return {
            "service_id": service_id,
            "endpoint_id": endpoint_id,
            "initial_state": initial_state,
            "accepted_state": described["State"],
            "eni_ips": [eni["PrivateIpAddress"] for eni in enis["NetworkInterfaces"]],
            "dns_names": [entry["DnsName"] for entry in described["DnsEntries"]],
            "delete_while_live": [u["Error"]["Code"] for u in blocked["Unsuccessful"]],
            "delete_after_reject": [u["Error"]["Code"] for u in deleted["Unsuccessful"]],
        }


def main() -> None:
    if len(sys.argv) > 1:
        result = asyncio.run(run(sys.argv[1]))
    else:
        from linkplane.sim import server  # noqa: PLC0415 - only when no simulator is given

        handle = server.start(time_scale=100.0)
        try:
            result = asyncio.run(run(handle.endpoint_url))
        finally:
            handle.stop()
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
