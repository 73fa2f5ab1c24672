"""`lpctl services ...`: the provider side (publish, inspect, change, delete, decide).

Flags map onto the `Service` message: `--subnet/--listener/--target` build a managed NLB,
`--nlb-arn` adopts existing NLBs, `--accept/--reject/--mode` the acceptance policy,
`--ip-type` and `--supported-region` what consumers may connect with and from. A
`--from-file` spec is the starting point and flags override it. `verify-dns` asks AWS to check
the private DNS name's TXT record now.
"""

# PLR0917: typer turns each parameter of a command into a flag, so commands take many.

from __future__ import annotations

import dataclasses
import enum
import re
from typing import Annotated, Any

import typer

from linkplane.client import _requests, errors, names
from linkplane.client.cli import common, completion, output
from linkplane.client.cli.state import CliState, ExitCode, fail, state_of, stderr
from linkplane.v1 import common_pb2, service_pb2

app = typer.Typer(
    help="Publish and manage endpoint services (the provider side).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
connections_app = typer.Typer(
    help="Inspect and decide on connection requests to a service.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(connections_app, name="connections")
principals_app = typer.Typer(
    help="Add or remove one principal allowed to connect (--allow replaces the whole list).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(principals_app, name="principals")


class Mode(enum.StrEnum):
    """Acceptance mode for requests no rule matches."""

    manual = "manual"
    automatic = "automatic"


class IpType(enum.StrEnum):
    """An IP address type a service offers (IPv6 needs a dual-stack NLB)."""

    ipv4 = "ipv4"
    ipv6 = "ipv6"


_IP_TYPES = {
    IpType.ipv4: common_pb2.IP_ADDRESS_TYPE_IPV4,
    IpType.ipv6: common_pb2.IP_ADDRESS_TYPE_IPV6,
}

_PROTOCOLS = {
    "tcp": service_pb2.Listener.PROTOCOL_TCP,
    "tls": service_pb2.Listener.PROTOCOL_TLS,
    "udp": service_pb2.Listener.PROTOCOL_UDP,
    "tcp_udp": service_pb2.Listener.PROTOCOL_TCP_UDP,
}
_LISTENER = re.compile(r"^(\d{1,5})(?::(\d{1,5}))?(?:/([a-z_]+))?$")


def parse_listener(value: str) -> service_pb2.Listener:
    """`PORT[:TARGET_PORT][/PROTOCOL]`, e.g. `443/tcp` or `443:8443/tls`."""
    match = _LISTENER.match(value.lower())
    if match is None or (match.group(3) and match.group(3) not in _PROTOCOLS):
        raise typer.BadParameter(
            f"{value!r} is not PORT[:TARGET_PORT][/tcp|tls|udp|tcp_udp]", param_hint="--listener"
        )
    port, target_port, protocol = match.groups()
    return service_pb2.Listener(
        port=int(port),
        target_port=int(target_port or 0),
        protocol=_PROTOCOLS[protocol or "tcp"],
    )


def parse_target(value: str) -> service_pb2.Target:
    """`IP_OR_INSTANCE[:PORT]`, e.g. `10.0.1.10` or `i-0abc:8080`."""
    target, _, port = value.partition(":")
    if port and not port.isdigit():
        raise typer.BadParameter(f"{value!r} is not ID[:PORT]", param_hint="--target")
    return service_pb2.Target(id=target, port=int(port or 0))


def parse_accept_rule(value: str) -> service_pb2.AcceptRule:
    """`PRINCIPAL[:LIMIT]`; ARNs contain colons, so only a trailing `:digits` is a limit
    (and only when something other than a bare account id precedes it)."""
    head, sep, tail = value.rpartition(":")
    if sep and tail.isdigit() and head and not head.endswith(":"):
        return service_pb2.AcceptRule(principal=head, connection_limit=int(tail))
    return service_pb2.AcceptRule(principal=value)


ServiceRef = Annotated[
    str, typer.Argument(help="Service id or full name.", autocompletion=completion.services)
]


def _account(project: str, ref: str) -> str:
    return names.account_name(project, ref)


Account = Annotated[
    str | None,
    typer.Option("--account", help="Provider AWS account: 12-digit id or full account name."),
]
Region = Annotated[str | None, typer.Option("--region", help="AWS region, e.g. us-east-1.")]
Subnets = Annotated[
    list[str] | None, typer.Option("--subnet", help="Subnet of the managed NLB (repeatable).")
]
Listeners = Annotated[
    list[str] | None,
    typer.Option("--listener", help="Listener PORT[:TARGET_PORT][/PROTOCOL] (repeatable)."),
]
Targets = Annotated[
    list[str] | None, typer.Option("--target", help="NLB target IP or i-... [:PORT] (repeatable).")
]
NlbArns = Annotated[
    list[str] | None, typer.Option("--nlb-arn", help="Adopt an existing NLB (repeatable).")
]
AcceptRules = Annotated[
    list[str] | None,
    typer.Option("--accept", help="Auto-accept PRINCIPAL[:LIMIT] (repeatable)."),
]
RejectPrincipals = Annotated[
    list[str] | None, typer.Option("--reject", help="Always reject PRINCIPAL (repeatable).")
]
ModeOpt = Annotated[
    Mode | None, typer.Option("--mode", help="Unmatched requests: manual|automatic.")
]
Allow = Annotated[
    list[str] | None,
    typer.Option(
        "--allow",
        help="Principal allowed to connect (repeatable; '*' for anyone). REPLACES the whole "
        "list; to add or remove one use 'lpctl services principals add|remove'.",
    ),
]
PrivateDns = Annotated[
    str | None, typer.Option("--private-dns-name", help="Private DNS name, e.g. api.example.com.")
]
DisplayName = Annotated[str | None, typer.Option("--display-name", help="Human-readable name.")]
IpTypes = Annotated[
    list[IpType] | None,
    typer.Option(
        "--ip-type",
        help="IP address type consumers may use: ipv4|ipv6 (repeatable; ipv6 needs a dual-stack "
        "NLB, which linkplane makes for a managed one).",
    ),
]
SupportedRegions = Annotated[
    list[str] | None,
    typer.Option(
        "--supported-region",
        help="Another region consumers may connect from (repeatable; cross-region PrivateLink).",
    ),
]
ClearRegions = Annotated[
    bool,
    typer.Option("--clear-supported-regions", help="Remove every other supported region."),
]


def _apply_flags(
    service: service_pb2.Service,
    project: str,
    *,
    account: str | None,
    region: str | None,
    subnets: list[str] | None,
    listeners: list[str] | None,
    targets: list[str] | None,
    nlb_arns: list[str] | None,
    accept: list[str] | None,
    reject: list[str] | None,
    mode: Mode | None,
    allow: list[str] | None,
    private_dns_name: str | None,
    display_name: str | None,
    labels: list[str] | None,
    ip_types: list[IpType] | None = None,
    supported_regions: list[str] | None = None,
    clear_regions: bool = False,
) -> list[str]:
    """Write the given flags into `service`; returns the update-mask paths they touch."""
    paths: list[str] = []
    if account:
        service.provider_account = _account(project, account)
    if region:
        service.region = region
    if nlb_arns and (subnets or listeners or targets):
        raise typer.BadParameter("--nlb-arn adopts NLBs; it excludes --subnet/--listener/--target")
    if nlb_arns:
        service.load_balancer.adopted.network_load_balancer_arns[:] = nlb_arns
        paths.append("load_balancer")
    elif subnets or listeners or targets:
        managed = service.load_balancer.managed
        if subnets:
            managed.subnet_ids[:] = subnets
        if listeners:
            del managed.listeners[:]
            managed.listeners.extend(parse_listener(v) for v in listeners)
        if targets:
            del managed.targets[:]
            managed.targets.extend(parse_target(v) for v in targets)
        paths.append("load_balancer")
    policy = service.acceptance_policy
    if accept is not None and accept:
        del policy.accept_rules[:]
        policy.accept_rules.extend(parse_accept_rule(v) for v in accept)
    if reject:
        policy.reject_principals[:] = reject
    if mode is not None:
        policy.mode = (
            service_pb2.AcceptancePolicy.MODE_AUTOMATIC
            if mode is Mode.automatic
            else service_pb2.AcceptancePolicy.MODE_MANUAL
        )
    if accept or reject or mode is not None:
        paths.append("acceptance_policy")
    if allow:
        service.allowed_principals[:] = allow
        paths.append("allowed_principals")
    if private_dns_name is not None:
        service.private_dns_name = private_dns_name
        paths.append("private_dns_name")
    if display_name is not None:
        service.display_name = display_name
        paths.append("display_name")
    if ip_types:
        service.supported_ip_address_types[:] = [_IP_TYPES[t] for t in ip_types]
        paths.append("supported_ip_address_types")
    if supported_regions and clear_regions:
        raise typer.BadParameter("--clear-supported-regions excludes --supported-region")
    if supported_regions or clear_regions:
        service.supported_regions[:] = supported_regions or []
        paths.append("supported_regions")
    if labels:
        service.labels.clear()
        service.labels.update(common.parse_labels(labels))
        paths.append("labels")
    return paths


@app.command(
    epilog="Example: lpctl services publish payments --account 111111111111 --region us-east-1 "
    "--subnet subnet-a --subnet subnet-b --listener 443/tcp --target 10.0.1.10 "
    "--allow 222222222222 --wait"
)
def publish(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Service id, e.g. payments.")],
    account: Account = None,
    region: Region = None,
    subnet: Subnets = None,
    listener: Listeners = None,
    target: Targets = None,
    nlb_arn: NlbArns = None,
    accept: AcceptRules = None,
    reject: RejectPrincipals = None,
    mode: ModeOpt = None,
    allow: Allow = None,
    private_dns_name: PrivateDns = None,
    ip_type: IpTypes = None,
    supported_region: SupportedRegions = None,
    display_name: DisplayName = None,
    label: common.Labels = None,
    from_file: common.FromFile = None,
    wait: common.Wait = False,
    wait_timeout: common.WaitTimeout = None,
    validate_only: common.ValidateOnly = False,
    request_id: common.RequestId = None,
) -> None:
    """Publish a service: a managed or adopted NLB behind a VPC endpoint service."""
    state = state_of(ctx)
    service = _requests.coerce(service_pb2.Service, common.load_spec(from_file))
    _apply_flags(
        service,
        state.project,
        account=account,
        region=region,
        subnets=subnet,
        listeners=listener,
        targets=target,
        nlb_arns=nlb_arn,
        accept=accept,
        reject=reject,
        mode=mode,
        allow=allow,
        private_dns_name=private_dns_name,
        display_name=display_name,
        labels=label,
        ip_types=ip_type,
        supported_regions=supported_region,
    )
    op = state.client().publish_service(
        parent=state.parent,
        service=service,
        service_id=names.short_id(name),
        request_id=request_id,
        validate_only=validate_only,
        timeout=state.timeout,
    )
    common.finish(state, op, wait=wait, timeout=wait_timeout, verb=f"publish {name}")


@app.command(epilog="Example: lpctl services get payments -o yaml")
def get(
    ctx: typer.Context,
    name: ServiceRef,
    watch: common.Watch = False,
) -> None:
    """Show one service (with --watch, stream its changes)."""
    state = state_of(ctx)
    full = names.service_name(state.project, name)
    client = state.client()
    if watch:
        common.stream(state, "service", client.watch_services(parent=state.parent), full)
        return
    output.emit(state, client.get_service(name=full, timeout=state.timeout))


@app.command(name="list", epilog="Example: lpctl services list --filter 'state = ACTIVE' --all")
def list_(
    ctx: typer.Context,
    filter: common.Filter = "",
    page_size: common.PageSize = 0,
    limit: common.Limit = 100,
    all: common.All = False,
    watch: common.Watch = False,
) -> None:
    """List the project's services (with --watch, then stream changes)."""
    state = state_of(ctx)
    client = state.client()
    if watch:
        common.stream(state, "service", client.watch_services(parent=state.parent, filter=filter))
        return
    pager = client.list_services(
        parent=state.parent, filter=filter, page_size=page_size, timeout=state.timeout
    )
    common.show_list(state, pager, limit, all)


@app.command(
    epilog="Example: lpctl services update payments --allow 333333333333 --label team=pay --wait"
)
def update(
    ctx: typer.Context,
    name: ServiceRef,
    subnet: Subnets = None,
    listener: Listeners = None,
    target: Targets = None,
    nlb_arn: NlbArns = None,
    accept: AcceptRules = None,
    reject: RejectPrincipals = None,
    mode: ModeOpt = None,
    allow: Allow = None,
    private_dns_name: PrivateDns = None,
    ip_type: IpTypes = None,
    supported_region: SupportedRegions = None,
    clear_supported_regions: ClearRegions = False,
    display_name: DisplayName = None,
    label: common.Labels = None,
    etag: common.Etag = "",
    wait: common.Wait = False,
    wait_timeout: common.WaitTimeout = None,
    validate_only: common.ValidateOnly = False,
    request_id: common.RequestId = None,
) -> None:
    """Change a service; only the fields given as flags are updated."""
    state = state_of(ctx)
    service = service_pb2.Service(name=names.service_name(state.project, name), etag=etag)
    paths = _apply_flags(
        service,
        state.project,
        account=None,
        region=None,
        subnets=subnet,
        listeners=listener,
        targets=target,
        nlb_arns=nlb_arn,
        accept=accept,
        reject=reject,
        mode=mode,
        allow=allow,
        private_dns_name=private_dns_name,
        display_name=display_name,
        labels=label,
        ip_types=ip_type,
        supported_regions=supported_region,
        clear_regions=clear_supported_regions,
    )
    common.require_changes(paths)
    op = state.client().update_service(
        service=service,
        update_mask=paths,
        request_id=request_id,
        validate_only=validate_only,
        timeout=state.timeout,
    )
    common.finish(state, op, wait=wait, timeout=wait_timeout, verb=f"update {name}")


@app.command(epilog="Example: lpctl services delete payments --force --wait")
def delete(
    ctx: typer.Context,
    name: ServiceRef,
    force: Annotated[
        bool, typer.Option("--force", help="Reject live connections first instead of failing.")
    ] = False,
    etag: common.Etag = "",
    wait: common.Wait = False,
    wait_timeout: common.WaitTimeout = None,
    validate_only: common.ValidateOnly = False,
    request_id: common.RequestId = None,
) -> None:
    """Delete a service, its endpoint service and its managed NLB."""
    state = state_of(ctx)
    op = state.client().delete_service(
        name=names.service_name(state.project, name),
        etag=etag,
        force=force,
        request_id=request_id,
        validate_only=validate_only,
        timeout=state.timeout,
    )
    common.finish(state, op, wait=wait, timeout=wait_timeout, verb=f"delete {name}")


@app.command(
    name="verify-dns",
    epilog="Example: lpctl services verify-dns payments --wait (after creating the TXT record "
    "shown by `lpctl services get payments`)",
)
def verify_dns(
    ctx: typer.Context,
    name: ServiceRef,
    etag: common.Etag = "",
    wait: common.Wait = False,
    wait_timeout: common.WaitTimeout = None,
    validate_only: common.ValidateOnly = False,
    request_id: common.RequestId = None,
) -> None:
    """Ask AWS now to verify the TXT record of the service's private DNS name.

    linkplane re-checks by itself while the name is unverified (less and less often); this is
    for right after the record was created. With --wait, fails when AWS did not find it.
    """
    state = state_of(ctx)
    op = state.client().verify_service_private_dns(
        name=names.service_name(state.project, name),
        etag=etag,
        request_id=request_id,
        validate_only=validate_only,
        timeout=state.timeout,
    )
    common.finish(state, op, wait=wait, timeout=wait_timeout, verb=f"verify the DNS name of {name}")


@connections_app.command(
    name="list",
    epilog="Example: lpctl services connections list payments "
    "--filter 'state = PENDING_ACCEPTANCE'",
)
def connections_list(
    ctx: typer.Context,
    service: ServiceRef,
    filter: common.Filter = "",
    page_size: common.PageSize = 0,
    limit: common.Limit = 100,
    all: common.All = False,
) -> None:
    """List every endpoint connection to a service, including consumers outside linkplane."""
    state = state_of(ctx)
    pager = state.client().list_service_connections(
        parent=names.service_name(state.project, service),
        filter=filter,
        page_size=page_size,
        timeout=state.timeout,
    )
    common.show_list(state, pager, limit, all)


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which connection requests `accept`/`reject` decide on."""

    endpoint_ids: list[str]
    """Explicit vpce-... ids."""
    all_pending: bool = False
    """Every request now PENDING_ACCEPTANCE (listed when the command runs)."""
    from_account: str | None = None
    """With `all_pending`, only those from this 12-digit AWS account."""


def _pending_ids(state: CliState, service: str, from_account: str | None) -> list[str]:
    """The endpoint ids of the service's requests waiting for a decision (optionally from one
    AWS account), read from the server now."""
    pager = state.client().list_service_connections(parent=service, timeout=state.timeout)
    return [
        c.endpoint_id
        for c in pager
        if c.state == service_pb2.ServiceConnection.STATE_PENDING_ACCEPTANCE
        and (from_account is None or c.owner_account_id == from_account)
    ]


def _resolve(state: CliState, service: str, selection: Selection) -> list[str]:
    if selection.all_pending and selection.endpoint_ids:
        raise typer.BadParameter("give endpoint ids or --all-pending, not both")
    if selection.from_account is not None and not selection.all_pending:
        raise typer.BadParameter("--from goes with --all-pending", param_hint="--from")
    if selection.from_account is not None and not re.fullmatch(r"\d{12}", selection.from_account):
        raise typer.BadParameter("--from takes a 12-digit AWS account id", param_hint="--from")
    if not selection.all_pending:
        if not selection.endpoint_ids:
            raise typer.BadParameter("give endpoint ids (vpce-...) or --all-pending")
        return selection.endpoint_ids
    return _pending_ids(state, service, selection.from_account)


def _decide(
    ctx: typer.Context,
    accept: bool,
    service: str,
    selection: Selection,
    reason: str,
    wait: bool,
    wait_timeout: float | None,
    validate_only: bool,
    request_id: str | None,
) -> None:
    state = state_of(ctx)
    client = state.client()
    full = names.service_name(state.project, service)
    endpoint_ids = _resolve(state, full, selection)
    if not endpoint_ids:
        who = f" from {selection.from_account}" if selection.from_account else ""
        stderr.print(f"no pending connection requests{who} to {service}; nothing to do")
        return
    if selection.all_pending:
        stderr.print(f"{len(endpoint_ids)} pending: {' '.join(endpoint_ids)}")
    method: Any = client.accept_service_connections if accept else client.reject_service_connections
    op = method(
        service=full,
        endpoint_ids=endpoint_ids,
        reason=reason,
        request_id=request_id,
        validate_only=validate_only,
        timeout=state.timeout,
    )
    verb = "accept" if accept else "reject"
    common.finish(
        state, op, wait=wait, timeout=wait_timeout, verb=f"{verb} {' '.join(endpoint_ids)}"
    )


EndpointIds = Annotated[
    list[str] | None,
    typer.Argument(help="Endpoint ids, vpce-... (or --all-pending).", show_default=False),
]
Reason = Annotated[str, typer.Option("--reason", help="Why, for the audit log.")]
AllPending = Annotated[
    bool,
    typer.Option(
        "--all-pending", help="Every request now waiting for a decision (PENDING_ACCEPTANCE)."
    ),
]
FromAccount = Annotated[
    str | None,
    typer.Option(
        "--from", help="With --all-pending: only requests from this AWS account (12 digits)."
    ),
]


@connections_app.command(
    epilog="Example: lpctl services connections accept payments vpce-0abc "
    "--reason 'ticket 42' --wait; every pending request from one account: lpctl services "
    "connections accept payments --all-pending --from 222222222222"
)
def accept(
    ctx: typer.Context,
    service: ServiceRef,
    endpoint_ids: EndpointIds = None,
    all_pending: AllPending = False,
    from_account: FromAccount = None,
    reason: Reason = "",
    wait: common.Wait = False,
    wait_timeout: common.WaitTimeout = None,
    validate_only: common.ValidateOnly = False,
    request_id: common.RequestId = None,
) -> None:
    """Accept pending connection requests to a service."""
    selection = Selection(endpoint_ids or [], all_pending, from_account)
    _decide(ctx, True, service, selection, reason, wait, wait_timeout, validate_only, request_id)


@connections_app.command(
    epilog="Example: lpctl services connections reject payments vpce-0abc "
    "--reason 'unknown consumer'; every pending request: lpctl services connections reject "
    "payments --all-pending"
)
def reject(
    ctx: typer.Context,
    service: ServiceRef,
    endpoint_ids: EndpointIds = None,
    all_pending: AllPending = False,
    from_account: FromAccount = None,
    reason: Reason = "",
    wait: common.Wait = False,
    wait_timeout: common.WaitTimeout = None,
    validate_only: common.ValidateOnly = False,
    request_id: common.RequestId = None,
) -> None:
    """Reject connection requests or live connections to a service."""
    selection = Selection(endpoint_ids or [], all_pending, from_account)
    _decide(ctx, False, service, selection, reason, wait, wait_timeout, validate_only, request_id)


def _change_principals(
    ctx: typer.Context,
    service: str,
    principals: list[str],
    *,
    add: bool,
    wait: bool,
    wait_timeout: float | None,
    request_id: str | None,
) -> None:
    """Read the service, add or remove principals, write `allowed_principals` back with the
    etag; a concurrent change (Aborted) re-reads and tries again, as `iam add-binding` does."""
    state = state_of(ctx)
    client = state.client()
    full = names.service_name(state.project, service)
    for attempt in range(_PRINCIPAL_ATTEMPTS):
        current = client.get_service(name=full, timeout=state.timeout)
        allowed = list(current.allowed_principals)
        if add:
            wanted = allowed + [p for p in dict.fromkeys(principals) if p not in allowed]
        else:
            missing = [p for p in principals if p not in allowed]
            if missing:
                raise fail(
                    f"{', '.join(missing)} not allowed on {service} (allowed: "
                    f"{', '.join(allowed) or 'nobody'})",
                    ExitCode.NOT_FOUND,
                )
            wanted = [p for p in allowed if p not in principals]
        if wanted == allowed:
            stderr.print(f"{', '.join(principals)} already allowed on {service}; nothing to do")
            output.emit(state, current)
            return
        change = service_pb2.Service(name=full, etag=current.etag, allowed_principals=wanted)
        try:
            op = client.update_service(
                service=change,
                update_mask=["allowed_principals"],
                request_id=request_id,
                timeout=state.timeout,
            )
        except errors.Aborted:
            if attempt + 1 == _PRINCIPAL_ATTEMPTS:
                raise
            continue
        verb = "allow" if add else "disallow"
        common.finish(
            state, op, wait=wait, timeout=wait_timeout, verb=f"{verb} {' '.join(principals)}"
        )
        return


_PRINCIPAL_ATTEMPTS = 5
Principals = Annotated[
    list[str], typer.Argument(help="Principals: AWS account id, ARN, or '*'.", show_default=False)
]


@principals_app.command(
    name="add", epilog="Example: lpctl services principals add payments 333333333333 --wait"
)
def principals_add(
    ctx: typer.Context,
    service: ServiceRef,
    principals: Principals,
    wait: common.Wait = False,
    wait_timeout: common.WaitTimeout = None,
    request_id: common.RequestId = None,
) -> None:
    """Allow more principals to connect, keeping those already allowed."""
    _change_principals(
        ctx,
        service,
        principals,
        add=True,
        wait=wait,
        wait_timeout=wait_timeout,
        request_id=request_id,
    )


@principals_app.command(
    name="remove", epilog="Example: lpctl services principals remove payments 333333333333"
)
def principals_remove(
    ctx: typer.Context,
    service: ServiceRef,
    principals: Principals,
    wait: common.Wait = False,
    wait_timeout: common.WaitTimeout = None,
    request_id: common.RequestId = None,
) -> None:
    """Stop allowing principals to connect (exit 3 when one is not allowed now).

    Existing connections stay; reject them with 'lpctl services connections reject'.
    """
    _change_principals(
        ctx,
        service,
        principals,
        add=False,
        wait=wait,
        wait_timeout=wait_timeout,
        request_id=request_id,
    )
