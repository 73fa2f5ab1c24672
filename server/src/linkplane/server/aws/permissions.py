"""Does an account's role allow what linkplane will do there? Ask AWS, changing nothing.

``PERMISSIONS`` lists every AWS action linkplane's code calls in a registered account, each with
the variant(s) of the IAM policy that grant it (deploy/aws/provider.json, consumer.json) and how
to check it without side effects: EC2 actions with ``DryRun=True`` (AWS answers
``DryRunOperation`` when the caller may, ``UnauthorizedOperation`` when not), reads (ELBv2
``Describe*``, Service Quotas ``Get*``) by calling them. ELBv2 writes have no DryRun and no
harmless form, so they are reported as unverified rather than guessed. tests/api/
test_check_account.py holds this list equal to the actions the static scan of the code finds
(tests/deploy/aws_actions.py), the same scan the IAM policy test compares the policies with, so
a new AWS call without an entry here fails CI.

:func:`check` assumes the role (through ``sessions``, like every reconcile), asks STS who it is,
then runs each probe through ``calls.Context`` (rate-limited and classified like any call).
Probes name placeholder objects (``vpce-00000000000000000``): well-formed, never existing. IAM
is evaluated first (these policies grant on ``Resource: *``), so a refusal comes back as
``UnauthorizedOperation`` whatever the ids; once authorized, AWS either answers
``DryRunOperation`` or goes on to look the placeholder up and answers that it does not exist
(``InvalidVpcEndpointServiceId.NotFound``) — both mean the role may call the action.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from linkplane.server.aws import calls, errors, sessions, throttlers

# botocore service name -> IAM prefix.
IAM_PREFIX = {
    "ec2": "ec2",
    "elbv2": "elasticloadbalancing",
    "service-quotas": "servicequotas",
    "sts": "sts",
}
# Error codes that mean "the caller may not": EC2, query protocols, JSON protocols.
DENIED_CODES = frozenset(
    {"UnauthorizedOperation", "AccessDenied", "AccessDeniedException", "UnauthorizedAccess"}
)
ASSUME_ROLE = "sts:AssumeRole"
CONCURRENCY = 4
"""Probes in flight at once: fast enough, and far below any bucket of linkplane's limiter."""

_VPC = "vpc-00000000000000000"
_ENDPOINT = "vpce-00000000000000000"
_SERVICE = "vpce-svc-00000000000000000"


@dataclass(frozen=True)
class Access:
    """How a process reaches AWS: its clients (per account) and its rate limiter."""

    clients: sessions.AwsClients
    limiter: throttlers.Limiter

    def context(self, account: sessions.AccountRef, region: str) -> calls.Context:
        return calls.Context(self.clients, self.limiter, account, region)


class Variant(enum.StrEnum):
    """The IAM policy variants of deploy/aws/."""

    PROVIDER = "provider"
    CONSUMER = "consumer"


BOTH = frozenset({Variant.PROVIDER, Variant.CONSUMER})
PROVIDER = frozenset({Variant.PROVIDER})
CONSUMER = frozenset({Variant.CONSUMER})


class Method(enum.StrEnum):
    """How an action is checked."""

    DRY_RUN = "DryRun"
    READ = "read"
    NONE = "none"  # no side-effect-free check exists


