"""Gateway endpoints (S3, DynamoDB): routes to the service's prefix list in route tables.

No ENIs, no DNS, available at once; Create/ModifyVpcEndpoint refuse the interface-only fields
as AWS does. Called by ``ec2_endpoints`` for ``VpcEndpointType=Gateway``; moto's route tables
hold the routes.
"""

import contextlib

from moto.ec2 import exceptions as ec2_errors
from moto.ec2 import utils as ec2_utils
from moto.ec2.models import EC2Backend
from moto.ec2.responses import EC2Response

from linkplane.sim import ec2_common as common
from linkplane.sim import models, world


def create(
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


def remove_routes(backend: EC2Backend, endpoint: models.SimVpcEndpoint, ids: list[str]) -> None:
    for route_table_id in ids:
        if route_table_id not in endpoint.route_table_ids:
            continue
        with contextlib.suppress(ec2_errors.EC2ClientError):
            backend.delete_route(route_table_id, str(endpoint.destination_prefix_list_id))
        endpoint.route_table_ids.remove(route_table_id)


def modify(response: EC2Response, backend: EC2Backend, endpoint: models.SimVpcEndpoint) -> None:
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
    remove_routes(backend, endpoint, remove)
