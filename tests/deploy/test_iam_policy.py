"""The IAM policies in deploy/aws/ grant exactly the AWS actions linkplane's code calls.

The code's actions come from a static scan (tests/deploy/aws_actions.py): a new
``ctx.call("ec2", "NewAction", ...)`` without a policy entry fails here, and so does a policy
entry no code calls, except the short explicit list of permission-only and dependent actions
below (each with the reason AWS requires it). The CloudFormation template must embed the same
policies, and the control plane's own policy may only assume roles.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import aws_actions

ROOT = Path(__file__).resolve().parents[2]
AWS_DIR = ROOT / "deploy" / "aws"

# Which side of PrivateLink each module's calls serve. Modules not listed (the garbage
# collector, future modules) sweep every registered account whatever its variant: their reads
# must be in both variants (or the sweep fails with AccessDenied in half the accounts), their
# writes in at least one (they only ever delete objects of the side that created them).
PROVIDER_MODULES = frozenset(
    {
        "aws/endpoint_services.py",
        "aws/loadbalancers.py",
        "reconciler/services.py",
        "reconciler/service_model.py",
        "reconciler/service_load_balancers.py",
        "reconciler/private_dns.py",
        "reconciler/acceptance_decisions.py",
    }
)
CONSUMER_MODULES = frozenset(
    {
        "aws/endpoints.py",
        "aws/quotas.py",
        "reconciler/connections.py",
        "reconciler/connection_plans.py",
        "reconciler/connection_preflight.py",
        "reconciler/endpoint_snapshots.py",
    }
)
BOTH_MODULES = frozenset({"reconciler/labels.py"})  # labels become tags on either side's objects
CONTROL_PLANE_MODULES = frozenset({"aws/sessions.py"})  # AssumeRole, as the base principal
READ_PREFIXES = ("Describe", "Get", "List")

# Granted although no code line names them: AWS checks them as part of another call.
PERMISSION_ONLY = {
    "provider": {
        # ModifyVpcEndpointServiceConfiguration(AddSupportedRegions=...): cross-Region services.
        "vpce:AllowMultiRegion",
        # CreateLoadBalancer / CreateTargetGroup with Tags=: tag-on-create is authorized as AddTags.
        "elasticloadbalancing:AddTags",
        # The first NLB in an account creates ELB's service-linked role.
        "iam:CreateServiceLinkedRole",
    },
    "consumer": {
        # CreateVpcEndpoint(ServiceRegion=...): cross-Region endpoints.
        "vpce:AllowMultiRegion",
        # CreateVpcEndpoint / ModifyVpcEndpoint with PrivateDnsEnabled: AWS associates the VPC
        # with the service's private hosted zone on the caller's behalf (a dependent action in
        # AWS's Service Authorization Reference).
        "route53:AssociateVPCWithHostedZone",
    },
}


def policy_actions(document: dict[str, Any]) -> set[str]:
    actions: set[str] = set()
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow", statement
        assert "NotAction" not in statement, "NotAction grants everything else: use Action"
        listed = statement["Action"]
        actions |= {listed} if isinstance(listed, str) else set(listed)
    for action in actions:
        assert "*" not in action, f"{action}: wildcards grant actions the code never calls"
    return actions


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((AWS_DIR / name).read_text())
    assert document["Version"] == "2012-10-17"
    return document


@pytest.fixture(scope="module")
def scan() -> aws_actions.Scan:
    return aws_actions.scan()


@pytest.fixture(scope="module")
def required(scan: aws_actions.Scan) -> dict[str, set[str]]:
    """For each variant, the actions it must grant; plus "either": writes of shared modules."""
    need: dict[str, set[str]] = {"provider": set(), "consumer": set(), "either": set()}
    for site in scan.calls:
        action = site.iam_action
        if site.module in CONTROL_PLANE_MODULES:
            continue
        if site.module in PROVIDER_MODULES:
            need["provider"].add(action)
        elif site.module in CONSUMER_MODULES:
            need["consumer"].add(action)
        elif site.module in BOTH_MODULES or site.action.startswith(READ_PREFIXES):
            need["provider"].add(action)
            need["consumer"].add(action)
        else:
            need["either"].add(action)
    return need


def test_the_scan_reads_every_aws_call_site(scan: aws_actions.Scan) -> None:
    assert not scan.unresolved, (
        "AWS call sites whose service/action the scan cannot read statically; pass string "
        "literals (or names bound to literals) so the IAM policies can be checked:\n"
        + "\n".join(scan.unresolved)
    )
    # The scan sees the calls we know exist (a broken scan that finds nothing must not pass).
    found = {site.iam_action for site in scan.calls}
    assert {"ec2:CreateVpcEndpoint", "elasticloadbalancing:CreateLoadBalancer"} <= found
    assert "sts:AssumeRole" in found


@pytest.mark.parametrize("variant", ["provider", "consumer"])
def test_each_variant_grants_what_its_code_calls(
    variant: str, required: dict[str, set[str]]
) -> None:
    granted = policy_actions(load(f"{variant}.json"))
    missing = sorted(required[variant] - granted)
    assert not missing, f"deploy/aws/{variant}.json lacks actions the code calls: {missing}"


@pytest.mark.parametrize("variant", ["provider", "consumer"])
def test_each_variant_grants_nothing_more(variant: str, required: dict[str, set[str]]) -> None:
    granted = policy_actions(load(f"{variant}.json"))
    allowed = required[variant] | required["either"] | PERMISSION_ONLY[variant]
    extra = sorted(granted - allowed)
    assert not extra, (
        f"deploy/aws/{variant}.json grants actions no {variant} code calls: {extra} "
        "(remove them, or list a permission-only action with its reason in PERMISSION_ONLY)"
    )


def test_shared_writes_are_granted_somewhere(required: dict[str, set[str]]) -> None:
    granted = policy_actions(load("provider.json")) | policy_actions(load("consumer.json"))
    missing = sorted(required["either"] - granted)
    assert not missing, f"no variant grants these actions the code calls: {missing}"


def test_permission_only_actions_are_granted() -> None:
    for variant, actions in PERMISSION_ONLY.items():
        granted = policy_actions(load(f"{variant}.json"))
        assert actions <= granted, f"{variant}: {sorted(actions - granted)}"


def test_deletes_are_limited_to_objects_linkplane_tagged() -> None:
    for variant in ("provider", "consumer"):
        for statement in load(f"{variant}.json")["Statement"]:
            listed = statement["Action"]
            actions = [listed] if isinstance(listed, str) else listed
            deletes = [a for a in actions if a.split(":")[1].startswith("Delete")]
            tag_deletes = {"ec2:DeleteTags"}
            if set(deletes) - tag_deletes:
                condition = statement.get("Condition", {})
                assert condition == {"Null": {"aws:ResourceTag/linkplane:uid": "false"}}, (
                    f"{variant}: {deletes} must require the linkplane:uid tag"
                )


def test_control_plane_policy_only_assumes_roles(scan: aws_actions.Scan) -> None:
    code = {s.iam_action for s in scan.calls if s.module in CONTROL_PLANE_MODULES}
    assert code == {"sts:AssumeRole"}
    assert policy_actions(load("control-plane.json")) == code


def test_trust_policy_requires_the_external_id() -> None:
    (statement,) = load("trust-policy.json")["Statement"]
    assert statement["Action"] == "sts:AssumeRole"
    assert set(statement["Principal"]) == {"AWS"}
    assert "sts:ExternalId" in statement["Condition"]["StringEquals"]


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation short-form tags (!Ref, !If …) as plain data."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    return {name: value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def test_cloudformation_template_embeds_the_policy_files() -> None:
    template = yaml.load((AWS_DIR / "linkplane-role.yaml").read_text(), Loader=_CfnLoader)
    resources = template["Resources"]
    assert resources["ProviderPolicy"]["Properties"]["PolicyDocument"] == load("provider.json")
    assert resources["ConsumerPolicy"]["Properties"]["PolicyDocument"] == load("consumer.json")
    assert resources["ProviderPolicy"]["Condition"] == "Provider"
    assert resources["ConsumerPolicy"]["Condition"] == "Consumer"
    trust = resources["Role"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust[0]["Principal"] == {"AWS": {"Ref": "ControlPlanePrincipalArn"}}
    assert trust[0]["Condition"] == {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}}
    assert {"ControlPlanePrincipalArn", "ExternalId", "Variant"} <= set(template["Parameters"])


def test_setup_doc_names_every_granted_action() -> None:
    doc = (ROOT / "docs" / "aws-setup.md").read_text()
    for variant in ("provider", "consumer"):
        for action in policy_actions(load(f"{variant}.json")):
            assert re.search(rf"`{re.escape(action)}`", doc), f"docs/aws-setup.md: {action}"


def test_the_scan_follows_literals_names_loops_and_parameters(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(
        textwrap.dedent(
            """
            MODIFY = "ModifyVpcEndpoint"

            async def helper(ctx, action, ids):
                await ctx.call("ec2", action, Ids=ids)

            async def steps(ctx, name):
                await ctx.call("ec2", "DescribeVpcEndpoints")
                await ctx.collect("elbv2", "DescribeLoadBalancers", "LoadBalancers")
                await ctx.call("ec2", MODIFY)
                for action, _ in (("GetServiceQuota", 1), ("GetAWSDefaultServiceQuota", 2)):
                    await ctx.call("service-quotas", action)
                await helper(ctx, "AcceptVpcEndpointConnections", [])
                await helper(ctx, "RejectVpcEndpointConnections", [])
                await ctx.call("ec2", name)
                await ctx.call("s3", "ListBuckets")

            class Step:
                async def run(self, context):
                    await self.ctx.call("ec2", "DescribeSubnets")
                    await context.collect("ec2", "DescribeRouteTables", "RouteTables")
            """
        )
    )
    result = aws_actions.scan(tmp_path)
    assert {s.iam_action for s in result.calls} == {
        "ec2:DescribeVpcEndpoints",
        "elasticloadbalancing:DescribeLoadBalancers",
        "ec2:ModifyVpcEndpoint",
        "servicequotas:GetServiceQuota",
        "servicequotas:GetAWSDefaultServiceQuota",
        "ec2:AcceptVpcEndpointConnections",
        "ec2:RejectVpcEndpointConnections",
        "ec2:DescribeSubnets",
        "ec2:DescribeRouteTables",
    }
    # `name` comes from a caller outside the module, and s3 is no service linkplane knows.
    assert len(result.unresolved) == 2
    assert any("unknown AWS service 's3'" in u for u in result.unresolved)
