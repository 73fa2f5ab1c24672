"""EC2 PrivateLink actions that moto lacks or gets wrong, served through moto's EC2Response.

moto looks an action's method up on ``EC2Response`` at call time, so ``install()`` sets these
functions on that class; every other EC2 action stays moto's. Each function runs inside the
gateway's lock, reads the request with moto's own parameter parser, keeps moto's backends the
store of record (so DescribeVpcEndpoints, DescribeNetworkInterfaces, tags and filters still
work) and keeps the cross-account view in ``world``.
"""

import base64
import binascii
import contextlib
import dataclasses
import json
import re
from collections.abc import Callable, Iterable

from moto.core.responses import ActionResult
from moto.ec2 import exceptions as ec2_errors
from moto.ec2 import utils as ec2_utils
from moto.ec2.models import EC2Backend
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.ec2.models.subnets import Subnet
from moto.ec2.models.vpcs import VPC, VPCBackend
from moto.ec2.responses import EC2Response
from moto.elbv2.models import FakeLoadBalancer, elbv2_backends
from moto.moto_api._internal import mock_random
from moto.route53.models import route53_backends

from linkplane.sim import addressing, catalog, models, params, quotas, world, zones

# moto's own implementation that the sim wraps (captured before install() replaces it).
_moto_modify_permissions = EC2Response.modify_vpc_endpoint_service_permissions

# Request parameters that do not take part in ClientToken idempotency.
_NOT_FINGERPRINTED = frozenset({"Action", "Version", "ClientToken", "DryRun"})

Json = dict[str, object]


# Request helpers -------------------------------------------------------------------------------


class _Caller:
    """Who is calling and where, as moto resolved it (assumed roles included)."""

    def __init__(self, response: EC2Response) -> None:
        self.account: str = response.current_account
        self.region: str = response.region
        self.access_key: str = response.get_access_key()


def _fingerprint(response: EC2Response) -> str:
    querystring: dict[str, list[str]] = response.querystring
    items = sorted(
        (key, value)
        for key, values in querystring.items()
        if key not in _NOT_FINGERPRINTED
        for value in values
    )
    return json.dumps(items)


def _replayed(
    sim: world.World, response: EC2Response, action: str, token: str | None
) -> str | None:
    """The id created earlier with this ClientToken, or None when this call is new.

    Same token and parameters return the original object; different parameters are AWS's
    ``IdempotentParameterMismatch`` (HTTP 400).
    """
    if not token:
        return None
    caller = _Caller(response)
    record = sim.client_tokens.get((caller.account, caller.region, action, token))
    if record is None:
        return None
    if record.fingerprint != _fingerprint(response):
        raise ec2_errors.EC2ClientError(
            "IdempotentParameterMismatch",
            f"The client token '{token}' has already been used with different parameters.",
        )
    return record.resource_id


def _remember(
    sim: world.World, response: EC2Response, action: str, token: str | None, resource_id: str
) -> None:
    if token:
        caller = _Caller(response)
        key = (caller.account, caller.region, action, token)
        sim.remember_token(key, _fingerprint(response), resource_id)


def _unsuccessful(resource_id: str, code: str, message: str) -> Json:
    return {"ResourceId": resource_id, "Error": {"Code": code, "Message": message}}


def _filters(response: EC2Response) -> dict[str, list[str]]:
    # moto annotates this dict[str, str]; it returns each filter's list of values.
    found: dict[str, list[str]] = response._filters_from_querystring()  # type: ignore[assignment]
    return found


def _page(
    items: list[Json], response: EC2Response, limit: int = 1000
) -> tuple[list[Json], str | None]:
    """One page of ``items`` per MaxResults/NextToken; tokens are opaque offsets."""
    max_results = response._get_int_param("MaxResults") or limit
    token = response._get_param("NextToken")
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except (ValueError, binascii.Error) as exc:
            raise ec2_errors.InvalidNextToken(token) from exc
    end = start + min(max_results, limit)
    next_token = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return items[start:end], next_token


# Service visibility ----------------------------------------------------------------------------


def _allowed(sim: world.World, service: models.SimServiceConfiguration, caller: _Caller) -> bool:
    """Whether ``caller`` may see and connect to ``service`` (the owner always may)."""
    if service.owner == caller.account:
        return True
    role_arn = sim.role_arn_for_access_key(caller.access_key, caller.account)
    accepted = {"*", caller.account, f"arn:aws:iam::{caller.account}:root"}
    if role_arn:
        accepted.add(role_arn)
    return any(principal in accepted for principal in service.principals)


def _visible(sim: world.World, service: models.SimServiceConfiguration, caller: _Caller) -> bool:
    """Whether ``caller`` (in its Region) sees ``service``: Available there, and allowed."""
    state = service.region_state(caller.region, sim.clock.now())
    return state == "Available" and _allowed(sim, service, caller)


@dataclasses.dataclass(frozen=True)
class _Target:
    """What a CreateVpcEndpoint names: a provider's endpoint service or one of AWS's."""

    name: str
    service: models.SimServiceConfiguration | None
    """The provider's service; None for an AWS service."""
    endpoint_types: tuple[str, ...]
    private_dns_name: str | None
    """The private name consumers can enable: AWS's, or a provider's once verified."""
    ip_address_types: tuple[str, ...]
    region: str

    @property
    def cross_region(self) -> bool:
        return self.service is not None and self.service.region_name != self.region


def _target(
    sim: world.World, response: EC2Response, name: str, service_region: str | None
) -> _Target:
    """The service ``name`` names for this caller; AWS's InvalidServiceName when it does not
    exist for the caller (unknown, not allowed, not offered in the caller's Region, not ready)."""
    caller = _Caller(response)
    home = service_region or caller.region
    service = sim.service_by_name(name)
    if service is not None:
        if service.region_name != home or not _visible(sim, service, caller):
            raise ec2_errors.InvalidServiceName(name)
        verification = service.dns_verification
        verified = verification is not None and verification.state == "verified"
        return _Target(
            name=name,
            service=service,
            endpoint_types=(
                ("GatewayLoadBalancer",) if service.gateway_load_balancer_arns else ("Interface",)
            ),
            private_dns_name=service.private_dns_name if verified else None,
            ip_address_types=tuple(service.supported_ip_address_types),
            region=caller.region,
        )
    if home != caller.region:
        # Cross-Region endpoints to AWS services exist for a few services; not modelled here.
        raise ec2_errors.InvalidServiceName(name)
    entries = catalog.find(caller.region, name)
    if not entries:
        raise ec2_errors.InvalidServiceName(name)
    private = next((e.private_dns_name for e in entries if e.private_dns_name), None)
    return _Target(
        name=name,
        service=None,
        endpoint_types=tuple(entry.service_type for entry in entries),
        private_dns_name=private,
        ip_address_types=("ipv4",),
        region=caller.region,
    )


def _owned_service(
    sim: world.World, response: EC2Response, service_id: str
) -> models.SimServiceConfiguration:
    caller = _Caller(response)
    service = sim.services.get(service_id)
    if service is None or service.owner != caller.account or service.region_name != caller.region:
        raise ec2_errors.UnknownVpcEndpointService(service_id)
    return service


# CreateVpcEndpoint -----------------------------------------------------------------------------

# Every CreateVpcEndpoint field the simulator models; the rest is refused (params.py).
_CREATE_ENDPOINT_FIELDS = frozenset(
    {
        "DryRun",
        "VpcEndpointType",
        "VpcId",
        "ServiceName",
        "PolicyDocument",
        "RouteTableIds",
        "SubnetIds",
        "SecurityGroupIds",
        "IpAddressType",
        "DnsOptions.DnsRecordIpType",
        "ClientToken",
        "PrivateDnsEnabled",
        "TagSpecifications",
        "SubnetConfigurations.SubnetId",
        "SubnetConfigurations.Ipv4",
        "SubnetConfigurations.Ipv6",
        "ServiceRegion",
    }
)

