"""EC2 PrivateLink actions that moto lacks or gets wrong, served through moto's EC2Response:
the provider's side (services, permissions, connections) and DescribeVpcEndpointServices here,
the consumer's endpoints in ``ec2_endpoints``.

moto looks an action's method up on ``EC2Response`` at call time, so ``install()`` sets these
functions on that class; every other EC2 action stays moto's. Each function runs inside the
gateway's lock, reads the request with moto's own parameter parser, keeps moto's backends the
store of record (so DescribeVpcEndpoints, DescribeNetworkInterfaces, tags and filters still
work) and keeps the cross-account view in ``world``.

Why one module of ~640 lines: one function per provider-side EC2 action (service configuration,
permissions, connections, DescribeVpcEndpointServices), sharing the request helpers and the
cross-account view; AWS documents them as one API, and the simulator keeps them as one model.
"""

import re
from collections.abc import Callable, Iterable

from moto.core.responses import ActionResult
from moto.ec2 import exceptions as ec2_errors
from moto.ec2.models.vpcs import VPCBackend
from moto.ec2.responses import EC2Response
from moto.elbv2.models import FakeLoadBalancer, elbv2_backends
from moto.route53.models import route53_backends

from linkplane.sim import addressing, catalog, ec2_describe, ec2_endpoints, models, world, zones
from linkplane.sim import ec2_common as common

# moto's own implementation that the sim wraps (captured before install() replaces it).
_moto_modify_permissions = EC2Response.modify_vpc_endpoint_service_permissions

Json = common.Json


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
    common.refuse_unmodelled(response, frozenset({"DryRun", "ServiceId", "VpcEndpointIds"}))
    service = common.owned_service(sim, response, response._get_param("ServiceId"))
    common.dry_run(response)
    unsuccessful: list[Json] = []
    for endpoint_id in response._get_param("VpcEndpointIds", []):
        endpoint = sim.endpoints.get(endpoint_id)
        if endpoint is None or endpoint.service is not service or endpoint.state == models.DELETED:
            unsuccessful.append(common.not_found_endpoint(endpoint_id))
        elif not act(endpoint):
            unsuccessful.append(
                common.unsuccessful(
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
    common.refuse_unmodelled(self, frozenset({"DryRun", "Filters", "MaxResults", "NextToken"}))
    common.dry_run(self)
    sim = world.current()
    caller = common.Caller(self)
    filters = common.filters(self)
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
    page, next_token = common.page([_connection(endpoint) for endpoint in connections], self)
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
    common.refuse_unmodelled(self, _CREATE_SERVICE_FIELDS)
    sim = world.current()
    token = self._get_param("ClientToken")
    replayed = common.replayed(sim, self, "CreateVpcEndpointServiceConfiguration", token)
    if replayed is not None and replayed in sim.services:
        return ActionResult({"ServiceConfiguration": sim.services[replayed], "ClientToken": token})

    caller = common.Caller(self)
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
    common.dry_run(self)
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
    common.remember(sim, self, "CreateVpcEndpointServiceConfiguration", token, service.id)
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


def _load_balancers(caller: common.Caller, arns: list[str], lb_type: str) -> list[FakeLoadBalancer]:
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
    common.refuse_unmodelled(self, _MODIFY_SERVICE_FIELDS)
    sim = world.current()
    caller = common.Caller(self)
    service = common.owned_service(sim, self, self._get_param("ServiceId"))

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
    common.dry_run(self)

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
    common.refuse_unmodelled(self, frozenset({"DryRun", "ServiceIds"}))
    common.dry_run(self)
    sim = world.current()
    caller = common.Caller(self)
    unsuccessful: list[Json] = []
    for service_id in self._get_param("ServiceIds", []):
        service = sim.services.get(service_id)
        if (
            service is None
            or service.owner != caller.account
            or service.region_name != caller.region
        ):
            unsuccessful.append(
                common.unsuccessful(
                    service_id,
                    "InvalidVpcEndpointService.NotFound",
                    f"The VpcEndpointService Id '{service_id}' does not exist",
                )
            )
        elif any(
            ep.state in models.LIVE_CONNECTION_STATES for ep in sim.connections_of(service_id)
        ):
            unsuccessful.append(
                common.unsuccessful(
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
    common.refuse_unmodelled(self, frozenset({"DryRun", "ServiceId"}))
    sim = world.current()
    service = common.owned_service(sim, self, self._get_param("ServiceId"))
    common.dry_run(self)
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
    common.refuse_unmodelled(
        self,
        frozenset(
            {"DryRun", "ServiceNames", "Filters", "MaxResults", "NextToken", "ServiceRegions"}
        ),
    )
    sim = world.current()
    caller = common.Caller(self)
    names: list[str] = self._get_param("ServiceNames", [])
    regions: list[str] = list(self._get_param("ServiceRegions", [])) or [caller.region]
    _check_regions(regions)
    common.dry_run(self)
    services: list[Json] = []
    if caller.region in regions:
        services.extend(aws.detail(caller.account) for aws in catalog.aws_services(caller.region))
    services.extend(
        _service_detail(sim, service, caller)
        for service in sim.services.values()
        if service.region_name in regions and common.visible(sim, service, caller)
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
    page, next_token = common.page(matching, self)
    return ActionResult(
        {
            "ServiceNames": sorted({str(service["ServiceName"]) for service in page}),
            "ServiceDetails": page,
            "NextToken": next_token,
        }
    )


def _service_detail(
    sim: world.World, service: models.SimServiceConfiguration, caller: common.Caller
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
    common.refuse_unmodelled(
        self, frozenset({"DryRun", "ServiceIds", "Filters", "MaxResults", "NextToken"})
    )
    common.dry_run(self)
    sim = world.current()
    caller = common.Caller(self)
    service_ids: list[str] = list(self._get_param("ServiceIds", []))
    filters = common.filters(self)
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
    page, next_token = common.page(matching, self)  # type: ignore[arg-type]
    return ActionResult({"ServiceConfigurations": page, "NextToken": next_token})


_PERMISSION_FIELDS = frozenset(
    {"DryRun", "ServiceId", "AddAllowedPrincipals", "RemoveAllowedPrincipals"}
)


def modify_vpc_endpoint_service_permissions(self: EC2Response) -> ActionResult:
    """moto's, behind AWS's checks: the caller's own service, principals AWS accepts."""
    common.refuse_unmodelled(self, _PERMISSION_FIELDS)
    sim = world.current()
    common.owned_service(sim, self, self._get_param("ServiceId"))
    for principal in self._get_param("AddAllowedPrincipals", []):
        if not _PRINCIPAL.fullmatch(principal):
            raise ec2_errors.InvalidParameter(
                f"Invalid principal {principal}: linkplane-sim models '*', account ids and "
                "arn:aws:iam::<account>:root|role/<name>|user/<name> (no paths)."
            )
    common.dry_run(self)
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


_ACTIONS: dict[str, Callable[[EC2Response], ActionResult | str]] = {
    "create_vpc_endpoint": ec2_endpoints.create_vpc_endpoint,
    "modify_vpc_endpoint": ec2_endpoints.modify_vpc_endpoint,
    "delete_vpc_endpoints": ec2_endpoints.delete_vpc_endpoints,
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
    # Selected by moto, written here (moto's serialiser took 5 ms per endpoint); DryRun
    # answers DryRunOperation first (moto answers data; linkplane's CheckAccount sends it).
    "describe_vpc_endpoints": ec2_describe.describe_vpc_endpoints,
    # moto's own, which answers data for DryRun=true.
    "describe_route_tables": common.honouring_dry_run(EC2Response.describe_route_tables),
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