class Result(enum.StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    ERROR = "error"
    UNVERIFIED = "unverified"


@dataclass(frozen=True)
class Permission:
    """One AWS action linkplane calls, who needs it, and how to check it."""

    service: str  # botocore service name
    action: str
    variants: frozenset[Variant]
    method: Method
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def iam_action(self) -> str:
        return f"{IAM_PREFIX[self.service]}:{self.action}"


def _ec2(action: str, variants: frozenset[Variant], **params: Any) -> Permission:
    return Permission("ec2", action, variants, Method.DRY_RUN, params)


def _read(service: str, action: str, variants: frozenset[Variant], **params: Any) -> Permission:
    return Permission(service, action, variants, Method.READ, params)


def _unverifiable(service: str, action: str, variants: frozenset[Variant]) -> Permission:
    return Permission(service, action, variants, Method.NONE)


_NLB_ARN = "arn:aws:elasticloadbalancing:{region}:{account}:loadbalancer/net/linkplane-check/0"
_QUOTA = {"ServiceCode": "vpc", "QuotaCode": "L-29B6F2EB"}  # interface endpoints per VPC

PERMISSIONS: tuple[Permission, ...] = (
    # Reads both sides need (the garbage collector sweeps every account).
    _ec2("DescribeVpcEndpoints", BOTH),
    _ec2("DescribeVpcEndpointServiceConfigurations", BOTH),
    _read("elbv2", "DescribeLoadBalancers", BOTH, PageSize=1),
    _read("elbv2", "DescribeTags", BOTH, ResourceArns=[_NLB_ARN]),
    # Tags (labels) on either side's objects.
    _ec2("CreateTags", BOTH, Resources=[_ENDPOINT], Tags=[{"Key": "linkplane:check", "Value": ""}]),
    _ec2("DeleteTags", BOTH, Resources=[_ENDPOINT], Tags=[{"Key": "linkplane:check"}]),
    # Consumer: interface endpoints, the network around them, quotas.
    _ec2("DescribeAvailabilityZones", CONSUMER),
    _ec2("DescribeNetworkInterfaces", CONSUMER),
    _ec2("DescribeRouteTables", CONSUMER),
    _ec2("DescribeSubnets", CONSUMER),
    _ec2("DescribeVpcEndpointServices", CONSUMER),
    _ec2(
        "CreateVpcEndpoint",
        CONSUMER,
        VpcId=_VPC,
        ServiceName="com.amazonaws.vpce.{region}." + _SERVICE,
        VpcEndpointType="Interface",
    ),
    _ec2("ModifyVpcEndpoint", CONSUMER, VpcEndpointId=_ENDPOINT),
    _ec2("DeleteVpcEndpoints", CONSUMER, VpcEndpointIds=[_ENDPOINT]),
    _read("service-quotas", "GetServiceQuota", CONSUMER, **_QUOTA),
    _read("service-quotas", "GetAWSDefaultServiceQuota", CONSUMER, **_QUOTA),
    # Provider: endpoint services and their connections.
    _ec2("CreateVpcEndpointServiceConfiguration", PROVIDER, NetworkLoadBalancerArns=[_NLB_ARN]),
    _ec2("ModifyVpcEndpointServiceConfiguration", PROVIDER, ServiceId=_SERVICE),
    _ec2("DeleteVpcEndpointServiceConfigurations", PROVIDER, ServiceIds=[_SERVICE]),
    _ec2("DescribeVpcEndpointServicePermissions", PROVIDER, ServiceId=_SERVICE),
    _ec2("ModifyVpcEndpointServicePermissions", PROVIDER, ServiceId=_SERVICE),
    _ec2("DescribeVpcEndpointConnections", PROVIDER),
    _ec2("AcceptVpcEndpointConnections", PROVIDER, ServiceId=_SERVICE, VpcEndpointIds=[_ENDPOINT]),
    _ec2("RejectVpcEndpointConnections", PROVIDER, ServiceId=_SERVICE, VpcEndpointIds=[_ENDPOINT]),
    _ec2("StartVpcEndpointServicePrivateDnsVerification", PROVIDER, ServiceId=_SERVICE),
    # Provider: managed Network Load Balancers. Reads are checked; writes cannot be.
    _read("elbv2", "DescribeListeners", PROVIDER, LoadBalancerArn=_NLB_ARN),
    _read("elbv2", "DescribeTargetGroups", PROVIDER, PageSize=1),
    _unverifiable("elbv2", "CreateLoadBalancer", PROVIDER),
    _unverifiable("elbv2", "CreateListener", PROVIDER),
    _unverifiable("elbv2", "CreateTargetGroup", PROVIDER),
    _unverifiable("elbv2", "RegisterTargets", PROVIDER),
    _unverifiable("elbv2", "SetIpAddressType", PROVIDER),
    _unverifiable("elbv2", "DeleteLoadBalancer", PROVIDER),
    _unverifiable("elbv2", "DeleteTargetGroup", PROVIDER),
)
"""Every action linkplane calls in a registered account (AssumeRole is the control plane's)."""


@dataclass(frozen=True)
class Outcome:
    """What AWS answered for one action."""

    action: str  # IAM action, e.g. ec2:CreateVpcEndpoint
    result: Result
    message: str


@dataclass(frozen=True)
class Report:
    """The whole check: who linkplane is in the account, and one outcome per action."""

    caller_arn: str
    outcomes: list[Outcome]


def selected(variants: Iterable[Variant]) -> list[Permission]:
    """The permissions any of ``variants`` needs, ordered by IAM action."""
    wanted = frozenset(variants)
    return sorted((p for p in PERMISSIONS if p.variants & wanted), key=lambda p: p.iam_action)


async def check(ctx: calls.Context, variants: Iterable[Variant]) -> Report:
    """Assume the role and try each action; never raises for what AWS answers."""
    try:
        # Assumes the role (sessions) on first use, then asks who we are; STS needs no
        # permission for GetCallerIdentity, so a failure here is the AssumeRole's.
        identity = await ctx.call("sts", "GetCallerIdentity")
    except errors.AwsError as exc:
        denied = exc.code in DENIED_CODES
        assumed = Outcome(
            ASSUME_ROLE,
            Result.DENIED if denied else Result.ERROR,
            f"{exc.code}: {exc.message}",
        )
        skipped = [
            Outcome(p.iam_action, Result.ERROR, "not checked: the role could not be assumed")
            for p in selected(variants)
        ]
        return Report("", [assumed, *skipped])
    caller = str(identity.get("Arn", ""))
    first = Outcome(
        ASSUME_ROLE,
        Result.ALLOWED,
        f"acting as {caller}" if ctx.account.role_arn else f"base credentials: {caller}",
    )
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(permission: Permission) -> Outcome:
        async with gate:
            return await probe(ctx, permission)

    outcomes = await asyncio.gather(*(one(p) for p in selected(variants)))
    return Report(caller, [first, *outcomes])


async def probe(ctx: calls.Context, permission: Permission) -> Outcome:
    """Check one action in ``ctx``'s account and Region."""
    name = permission.iam_action
    if permission.method is Method.NONE:
        return Outcome(
            name,
            Result.UNVERIFIED,
            "AWS has no DryRun or harmless form of this action; granted by the deploy/aws policy",
        )
    params = {
        key: fill(value, ctx.region, ctx.account.account_id)
        for key, value in permission.params.items()
    }
    if permission.method is Method.DRY_RUN:
        params["DryRun"] = True
    try:
        # Not a call the scan must read (tests/deploy/aws_actions.py skips this module): every
        # probe is one of PERMISSIONS, each of which the scan finds at its real call site.
        await ctx.call(permission.service, permission.action, **params)
    except errors.AwsError as exc:
        return _classify(permission, exc, _placeholders(params))
    if permission.method is Method.DRY_RUN:
        # DryRun never succeeds: AWS answers DryRunOperation or an error.
        return Outcome(name, Result.ERROR, "DryRun call succeeded: AWS ignored DryRun")
    return Outcome(name, Result.ALLOWED, f"{permission.action} succeeded")


def _classify(permission: Permission, exc: errors.AwsError, placeholders: set[str]) -> Outcome:
    name = permission.iam_action
    said = f"{exc.code}: {exc.message}"
    if permission.method is Method.DRY_RUN and exc.code == "DryRunOperation":
        return Outcome(name, Result.ALLOWED, "DryRun: request would have succeeded")
    if exc.code in DENIED_CODES:
        return Outcome(name, Result.DENIED, said)
    named = any(p in exc.message for p in placeholders)
    if (
        placeholders
        and exc.kind is not errors.Kind.THROTTLE
        and (named or errors.is_not_found(exc))
    ):
        # Authorized, then refused because the placeholder object does not exist.
        return Outcome(
            name, Result.ALLOWED, f"authorized; AWS then found no placeholder object ({said})"
        )
    return Outcome(name, Result.ERROR, said)


def _placeholders(params: Mapping[str, Any]) -> set[str]:
    """The placeholder ids and ARNs a probe names (what a "does not exist" error repeats)."""
    found: set[str] = set()
    for value in params.values():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, str) and ("-0000000000" in item or "linkplane-check" in item):
                found.add(item)
    return found


def fill(value: Any, region: str, account: str) -> Any:
    """A probe parameter with its placeholders naming this Region and account."""
    if isinstance(value, str):
        return value.format(region=region, account=account)
    if isinstance(value, list):
        return [fill(v, region, account) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, region, account) for k, v in value.items()}
    return value