_MODIFY_ENDPOINT_FIELDS = frozenset(
    {
        "DryRun",
        "VpcEndpointId",
        "ResetPolicy",
        "PolicyDocument",
        "AddRouteTableIds",
        "RemoveRouteTableIds",
        "AddSubnetIds",
        "RemoveSubnetIds",
        "AddSecurityGroupIds",
        "RemoveSecurityGroupIds",
        "IpAddressType",
        "DnsOptions.DnsRecordIpType",
        "PrivateDnsEnabled",
    }
)

# The per-VPC endpoint quota (Service Quotas "Interface and Gateway Load Balancer endpoints per
# VPC"); its default comes from the quota table (50).
ENDPOINTS_PER_VPC_SERVICE = "vpc"
ENDPOINTS_PER_VPC_QUOTA = "L-29B6F2EB"


def _refuse_unmodelled(response: EC2Response, modelled: frozenset[str]) -> None:
    operation = str(response.querystring.get("Action", [""])[0])
    params.refuse_unmodelled(operation, response.querystring.keys(), modelled)


def _dry_run(response: EC2Response) -> None:
    """AWS's DryRunOperation (HTTP 412) once the request is known to be valid."""
    if response._get_bool_param("DryRun"):
        raise ec2_errors.DryRunClientError()


def create_vpc_endpoint(self: EC2Response) -> ActionResult:
    _refuse_unmodelled(self, _CREATE_ENDPOINT_FIELDS)
    sim = world.current()
    token = self._get_param("ClientToken")
    replayed = _replayed(sim, self, "CreateVpcEndpoint", token)
    if replayed is not None and replayed in sim.endpoints:
        return ActionResult({"VpcEndpoint": sim.endpoints[replayed], "ClientToken": token})

    # AWS's default type is Gateway, which surprises everyone who forgets it.
    endpoint_type = self._get_param("VpcEndpointType") or "Gateway"
    if endpoint_type not in ("Interface", "Gateway"):
        raise ec2_errors.InvalidParameter(
            f"linkplane-sim does not model VpcEndpointType {endpoint_type} "
            "(only Interface and Gateway)."
        )
    backend = self.ec2_backend
    vpc_id = self._get_param("VpcId")
    vpc = backend.get_vpc(vpc_id)
    service_name = self._get_param("ServiceName")
    service_region = self._get_param("ServiceRegion")
    if service_region and endpoint_type != "Interface":
        raise ec2_errors.InvalidParameter(
            "ServiceRegion is only supported for Interface type VPC Endpoints."
        )
    target = _target(sim, self, service_name, service_region)
    if endpoint_type not in target.endpoint_types:
        raise ec2_errors.InvalidParameter(
            f"Endpoint type ({endpoint_type}) does not match available service types "
            f"([{', '.join(target.endpoint_types)}])."
        )
    if endpoint_type == "Gateway":
        endpoint = _create_gateway_endpoint(self, sim, vpc_id, target, token)
    else:
        endpoint = _create_interface_endpoint(self, sim, vpc, target, token)
    backend.vpc_end_points[endpoint.id] = endpoint
    sim.endpoints[endpoint.id] = endpoint
    _remember(sim, self, "CreateVpcEndpoint", token, endpoint.id)
    return ActionResult({"VpcEndpoint": endpoint, "ClientToken": token})


def _create_interface_endpoint(
    response: EC2Response, sim: world.World, vpc: VPC, target: _Target, token: str | None
) -> models.SimVpcEndpoint:
    backend = response.ec2_backend
    caller = _Caller(response)
    if response._get_param("RouteTableIds"):
        raise ec2_errors.InvalidParameter(
            "Route table IDs are only supported for Gateway type VPC Endpoint."
        )
    subnets, fixed_ips = _endpoint_subnets(response, backend, vpc.id)
    if not target.cross_region:
        _check_zones(caller, target, subnets)
    group_ids = _security_groups(response, backend, vpc.id)
    ip_address_type = response._get_param("IpAddressType") or "ipv4"
    addressing.check_ip_address_type(ip_address_type, subnets, target.ip_address_types, target.name)
    record_type = addressing.dns_record_ip_type(
        response._get_param("DnsOptions", {}).get("DnsRecordIpType"), ip_address_type
    )
    private_dns = _private_dns_wanted(response, vpc, target)
    _check_quota(sim, caller, vpc.id)
    _dry_run(response)

    endpoint_id = ec2_utils.random_vpc_ep_id()
    eni_ids = [
        _create_eni(
            sim, backend, subnet, fixed_ips.get(subnet.id), group_ids, endpoint_id, ip_address_type
        ).id
        for subnet in subnets
    ]
    if target.service is None:
        # AWS services accept every endpoint: pending, then available without acceptance.
        state = models.PENDING
        transition: tuple[str, float] | None = (
            models.AVAILABLE,
            sim.due_in(sim.delays.endpoint_pending),
        )
    elif target.service.acceptance_required:
        state, transition = models.PENDING_ACCEPTANCE, None
    else:
        state = models.PENDING
        transition = (models.AVAILABLE, sim.due_in(sim.delays.endpoint_pending))

    # moto's models are CloudFormationModels with abstract hooks moto itself never fills in.
    endpoint = models.SimVpcEndpoint(  # type: ignore[abstract]
        ec2_backend=backend,
        endpoint_id=endpoint_id,
        vpc_id=vpc.id,
        service_name=target.name,
        service=target.service,
        subnet_ids=[subnet.id for subnet in subnets],
        network_interface_ids=eni_ids,
        dns_entries=_dns_entries(endpoint_id, target, subnets, caller.region),
        security_group_ids=group_ids,
        tags=ec2_utils.add_tag_specification(response._get_param("TagSpecifications", [])),
        private_dns_enabled=private_dns,
        policy_document=response._get_param("PolicyDocument"),
        client_token=token,
        ip_address_type=ip_address_type,
        state=state,
        dns_record_ip_type=record_type,
        service_region=target.service.region_name if target.service else caller.region,
    )
    endpoint.base_dns_entries = list(endpoint.dns_entries or [])
    endpoint.private_dns_name = target.private_dns_name
    _apply_private_dns(endpoint)
    endpoint.transition = transition
    outcome = sim.take_endpoint_outcome(caller.account, target.name)
    if outcome is not None:
        _force_state(sim, endpoint, outcome.state, outcome.code, outcome.message)
    return endpoint


def _private_dns_wanted(response: EC2Response, vpc: VPC, target: _Target) -> bool:
    """PrivateDnsEnabled as AWS decides it; AWS's errors when it cannot be honoured.

    The API's default is true; here an unset value means true only where a private name exists
    (AWS services, verified provider names), so endpoints to services without one still work.
    """
    requested = response._get_bool_param("PrivateDnsEnabled")
    wanted = bool(requested) if requested is not None else target.private_dns_name is not None
    if wanted:
        _check_private_dns(vpc, target)
    return wanted


def _check_private_dns(vpc: VPC, target: _Target) -> None:
    if target.private_dns_name is None:
        if target.service is not None and target.service.private_dns_name:
            raise ec2_errors.InvalidParameter(
                f"Private DNS can't be enabled because the service {target.name} has not "
                "verified its private DNS name."
            )
        raise ec2_errors.InvalidParameter(
            f"Private DNS can't be enabled because the service {target.name} does not "
            "provide a private DNS name."
        )
    if not (_truthy(vpc.enable_dns_support) and _truthy(vpc.enable_dns_hostnames)):
        raise ec2_errors.InvalidParameter(
            "Enabling private DNS requires both enableDnsSupport and enableDnsHostnames VPC "
            f"attributes set to true for {vpc.id}"
        )


def _truthy(value: object) -> bool:
    # moto stores ModifyVpcAttribute's value as the request gave it (bool or "true"/"false").
    return value is True or str(value).lower() == "true"


