"""`lpctl connections ...`: the consumer side (interface and gateway endpoints to services)."""

# PLR0917: typer turns each parameter of a command into a flag, so commands take many.

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, TypeVar

import typer
from rich.markup import escape

from linkplane.client import _requests, names
from linkplane.client.cli import common, completion, output
from linkplane.client.cli.state import state_of, stderr
from linkplane.v1 import common_pb2, connection_pb2

V = TypeVar("V")

app = typer.Typer(
    help="Connect VPCs to endpoint services (the consumer side).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

Subnets = Annotated[
    list[str] | None, typer.Option("--subnet", help="Subnet for an endpoint ENI (repeatable).")
]
SecurityGroups = Annotated[
    list[str] | None, typer.Option("--security-group", help="Security group sg-... (repeatable).")
]
PrivateDns = Annotated[
    bool | None,
    typer.Option("--private-dns/--no-private-dns", help="Associate the service's private DNS."),
]
RouteTables = Annotated[
    list[str] | None,
    typer.Option("--route-table", help="Route table rtb-... of a gateway endpoint (repeatable)."),
]
IpAddressType = Annotated[
    str | None,
    typer.Option("--ip-address-type", help="ipv4, dualstack or ipv6 (interface endpoints)."),
]
Message = Annotated[str | None, typer.Option("--message", help="Message to the provider.")]
IP_TYPES = {
    "ipv4": common_pb2.IP_ADDRESS_TYPE_IPV4,
    "ipv6": common_pb2.IP_ADDRESS_TYPE_IPV6,
    "dualstack": common_pb2.IP_ADDRESS_TYPE_DUALSTACK,
}
ENDPOINT_TYPES = {
    "interface": connection_pb2.Connection.ENDPOINT_TYPE_INTERFACE,
    "gateway": connection_pb2.Connection.ENDPOINT_TYPE_GATEWAY,
}


def _choice(value: str, choices: Mapping[str, V], flag: str) -> V:
    try:
        return choices[value.lower()]
    except KeyError:
        raise typer.BadParameter(
            f"{flag} must be one of {', '.join(sorted(choices))}, not {value!r}"
        ) from None


DisplayName = Annotated[str | None, typer.Option("--display-name", help="Human-readable name.")]
ConnectionRef = Annotated[
    str, typer.Argument(help="Connection id or full name.", autocompletion=completion.connections)
]


@app.command(
    epilog="Example: lpctl connections create orders-to-payments --account 222222222222 "
    "--region us-east-1 --service payments --vpc vpc-0abc --subnet subnet-c1 --wait. A gateway "
    "endpoint: lpctl connections create s3 --account 222222222222 --region us-east-1 "
    "--service-name com.amazonaws.us-east-1.s3 --endpoint-type gateway --vpc vpc-0abc "
    "--route-table rtb-0abc --wait"
)
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Connection id, e.g. orders-to-payments.")],
    account: Annotated[
        str | None, typer.Option("--account", help="Consumer AWS account (12-digit id or name).")
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="The VPC's region.")] = None,
    service: Annotated[
        str | None,
        typer.Option(
            "--service",
            help="A linkplane service (id or full name).",
            autocompletion=completion.services,
        ),
    ] = None,
    service_name: Annotated[
        str | None,
        typer.Option("--service-name", help="Any AWS endpoint service name, com.amazonaws...."),
    ] = None,
    service_region: Annotated[
        str | None, typer.Option("--service-region", help="The service's region (cross-region).")
    ] = None,
    vpc: Annotated[str | None, typer.Option("--vpc", help="Consumer VPC, vpc-...")] = None,
    subnet: Subnets = None,
    security_group: SecurityGroups = None,
    endpoint_type: Annotated[
        str | None,
        typer.Option(
            "--endpoint-type",
            help="interface (default) or gateway (S3/DynamoDB, with --route-table).",
        ),
    ] = None,
    route_table: RouteTables = None,
    ip_address_type: IpAddressType = None,
    private_dns: PrivateDns = None,
    message: Message = None,
    display_name: DisplayName = None,
    label: common.Labels = None,
    from_file: common.FromFile = None,
    wait: common.Wait = False,
    wait_timeout: common.WaitTimeout = None,
    validate_only: common.ValidateOnly = False,
    request_id: common.RequestId = None,
) -> None:
    """Create a VPC endpoint (interface, or gateway for S3/DynamoDB) from a VPC to a service."""
    state = state_of(ctx)
    if service and service_name:
        raise typer.BadParameter("give either --service or --service-name, not both")
    connection = _requests.coerce(connection_pb2.Connection, common.load_spec(from_file))
    if account:
        connection.consumer_account = names.account_name(state.project, account)
    if region:
        connection.region = region
    if service:
        connection.service = names.service_name(state.project, service)
    if service_name:
        connection.service_name = service_name
    if service_region:
        connection.service_region = service_region
    if vpc:
        connection.vpc_id = vpc
    if subnet:
        connection.subnet_ids[:] = subnet
    if security_group:
        connection.security_group_ids[:] = security_group
    if endpoint_type:
        connection.endpoint_type = _choice(endpoint_type, ENDPOINT_TYPES, "--endpoint-type")
    if route_table:
        connection.route_table_ids[:] = route_table
    if ip_address_type:
        connection.ip_address_type = _choice(ip_address_type, IP_TYPES, "--ip-address-type")
    if private_dns is not None:
        connection.private_dns_enabled = private_dns
    if message is not None:
        connection.request_message = message
    if display_name is not None:
        connection.display_name = display_name
    if label:
        connection.labels.update(common.parse_labels(label))
    op = state.client().create_connection(
        parent=state.parent,
        connection=connection,
        connection_id=names.short_id(name),
        request_id=request_id,
        validate_only=validate_only,
        timeout=state.timeout,
    )
    result = common.finish(state, op, wait=wait, timeout=wait_timeout, verb=f"create {name}")
    if isinstance(result, connection_pb2.Connection):
        warn_if_pending_acceptance(result)


