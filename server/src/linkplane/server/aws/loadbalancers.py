"""ELBv2 steps: the Network Load Balancers an endpoint service publishes.

ELBv2 creates are idempotent *by name* (not by ClientToken), so linkplane names its NLBs
and target groups deterministically (``tags.deterministic_name``) and finds them by name.
The calls of the Service reconciler's load-balancer steps live here (which are due is
reconciler/service_load_balancers.py's decision): ensure a managed NLB with its target groups
and listeners, read adopted ones, switch the IP address type, tear a managed one down.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from linkplane.server.aws import calls, errors, tags
from linkplane.server.domain import specs


async def find_load_balancer_by_name(ctx: calls.Context, name: str) -> dict[str, Any] | None:
    """The load balancer with this name, or None.

    Respects: DescribeLoadBalancers(Names=[…]) answers ``LoadBalancerNotFound`` rather than an
    empty list; that is "absent" here. Right after a create the same error may be eventual
    consistency: callers that just created keep the ARN from the create response instead.
    """
    try:
        response = await ctx.call("elbv2", "DescribeLoadBalancers", Names=[name])
    except errors.AwsError as err:
        if errors.is_not_found(err):
            return None
        raise
    found: list[dict[str, Any]] = response.get("LoadBalancers", [])
    return found[0] if found else None


async def create_network_load_balancer(
    ctx: calls.Context,
    *,
    uid: str,
    name: str,
    resource_name: str,
    subnet_ids: Sequence[str],
    labels: Mapping[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """CreateLoadBalancer for an internal NLB; returns the ``LoadBalancers[0]`` entry.

    Respects: ``Type="network"`` and ``Scheme="internal"`` (an endpoint service needs an NLB,
    and PrivateLink traffic never comes from the internet); the same ``name`` returns the
    existing NLB, so the call is idempotent when ``name`` is deterministic; ownership tags at
    creation. The NLB starts ``provisioning`` (minutes to ``active``): poll, do not wait here.
    """
    params = calls.merge_params(
        {
            "Name": name,
            "Type": "network",
            "Scheme": "internal",
            "Subnets": list(subnet_ids),
            "Tags": tags.tags(uid, "load-balancer", resource_name, labels),
        },
        extra,
    )
    response = await ctx.call("elbv2", "CreateLoadBalancer", **params)
    balancers: list[dict[str, Any]] = response["LoadBalancers"]
    return balancers[0]


ACTIVE = "active"
"""The ELBv2 state code of a load balancer that can carry an endpoint service."""

DUALSTACK = "dualstack"
"""The NLB ``IpAddressType`` an endpoint service needs before it may offer ``ipv6``."""

IPV4 = "ipv4"


@dataclass(frozen=True)
class LoadBalancer:
    """What linkplane reads of a load balancer (``DescribeLoadBalancers``' entry)."""

    arn: str
    name: str
    type: str
    state: str
    vpc_id: str
    ip_address_type: str

    @classmethod
    def from_aws(cls, data: Mapping[str, Any]) -> LoadBalancer:
        return cls(
            arn=str(data.get("LoadBalancerArn", "")),
            name=str(data.get("LoadBalancerName", "")),
            type=str(data.get("Type", "")),
            state=str((data.get("State") or {}).get("Code", "")),
            vpc_id=str(data.get("VpcId", "")),
            # ELBv2 reports ipv4, dualstack or dualstack-without-public-ipv4 (all dual-stack).
            ip_address_type=str(data.get("IpAddressType") or IPV4).lower(),
        )

    @property
    def active(self) -> bool:
        return self.state == ACTIVE

    @property
    def dual_stack(self) -> bool:
        return self.ip_address_type.startswith(DUALSTACK)


async def describe_load_balancers(ctx: calls.Context, arns: Sequence[str]) -> list[LoadBalancer]:
    """The load balancers with these ARNs, in the order given.

    Respects: DescribeLoadBalancers answers ``LoadBalancerNotFound`` when any ARN is unknown;
    that error is raised (an adopted NLB that does not exist is the user's to fix).
    """
    response = await ctx.call("elbv2", "DescribeLoadBalancers", LoadBalancerArns=list(arns))
    found = {
        lb.arn: lb for lb in (LoadBalancer.from_aws(d) for d in response.get("LoadBalancers", []))
    }
    return [found[arn] for arn in arns if arn in found]


async def find_network_load_balancer(ctx: calls.Context, name: str) -> LoadBalancer | None:
    """:func:`find_load_balancer_by_name`, typed."""
    found = await find_load_balancer_by_name(ctx, name)
    return LoadBalancer.from_aws(found) if found is not None else None


async def set_ip_address_type(ctx: calls.Context, arn: str, ip_address_type: str) -> None:
    """SetIpAddressType: ``dualstack`` lets the endpoint service offer IPv6.

    Respects: a dual-stack NLB needs an IPv6 CIDR on each of its subnets (AWS refuses
    otherwise, permanently); callers guard repeats (reconciler/stalls.py).
    """
    await ctx.call("elbv2", "SetIpAddressType", LoadBalancerArn=arn, IpAddressType=ip_address_type)


async def switch_ip_address_type(
    ctx: calls.Context, lb: LoadBalancer, ip_address_type: str
) -> LoadBalancer:
    """:func:`set_ip_address_type`, then the NLB as ELBv2 reports it now (``lb`` when the
    read does not find it yet)."""
    await set_ip_address_type(ctx, lb.arn, ip_address_type)
    return await find_network_load_balancer(ctx, lb.name) or lb


def target_group_name(uid: str, listener: specs.ListenerSpec) -> str:
    """The deterministic name of a listener's target group (ELBv2 names are idempotent)."""
    return tags.deterministic_name(uid, f"tg{listener.port}")


def managed_name(uid: str) -> str:
    """The deterministic name of a Service's managed NLB."""
    return tags.deterministic_name(uid, "nlb")


async def find_target_group(ctx: calls.Context, name: str) -> dict[str, Any] | None:
    """The target group with this name, or None (``TargetGroupNotFound`` means absent)."""
    try:
        response = await ctx.call("elbv2", "DescribeTargetGroups", Names=[name])
    except errors.AwsError as err:
        if errors.is_not_found(err):
            return None
        raise
    found: list[dict[str, Any]] = response.get("TargetGroups", [])
    return found[0] if found else None


async def ensure_managed_load_balancer(
    ctx: calls.Context,
    *,
    uid: str,
    resource_name: str,
    spec: specs.ManagedLoadBalancerSpec,
    labels: Mapping[str, str],
    ip_address_type: str,
    register_targets: bool,
) -> LoadBalancer:
    """The managed NLB with a target group and a listener per listener spec; creates what is
    missing (looked up by deterministic name first, so a repeat adopts instead of duplicating).

    ``ip_address_type`` is used when the NLB is created; changing an existing NLB's type is
    the caller's (guarded) :func:`set_ip_address_type`. Targets are registered when
    ``register_targets`` (once per spec generation: RegisterTargets is idempotent but costs a
    call from a small bucket). The NLB may still be provisioning when this returns.
    """
    name = managed_name(uid)
    lb = await find_network_load_balancer(ctx, name)
    if lb is None:
        extra: dict[str, Any] = {}
        if ip_address_type != IPV4:
            extra["IpAddressType"] = ip_address_type
        created = await create_network_load_balancer(
            ctx,
            uid=uid,
            name=name,
            resource_name=resource_name,
            subnet_ids=spec.subnet_ids,
            labels=labels,
            **extra,
        )
        lb = LoadBalancer.from_aws(created)
    response = await ctx.call("elbv2", "DescribeListeners", LoadBalancerArn=lb.arn)
    listening = {int(existing["Port"]) for existing in response.get("Listeners", [])}
    target_type = "instance" if any(t.id.startswith("i-") for t in spec.targets) else "ip"
    for listener in spec.listeners:
        target_port = listener.target_port or listener.port
        group_name = target_group_name(uid, listener)
        group = await find_target_group(ctx, group_name)
        if group is None:
            group = (
                await ctx.call(
                    "elbv2",
                    "CreateTargetGroup",
                    Name=group_name,
                    Protocol=listener.protocol,
                    Port=target_port,
                    VpcId=lb.vpc_id,
                    TargetType=target_type,
                    Tags=tags.tags(uid, "target-group", resource_name, labels),
                )
            )["TargetGroups"][0]
        group_arn = str(group["TargetGroupArn"])
        if spec.targets and register_targets:
            await ctx.call(
                "elbv2",
                "RegisterTargets",
                TargetGroupArn=group_arn,
                Targets=[{"Id": t.id, "Port": t.port or target_port} for t in spec.targets],
            )
        if listener.port not in listening:
            await ctx.call(
                "elbv2",
                "CreateListener",
                LoadBalancerArn=lb.arn,
                Protocol=listener.protocol,
                Port=listener.port,
                DefaultActions=[{"Type": "forward", "TargetGroupArn": group_arn}],
            )
    if not lb.active:
        # A create answers "provisioning"; look again so an NLB that became active is seen.
        lb = await find_network_load_balancer(ctx, name) or lb
    return lb


async def delete_managed_load_balancer(
    ctx: calls.Context, *, uid: str, spec: specs.ManagedLoadBalancerSpec
) -> bool:
    """Delete the managed NLB, then its target groups; True once all are gone.

    Respects: an NLB attached to an endpoint service cannot be deleted (ResourceInUse): the
    endpoint service goes first. Target groups can only go once no listener uses them, so
    they wait until the NLB (and with it its listeners) is gone.
    """
    name = managed_name(uid)
    lb = await find_network_load_balancer(ctx, name)
    if lb is not None:
        await ctx.call("elbv2", "DeleteLoadBalancer", LoadBalancerArn=lb.arn)
        if await find_network_load_balancer(ctx, name) is not None:
            return False
    for listener in spec.listeners:
        group = await find_target_group(ctx, target_group_name(uid, listener))
        if group is None:
            continue
        try:
            await ctx.call("elbv2", "DeleteTargetGroup", TargetGroupArn=group["TargetGroupArn"])
        except errors.AwsError as err:
            if not errors.is_not_found(err):
                raise
    return True