def _apply_private_dns(endpoint: models.SimVpcEndpoint) -> None:
    """DnsEntries: the endpoint-specific names, then the private name when private DNS is on."""
    entries = list(endpoint.base_dns_entries)
    if endpoint.private_dns_enabled and endpoint.private_dns_name:
        entries.append(
            {
                "DnsName": endpoint.private_dns_name,
                "HostedZoneId": endpoint.private_hosted_zone_id,
            }
        )
    endpoint.dns_entries = entries


def _check_quota(sim: world.World, caller: _Caller, vpc_id: str) -> None:
    """AWS's limit on interface endpoints per VPC, at the account's applied quota value."""
    applied = sim.quota(
        caller.account, caller.region, ENDPOINTS_PER_VPC_SERVICE, ENDPOINTS_PER_VPC_QUOTA
    )
    if applied is None:
        applied = quotas.default_value(ENDPOINTS_PER_VPC_SERVICE, ENDPOINTS_PER_VPC_QUOTA)
    limit = applied
    in_vpc = sum(
        1
        for endpoint in sim.endpoints.values()
        if endpoint.account_id == caller.account
        and endpoint.region_name == caller.region
        and endpoint.vpc_id == vpc_id
        and endpoint.vpc_endpoint_type == "Interface"
        and endpoint.state in models.QUOTA_STATES
    )
    if in_vpc >= limit:
        raise ec2_errors.EC2ClientError(
            "VpcEndpointLimitExceeded",
            f"The maximum number of VPC endpoints ({int(limit)}) for VPC {vpc_id} has been "
            "reached.",
        )


def _endpoint_subnets(
    response: EC2Response, backend: EC2Backend, vpc_id: str, prefix: str = ""
) -> tuple[list[Subnet], dict[str, tuple[str | None, str | None]]]:
    """The endpoint's subnets (SubnetIds or SubnetConfigurations) and any fixed IPv4/IPv6."""
    subnet_ids: list[str] = list(response._get_param(f"{prefix}SubnetIds", []))
    fixed_ips: dict[str, tuple[str | None, str | None]] = {}
    for configuration in response._get_param("SubnetConfigurations", []) if not prefix else []:
        subnet_id = configuration.get("SubnetId")
        if subnet_id and subnet_id not in subnet_ids:
            subnet_ids.append(subnet_id)
        if subnet_id and (configuration.get("Ipv4") or configuration.get("Ipv6")):
            fixed_ips[subnet_id] = (configuration.get("Ipv4"), configuration.get("Ipv6"))
    subnets = [backend.get_subnet(subnet_id) for subnet_id in subnet_ids]
    seen_zones: set[str] = set()
    for subnet in subnets:
        if subnet.vpc_id != vpc_id:
            raise ec2_errors.InvalidParameter(
                f"The subnet ID '{subnet.id}' does not belong to the VPC '{vpc_id}'."
            )
        if subnet.availability_zone in seen_zones:
            raise ec2_errors.InvalidParameter(
                "Found another VPC endpoint subnet in the availability zone of "
                f"{subnet.id}. VPC endpoint subnets should be in different availability zones "
                "supported by the VPC endpoint service."
            )
        seen_zones.add(subnet.availability_zone)
    return subnets, fixed_ips


def _check_zones(caller: _Caller, target: _Target, subnets: Iterable[Subnet]) -> None:
    """Each subnet's AZ must be one of the service's, compared by AZ id (names differ per
    account)."""
    if target.service is None:
        return
    service = target.service
    offered = {
        zones.zone_id(service.owner, service.region_name, name)
        for name in service.availability_zones
    }
    for subnet in subnets:
        if zones.zone_id(caller.account, caller.region, subnet.availability_zone) not in offered:
            raise ec2_errors.InvalidParameter(
                f"The VPC endpoint service {target.name} does not support the availability "
                f"zone of the subnet: {subnet.id}."
            )


def _security_groups(
    response: EC2Response, backend: EC2Backend, vpc_id: str, name: str = "SecurityGroupIds"
) -> list[str]:
    group_ids: list[str] = list(response._get_param(name, []))
    for group_id in group_ids:
        if backend.get_security_group_from_id(group_id) is None:
            raise ec2_errors.EC2ClientError(
                "InvalidGroup.NotFound", f"The security group '{group_id}' does not exist"
            )
    if not group_ids and name == "SecurityGroupIds":
        # AWS attaches the VPC's default security group when none is given.
        default = backend.get_default_security_group(vpc_id)
        if default is not None:
            group_ids = [default.id]
    return group_ids


def _create_eni(
    sim: world.World,
    backend: EC2Backend,
    subnet: Subnet,
    fixed: tuple[str | None, str | None] | None,
    group_ids: list[str],
    endpoint_id: str,
    ip_address_type: str,
) -> NetworkInterface:
    """A requester-managed ENI with addresses from the subnet's ranges, like AWS's: an IPv4
    unless the endpoint is IPv6-only, an IPv6 unless it is IPv4-only."""
    fixed_v4, fixed_v6 = fixed or (None, None)
    ip: str | None = None
    if ip_address_type != "ipv6":
        # moto books a subnet IP against an Instance; the endpoint id marks who holds it instead.
        if fixed_v4:
            subnet.request_ip(fixed_v4, endpoint_id)  # type: ignore[arg-type]
            ip = fixed_v4
        else:
            ip = subnet.get_available_subnet_ip(endpoint_id)  # type: ignore[arg-type]
    ipv6: list[str] = []
    if ip_address_type != "ipv4":
        ipv6 = [fixed_v6 or _next_ipv6(sim, subnet)]
        if fixed_v6:
            addressing.check_fixed_ipv6(subnet, fixed_v6)
    eni = backend.create_network_interface(
        subnet,
        # moto needs some IPv4 to build an ENI; an IPv6-only ENI has none, so it is cleared.
        ip or "0.0.0.0",  # noqa: S104 - a placeholder, never bound
        group_ids=group_ids,
        description=f"VPC Endpoint Interface {endpoint_id}",
        ipv6_addresses=ipv6,
    )
    if ip is None:
        eni.private_ip_address = None
        eni.private_ip_addresses = []
        eni.private_dns_name = None  # type: ignore[assignment]  # moto's str; AWS omits it
    eni.interface_type = "vpc_endpoint"
    eni.requester_managed = True
    return eni


def _next_ipv6(sim: world.World, subnet: Subnet) -> str:
    cidr = addressing.subnet_ipv6_cidr(subnet)
    if cidr is None:
        raise ec2_errors.InvalidParameter(f"Subnet {subnet.id} has no IPv6 address range.")
    host = sim.ipv6_hosts.get(subnet.id, 0)
    sim.ipv6_hosts[subnet.id] = host + 1
    return addressing.next_ipv6(cidr, host)


def _dns_entries(
    endpoint_id: str, target: _Target, subnets: Iterable[Subnet], region: str
) -> list[dict[str, str]]:
    """AWS's endpoint-specific names: one regional, then one per AZ of the endpoint."""
    base = f"{endpoint_id}-{mock_random.get_random_string(length=8, lower_case=True)}"
    if target.service is not None:
        domain = f"{target.service.id}.{region}.vpce.amazonaws.com"
    else:
        short_name = target.name.removeprefix(f"com.amazonaws.{region}.")
        domain = f"{short_name}.{region}.vpce.amazonaws.com"
    zone_id = models.vpce_hosted_zone_id(region)
    entries = [{"DnsName": f"{base}.{domain}", "HostedZoneId": zone_id}]
    zones_of_subnets = sorted({subnet.availability_zone for subnet in subnets})
    entries.extend(
        {"DnsName": f"{base}-{zone}.{domain}", "HostedZoneId": zone_id} for zone in zones_of_subnets
    )
    return entries


# Gateway endpoints -----------------------------------------------------------------------------


