"""`lpctl demo`: a narrated PrivateLink walkthrough against a running linkplane.

It exercises the whole contract the way a person would: accounts, a published service with a
managed NLB, a consumer connection waiting for acceptance, the provider accepting it, the live
endpoint's DNS names and IPs, the provider's inventory, and teardown. Network ids come from the
`dev-*` labels the dev server puts on its pre-registered accounts, so the demo needs no flags
there. It exits 0 only if every step succeeded, and tears down what it created even on failure.
"""

# PLR0917: typer turns each parameter of a command into a flag, so commands take many.

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import grpc
import typer
from rich.markup import escape

from linkplane.client import errors, names
from linkplane.client.cli import common, output
from linkplane.client.cli.state import CliState, OutputFormat, state_of
from linkplane.client.sync import Client
from linkplane.v1 import account_pb2, connection_pb2, service_pb2

T = TypeVar("T")
say = output.stdout.print


@dataclasses.dataclass
class Network:
    """The VPC, subnets and security group the demo uses in one account."""

    vpc_id: str
    subnet_ids: list[str]
    security_group_id: str


def _network(account: account_pb2.Account, fallback: str) -> Network:
    labels = account.labels
    subnets = [s for s in labels.get("dev-subnet-ids", "").split("_") if s]
    network = Network(
        vpc_id=labels.get("dev-vpc-id", f"vpc-{fallback}"),
        subnet_ids=subnets or [f"subnet-{fallback}-a", f"subnet-{fallback}-b"],
        security_group_id=labels.get("dev-security-group-id", ""),
    )
    if "dev-vpc-id" not in labels:
        say(
            f"  [yellow]account {account.aws_account_id} has no dev-* labels; using placeholders[/]"
        )
    return network


def _ensure_account(client: Client, state: CliState, account_id: str, role: str) -> Network:
    name = names.account_name(state.project, account_id)
    try:
        account = client.get_account(name=name, timeout=state.timeout)
        say(f"  {role} account {account_id} is registered; reusing it")
    except errors.NotFound:
        account = client.register_account(
            parent=state.parent,
            account=account_pb2.Account(display_name=f"demo {role}"),
            account_id=account_id,
            timeout=state.timeout,
        )
        say(f"  registered {role} account {account_id}")
    return _network(account, role)


