"""The consumer's VPC endpoints: CreateVpcEndpoint, ModifyVpcEndpoint, DeleteVpcEndpoints.

Interface endpoints (to a provider's service, another Region's, or an AWS service) get real
moto ENIs with addresses by IP address type, AWS-shaped DNS entries, private DNS under AWS's
conditions and the per-VPC quota; gateway endpoints (S3, DynamoDB) get routes in their route
tables. The injected ``failed``/``expired``/``partial`` states live here too. Served through
``EC2Response`` by ``ec2_actions.install()``; moto's backends stay the store of record.
"""

import contextlib
import json
from collections.abc import Iterable

from moto.core.responses import ActionResult
from moto.ec2 import exceptions as ec2_errors
from moto.ec2 import utils as ec2_utils
from moto.ec2.models import EC2Backend
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.ec2.models.subnets import Subnet
from moto.ec2.models.vpcs import VPC
from moto.ec2.responses import EC2Response
from moto.moto_api._internal import mock_random

from linkplane.sim import addressing, catalog, models, quotas, world, zones
from linkplane.sim import ec2_common as common

Json = common.Json


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


def create_vpc_endpoint(self: EC2Response) -> ActionResult:
    common.refuse_unmodelled(self, _CREATE_ENDPOINT_FIELDS)
    sim = world.current()
    token = self._get_param("ClientToken")
    replayed = common.replayed(sim, self, "CreateVpcEndpoint", token)
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
    target = common.target(sim, self, service_name, service_region)
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
    common.remember(sim, self, "CreateVpcEndpoint", token, endpoint.id)
    return ActionResult({"VpcEndpoint": endpoint, "ClientToken": token})


def _create_interface_endpoint(
    response: EC2Response, sim: world.World, vpc: VPC, target: common.Target, token: str | None
) -> models.SimVpcEndpoint:
    backend = response.ec2_backend
    caller = common.Caller(response)
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
    common.dry_run(response)

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


def _private_dns_wanted(response: EC2Response, vpc: VPC, target: common.Target) -> bool:
    """PrivateDnsEnabled as AWS decides it; AWS's errors when it cannot be honoured.

    The API's default is true; here an unset value means true only where a private name exists
    (AWS services, verified provider names), so endpoints to services without one still work.
    """
    requested = response._get_bool_param("PrivateDnsEnabled")
    wanted = bool(requested) if requested is not None else target.private_dns_name is not None
    if wanted:
        _check_private_dns(vpc, target)
    return wanted


def _check_private_dns(vpc: VPC, target: common.Target) -> None:
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


def _check_quota(sim: world.World, caller: common.Caller, vpc_id: str) -> None:
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


def _check_zones(caller: common.Caller, target: common.Target, subnets: Iterable[Subnet]) -> None:
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
    endpoint_id: str, target: common.Target, subnets: Iterable[Subnet], region: str
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
    response: EC2Response, sim: world.World, vpc_id: str, target: common.Target, token: str | None
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
    common.dry_run(response)
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
    common.refuse_unmodelled(self, _MODIFY_ENDPOINT_FIELDS)
    sim = world.current()
    caller = common.Caller(self)
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
    common.dry_run(response)
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
    caller = common.Caller(response)
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
    common.dry_run(response)

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


def _endpoint_target(endpoint: models.SimVpcEndpoint) -> common.Target:
    """The target of an existing endpoint, as it stands now (for Modify's checks)."""
    service = endpoint.service
    if service is not None:
        verification = service.dns_verification
        verified = verification is not None and verification.state == "verified"
        return common.Target(
            name=endpoint.service_name,
            service=service,
            endpoint_types=("Interface",),
            private_dns_name=service.private_dns_name if verified else None,
            ip_address_types=tuple(service.supported_ip_address_types),
            region=endpoint.region_name,
        )
    entries = catalog.find(endpoint.region_name, endpoint.service_name)
    return common.Target(
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
    common.refuse_unmodelled(self, frozenset({"DryRun", "VpcEndpointIds"}))
    common.dry_run(self)
    sim = world.current()
    caller = common.Caller(self)
    unsuccessful: list[Json] = []
    for endpoint_id in self._get_param("VpcEndpointIds", []):
        endpoint = sim.endpoints.get(endpoint_id)
        mine = (
            endpoint is not None
            and endpoint.account_id == caller.account
            and endpoint.region_name == caller.region
        )
        if endpoint is None or not mine or endpoint.state == models.DELETED:
            unsuccessful.append(common.not_found_endpoint(endpoint_id))
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


# END