def _create_gateway_endpoint(
    response: EC2Response, sim: world.World, vpc_id: str, target: _Target, token: str | None
) -> models.SimVpcEndpoint:
    """An S3/DynamoDB gateway endpoint: route tables, no ENIs, available at once."""
    for field, message in (
        ("SubnetIds", "Subnet IDs are only supported for Interface and GatewayLoadBalancer type"),
        ("SubnetConfigurations", "Subnet configurations are only supported for Interface type"),
        ("SecurityGroupIds", "Security group IDs are only supported for Interface type"),
        ("IpAddressType", "IpAddressType is only supported for Interface type"),
        ("DnsOptions", "DnsOptions are only supported for Interface type"),
    ):
        if response._get_param(field):
            raise ec2_errors.InvalidParameter(f"{message} VPC Endpoints.")
    if response._get_bool_param("PrivateDnsEnabled"):
        raise ec2_errors.InvalidParameter(
            "PrivateDnsEnabled is only supported for Interface type VPC Endpoints."
        )
    backend = response.ec2_backend
    route_table_ids: list[str] = list(response._get_param("RouteTableIds", []))
    _check_route_tables(backend, vpc_id, route_table_ids)
    _dry_run(response)
    endpoint = models.SimVpcEndpoint(  # type: ignore[abstract]
        ec2_backend=backend,
        endpoint_id=ec2_utils.random_vpc_ep_id(),
        vpc_id=vpc_id,
        service_name=target.name,
        service=None,
        subnet_ids=[],
        network_interface_ids=[],
        dns_entries=[],
        security_group_ids=[],
        tags=ec2_utils.add_tag_specification(response._get_param("TagSpecifications", [])),
        private_dns_enabled=False,
        policy_document=response._get_param("PolicyDocument"),
        client_token=token,
        ip_address_type=None,
        state=models.AVAILABLE,
        endpoint_type="Gateway",
        route_table_ids=[],
    )
    endpoint.destination_prefix_list_id = _prefix_list_id(backend, target.name)
    # moto's CreateRoute checks that the gateway (the endpoint) exists: register it first.
    backend.vpc_end_points[endpoint.id] = endpoint
    _add_routes(backend, endpoint, route_table_ids)
    return endpoint


def _check_route_tables(backend: EC2Backend, vpc_id: str, route_table_ids: list[str]) -> None:
    for route_table_id in route_table_ids:
        route_table = backend.get_route_table(route_table_id)
        if route_table.vpc_id != vpc_id:
            raise ec2_errors.InvalidParameter(
                f"The route table {route_table_id} does not belong to the VPC {vpc_id}."
            )


def _prefix_list_id(backend: EC2Backend, service_name: str) -> str:
    """The AWS-managed prefix list of the service's public ranges (what the route points at)."""
    for prefix_list in backend.managed_prefix_lists.values():
        if prefix_list.prefix_list_name == service_name:
            return str(prefix_list.id)
    raise ec2_errors.InvalidServiceName(service_name)


def _add_routes(backend: EC2Backend, endpoint: models.SimVpcEndpoint, ids: list[str]) -> None:
    for route_table_id in ids:
        if route_table_id in endpoint.route_table_ids:
            continue
        backend.create_route(
            route_table_id,
            None,
            gateway_id=endpoint.id,
            destination_prefix_list_id=endpoint.destination_prefix_list_id,
        )
        endpoint.route_table_ids.append(route_table_id)


def _remove_routes(backend: EC2Backend, endpoint: models.SimVpcEndpoint, ids: list[str]) -> None:
    for route_table_id in ids:
        if route_table_id not in endpoint.route_table_ids:
            continue
        with contextlib.suppress(ec2_errors.EC2ClientError):
            backend.delete_route(route_table_id, str(endpoint.destination_prefix_list_id))
        endpoint.route_table_ids.remove(route_table_id)


# ModifyVpcEndpoint -----------------------------------------------------------------------------


def modify_vpc_endpoint(self: EC2Response) -> ActionResult:
    _refuse_unmodelled(self, _MODIFY_ENDPOINT_FIELDS)
    sim = world.current()
    caller = _Caller(self)
    backend = self.ec2_backend
    endpoint_id = self._get_param("VpcEndpointId")
    endpoint = sim.endpoints.get(endpoint_id)
    if (
        endpoint is None
        or endpoint.account_id != caller.account
        or endpoint.region_name != caller.region
        or endpoint.state == models.DELETED
    ):
        raise ec2_errors.InvalidVpcEndPointIdError(endpoint_id)
    if endpoint.vpc_endpoint_type == "Gateway":
        _modify_gateway_endpoint(self, backend, endpoint)
    else:
        _modify_interface_endpoint(self, sim, backend, endpoint)
    if self._get_bool_param("ResetPolicy"):
        endpoint.policy_document = json.dumps(endpoint.DEFAULT_POLICY)
    elif self._get_param("PolicyDocument"):
        endpoint.policy_document = self._get_param("PolicyDocument")
    return ActionResult({"Return": True})


def _modify_gateway_endpoint(
    response: EC2Response, backend: EC2Backend, endpoint: models.SimVpcEndpoint
) -> None:
    for field in (
        "AddSubnetIds",
        "RemoveSubnetIds",
        "AddSecurityGroupIds",
        "RemoveSecurityGroupIds",
        "IpAddressType",
        "DnsOptions",
        "PrivateDnsEnabled",
    ):
        if response._get_param(field) is not None and response._get_param(field) != []:
            raise ec2_errors.InvalidParameter(
                f"{field} is only supported for Interface type VPC Endpoints."
            )
    add: list[str] = list(response._get_param("AddRouteTableIds", []))
    remove: list[str] = list(response._get_param("RemoveRouteTableIds", []))
    _check_route_tables(backend, endpoint.vpc_id, add)
    _dry_run(response)
    _add_routes(backend, endpoint, add)
    _remove_routes(backend, endpoint, remove)


def _modify_interface_endpoint(
    response: EC2Response,
    sim: world.World,
    backend: EC2Backend,
    endpoint: models.SimVpcEndpoint,
) -> None:
    if response._get_param("AddRouteTableIds") or response._get_param("RemoveRouteTableIds"):
        raise ec2_errors.InvalidParameter(
            "Route table IDs are only supported for Gateway type VPC Endpoint."
        )
    caller = _Caller(response)
    vpc = backend.get_vpc(endpoint.vpc_id)
    target = _endpoint_target(endpoint)
    added, _ = _endpoint_subnets(response, backend, endpoint.vpc_id, prefix="Add")
    removed: list[str] = list(response._get_param("RemoveSubnetIds", []))
    for subnet_id in removed:
        if subnet_id not in (endpoint.subnet_ids or []):
            raise ec2_errors.InvalidParameter(
                f"The subnet {subnet_id} is not a subnet of the VPC endpoint {endpoint.id}."
            )
    kept = [backend.get_subnet(s) for s in endpoint.subnet_ids or [] if s not in removed]
    kept_zones = {subnet.availability_zone for subnet in kept}
    for subnet in added:
        if subnet.id in (endpoint.subnet_ids or []) or subnet.availability_zone in kept_zones:
            raise ec2_errors.InvalidParameter(
                "Found another VPC endpoint subnet in the availability zone of "
                f"{subnet.id}. VPC endpoint subnets should be in different availability zones "
                "supported by the VPC endpoint service."
            )
    if not target.cross_region:
        _check_zones(caller, target, added)
    add_groups = _security_groups(response, backend, endpoint.vpc_id, "AddSecurityGroupIds")
    ip_address_type = response._get_param("IpAddressType") or endpoint.ip_address_type or "ipv4"
    addressing.check_ip_address_type(
        ip_address_type, kept + added, target.ip_address_types, target.name
    )
    requested_record = response._get_param("DnsOptions", {}).get("DnsRecordIpType")
    current_record = (endpoint.dns_options or {}).get("DnsRecordIpType")
    if requested_record is None and response._get_param("IpAddressType"):
        # A new address type resets the records to it unless they still fit.
        fits = current_record in addressing.allowed_record_types(ip_address_type)
        requested_record = current_record if fits else None
    elif requested_record is None:
        requested_record = current_record
    record_type = addressing.dns_record_ip_type(requested_record, ip_address_type)
    private_dns = response._get_bool_param("PrivateDnsEnabled")
    if private_dns:
        _check_private_dns(vpc, target)
    _dry_run(response)

    # Validated: apply. ENIs follow the subnets; addresses follow the address type.
    for subnet_id in removed:
        _release_subnet_eni(endpoint, subnet_id)
    groups = [
        g
        for g in endpoint.security_group_ids
        if g not in response._get_param("RemoveSecurityGroupIds", [])
    ]
    groups.extend(g for g in add_groups if g not in groups)
    endpoint.security_group_ids = groups
    for subnet in added:
        eni = _create_eni(sim, backend, subnet, None, groups, endpoint.id, ip_address_type)
        endpoint.network_interface_ids.append(eni.id)
        endpoint.subnet_ids = [*(endpoint.subnet_ids or []), subnet.id]
    if ip_address_type != endpoint.ip_address_type:
        _readdress(sim, endpoint, ip_address_type)
    endpoint.ip_address_type = ip_address_type
    endpoint.dns_options = {"DnsRecordIpType": record_type}
    if added or removed:
        zones_now = [backend.get_subnet(s) for s in endpoint.subnet_ids or []]
        endpoint.base_dns_entries = _rebase_dns(endpoint, zones_now)
    if private_dns is not None:
        endpoint.private_dns_enabled = bool(private_dns)
        endpoint.private_dns_name = target.private_dns_name
    _apply_private_dns(endpoint)


