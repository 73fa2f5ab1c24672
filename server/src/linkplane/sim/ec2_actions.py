"""EC2 PrivateLink actions that moto lacks or gets wrong, served through moto's EC2Response.

moto looks an action's method up on ``EC2Response`` at call time, so ``install()`` sets these
functions on that class; every other EC2 action stays moto's. Each function runs inside the
gateway's lock, reads the request with moto's own parameter parser, keeps moto's backends the
store of record (so DescribeVpcEndpoints, DescribeNetworkInterfaces, tags and filters still
work) and keeps the cross-account view in ``world``.
"""

import base64
import binascii
import json
from collections.abc import Callable, Iterable

from moto.core.responses import ActionResult
from moto.ec2 import exceptions as ec2_errors
from moto.ec2 import utils as ec2_utils
from moto.ec2.models import EC2Backend
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.ec2.models.subnets import Subnet
from moto.ec2.models.vpcs import VPCBackend
from moto.ec2.responses import EC2Response
from moto.elbv2.models import FakeLoadBalancer, elbv2_backends
from moto.moto_api._internal import mock_random
from moto.route53.models import route53_backends

from linkplane.sim import models, world

# moto's own implementations, captured before install() replaces them, for the cases we keep.
_moto_create_vpc_endpoint = EC2Response.create_vpc_endpoint
_moto_modify_service_configuration = EC2Response.modify_vpc_endpoint_service_configuration

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


def _aws_service_names(backend: EC2Backend, caller: _Caller) -> set[str]:
    services = backend._collect_default_endpoint_services(caller.account, caller.region)
    return {str(service["ServiceName"]) for service in services}


def _connectable_service(
    sim: world.World, response: EC2Response, name: str
) -> models.SimServiceConfiguration | None:
    """The endpoint service ``name`` names, or None for an AWS service; AWS's InvalidServiceName
    when it does not exist for this caller (unknown, not allowed, other Region, not ready)."""
    caller = _Caller(response)
    service = sim.service_by_name(name)
    if service is not None:
        if (
            service.region_name == caller.region
            and service.service_state == "Available"
            and _allowed(sim, service, caller)
        ):
            return service
        raise ec2_errors.InvalidServiceName(name)
    if name in _aws_service_names(response.ec2_backend, caller):
        return None
    raise ec2_errors.InvalidServiceName(name)


def _owned_service(
    sim: world.World, response: EC2Response, service_id: str
) -> models.SimServiceConfiguration:
    caller = _Caller(response)
    service = sim.services.get(service_id)
    if service is None or service.owner != caller.account or service.region_name != caller.region:
        raise ec2_errors.UnknownVpcEndpointService(service_id)
    return service


# CreateVpcEndpoint -----------------------------------------------------------------------------


def create_vpc_endpoint(self: EC2Response) -> ActionResult:
    endpoint_type = self._get_param("VpcEndpointType") or "Gateway"
    if endpoint_type.lower() != "interface":
        # Gateway and GatewayLoadBalancer endpoints: moto's behaviour is good enough.
        return _moto_create_vpc_endpoint(self)
    sim = world.current()
    token = self._get_param("ClientToken")
    replayed = _replayed(sim, self, "CreateVpcEndpoint", token)
    if replayed is not None and replayed in sim.endpoints:
        return ActionResult({"VpcEndpoint": sim.endpoints[replayed], "ClientToken": token})

    backend = self.ec2_backend
    caller = _Caller(self)
    vpc_id = self._get_param("VpcId")
    backend.get_vpc(vpc_id)
    service_name = self._get_param("ServiceName")
    service = _connectable_service(sim, self, service_name)
    subnets, fixed_ips = _endpoint_subnets(self, backend, vpc_id)
    _check_zones(service, service_name, subnets)
    group_ids = _security_groups(self, backend, vpc_id)

    endpoint_id = ec2_utils.random_vpc_ep_id()
    eni_ids = [
        _create_eni(backend, subnet, fixed_ips.get(subnet.id), group_ids, endpoint_id).id
        for subnet in subnets
    ]
    private_dns_enabled = bool(self._get_bool_param("PrivateDnsEnabled", if_none=service is None))
    dns_entries = _dns_entries(endpoint_id, service_name, service, subnets, caller.region)
    if private_dns_enabled:
        dns_entries.extend(_private_dns_entries(service_name, service, caller.region))

    if service is None:
        # AWS services accept every endpoint; they are usable as soon as they are created.
        state, transition = models.AVAILABLE, None
    elif service.acceptance_required:
        state, transition = models.PENDING_ACCEPTANCE, None
    else:
        state = models.PENDING
        transition = (models.AVAILABLE, sim.due_in(sim.delays.endpoint_pending))

    # moto's models are CloudFormationModels with abstract hooks moto itself never fills in.
    endpoint = models.SimVpcEndpoint(  # type: ignore[abstract]
        ec2_backend=backend,
        endpoint_id=endpoint_id,
        vpc_id=vpc_id,
        service_name=service_name,
        service=service,
        subnet_ids=[subnet.id for subnet in subnets],
        network_interface_ids=eni_ids,
        dns_entries=dns_entries,
        security_group_ids=group_ids,
        tags=ec2_utils.add_tag_specification(self._get_param("TagSpecifications", [])),
        private_dns_enabled=private_dns_enabled,
        policy_document=self._get_param("PolicyDocument"),
        client_token=token,
        ip_address_type=self._get_param("IpAddressType") or "ipv4",
        state=state,
    )
    endpoint.transition = transition
    backend.vpc_end_points[endpoint.id] = endpoint
    sim.endpoints[endpoint.id] = endpoint
    _remember(sim, self, "CreateVpcEndpoint", token, endpoint.id)
    return ActionResult({"VpcEndpoint": endpoint, "ClientToken": token})