def warn_if_pending_acceptance(connection: connection_pb2.Connection) -> None:
    """Say plainly that a connection the create left PENDING_ACCEPTANCE is not usable yet.

    The create operation ends there because linkplane has done all it can from the consumer
    side; a `✓ done` alone reads as "connected", which it is not until the provider accepts.
    """
    if connection.state != connection_pb2.Connection.STATE_PENDING_ACCEPTANCE:
        return
    service = names.short_id(connection.service) if connection.service else "SERVICE"
    stderr.print(
        f"[yellow]![/] {escape(names.short_id(connection.name))} is PENDING_ACCEPTANCE: the "
        f"endpoint {escape(connection.endpoint_id)} exists but carries no traffic until the "
        "service's provider accepts it (provider: lpctl services connections accept "
        f"{escape(service)} {escape(connection.endpoint_id)})"
    )


@app.command(epilog="Example: lpctl connections get orders-to-payments -o json")
def get(
    ctx: typer.Context,
    name: ConnectionRef,
    watch: common.Watch = False,
) -> None:
    """Show one connection (with --watch, stream its changes)."""
    state = state_of(ctx)
    full = names.connection_name(state.project, name)
    client = state.client()
    if watch:
        common.stream(state, "connection", client.watch_connections(parent=state.parent), full)
        return
    output.emit(state, client.get_connection(name=full, timeout=state.timeout))


@app.command(name="list", epilog="Example: lpctl connections list --filter 'state = AVAILABLE'")
def list_(
    ctx: typer.Context,
    filter: common.Filter = "",
    page_size: common.PageSize = 0,
    limit: common.Limit = 100,
    all: common.All = False,
    watch: common.Watch = False,
) -> None:
    """List the project's connections (with --watch, then stream changes)."""
    state = state_of(ctx)
    client = state.client()
    if watch:
        common.stream(
            state, "connection", client.watch_connections(parent=state.parent, filter=filter)
        )
        return
    pager = client.list_connections(
        parent=state.parent, filter=filter, page_size=page_size, timeout=state.timeout
    )
    common.show_list(state, pager, limit, all)


@app.command(
    epilog="Example: lpctl connections update orders-to-payments --subnet subnet-c2 --wait"
)
def update(
    ctx: typer.Context,
    name: ConnectionRef,
    subnet: Subnets = None,
    security_group: SecurityGroups = None,
    route_table: RouteTables = None,
    ip_address_type: IpAddressType = None,
    private_dns: PrivateDns = None,
    message: Message = None,
    display_name: DisplayName = None,
    label: common.Labels = None,
    etag: common.Etag = "",
    wait: common.Wait = False,
    wait_timeout: common.WaitTimeout = None,
    validate_only: common.ValidateOnly = False,
    request_id: common.RequestId = None,
) -> None:
    """Change a connection; only the fields given as flags are updated."""
    state = state_of(ctx)
    connection = connection_pb2.Connection(
        name=names.connection_name(state.project, name), etag=etag
    )
    paths: list[str] = []
    if subnet:
        connection.subnet_ids[:] = subnet
        paths.append("subnet_ids")
    if security_group:
        connection.security_group_ids[:] = security_group
        paths.append("security_group_ids")
    if route_table:
        connection.route_table_ids[:] = route_table
        paths.append("route_table_ids")
    if ip_address_type:
        connection.ip_address_type = _choice(ip_address_type, IP_TYPES, "--ip-address-type")
        paths.append("ip_address_type")
    if private_dns is not None:
        connection.private_dns_enabled = private_dns
        paths.append("private_dns_enabled")
    if message is not None:
        connection.request_message = message
        paths.append("request_message")
    if display_name is not None:
        connection.display_name = display_name
        paths.append("display_name")
    if label:
        connection.labels.update(common.parse_labels(label))
        paths.append("labels")
    common.require_changes(paths)
    op = state.client().update_connection(
        connection=connection,
        update_mask=paths,
        request_id=request_id,
        validate_only=validate_only,
        timeout=state.timeout,
    )
    common.finish(state, op, wait=wait, timeout=wait_timeout, verb=f"update {name}")


@app.command(epilog="Example: lpctl connections delete orders-to-payments --wait")
def delete(
    ctx: typer.Context,
    name: ConnectionRef,
    etag: common.Etag = "",
    wait: common.Wait = False,
    wait_timeout: common.WaitTimeout = None,
    validate_only: common.ValidateOnly = False,
    request_id: common.RequestId = None,
) -> None:
    """Delete a connection and its endpoint."""
    state = state_of(ctx)
    op = state.client().delete_connection(
        name=names.connection_name(state.project, name),
        etag=etag,
        request_id=request_id,
        validate_only=validate_only,
        timeout=state.timeout,
    )
    common.finish(state, op, wait=wait, timeout=wait_timeout, verb=f"delete {name}")
