"""ELBv2 actions reshaped to AWS's behaviour, served through moto's ELBV2Response.

What moto gets wrong for PrivateLink: NLB ARNs say ``/app/``, load balancers turn active on
their first Describe, CreateLoadBalancer is not idempotent by name, and an NLB still attached to
an endpoint service can be deleted; and dual-stack needs IPv6 subnets. ``install()`` replaces
those actions on the response class.
"""

import typing

from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.elbv2 import exceptions as elbv2_errors
from moto.elbv2.models import ELBv2Backend, FakeLoadBalancer
from moto.elbv2.responses import ELBV2Response

from linkplane.sim import addressing, models, world

_moto_create_load_balancer = ELBV2Response.create_load_balancer
_moto_delete_load_balancer = ELBV2Response.delete_load_balancer
_moto_set_ip_address_type = ELBV2Response.set_ip_address_type


def create_load_balancer(self: ELBV2Response) -> ActionResult:
    sim = world.current()
    backend = self.elbv2_backend
    params = self._get_params()
    name = params.get("Name")
    lb_type = params.get("Type") or "application"
    for existing in backend.load_balancers.values():
        if existing.name == name:
            # AWS: creating an existing name with the same settings returns that load balancer.
            if existing.type == lb_type:
                return ActionResult({"LoadBalancers": [existing]})
            raise elbv2_errors.DuplicateLoadBalancerName
    if lb_type == "network" and params.get("IpAddressType") == "dualstack":
        subnet_ids = list(params.get("Subnets", [])) + [
            mapping["SubnetId"] for mapping in params.get("SubnetMappings", [])
        ]
        _check_ipv6_subnets(self, subnet_ids)
    result = _moto_create_load_balancer(self)
    created = typing.cast(dict[str, list[FakeLoadBalancer]], result.result)
    lb = created["LoadBalancers"][0]
    if lb.type == "network":
        _rename(backend, lb, lb.arn.replace(":loadbalancer/app/", ":loadbalancer/net/", 1))
    elif lb.type == "gateway":
        _rename(backend, lb, lb.arn.replace(":loadbalancer/app/", ":loadbalancer/gwy/", 1))
    # Re-class moto's object in place: every reference moto holds now sees the sim behaviour.
    lb.__class__ = models.SimLoadBalancer  # type: ignore[type-abstract]
    provisioning = typing.cast(models.SimLoadBalancer, lb)
    provisioning.ready_at = sim.due_in(sim.delays.load_balancer_provisioning)
    sim.load_balancers[provisioning.arn] = provisioning
    return ActionResult({"LoadBalancers": [provisioning]})


def _rename(backend: ELBv2Backend, lb: FakeLoadBalancer, arn: str) -> None:
    """Move a load balancer (and its tags) to the ARN AWS would have given it."""
    old = lb.arn
    lbs = backend.load_balancers
    lbs[arn] = lbs.pop(old)
    tags = backend.tagging_service.tags
    if old in tags:
        tags[arn] = tags.pop(old)
    lb.arn = arn


def _check_ipv6_subnets(response: ELBV2Response, subnet_ids: list[str]) -> None:
    """A dual-stack load balancer needs an IPv6 CIDR on every one of its subnets (AWS)."""
    ec2 = ec2_backends[response.current_account][response.region]
    for subnet_id in subnet_ids:
        subnet = ec2.get_subnet(subnet_id)
        if addressing.subnet_ipv6_cidr(subnet) is None:
            raise elbv2_errors.InvalidConfigurationRequest(
                f"You must specify subnets with an associated IPv6 CIDR block ({subnet_id} has "
                "none) to use the dualstack IP address type."
            )


def set_ip_address_type(self: ELBV2Response) -> ActionResult:
    """SetIpAddressType with AWS's rules: dual-stack needs IPv6 subnets; an NLB behind an
    endpoint service that offers IPv6 must stay dual-stack."""
    sim = world.current()
    arn = self._get_param("LoadBalancerArn")
    ip_type = self._get_param("IpAddressType")
    lb = self.elbv2_backend.load_balancers.get(arn)
    if lb is None:
        raise elbv2_errors.LoadBalancerNotFoundError()
    if ip_type == "dualstack":
        _check_ipv6_subnets(self, [subnet.id for subnet in lb.subnets])
    elif ip_type == "ipv4":
        for service in sim.services.values():
            if (
                service.owner == self.current_account
                and arn in service.network_load_balancer_arns
                and "ipv6" in service.supported_ip_address_types
            ):
                raise elbv2_errors.InvalidConfigurationRequest(
                    f"Load balancer '{arn}' serves endpoint service {service.id}, which supports "
                    "IPv6: remove ipv6 from the service's supported IP address types first."
                )
    return _moto_set_ip_address_type(self)


def delete_load_balancer(self: ELBV2Response) -> ActionResult:
    sim = world.current()
    arn = self._get_param("LoadBalancerArn")
    for service in sim.services.values():
        if (
            service.owner == self.current_account
            and service.region_name == self.region
            and arn in (service.network_load_balancer_arns + service.gateway_load_balancer_arns)
        ):
            raise elbv2_errors.ResourceInUseError(
                f"Load balancer '{arn}' cannot be deleted because it is currently associated "
                f"with another service ({service.id})"
            )
    result = _moto_delete_load_balancer(self)
    sim.load_balancers.pop(arn, None)
    return result


def install() -> None:
    """Serve the actions above instead of moto's. Idempotent."""
    setattr(ELBV2Response, "create_load_balancer", create_load_balancer)  # noqa: B010
    setattr(ELBV2Response, "delete_load_balancer", delete_load_balancer)  # noqa: B010
    setattr(ELBV2Response, "set_ip_address_type", set_ip_address_type)  # noqa: B010


def uninstall() -> None:
    """Give ELBV2Response back to moto."""
    setattr(ELBV2Response, "create_load_balancer", _moto_create_load_balancer)  # noqa: B010
    setattr(ELBV2Response, "delete_load_balancer", _moto_delete_load_balancer)  # noqa: B010
    setattr(ELBV2Response, "set_ip_address_type", _moto_set_ip_address_type)  # noqa: B010