def _endpoint_subnets(
    response: EC2Response, backend: EC2Backend, vpc_id: str
) -> tuple[list[Subnet], dict[str, str]]:
    """The endpoint's subnets (SubnetIds or SubnetConfigurations) and any fixed IPv4s."""
    subnet_ids: list[str] = list(response._get_param("SubnetIds", []))
    fixed_ips: dict[str, str] = {}
    for configuration in response._get_param("SubnetConfigurations", []):
        subnet_id = configuration.get("SubnetId")
        if subnet_id and subnet_id not in subnet_ids:
            subnet_ids.append(subnet_id)
        if subnet_id and configuration.get("Ipv4"):
            fixed_ips[subnet_id] = configuration["Ipv4"]
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


def _check_zones(
    service: models.SimServiceConfiguration | None, service_name: str, subnets: Iterable[Subnet]
) -> None:
    if service is None:
        return
    for subnet in subnets:
        if subnet.availability_zone not in service.availability_zones:
            raise ec2_errors.InvalidParameter(
                f"The VPC endpoint service {service_name} does not support the availability "
                f"zone of the subnet: {subnet.id}."
            )


def _security_groups(response: EC2Response, backend: EC2Backend, vpc_id: str) -> list[str]:
    group_ids: list[str] = list(response._get_param("SecurityGroupIds", []))
    for group_id in group_ids:
        if backend.get_security_group_from_id(group_id) is None:
            raise ec2_errors.EC2ClientError(
                "InvalidGroup.NotFound", f"The security group '{group_id}' does not exist"
            )
    if not group_ids:
        # AWS attaches the VPC's default security group when none is given.
        default = backend.get_default_security_group(vpc_id)
        if default is not None:
            group_ids = [default.id]
    return group_ids


def _create_eni(
    backend: EC2Backend,
    subnet: Subnet,
    fixed_ip: str | None,
    group_ids: list[str],
    endpoint_id: str,
) -> NetworkInterface:
    """A requester-managed ENI with a private IP from the subnet's CIDR, like AWS's."""
    # moto books a subnet IP against an Instance; the endpoint id marks who holds it instead.
    if fixed_ip:
        subnet.request_ip(fixed_ip, endpoint_id)  # type: ignore[arg-type]
        ip = fixed_ip
    else:
        ip = subnet.get_available_subnet_ip(endpoint_id)  # type: ignore[arg-type]
    eni = backend.create_network_interface(
        subnet, ip, group_ids=group_ids, description=f"VPC Endpoint Interface {endpoint_id}"
    )
    eni.interface_type = "vpc_endpoint"
    eni.requester_managed = True
    return eni


def _dns_entries(
    endpoint_id: str,
    service_name: str,
    service: models.SimServiceConfiguration | None,
    subnets: Iterable[Subnet],
    region: str,
) -> list[dict[str, str]]:
    """AWS's endpoint-specific names: one regional, then one per AZ of the endpoint."""
    base = f"{endpoint_id}-{mock_random.get_random_string(length=8, lower_case=True)}"
    if service is not None:
        domain = f"{service.id}.{region}.vpce.amazonaws.com"
    else:
        short_name = service_name.removeprefix(f"com.amazonaws.{region}.")
        domain = f"{short_name}.{region}.vpce.amazonaws.com"
    zone_id = models.vpce_hosted_zone_id(region)
    entries = [{"DnsName": f"{base}.{domain}", "HostedZoneId": zone_id}]
    zones = sorted({subnet.availability_zone for subnet in subnets})
    entries.extend(
        {"DnsName": f"{base}-{zone}.{domain}", "HostedZoneId": zone_id} for zone in zones
    )
    return entries


def _private_dns_entries(
    service_name: str, service: models.SimServiceConfiguration | None, region: str
) -> list[dict[str, str]]:
    """The private DNS name consumers get, only once it exists (AWS service or verified)."""
    zone_id = "Z" + mock_random.get_random_hex(12).upper()
    if service is None:
        short_name = service_name.removeprefix(f"com.amazonaws.{region}.")
        return [{"DnsName": f"{short_name}.{region}.amazonaws.com", "HostedZoneId": zone_id}]
    verification = service.dns_verification
    if service.private_dns_name and verification and verification.state == "verified":
        return [{"DnsName": service.private_dns_name, "HostedZoneId": zone_id}]
    return []


