"""ELBv2 steps: the Network Load Balancers an endpoint service publishes.

ELBv2 creates are idempotent *by name* (not by ClientToken), so linkplane names its NLBs
deterministically (``tags.deterministic_name``) and finds them by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from linkplane.server.aws import calls, errors, tags


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