def _poll(what: str, fetch: Callable[[], T], ready: Callable[[T], bool], timeout: float) -> T:
    """Re-read until `ready` (the reconciler may lag the operation); OperationTimeout else."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        value = fetch()
        if ready(value):
            return value
        if time.monotonic() + delay > deadline:
            raise errors.OperationTimeout(what, timeout)
        time.sleep(delay)
        delay = min(delay * 1.5, 3.0)


def _step(number: int, text: str) -> None:
    say(f"\n[bold]{number}. {escape(text)}[/]")


def demo(
    ctx: typer.Context,
    address: Annotated[
        str | None, typer.Option("--address", help="Server address (overrides the global one).")
    ] = None,
    provider: Annotated[
        str, typer.Option("--provider-account", help="Provider AWS account id.")
    ] = "111111111111",
    consumer: Annotated[
        str, typer.Option("--consumer-account", help="Consumer AWS account id.")
    ] = "222222222222",
    region: Annotated[str, typer.Option("--region", help="AWS region to use.")] = "us-east-1",
    step_timeout: Annotated[
        float, typer.Option("--step-timeout", help="Seconds each step may take.")
    ] = 300.0,
) -> None:
    """Walk through PrivateLink end to end: publish, connect, accept, inspect, tear down."""
    state = state_of(ctx)
    if address:
        state = dataclasses.replace(
            state, config=dataclasses.replace(state.config, address=address), _client=None
        )
        ctx.find_root().obj = state
    client = state.client()
    table_state = dataclasses.replace(state, output=OutputFormat.table)
    suffix = uuid.uuid4().hex[:6]
    service_name = names.service_name(state.project, f"demo-svc-{suffix}")
    connection_name = names.connection_name(state.project, f"demo-conn-{suffix}")
    created: dict[str, bool] = {"service": False, "connection": False}
    say(f"[bold]linkplane demo[/] against {state.config.address}, project {state.project}")

    try:
        _step(1, "Accounts: the provider and the consumer")
        provider_net = _ensure_account(client, state, provider, "provider")
        consumer_net = _ensure_account(client, state, consumer, "consumer")

        _step(2, f"Publish {names.short_id(service_name)} behind a managed NLB")
        say(f"  subnets {', '.join(provider_net.subnet_ids)}; listener 443/tcp -> 10.0.1.10")
        service = service_pb2.Service(
            display_name="demo payments API",
            provider_account=names.account_name(state.project, provider),
            region=region,
            allowed_principals=[consumer],
            acceptance_policy=service_pb2.AcceptancePolicy(
                mode=service_pb2.AcceptancePolicy.MODE_MANUAL
            ),
            labels={"linkplane-demo": suffix},
        )
        managed = service.load_balancer.managed
        managed.subnet_ids.extend(provider_net.subnet_ids)
        managed.listeners.add(port=443, protocol=service_pb2.Listener.PROTOCOL_TCP)
        managed.targets.add(id="10.0.1.10")
        op = client.publish_service(
            parent=state.parent,
            service=service,
            service_id=names.short_id(service_name),
            timeout=state.timeout,
        )
        created["service"] = True
        published = common.wait_for(state, op, step_timeout, "publish")
        say(f"  service is {output.state_name(published)}: {published.service_name}")

        _step(3, f"Connect the consumer's VPC {consumer_net.vpc_id}")
        connection = connection_pb2.Connection(
            service=service_name,
            consumer_account=names.account_name(state.project, consumer),
            region=region,
            vpc_id=consumer_net.vpc_id,
            subnet_ids=consumer_net.subnet_ids,
            security_group_ids=[consumer_net.security_group_id]
            if consumer_net.security_group_id
            else [],
            request_message="demo: orders would like to call payments",
        )
        op_c = client.create_connection(
            parent=state.parent,
            connection=connection,
            connection_id=names.short_id(connection_name),
            timeout=state.timeout,
        )
        created["connection"] = True
        common.wait_for(state, op_c, step_timeout, "create connection")
        pending = _poll(
            "connection pending acceptance",
            lambda: client.get_connection(name=connection_name, timeout=state.timeout),
            lambda c: (
                c.state
                in (
                    connection_pb2.Connection.STATE_PENDING_ACCEPTANCE,
                    connection_pb2.Connection.STATE_AVAILABLE,
                )
            ),
            step_timeout,
        )
        say(f"  connection is {output.state_name(pending)} (endpoint {pending.endpoint_id})")

        _step(4, "The provider accepts the request")
        if pending.state == connection_pb2.Connection.STATE_AVAILABLE:
            say("  already accepted by the acceptance policy")
        else:
            request = _poll(
                "the request in the provider's inventory",
                lambda: [
                    sc
                    for sc in client.list_service_connections(
                        parent=service_name,
                        filter="state = PENDING_ACCEPTANCE",
                        timeout=state.timeout,
                    )
                    if sc.connection == connection_name or sc.endpoint_id == pending.endpoint_id
                ],
                bool,
                step_timeout,
            )[0]
            say(f"  found {request.endpoint_id} from account {request.owner_account_id}")
            op_a = client.accept_service_connections(
                service=service_name,
                endpoint_ids=[request.endpoint_id],
                reason="linkplane demo",
                timeout=state.timeout,
            )
            decision = common.wait_for(state, op_a, step_timeout, "accept")
            for failure in decision.failures:
                raise errors.OperationFailed(
                    op_a.name,
                    errors.FailedPrecondition(
                        f"AWS refused {failure.endpoint_id}: {failure.code} {failure.message}",
                        code=grpc.StatusCode.FAILED_PRECONDITION,
                    ),
                )

        _step(5, "The endpoint is live")
        live = _poll(
            "connection available",
            lambda: client.get_connection(name=connection_name, timeout=state.timeout),
            lambda c: c.state == connection_pb2.Connection.STATE_AVAILABLE,
            step_timeout,
        )
        say(f"  connection is {output.state_name(live)}")
        for entry in live.dns_entries:
            say(f"  DNS  {entry.dns_name}")
        for eni in live.network_interfaces:
            say(f"  IP   {eni.private_ip_address}  ({eni.subnet_id}, {eni.network_interface_id})")

        _step(6, "The provider's connection inventory")
        output.emit_list(table_state, list(client.list_service_connections(parent=service_name)))
    finally:
        _teardown(client, state, created, service_name, connection_name, step_timeout)
    say("\n[bold green]demo complete[/]")


def _teardown(
    client: Client,
    state: CliState,
    created: dict[str, bool],
    service_name: str,
    connection_name: str,
    step_timeout: float,
) -> None:
    """Delete what the demo created, connection first; a failure here still fails the demo."""
    if not any(created.values()):
        return
    _step(7, "Tear down")
    steps: list[tuple[str, Callable[[], Any]]] = []
    if created["connection"]:
        steps.append(("delete connection", lambda: client.delete_connection(name=connection_name)))
    if created["service"]:
        steps.append(
            ("delete service", lambda: client.delete_service(name=service_name, force=True))
        )
    for verb, start in steps:
        try:
            common.wait_for(state, start(), step_timeout, verb)
        except errors.NotFound:
            say(f"  {verb}: already gone")