def _endpoint_target(endpoint: models.SimVpcEndpoint) -> _Target:
    """The target of an existing endpoint, as it stands now (for Modify's checks)."""
    service = endpoint.service
    if service is not None:
        verification = service.dns_verification
        verified = verification is not None and verification.state == "verified"
        return _Target(
            name=endpoint.service_name,
            service=service,
            endpoint_types=("Interface",),
            private_dns_name=service.private_dns_name if verified else None,
            ip_address_types=tuple(service.supported_ip_address_types),
            region=endpoint.region_name,
        )
    entries = catalog.find(endpoint.region_name, endpoint.service_name)
    return _Target(
        name=endpoint.service_name,
        service=None,
        endpoint_types=tuple(entry.service_type for entry in entries),
        private_dns_name=next((e.private_dns_name for e in entries if e.private_dns_name), None),
        ip_address_types=("ipv4",),
        region=endpoint.region_name,
    )


def _release_subnet_eni(endpoint: models.SimVpcEndpoint, subnet_id: str) -> None:
    backend = endpoint.ec2_backend
    for eni_id in list(endpoint.network_interface_ids):
        eni = backend.enis.get(eni_id)
        if eni is not None and eni.subnet.id == subnet_id:
            backend.enis.pop(eni_id, None)
            if eni.private_ip_address:
                eni.subnet.del_subnet_ip(eni.private_ip_address)
            endpoint.network_interface_ids.remove(eni_id)
    endpoint.subnet_ids = [s for s in endpoint.subnet_ids or [] if s != subnet_id]


def _readdress(sim: world.World, endpoint: models.SimVpcEndpoint, ip_address_type: str) -> None:
    """Give the endpoint's ENIs the addresses the new type needs (and drop the others)."""
    backend = endpoint.ec2_backend
    for eni_id in endpoint.network_interface_ids:
        eni = backend.enis.get(eni_id)
        if eni is None:
            continue
        subnet = eni.subnet
        if ip_address_type == "ipv4":
            eni.ipv6_addresses = []
        elif not eni.ipv6_addresses:
            eni.ipv6_addresses = [_next_ipv6(sim, subnet)]
        if ip_address_type == "ipv6" and eni.private_ip_address:
            subnet.del_subnet_ip(eni.private_ip_address)
            eni.private_ip_address = None
            eni.private_ip_addresses = []
        elif ip_address_type != "ipv6" and not eni.private_ip_address:
            ip = subnet.get_available_subnet_ip(endpoint.id)
            eni.private_ip_address = ip
            eni.private_ip_addresses = [{"Primary": True, "PrivateIpAddress": ip}]


def _rebase_dns(endpoint: models.SimVpcEndpoint, subnets: list[Subnet]) -> list[dict[str, str]]:
    """The endpoint-specific names after a subnet change: same base, one name per AZ."""
    regional = endpoint.base_dns_entries[0]
    base, domain = regional["DnsName"].split(".", 1)
    zone_id = regional["HostedZoneId"]
    entries = [regional]
    entries.extend(
        {"DnsName": f"{base}-{zone}.{domain}", "HostedZoneId": zone_id}
        for zone in sorted({subnet.availability_zone for subnet in subnets})
    )
    return entries


# Injected states -------------------------------------------------------------------------------


def _force_state(
    sim: world.World,
    endpoint: models.SimVpcEndpoint,
    state: str,
    code: str | None,
    message: str | None,
) -> None:
    """Put ``endpoint`` into an injected ``failed``/``expired``/``partial`` state."""
    endpoint.move_to(state)
    if state == models.FAILED:
        reason = message or "The VPC endpoint failed to be created."
        endpoint.failure_reason = reason
        endpoint.last_error = {"Code": code or "InternalError", "Message": reason}
    elif code or message:
        endpoint.last_error = {"Code": code or "", "Message": message or ""}


def force_endpoint_state(
    sim: world.World, endpoint_id: str, state: str, code: str | None, message: str | None
) -> None:
    """The admin API's entry point: force an existing endpoint into an injected state."""
    if state not in models.INJECTABLE_STATES:
        raise ValueError(f"state must be one of {sorted(models.INJECTABLE_STATES)}, got {state!r}")
    with sim.lock:
        endpoint = sim.endpoints.get(endpoint_id)
        if endpoint is None or endpoint.state == models.DELETED:
            raise KeyError(f"no endpoint {endpoint_id}")
        _force_state(sim, endpoint, state, code, message)


# DeleteVpcEndpoints ----------------------------------------------------------------------------


def delete_vpc_endpoints(self: EC2Response) -> ActionResult:
    _refuse_unmodelled(self, frozenset({"DryRun", "VpcEndpointIds"}))
    _dry_run(self)
    sim = world.current()
    caller = _Caller(self)
    unsuccessful: list[Json] = []
    for endpoint_id in self._get_param("VpcEndpointIds", []):
        endpoint = sim.endpoints.get(endpoint_id)
        mine = (
            endpoint is not None
            and endpoint.account_id == caller.account
            and endpoint.region_name == caller.region
        )
        if endpoint is None or not mine or endpoint.state == models.DELETED:
            unsuccessful.append(_not_found_endpoint(endpoint_id))
        elif endpoint.vpc_endpoint_type == "Gateway":
            # Gateway endpoints go at once, with their routes.
            _remove_routes(self.ec2_backend, endpoint, list(endpoint.route_table_ids))
            endpoint.move_to(models.DELETED)
            sim.release(endpoint)
        elif endpoint.state != models.DELETING:
            endpoint.move_to(
                models.DELETING, (models.DELETED, sim.due_in(sim.delays.endpoint_deleting))
            )
    return ActionResult({"Unsuccessful": unsuccessful})


def _not_found_endpoint(endpoint_id: str) -> Json:
    return _unsuccessful(
        endpoint_id,
        "InvalidVpcEndpointId.NotFound",
        f"The VpcEndpoint Id '{endpoint_id}' does not exist",
    )


# Connections -----------------------------------------------------------------------------------


def accept_vpc_endpoint_connections(self: EC2Response) -> ActionResult:
    sim = world.current()

    def accept(endpoint: models.SimVpcEndpoint) -> bool:
        if endpoint.state != models.PENDING_ACCEPTANCE:
            return False
        endpoint.move_to(
            models.PENDING, (models.AVAILABLE, sim.due_in(sim.delays.endpoint_pending))
        )
        return True

    return _act_on_connections(self, sim, accept)


def reject_vpc_endpoint_connections(self: EC2Response) -> ActionResult:
    sim = world.current()

    def reject(endpoint: models.SimVpcEndpoint) -> bool:
        if endpoint.state not in models.LIVE_CONNECTION_STATES:
            return False
        endpoint.move_to(models.REJECTED)
        return True

    return _act_on_connections(self, sim, reject)


