"""DryRun on every EC2 action linkplane checks, and the per-role deny list (docs/sim.md).

CheckAccount (aws/permissions.py) sends each EC2 action it checks with ``DryRun=true``: the
simulator must answer ``DryRunOperation`` (HTTP 412) or ``UnauthorizedOperation`` (403), never
the data. The deny list makes a role's sessions get ``UnauthorizedOperation`` (EC2),
``AccessDenied`` (ELBv2) or ``AccessDeniedException`` (Service Quotas), DryRun or not.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore import xform_name
from botocore.exceptions import ClientError

from linkplane.server.aws import permissions


async def _error(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        await call
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def _admin(sim: Any, method: str, path: str, body: object | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{sim.admin_url}/{path}", data=data, method=method, headers={"Content-Type": "json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("action", ["DescribeVpcEndpoints", "DescribeRouteTables"])
async def test_reads_moto_serves_answer_dry_run(aws, action):
    consumer = await aws.account(aws.CONSUMER)
    method = getattr(consumer.ec2, xform_name(action))
    assert await _error(method(DryRun=True)) == ("DryRunOperation", 412)
    # Without DryRun they still answer data.
    assert isinstance(await method(), dict)


async def test_describe_vpc_endpoint_services_answers_dry_run(aws):
    consumer = await aws.account(aws.CONSUMER)
    code = await _error(consumer.ec2.describe_vpc_endpoint_services(DryRun=True))
    assert code == ("DryRunOperation", 412)


async def test_every_checked_ec2_action_is_allowed_or_names_its_placeholder(aws):
    """Each EC2 probe CheckAccount sends is answered as a DryRun (never with data)."""
    consumer = await aws.account(aws.CONSUMER)
    for permission in permissions.PERMISSIONS:
        if permission.method is not permissions.Method.DRY_RUN:
            continue
        params = {
            key: permissions.fill(value, aws.REGION, aws.CONSUMER)
            for key, value in permission.params.items()
        }
        method = getattr(consumer.ec2, xform_name(permission.action))
        with pytest.raises(ClientError) as caught:
            await method(DryRun=True, **params)
        error = caught.value.response["Error"]
        assert (
            error["Code"] == "DryRunOperation"
            or "0000000000" in error["Message"]
            or ("linkplane-check" in error["Message"])
        ), (permission.action, error)


async def test_denied_action_is_refused_with_and_without_dry_run(aws):
    consumer = await aws.account(aws.CONSUMER)
    provider = await aws.account(aws.PROVIDER, cidr="10.1.0.0/16")
    service = await aws.service(provider, allow=["*"], acceptance_required=False)
    status, listed = _admin(
        aws.sim,
        "PUT",
        "deny",
        {"account": aws.CONSUMER, "role": "linkplane", "actions": ["ec2:CreateVpcEndpoint"]},
    )
    assert status == 200
    assert listed == {f"arn:aws:iam::{aws.CONSUMER}:role/linkplane": ["ec2:CreateVpcEndpoint"]}

    dry = await _error(aws.endpoint(consumer, service["ServiceName"], DryRun=True))
    real = await _error(aws.endpoint(consumer, service["ServiceName"]))
    assert dry == real == ("UnauthorizedOperation", 403)
    assert (await consumer.ec2.describe_vpc_endpoints())["VpcEndpoints"] == []
    # Other actions of the role, and other roles, are untouched.
    assert await _error(consumer.ec2.describe_subnets(DryRun=True)) == ("DryRunOperation", 412)
    other = await aws.client("ec2", await aws.credentials_for(aws.CONSUMER, role="other"))
    code, _ = await _error(
        other.create_vpc_endpoint(
            VpcId=consumer.network["vpc_id"],
            ServiceName=service["ServiceName"],
            VpcEndpointType="Interface",
            SubnetIds=consumer.network["subnet_ids"][:1],
            DryRun=True,
        )
    )
    assert code == "DryRunOperation"

    # Removing the role's list (empty actions) lets the call through again.
    aws.sim.deny(aws.CONSUMER, "linkplane", [])
    assert _admin(aws.sim, "GET", "deny") == (200, {})
    assert await _error(aws.endpoint(consumer, service["ServiceName"], DryRun=True)) == (
        "DryRunOperation",
        412,
    )


async def test_denied_reads_of_other_services_answer_their_protocols_error(aws):
    creds = await aws.credentials_for(aws.CONSUMER)
    aws.sim.deny(
        aws.CONSUMER,
        f"arn:aws:iam::{aws.CONSUMER}:role/linkplane",
        ["elasticloadbalancing:DescribeLoadBalancers", "servicequotas:GetServiceQuota"],
    )
    elbv2 = await aws.client("elbv2", creds)
    quotas = await aws.client("service-quotas", creds)
    assert await _error(elbv2.describe_load_balancers()) == ("AccessDenied", 403)
    code, _ = await _error(quotas.get_service_quota(ServiceCode="vpc", QuotaCode="L-29B6F2EB"))
    assert code == "AccessDeniedException"
    # Base credentials are no role: never denied.
    base = await aws.client("elbv2")
    assert "LoadBalancers" in await base.describe_load_balancers()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"account": "12", "role": "linkplane", "actions": []}, "12-digit"),
        ({"account": "222222222222", "role": "a b", "actions": []}, "role name or ARN"),
        (
            {"account": "222222222222", "role": "arn:aws:iam::111111111111:role/x", "actions": []},
            "role ARN in account 222222222222",
        ),
        ({"account": "222222222222", "role": "r", "actions": "ec2:X"}, "list of IAM actions"),
        ({"account": "222222222222", "role": "r", "actions": ["CreateVpc"]}, "not an IAM action"),
        (
            {"account": "222222222222", "role": "r", "actions": ["sts:GetCallerIdentity"]},
            "needs no permission",
        ),
    ],
)
def test_deny_list_refuses_bad_input(sim, body, fragment):
    status, answer = _admin(sim, "PUT", "deny", body)
    assert status == 400
    assert fragment in answer["error"]
    assert _admin(sim, "GET", "deny") == (200, {})


def test_reset_and_delete_clear_the_deny_list(sim):
    sim.deny("222222222222", "linkplane", ["ec2:CreateTags"])
    assert _admin(sim, "DELETE", "deny") == (200, {})
    sim.deny("222222222222", "linkplane", ["ec2:CreateTags"])
    sim.reset()
    assert _admin(sim, "GET", "deny") == (200, {})
