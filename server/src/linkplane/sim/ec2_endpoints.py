"""The consumer's VPC endpoints: CreateVpcEndpoint, ModifyVpcEndpoint, DeleteVpcEndpoints.

Interface endpoints (to a provider's service, another Region's, or an AWS service) get real
moto ENIs with addresses by IP address type and AWS-shaped DNS entries (``endpoint_interfaces``),
private DNS under AWS's conditions and the per-VPC quota; gateway endpoints (S3, DynamoDB) get
routes in their route tables (``ec2_gateway_endpoints``). The injected
``failed``/``expired``/``partial`` states live here too. Served through
``EC2Response`` by ``ec2_actions.install()``; moto's backends stay the store of record.

Why one module of ~470 lines: Create and Modify share the endpoint's private-DNS rules (the
conditions AWS checks on both, and how a record is applied) and Delete ends the state machine
Create starts; split apart, a rule would be read in one file and enforced in another. The ENIs
and the gateway routes, which have no such ties, already live beside it.
"""

import json

from moto.core.responses import ActionResult
from moto.ec2 import exceptions as ec2_errors
from moto.ec2 import utils as ec2_utils
from moto.ec2.models import EC2Backend
from moto.ec2.models.vpcs import VPC
from moto.ec2.responses import EC2Response

from linkplane.sim import addressing, catalog, models, quotas, world
from linkplane.sim import ec2_common as common
from linkplane.sim import ec2_gateway_endpoints as gateway_endpoints
from linkplane.sim import endpoint_interfaces as interfaces

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
        endpoint = gateway_endpoints.create(self, sim, vpc_id, target, token)
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
    subnets, fixed_ips = interfaces.subnets_of(response, backend, vpc.id)
    if not target.cross_region:
        interfaces.check_zones(caller, target, subnets)
    group_ids = interfaces.security_groups(response, backend, vpc.id)
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
        interfaces.create_eni(
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
        dns_entries=interfaces.dns_entries(endpoint_id, target, subnets, caller.region),
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


# Gateway endpoints -----------------------------------------------------------------------------


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
        gateway_endpoints.modify(self, backend, endpoint)
    else:
        _modify_interface_endpoint(self, sim, backend, endpoint)
    if self._get_bool_param("ResetPolicy"):
        endpoint.policy_document = json.dumps(endpoint.DEFAULT_POLICY)
    elif self._get_param("PolicyDocument"):
        endpoint.policy_document = self._get_param("PolicyDocument")
    return ActionResult({"Return": True})


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
    added, _ = interfaces.subnets_of(response, backend, endpoint.vpc_id, prefix="Add")
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
        interfaces.check_zones(caller, target, added)
    add_groups = interfaces.security_groups(
        response, backend, endpoint.vpc_id, "AddSecurityGroupIds"
    )
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
        interfaces.release_subnet_eni(endpoint, subnet_id)
    groups = [
        g
        for g in endpoint.security_group_ids
        if g not in response._get_param("RemoveSecurityGroupIds", [])
    ]
    groups.extend(g for g in add_groups if g not in groups)
    endpoint.security_group_ids = groups
    for subnet in added:
        eni = interfaces.create_eni(
            sim, backend, subnet, None, groups, endpoint.id, ip_address_type
        )
        endpoint.network_interface_ids.append(eni.id)
        endpoint.subnet_ids = [*(endpoint.subnet_ids or []), subnet.id]
    if ip_address_type != endpoint.ip_address_type:
        interfaces.readdress(sim, endpoint, ip_address_type)
    endpoint.ip_address_type = ip_address_type
    endpoint.dns_options = {"DnsRecordIpType": record_type}
    if added or removed:
        zones_now = [backend.get_subnet(s) for s in endpoint.subnet_ids or []]
        endpoint.base_dns_entries = interfaces.rebase_dns(endpoint, zones_now)
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
            gateway_endpoints.remove_routes(
                self.ec2_backend, endpoint, list(endpoint.route_table_ids)
            )
            endpoint.move_to(models.DELETED)
            sim.release(endpoint)
        elif endpoint.state != models.DELETING:
            endpoint.move_to(
                models.DELETING, (models.DELETED, sim.due_in(sim.delays.endpoint_deleting))
            )
    return ActionResult({"Unsuccessful": unsuccessful})


# END