def _act_on_connections(
    response: EC2Response, sim: world.World, act: Callable[[models.SimVpcEndpoint], bool]
) -> ActionResult:
    """Apply ``act`` to each named connection of the caller's service; failures go to
    ``Unsuccessful[]`` per id, inside a 200, as AWS does."""
    _refuse_unmodelled(response, frozenset({"DryRun", "ServiceId", "VpcEndpointIds"}))
    service = _owned_service(sim, response, response._get_param("ServiceId"))
    _dry_run(response)
    unsuccessful: list[Json] = []
    for endpoint_id in response._get_param("VpcEndpointIds", []):
        endpoint = sim.endpoints.get(endpoint_id)
        if endpoint is None or endpoint.service is not service or endpoint.state == models.DELETED:
            unsuccessful.append(_not_found_endpoint(endpoint_id))
        elif not act(endpoint):
            unsuccessful.append(
                _unsuccessful(
                    endpoint_id,
                    "IncorrectState",
                    f"The VPC endpoint '{endpoint_id}' is in state '{endpoint.state}', "
                    "which does not allow this operation.",
                )
            )
    return ActionResult({"Unsuccessful": unsuccessful})


_CONNECTION_FILTERS: dict[str, Callable[[models.SimVpcEndpoint], str]] = {
    "service-id": lambda ep: ep.service.id if ep.service else "",
    "vpc-endpoint-owner": lambda ep: ep.account_id,
    "vpc-endpoint-state": lambda ep: ep.state,
    "vpc-endpoint-id": lambda ep: ep.id,
    "vpc-endpoint-region": lambda ep: ep.region_name,
}


def describe_vpc_endpoint_connections(self: EC2Response) -> ActionResult:
    _refuse_unmodelled(self, frozenset({"DryRun", "Filters", "MaxResults", "NextToken"}))
    _dry_run(self)
    sim = world.current()
    caller = _Caller(self)
    filters = _filters(self)
    for name in filters:
        if name not in _CONNECTION_FILTERS:
            raise ec2_errors.InvalidFilter(name)
    connections = [
        endpoint
        for endpoint in sim.endpoints.values()
        if endpoint.service is not None
        and endpoint.service.owner == caller.account
        and endpoint.service.region_name == caller.region
        and all(
            # AWS matches states case-insensitively (pendingAcceptance vs PendingAcceptance).
            _CONNECTION_FILTERS[name](endpoint).lower() in {v.lower() for v in values}
            for name, values in filters.items()
        )
    ]
    connections.sort(key=lambda endpoint: (endpoint.creation_time, endpoint.id))
    page, next_token = _page([_connection(endpoint) for endpoint in connections], self)
    return ActionResult({"VpcEndpointConnections": page, "NextToken": next_token})


def _connection(endpoint: models.SimVpcEndpoint) -> Json:
    service = endpoint.service
    assert service is not None
    return {
        "ServiceId": service.id,
        "VpcEndpointId": endpoint.id,
        "VpcEndpointOwner": endpoint.account_id,
        "VpcEndpointState": endpoint.state,
        "CreationTimestamp": endpoint.creation_time,
        "DnsEntries": list(endpoint.dns_entries or []),
        "NetworkLoadBalancerArns": list(service.network_load_balancer_arns),
        "GatewayLoadBalancerArns": list(service.gateway_load_balancer_arns),
        "IpAddressType": endpoint.ip_address_type,
        "VpcEndpointConnectionId": endpoint.connection_id,
        "Tags": [],
        "VpcEndpointRegion": endpoint.region_name,
    }


# Endpoint service configurations ---------------------------------------------------------------

_CREATE_SERVICE_FIELDS = frozenset(
    {
        "DryRun",
        "AcceptanceRequired",
        "PrivateDnsName",
        "NetworkLoadBalancerArns",
        "GatewayLoadBalancerArns",
        "SupportedIpAddressTypes",
        "SupportedRegions",
        "ClientToken",
        "TagSpecifications",
    }
)

_MODIFY_SERVICE_FIELDS = frozenset(
    {
        "DryRun",
        "ServiceId",
        "PrivateDnsName",
        "RemovePrivateDnsName",
        "AcceptanceRequired",
        "AddNetworkLoadBalancerArns",
        "RemoveNetworkLoadBalancerArns",
        "AddGatewayLoadBalancerArns",
        "RemoveGatewayLoadBalancerArns",
        "AddSupportedIpAddressTypes",
        "RemoveSupportedIpAddressTypes",
        "AddSupportedRegions",
        "RemoveSupportedRegions",
    }
)


def create_vpc_endpoint_service_configuration(self: EC2Response) -> ActionResult:
    _refuse_unmodelled(self, _CREATE_SERVICE_FIELDS)
    sim = world.current()
    token = self._get_param("ClientToken")
    replayed = _replayed(sim, self, "CreateVpcEndpointServiceConfiguration", token)
    if replayed is not None and replayed in sim.services:
        return ActionResult({"ServiceConfiguration": sim.services[replayed], "ClientToken": token})

    caller = _Caller(self)
    network_arns: list[str] = self._get_param("NetworkLoadBalancerArns", [])
    gateway_arns: list[str] = self._get_param("GatewayLoadBalancerArns", [])
    if not network_arns and not gateway_arns:
        raise ec2_errors.NoLoadBalancersProvided
    load_balancers = _load_balancers(caller, network_arns, "network") + _load_balancers(
        caller, gateway_arns, "gateway"
    )
    ip_types = _ip_types(self._get_param("SupportedIpAddressTypes", []) or ["ipv4"])
    _check_dual_stack(load_balancers, ip_types)
    regions: list[str] = list(self._get_param("SupportedRegions", []))
    _check_regions(regions)
    _dry_run(self)
    service = models.SimServiceConfiguration(  # type: ignore[abstract]
        load_balancers=load_balancers,
        region=caller.region,
        acceptance_required=bool(self._get_bool_param("AcceptanceRequired", if_none=True)),
        private_dns_name=self._get_param("PrivateDnsName"),
        supported_regions=regions,
        supported_ip_address_types=ip_types,
        ec2_backend=self.ec2_backend,
        ready_at=sim.due_in(sim.delays.endpoint_service_pending),
        client_token=token,
    )
    service.now = sim.clock.now
    for tag_spec in self._get_param("TagSpecifications", []):
        for tag in tag_spec.get("Tags", []):
            service.add_tag(tag["Key"], tag["Value"])
    self.ec2_backend.configurations[service.id] = service
    sim.services[service.id] = service
    _remember(sim, self, "CreateVpcEndpointServiceConfiguration", token, service.id)
    return ActionResult({"ServiceConfiguration": service, "ClientToken": token})


def _ip_types(values: Iterable[str]) -> list[str]:
    """SupportedIpAddressTypes in AWS's order (ipv4, ipv6), validated, without duplicates."""
    wanted = set(values)
    unknown = wanted - set(addressing.SERVICE_IP_ADDRESS_TYPES)
    if unknown:
        raise ec2_errors.EC2ClientError(
            "InvalidParameterValue",
            f"Invalid SupportedIpAddressTypes {sorted(unknown)}: valid values are ipv4, ipv6.",
        )
    return [kind for kind in addressing.SERVICE_IP_ADDRESS_TYPES if kind in wanted]


def _check_dual_stack(load_balancers: Iterable[FakeLoadBalancer], ip_types: list[str]) -> None:
    """Offering IPv6 needs every load balancer of the service to be dual-stack."""
    if "ipv6" not in ip_types:
        return
    for lb in load_balancers:
        lb_type = getattr(lb, "ip_address_type", None) or "ipv4"
        if lb_type != "dualstack":
            raise ec2_errors.InvalidParameter(
                "To support the ipv6 IP address type, all load balancers of the service must "
                f"have the dualstack IP address type; {lb.arn} has {lb_type}."
            )


