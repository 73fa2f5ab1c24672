"""The Service's Network Load Balancers: the decisions of the load-balancer steps.

aws/loadbalancers.py makes the ELBv2 calls; this decides which are due: ensure the managed
NLB, make it dual-stack (guarded, like every Modify) before the endpoint service is asked for
IPv6 and switch it back to IPv4 once the service no longer offers IPv6, and refuse adopted
load balancers that cannot carry the endpoint service (linkplane never changes those).
"""

from __future__ import annotations

from linkplane.server.aws import calls, endpoint_services, loadbalancers
from linkplane.server.domain import specs
from linkplane.server.reconciler import failures
from linkplane.server.reconciler.service_model import (
    LB_IP_TYPE_FIELD,
    LoadBalancers,
    Snapshot,
    Target,
    Work,
)
from linkplane.server.reconciler.stalls import Change


async def ensure(
    ctx: calls.Context,
    spec: specs.ServiceSpec,
    snap: Snapshot,
    target: Target,
    work: Work,
) -> LoadBalancers:
    """The managed NLB (created if missing, its targets registered once per generation) or
    the adopted ones, and whether they are ready to carry the endpoint service."""
    managed = spec.load_balancer.managed
    if managed is None:
        return await _check_adopted(ctx, spec.load_balancer.adopted_arns, target)
    lb = await loadbalancers.ensure_managed_load_balancer(
        ctx,
        uid=snap.uid,
        resource_name=snap.name,
        spec=managed,
        labels=spec.labels,
        ip_address_type=target.load_balancer_ip_address_type,
        register_targets=work.book.targets_generation != snap.generation,
    )
    work.book.targets_generation = snap.generation
    if target.wants_ipv6 and not lb.dual_stack:
        # Before the endpoint service is asked for IPv6, which AWS refuses otherwise.
        change = Change(
            LB_IP_TYPE_FIELD,
            loadbalancers.DUALSTACK,
            lb.ip_address_type,
            {"IpAddressType": loadbalancers.DUALSTACK},
        )
        if work.allowed("SetIpAddressType", change):
            lb = await loadbalancers.switch_ip_address_type(ctx, lb, loadbalancers.DUALSTACK)
    elif target.wants_ipv6:
        work.book.guard.clear(LB_IP_TYPE_FIELD)
    ready = lb.active and (lb.dual_stack or not target.wants_ipv6)
    if ready:
        message = "the NLB is active"
    elif not lb.active:
        message = f"waiting for the NLB ({lb.state})"
    else:
        message = "waiting for the NLB to become dual-stack"
    return LoadBalancers([lb.arn], ready, message, lb)


async def _check_adopted(ctx: calls.Context, arns: list[str], target: Target) -> LoadBalancers:
    lbs = await loadbalancers.describe_load_balancers(ctx, arns)
    not_network = [lb.arn for lb in lbs if lb.type != "network"]
    if not_network:
        raise failures.PermanentError(
            "NotANetworkLoadBalancer",
            f"endpoint services need Network Load Balancers: {', '.join(not_network)}",
            action="DescribeLoadBalancers",
        )
    ipv4_only = [lb.arn for lb in lbs if not lb.dual_stack]
    if target.wants_ipv6 and ipv4_only:
        # linkplane never changes an adopted NLB; AWS would refuse the IPv6 Modify.
        raise failures.PermanentError(
            "LoadBalancerNotDualStack",
            "supported_ip_address_types asks for IPV6, which needs dual-stack NLBs, but "
            f"these adopted NLBs are IPv4-only: {', '.join(ipv4_only)}; make them "
            "dual-stack (SetIpAddressType dualstack) or drop IPV6",
            action="DescribeLoadBalancers",
        )
    ready = all(lb.active for lb in lbs)
    return LoadBalancers(
        list(arns),
        ready,
        "adopted load balancers are active" if ready else "waiting for adopted NLBs",
        None,
    )


async def settle_ip_address_type(
    ctx: calls.Context,
    target: Target,
    lbs: LoadBalancers,
    observed: endpoint_services.EndpointServiceConfiguration,
    work: Work,
) -> bool:
    """A managed NLB goes back to IPv4 once the service no longer offers IPv6 (not
    before: AWS keeps a dual-stack NLB while the service supports IPv6)."""
    lb = lbs.managed
    if lb is None or target.wants_ipv6:
        return False
    if not lb.dual_stack:
        work.book.guard.clear(LB_IP_TYPE_FIELD)
        return False
    if "ipv6" in observed.supported_ip_address_types:
        return False
    change = Change(
        LB_IP_TYPE_FIELD,
        loadbalancers.IPV4,
        lb.ip_address_type,
        {"IpAddressType": loadbalancers.IPV4},
    )
    if not work.allowed("SetIpAddressType", change):
        return False
    await loadbalancers.set_ip_address_type(ctx, lb.arn, loadbalancers.IPV4)
    return True