# DeleteVpcEndpoints ----------------------------------------------------------------------------


def delete_vpc_endpoints(self: EC2Response) -> ActionResult:
    sim = world.current()
    caller = _Caller(self)
    backend = self.ec2_backend
    unsuccessful: list[Json] = []
    for endpoint_id in self._get_param("VpcEndpointIds", []):
        endpoint = sim.endpoints.get(endpoint_id)
        mine = (
            endpoint is not None
            and endpoint.account_id == caller.account
            and endpoint.region_name == caller.region
        )
        if endpoint is None or not mine:
            if endpoint is None and endpoint_id in backend.vpc_end_points:
                # A gateway endpoint: moto removes its routes; AWS then forgets it.
                backend.delete_vpc_endpoints([endpoint_id])
                backend.vpc_end_points.pop(endpoint_id, None)
                continue
            unsuccessful.append(_not_found_endpoint(endpoint_id))
        elif endpoint.state == models.DELETED:
            unsuccessful.append(_not_found_endpoint(endpoint_id))
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
    service = _owned_service(sim, response, response._get_param("ServiceId"))
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


def create_vpc_endpoint_service_configuration(self: EC2Response) -> ActionResult:
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
    service = models.SimServiceConfiguration(  # type: ignore[abstract]
        load_balancers=load_balancers,
        region=caller.region,
        acceptance_required=bool(self._get_bool_param("AcceptanceRequired", if_none=True)),
        private_dns_name=self._get_param("PrivateDnsName"),
        supported_regions=self._get_param("SupportedRegions", []),
        supported_ip_address_types=self._get_param("SupportedIpAddressTypes", []) or ["ipv4"],
        ec2_backend=self.ec2_backend,
        ready_at=sim.due_in(sim.delays.endpoint_service_pending),
        client_token=token,
    )
    for tag_spec in self._get_param("TagSpecifications", []):
        for tag in tag_spec.get("Tags", []):
            service.add_tag(tag["Key"], tag["Value"])
    self.ec2_backend.configurations[service.id] = service
    sim.services[service.id] = service
    _remember(sim, self, "CreateVpcEndpointServiceConfiguration", token, service.id)
    return ActionResult({"ServiceConfiguration": service, "ClientToken": token})


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
    sim = world.current()
    caller = _Caller(self)
    service = _owned_service(sim, self, self._get_param("ServiceId"))
    _load_balancers(caller, self._get_param("AddNetworkLoadBalancerArns", []), "network")
    for arn in self._get_param("RemoveNetworkLoadBalancerArns", []):
        if arn not in service.network_load_balancer_arns:
            raise ec2_errors.InvalidParameter(f"The load balancer '{arn}' is not attached.")
    result = _moto_modify_service_configuration(self)
    service.set_load_balancers(
        _load_balancers(caller, service.network_load_balancer_arns, "network")
        + _load_balancers(caller, service.gateway_load_balancer_arns, "gateway")
    )
    if self._get_bool_param("RemovePrivateDnsName"):
        service.set_private_dns_name(None)
    elif self._get_param("PrivateDnsName"):
        # A new name needs a new TXT record and a new verification, as on AWS.
        service.set_private_dns_name(self._get_param("PrivateDnsName"))
    return result


def delete_vpc_endpoint_service_configurations(self: EC2Response) -> ActionResult:
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
    sim = world.current()
    service = _owned_service(sim, self, self._get_param("ServiceId"))
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
    sim = world.current()
    caller = _Caller(self)
    backend = self.ec2_backend
    names: list[str] = self._get_param("ServiceNames", [])
    defaults: list[Json] = list(
        backend._collect_default_endpoint_services(caller.account, caller.region)
    )
    custom = [
        _service_detail(service, caller)
        for service in sim.services.values()
        if service.region_name == caller.region
        and service.service_state == "Available"
        and _allowed(sim, service, caller)
    ]
    services = defaults + custom
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
            "ServiceNames": [service["ServiceName"] for service in page],
            "ServiceDetails": page,
            "NextToken": next_token,
        }
    )


def _service_detail(service: models.SimServiceConfiguration, caller: _Caller) -> Json:
    ec2_backend = service.ec2_backend
    zone_ids = []
    for zone_name in service.availability_zones:
        zone = ec2_backend.get_zone_by_name(zone_name)
        if zone is not None:
            zone_ids.append(zone.zone_id)
    verification = service.dns_verification
    return {
        "ServiceName": service.service_name,
        "ServiceId": service.id,
        "ServiceType": service.service_type,
        "ServiceRegion": service.region_name,
        "AvailabilityZones": list(service.availability_zones),
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


_ACTIONS: dict[str, Callable[[EC2Response], ActionResult]] = {
    "create_vpc_endpoint": create_vpc_endpoint,
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