def _check_regions(regions: Iterable[str]) -> None:
    for region in regions:
        if not zones.known_region(region):
            raise ec2_errors.InvalidParameter(f"Invalid Region {region} in SupportedRegions.")


def _load_balancers(caller: _Caller, arns: list[str], lb_type: str) -> list[FakeLoadBalancer]:
    backend = elbv2_backends[caller.account][caller.region]
    found: list[FakeLoadBalancer] = []
    for arn in arns:
        lb = backend.load_balancers.get(arn)
        if lb is None or lb.type != lb_type:
            raise ec2_errors.InvalidParameter(
                f"The {lb_type} load balancer ARN '{arn}' is invalid or does not exist."
            )
        found.append(lb)
    return found


def modify_vpc_endpoint_service_configuration(self: EC2Response) -> ActionResult:
    _refuse_unmodelled(self, _MODIFY_SERVICE_FIELDS)
    sim = world.current()
    caller = _Caller(self)
    service = _owned_service(sim, self, self._get_param("ServiceId"))

    # Validate everything first: a refused Modify changes nothing, as on AWS.
    network = _changed_list(
        self, service.network_load_balancer_arns, "NetworkLoadBalancerArns", "load balancer"
    )
    gateway = _changed_list(
        self, service.gateway_load_balancer_arns, "GatewayLoadBalancerArns", "load balancer"
    )
    load_balancers = _load_balancers(caller, network, "network") + _load_balancers(
        caller, gateway, "gateway"
    )
    if not load_balancers:
        raise ec2_errors.InvalidParameter("A service must keep at least one load balancer.")
    add_types = _ip_types(self._get_param("AddSupportedIpAddressTypes", []))
    remove_types = _ip_types(self._get_param("RemoveSupportedIpAddressTypes", []))
    ip_types = _ip_types(
        [t for t in service.supported_ip_address_types if t not in remove_types] + add_types
    )
    if not ip_types:
        raise ec2_errors.InvalidParameter(
            "A service must support at least one IP address type (ipv4 or ipv6)."
        )
    _check_dual_stack(load_balancers, ip_types)
    add_regions: list[str] = list(self._get_param("AddSupportedRegions", []))
    remove_regions: list[str] = list(self._get_param("RemoveSupportedRegions", []))
    _check_regions(add_regions + remove_regions)
    if service.region_name in remove_regions:
        raise ec2_errors.InvalidParameter(
            f"The service's own Region {service.region_name} cannot be removed."
        )
    for region in remove_regions:
        if region not in service.remote_regions:
            raise ec2_errors.InvalidParameter(f"The service does not support Region {region}.")
    _dry_run(self)

    service.network_load_balancer_arns = network
    service.gateway_load_balancer_arns = gateway
    service.set_load_balancers(load_balancers)
    service.supported_ip_address_types = ip_types
    for region in remove_regions:
        del service.remote_regions[region]
    for region in add_regions:
        if region != service.region_name and region not in service.remote_regions:
            # A new Region is Pending for as long as a new service takes.
            service.remote_regions[region] = sim.due_in(sim.delays.endpoint_service_pending)
    acceptance = self._get_bool_param("AcceptanceRequired")
    if acceptance is not None:
        service.acceptance_required = bool(acceptance)
    if self._get_bool_param("RemovePrivateDnsName"):
        service.set_private_dns_name(None)
    elif self._get_param("PrivateDnsName"):
        # A new name needs a new TXT record and a new verification, as on AWS.
        service.set_private_dns_name(self._get_param("PrivateDnsName"))
    return ActionResult({"Return": True})


def _changed_list(response: EC2Response, current: list[str], field: str, what: str) -> list[str]:
    """``current`` with Add<field> appended and Remove<field> removed (each must be present)."""
    result = list(current)
    for item in response._get_param(f"Remove{field}", []):
        if item not in result:
            raise ec2_errors.InvalidParameter(f"The {what} '{item}' is not attached.")
        result.remove(item)
    for item in response._get_param(f"Add{field}", []):
        if item not in result:
            result.append(item)
    return result


def delete_vpc_endpoint_service_configurations(self: EC2Response) -> ActionResult:
    _refuse_unmodelled(self, frozenset({"DryRun", "ServiceIds"}))
    _dry_run(self)
    sim = world.current()
    caller = _Caller(self)
    unsuccessful: list[Json] = []
    for service_id in self._get_param("ServiceIds", []):
        service = sim.services.get(service_id)
        if (
            service is None
            or service.owner != caller.account
            or service.region_name != caller.region
        ):
            unsuccessful.append(
                _unsuccessful(
                    service_id,
                    "InvalidVpcEndpointService.NotFound",
                    f"The VpcEndpointService Id '{service_id}' does not exist",
                )
            )
        elif any(
            ep.state in models.LIVE_CONNECTION_STATES for ep in sim.connections_of(service_id)
        ):
            unsuccessful.append(
                _unsuccessful(
                    service_id,
                    "ExistingVpcEndpointConnections",
                    f"Service {service_id} has existing active VPC Endpoint connections!",
                )
            )
        else:
            self.ec2_backend.configurations.pop(service_id, None)
            del sim.services[service_id]
    return ActionResult({"Unsuccessful": unsuccessful})


def start_vpc_endpoint_service_private_dns_verification(self: EC2Response) -> ActionResult:
    _refuse_unmodelled(self, frozenset({"DryRun", "ServiceId"}))
    sim = world.current()
    service = _owned_service(sim, self, self._get_param("ServiceId"))
    _dry_run(self)
    verification = service.dns_verification
    if verification is None:
        raise ec2_errors.InvalidParameter(
            f"The service {service.id} does not have a private DNS name to verify."
        )
    found = _txt_record_exists(verification.name, verification.value)
    verification.state = "verified" if found else "failed"
    return ActionResult({"ReturnValue": True})


def _txt_record_exists(name: str, value: str) -> bool:
    """Whether any account's Route53 hosted zone holds TXT ``name`` containing ``value``."""
    wanted = name.rstrip(".").lower()
    for per_account in list(route53_backends.values()):
        for backend in list(per_account.values()):
            for zone in list(backend.zones.values()):
                for record_set in zone.rrsets:
                    if record_set.type != "TXT" or record_set.name.rstrip(".").lower() != wanted:
                        continue
                    for record in record_set.records:
                        text = record.get("Value", "") if isinstance(record, dict) else str(record)
                        if value in text:
                            return True
    return False


def describe_vpc_endpoint_services(self: EC2Response) -> ActionResult:
    _refuse_unmodelled(
        self,
        frozenset(
            {"DryRun", "ServiceNames", "Filters", "MaxResults", "NextToken", "ServiceRegions"}
        ),
    )
    sim = world.current()
    caller = _Caller(self)
    names: list[str] = self._get_param("ServiceNames", [])
    regions: list[str] = list(self._get_param("ServiceRegions", [])) or [caller.region]
    _check_regions(regions)
    services: list[Json] = []
    if caller.region in regions:
        services.extend(aws.detail(caller.account) for aws in catalog.aws_services(caller.region))
    services.extend(
        _service_detail(sim, service, caller)
        for service in sim.services.values()
        if service.region_name in regions and _visible(sim, service, caller)
    )
    known = {str(service["ServiceName"]) for service in services}
    for name in names:
        if name not in known:
            raise ec2_errors.InvalidServiceName(name)
    # moto's filter reads each filter's values under "Value" (the query wire name).
    filters = [
        {"Name": f["Name"], "Value": f.get("Value") or f.get("Values") or []}
        for f in self._get_param("Filters", [])
    ]
    matching = VPCBackend._filter_endpoint_services(names, filters, services)
    matching.sort(key=lambda service: str(service["ServiceName"]))
    page, next_token = _page(matching, self)
    return ActionResult(
        {
            "ServiceNames": sorted({str(service["ServiceName"]) for service in page}),
            "ServiceDetails": page,
            "NextToken": next_token,
        }
    )


def _service_detail(
    sim: world.World, service: models.SimServiceConfiguration, caller: _Caller
) -> Json:
    """The service as ``caller`` sees it: AZs by the caller's own names (AWS maps them through
    the zone ids, so another account may call the same zone differently), only those the
    caller's account has."""
    zone_ids = [
        zone_id
        for name in service.availability_zones
        if (zone_id := zones.zone_id(service.owner, service.region_name, name)) is not None
    ]
    if service.region_name == caller.region:
        names = [zones.zone_name(caller.account, caller.region, zone) for zone in zone_ids]
        pairs = sorted((name, zone) for name, zone in zip(names, zone_ids, strict=True) if name)
        zone_names, zone_ids = [name for name, _ in pairs], [zone for _, zone in pairs]
    else:
        # A cross-Region service's zones are in its Region, where the caller has no names.
        zone_names = list(service.availability_zones)
    verification = service.dns_verification
    return {
        "ServiceName": service.service_name,
        "ServiceId": service.id,
        "ServiceType": service.service_type,
        "ServiceRegion": service.region_name,
        "AvailabilityZones": zone_names,
        "AvailabilityZoneIds": zone_ids,
        "Owner": service.owner,
        "BaseEndpointDnsNames": list(service.base_endpoint_dns_names),
        "PrivateDnsName": service.private_dns_name,
        "PrivateDnsNames": (
            [{"PrivateDnsName": service.private_dns_name}] if service.private_dns_name else []
        ),
        "VpcEndpointPolicySupported": True,
        "AcceptanceRequired": service.acceptance_required,
        "ManagesVpcEndpoints": False,
        # Tags on a service are the owner's business; AWS shows consumers none.
        "Tags": service.get_tags() if service.owner == caller.account else [],
        "PrivateDnsNameVerificationState": verification.state if verification else None,
        "SupportedIpAddressTypes": list(service.supported_ip_address_types),
    }


_SERVICE_CONFIGURATION_FILTERS: dict[str, Callable[[models.SimServiceConfiguration], list[str]]] = {
    "service-name": lambda svc: [svc.service_name],
    "service-id": lambda svc: [svc.id],
    "service-state": lambda svc: [str(svc.service_state)],
    "supported-ip-address-types": lambda svc: list(svc.supported_ip_address_types),
}


def _configuration_matches(
    service: models.SimServiceConfiguration, name: str, values: list[str]
) -> bool:
    tags = _tag_map(service.get_tags())
    if name == "tag-key":
        return any(key in values for key in tags)
    if name.startswith("tag:"):
        return tags.get(name.removeprefix("tag:")) in values
    # AWS matches states case-insensitively, like the connection filters.
    wanted = {value.lower() for value in values}
    return any(have.lower() in wanted for have in _SERVICE_CONFIGURATION_FILTERS[name](service))


def _tag_map(tags: list[dict[str, str]]) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in tags}


def describe_vpc_endpoint_service_configurations(self: EC2Response) -> ActionResult:
    """The caller's services, with AWS's filters (incl. tags) and pages (moto: ids only)."""
    _refuse_unmodelled(
        self, frozenset({"DryRun", "ServiceIds", "Filters", "MaxResults", "NextToken"})
    )
    _dry_run(self)
    sim = world.current()
    caller = _Caller(self)
    service_ids: list[str] = list(self._get_param("ServiceIds", []))
    filters = _filters(self)
    for name in filters:
        if name not in _SERVICE_CONFIGURATION_FILTERS and not (
            name == "tag-key" or name.startswith("tag:")
        ):
            raise ec2_errors.InvalidFilter(name)
    mine = {
        service.id: service
        for service in sim.services.values()
        if service.owner == caller.account and service.region_name == caller.region
    }
    for service_id in service_ids:
        if service_id not in mine:
            raise ec2_errors.UnknownVpcEndpointService(service_id)
    chosen = (
        [mine[i] for i in service_ids]
        if service_ids
        else sorted(mine.values(), key=lambda service: service.id)
    )
    matching = [
        service
        for service in chosen
        if all(_configuration_matches(service, n, v) for n, v in filters.items())
    ]
    page, next_token = _page(matching, self)  # type: ignore[arg-type]
    return ActionResult({"ServiceConfigurations": page, "NextToken": next_token})


_PERMISSION_FIELDS = frozenset(
    {"DryRun", "ServiceId", "AddAllowedPrincipals", "RemoveAllowedPrincipals"}
)


def modify_vpc_endpoint_service_permissions(self: EC2Response) -> ActionResult:
    """moto's, behind AWS's checks: the caller's own service, principals AWS accepts."""
    _refuse_unmodelled(self, _PERMISSION_FIELDS)
    sim = world.current()
    _owned_service(sim, self, self._get_param("ServiceId"))
    for principal in self._get_param("AddAllowedPrincipals", []):
        if not _PRINCIPAL.fullmatch(principal):
            raise ec2_errors.InvalidParameter(
                f"Invalid principal {principal}: linkplane-sim models '*', account ids and "
                "arn:aws:iam::<account>:root|role/<name>|user/<name> (no paths)."
            )
    _dry_run(self)
    result: ActionResult = _moto_modify_permissions(self)
    return result


# '*', an account id, or an IAM root/role/user ARN without a path (AWS rejects paths).
_PRINCIPAL = re.compile(r"\*|\d{12}|arn:aws:iam::\d{12}:(root|role/[\w+=,.@-]+|user/[\w+=,.@-]+)")

# PrivateLink actions the simulator does not model: refused rather than half-served.
_UNMODELLED_ACTIONS = (
    "ModifyVpcEndpointServicePayerResponsibility",
    "CreateVpcEndpointConnectionNotification",
    "ModifyVpcEndpointConnectionNotification",
    "DeleteVpcEndpointConnectionNotifications",
    "DescribeVpcEndpointConnectionNotifications",
    "DescribeVpcEndpointAssociations",
)


def _unmodelled_action(action: str) -> Callable[[EC2Response], ActionResult]:
    def refuse(self: EC2Response) -> ActionResult:
        raise ec2_errors.EC2ClientError(
            "UnsupportedOperation", f"linkplane-sim does not model {action}."
        )

    return refuse


_ACTIONS: dict[str, Callable[[EC2Response], ActionResult]] = {
    "create_vpc_endpoint": create_vpc_endpoint,
    "modify_vpc_endpoint": modify_vpc_endpoint,
    "delete_vpc_endpoints": delete_vpc_endpoints,
    "accept_vpc_endpoint_connections": accept_vpc_endpoint_connections,
    "reject_vpc_endpoint_connections": reject_vpc_endpoint_connections,
    "describe_vpc_endpoint_connections": describe_vpc_endpoint_connections,
    "create_vpc_endpoint_service_configuration": create_vpc_endpoint_service_configuration,
    "modify_vpc_endpoint_service_configuration": modify_vpc_endpoint_service_configuration,
    "delete_vpc_endpoint_service_configurations": delete_vpc_endpoint_service_configurations,
    "start_vpc_endpoint_service_private_dns_verification": (
        start_vpc_endpoint_service_private_dns_verification
    ),
    "describe_vpc_endpoint_services": describe_vpc_endpoint_services,
    "describe_vpc_endpoint_service_configurations": describe_vpc_endpoint_service_configurations,
    "modify_vpc_endpoint_service_permissions": modify_vpc_endpoint_service_permissions,
    **{
        re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower(): _unmodelled_action(action)
        for action in _UNMODELLED_ACTIONS
    },
}


# What EC2Response had before install(): moto's method, or None where moto has none.
_ORIGINALS = {name: EC2Response.__dict__.get(name) for name in _ACTIONS}


def install() -> None:
    """Serve the actions above instead of (or in addition to) moto's. Idempotent."""
    for name, function in _ACTIONS.items():
        setattr(EC2Response, name, function)


def uninstall() -> None:
    """Give EC2Response back to moto (for in-process moto users after the sim stops)."""
    for name, original in _ORIGINALS.items():
        if original is None:
            if name in EC2Response.__dict__:
                delattr(EC2Response, name)
        else:
            setattr(EC2Response, name, original)
