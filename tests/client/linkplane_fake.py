"""A scripted, in-process linkplane server for the client and lpctl tests.

It speaks the real wire protocol (grpc.aio, the generated servicers and google.longrunning
Operations) so the client is tested through gRPC, not mocks, while the real server is built
elsewhere. The behaviour is small but follows the contract: operations finish after a few
GetOperation polls while the target resource walks through its states, lists page with opaque
tokens, watches send EXISTING/SYNCED then live events, and errors carry ErrorInfo and BadRequest
details in `grpc-status-details-bin`. Tests script faults (`fail`, `watch_fault`) and read what
the server received (`calls`, `metadata`). It runs on its own event loop in a thread so blocking
clients and `lpctl` subprocesses can use it while the test's loop is busy.
"""

from __future__ import annotations

import asyncio
import base64
import re
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import empty_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2

from linkplane.v1 import (
    account_pb2,
    account_service_pb2,
    account_service_pb2_grpc,
    common_pb2,
    connection_pb2,
    consumer_service_pb2,
    consumer_service_pb2_grpc,
    provider_service_pb2,
    provider_service_pb2_grpc,
    service_pb2,
)

ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
Service = service_pb2.Service
Connection = connection_pb2.Connection
SC = service_pb2.ServiceConnection


class Abort(Exception):
    """Raised inside a handler to answer with a rich google.rpc.Status."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str,
        metadata: dict[str, str] | None = None,
        violations: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.status = rich_status(code, message, reason, metadata or {}, violations or [])


def rich_status(
    code: grpc.StatusCode,
    message: str,
    reason: str,
    metadata: dict[str, str],
    violations: list[tuple[str, str]],
) -> status_pb2.Status:
    status = status_pb2.Status(code=code.value[0], message=message)
    info = error_details_pb2.ErrorInfo(reason=reason, domain="linkplane.dev", metadata=metadata)
    status.details.add().Pack(info)
    if violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in violations
            ]
        )
        status.details.add().Pack(bad)
    return status


async def abort_with(context: Any, error: Abort) -> None:
    await context.abort(
        error.code,
        error.message,
        trailing_metadata=(("grpc-status-details-bin", error.status.SerializeToString()),),
    )


@dataclass
class FakeOperation:
    proto: operations_pb2.Operation
    steps: list[tuple[str, Callable[[], None]]]
    finish: Callable[[], Any]
    """Returns the response message, or raises Abort to fail the operation."""


@dataclass
class Backend:
    """The fake's state and scripting knobs."""

    services: dict[str, Service] = field(default_factory=dict)
    connections: dict[str, Connection] = field(default_factory=dict)
    accounts: dict[str, account_pb2.Account] = field(default_factory=dict)
    operations: dict[str, FakeOperation] = field(default_factory=dict)
    by_request_id: dict[str, operations_pb2.Operation] = field(default_factory=dict)
    faults: dict[str, list[grpc.StatusCode]] = field(default_factory=lambda: defaultdict(list))
    calls: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    watchers: list[tuple[str, str, asyncio.Queue[Any]]] = field(default_factory=list)
    watch_requests: list[Any] = field(default_factory=list)
    watch_fault: tuple[str, Callable[[], None]] | None = None
    """("abort" | "end", mutation): the next watch stream, after its snapshot, applies the
    mutation without telling anyone and then aborts with UNAVAILABLE or ends cleanly."""

    def fail(self, method: str, *codes: grpc.StatusCode) -> None:
        self.faults[method].extend(codes)

    # -- helpers ----------------------------------------------------------------------------

    def publish(self, kind: str, event: int, resource: Any) -> None:
        for watched_kind, parent, queue in self.watchers:
            if watched_kind == kind and resource.name.startswith(parent + "/"):
                queue.put_nowait((event, resource))

    def new_operation(
        self,
        target: str,
        verb: str,
        steps: list[tuple[str, Callable[[], None]]],
        finish: Callable[[], Any],
        request_id: str,
    ) -> operations_pb2.Operation:
        if request_id and request_id in self.by_request_id:
            return self.by_request_id[request_id]
        name = f"operations/{uuid.uuid4().hex[:12]}"
        proto = operations_pb2.Operation(name=name)
        metadata = common_pb2.OperationMetadata(
            target=target, verb=verb, api_version="v1", progress_message="queued"
        )
        metadata.create_time.GetCurrentTime()
        proto.metadata.Pack(metadata)
        self.operations[name] = FakeOperation(proto, list(steps), finish)
        if request_id:
            self.by_request_id[request_id] = proto
        if not steps:
            self.advance(name)
        return proto

    def advance(self, name: str) -> None:
        """One poll's worth of progress."""
        op = self.operations[name]
        if op.proto.done:
            return
        metadata = common_pb2.OperationMetadata()
        op.proto.metadata.Unpack(metadata)
        if op.steps:
            message, mutate = op.steps.pop(0)
            mutate()
            metadata.progress_message = message
            op.proto.metadata.Pack(metadata)
            return
        try:
            response = op.finish()
        except Abort as error:
            op.proto.error.CopyFrom(error.status)
        else:
            op.proto.response.Pack(response if response is not None else empty_pb2.Empty())
        metadata.progress_message = "done"
        metadata.end_time.GetCurrentTime()
        op.proto.metadata.Pack(metadata)
        op.proto.done = True

    def touch(self, resource: Any) -> None:
        resource.etag = str(int(resource.etag or "0") + 1)
        resource.update_time.GetCurrentTime()

    def set_service(self, name: str, **changes: Any) -> None:
        service = self.services[name]
        for key, value in changes.items():
            setattr(service, key, value)
        self.touch(service)
        self.publish("services", common_pb2.EVENT_TYPE_MODIFIED, service)

    def set_connection(self, name: str, **changes: Any) -> None:
        connection = self.connections[name]
        for key, value in changes.items():
            if isinstance(value, list):
                del getattr(connection, key)[:]
                getattr(connection, key).extend(value)
            else:
                setattr(connection, key, value)
        self.touch(connection)
        self.publish("connections", common_pb2.EVENT_TYPE_MODIFIED, connection)

    def add_service(self, name: str, **fields: Any) -> Service:
        service = Service(name=name, uid=str(uuid.uuid4()), etag="1", **fields)
        service.create_time.GetCurrentTime()
        self.services[name] = service
        self.publish("services", common_pb2.EVENT_TYPE_ADDED, service)
        return service

    def remove_service(self, name: str) -> None:
        service = self.services.pop(name)
        self.publish("services", common_pb2.EVENT_TYPE_DELETED, service)

    def register(self, project: str, account_id: str, labels: dict[str, str]) -> None:
        name = f"projects/{project}/accounts/{account_id}"
        self.accounts[name] = account_pb2.Account(
            name=name, uid=str(uuid.uuid4()), aws_account_id=account_id, labels=labels, etag="1"
        )


def page(items: list[Any], request: Any, method: str) -> tuple[list[Any], str]:
    if request.page_size < 0:
        raise Abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"page_size must not be negative, got {request.page_size}",
            "INVALID_PAGE_SIZE",
            {"page_size": str(request.page_size)},
            [("page_size", "must be 0 or positive")],
        )
    size = min(request.page_size or 50, 1000)
    start = 0
    if request.page_token:
        try:
            kind, offset = base64.urlsafe_b64decode(request.page_token).decode().split(":")
            start = int(offset)
        except ValueError:
            kind = ""
        if kind != method:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "page_token is invalid",
                "INVALID_PAGE_TOKEN",
                {},
                [("page_token", "not from this list")],
            )
    chunk = items[start : start + size]
    token = ""
    if start + size < len(items):
        token = base64.urlsafe_b64encode(f"{method}:{start + size}".encode()).decode()
    return chunk, token


def apply_filter(items: list[Any], text: str) -> list[Any]:
    """Supports only `state = NAME` and `labels.KEY = "value"`; the rest is INVALID_ARGUMENT."""
    if not text:
        return items
    match = re.fullmatch(r'\s*(state|labels\.[a-z0-9_-]+)\s*=\s*"?([A-Za-z0-9_-]+)"?\s*', text)
    if match is None:
        raise Abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"filter {text!r} is not supported",
            "INVALID_FILTER",
            {"filter": text},
            [("filter", "unknown field or syntax")],
        )
    key, value = match.groups()
    if key == "state":
        return [i for i in items if type(i).State.Name(i.state) == f"STATE_{value}"]
    label = key.removeprefix("labels.")
    return [i for i in items if i.labels.get(label) == value]


def not_found(kind: str, name: str) -> Abort:
    return Abort(
        grpc.StatusCode.NOT_FOUND,
        f"{kind} {name!r} not found",
        f"{kind.upper()}_NOT_FOUND",
        {kind: name},
    )


class Handlers:
    """Wraps every servicer method: records calls and metadata, applies injected faults,
    turns `Abort` into a rich status."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def run(self, method: str, request: Any, context: Any, body: Callable[[], Any]) -> Any:
        backend = self.backend
        backend.calls[method].append(request)
        backend.metadata[method] = dict(context.invocation_metadata() or ())
        if backend.faults[method]:
            code = backend.faults[method].pop(0)
            await abort_with(
                context, Abort(code, f"injected {code.name}", "INJECTED", {"method": method})
            )
        try:
            return body()
        except Abort as error:
            await abort_with(context, error)


class Provider(provider_service_pb2_grpc.ProviderServiceServicer):
    def __init__(self, handlers: Handlers) -> None:
        self.h, self.b = handlers, handlers.backend

    async def PublishService(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            violations = []
            # As the server does: a bad id is reported on its own, the body's fields only once
            # the id is valid (tests/client/test_client_on_the_server.py sees the real order).
            if request.service_id and not ID.match(request.service_id):
                violations.append(("service_id", "must match ^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"))
            else:
                if not request.service.provider_account:
                    violations.append(("service.provider_account", "is required"))
                if not request.service.region:
                    violations.append(("service.region", "is required"))
            if violations:
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"invalid PublishServiceRequest: {len(violations)} field(s)",
                    "INVALID_ARGUMENT",
                    {"fields": ",".join(v[0] for v in violations)},
                    violations,
                )
            service_id = request.service_id or f"svc-{uuid.uuid4().hex[:6]}"
            name = f"{request.parent}/services/{service_id}"
            if request.request_id in self.b.by_request_id:
                return self.b.by_request_id[request.request_id]
            if name in self.b.services:
                raise Abort(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"service {name!r} already exists",
                    "SERVICE_ALREADY_EXISTS",
                    {"service": name},
                )
            fails = request.service.labels.get("fail") == "yes"
            if request.validate_only:
                return self.b.new_operation(name, "publish", [], lambda: request.service, "")
            service = Service()
            service.CopyFrom(request.service)
            service.name = name
            service.state = Service.STATE_CREATING
            service.reconciling = True
            self.b.add_service(name).MergeFrom(service)

            def finish() -> Any:
                if fails:
                    self.b.set_service(name, state=Service.STATE_FAILED, reconciling=False)
                    raise Abort(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        "subnet subnet-x is not in the provider account",
                        "SUBNET_NOT_IN_ACCOUNT",
                        {"subnet_id": "subnet-x"},
                    )
                self.b.set_service(
                    name,
                    state=Service.STATE_ACTIVE,
                    reconciling=False,
                    service_name=f"com.amazonaws.vpce.{service.region}.vpce-svc-{service_id}",
                )
                return self.b.services[name]

            return self.b.new_operation(
                name,
                "publish",
                [
                    ("creating the load balancer", lambda: None),
                    ("waiting for the load balancer to become active", lambda: None),
                    ("creating the endpoint service", lambda: None),
                ],
                finish,
                request.request_id,
            )

        return await self.h.run("PublishService", request, context, body)

    async def GetService(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            if request.name not in self.b.services:
                raise not_found("service", request.name)
            return self.b.services[request.name]

        return await self.h.run("GetService", request, context, body)

    async def ListServices(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            items = sorted(
                (s for n, s in self.b.services.items() if n.startswith(request.parent + "/")),
                key=lambda s: s.name,
            )
            chunk, token = page(apply_filter(items, request.filter), request, "services")
            return provider_service_pb2.ListServicesResponse(services=chunk, next_page_token=token)

        return await self.h.run("ListServices", request, context, body)

    async def UpdateService(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            name = request.service.name
            if name not in self.b.services:
                raise not_found("service", name)
            current = self.b.services[name]
            if request.service.etag and request.service.etag != current.etag:
                raise Abort(
                    grpc.StatusCode.ABORTED,
                    f"etag mismatch for {name}",
                    "ETAG_MISMATCH",
                    {"service": name, "etag": current.etag},
                )

            def apply() -> None:
                for path in request.update_mask.paths or ["labels", "display_name"]:
                    if path == "labels":
                        current.labels.clear()
                        current.labels.update(request.service.labels)
                    elif path == "display_name":
                        current.display_name = request.service.display_name
                    elif path == "allowed_principals":
                        current.allowed_principals[:] = request.service.allowed_principals
                self.b.set_service(name, state=Service.STATE_UPDATING)

            return self.b.new_operation(
                name,
                "update",
                [("applying the change", apply)],
                lambda: (self.b.set_service(name, state=Service.STATE_ACTIVE), current)[1],
                request.request_id,
            )

        return await self.h.run("UpdateService", request, context, body)

    async def DeleteService(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            name = request.name
            if name not in self.b.services:
                raise not_found("service", name)
            live = [c for c in self.b.connections.values() if c.service == name]
            if live and not request.force:
                raise Abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"service {name} has {len(live)} live connection(s); use force",
                    "SERVICE_HAS_CONNECTIONS",
                    {"service": name, "connections": str(len(live))},
                )
            return self.b.new_operation(
                name,
                "delete",
                [("deleting", lambda: self.b.set_service(name, state=Service.STATE_DELETING))],
                lambda: self.b.remove_service(name),
                request.request_id,
            )

        return await self.h.run("DeleteService", request, context, body)

    def _service_connection(self, connection: Connection) -> Any:
        states = {
            Connection.STATE_PENDING_ACCEPTANCE: SC.STATE_PENDING_ACCEPTANCE,
            Connection.STATE_PROVISIONING: SC.STATE_PENDING,
            Connection.STATE_AVAILABLE: SC.STATE_AVAILABLE,
            Connection.STATE_REJECTED: SC.STATE_REJECTED,
        }
        return SC(
            name=f"{connection.service}/serviceConnections/{connection.endpoint_id}",
            endpoint_id=connection.endpoint_id,
            owner_account_id=connection.consumer_account.rsplit("/", 1)[-1],
            vpc_id=connection.vpc_id,
            region=connection.region,
            state=states.get(connection.state, SC.STATE_UNSPECIFIED),
            connection=connection.name,
            request_message=connection.request_message,
            dns_entries=connection.dns_entries,
        )

    async def ListServiceConnections(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            if request.parent not in self.b.services:
                raise not_found("service", request.parent)
            items = [
                self._service_connection(c)
                for c in sorted(self.b.connections.values(), key=lambda c: c.endpoint_id)
                if c.service == request.parent and c.endpoint_id
            ]
            chunk, token = page(apply_filter(items, request.filter), request, "sc")
            return provider_service_pb2.ListServiceConnectionsResponse(
                service_connections=chunk, next_page_token=token
            )

        return await self.h.run("ListServiceConnections", request, context, body)

    def _decide(self, request: Any, accept: bool) -> Any:
        if request.service not in self.b.services:
            raise not_found("service", request.service)
        targets = [
            c
            for c in self.b.connections.values()
            if c.service == request.service and c.endpoint_id in request.endpoint_ids
        ]
        failures = [
            provider_service_pb2.ConnectionDecisionFailure(
                endpoint_id=e, code="InvalidVpcEndpointId.NotFound", message="no such endpoint"
            )
            for e in request.endpoint_ids
            if e not in {c.endpoint_id for c in targets}
        ]

        def decide() -> None:
            for c in targets:
                if accept:
                    self.b.set_connection(
                        c.name,
                        state=Connection.STATE_AVAILABLE,
                        dns_entries=[
                            common_pb2.DnsEntry(
                                dns_name=f"{c.endpoint_id}.vpce-svc.{c.region}.vpce.amazonaws.com",
                                hosted_zone_id="Z7HUB22UULQXV",
                            )
                        ],
                        network_interfaces=[
                            connection_pb2.NetworkInterface(
                                network_interface_id="eni-0a1",
                                subnet_id=c.subnet_ids[0] if c.subnet_ids else "",
                                private_ip_address="10.1.0.10",
                            )
                        ],
                    )
                else:
                    self.b.set_connection(c.name, state=Connection.STATE_REJECTED)

        response_type = (
            provider_service_pb2.AcceptServiceConnectionsResponse
            if accept
            else provider_service_pb2.RejectServiceConnectionsResponse
        )
        return self.b.new_operation(
            request.service,
            "accept" if accept else "reject",
            [("deciding", decide)],
            lambda: response_type(
                service_connections=[self._service_connection(c) for c in targets],
                failures=failures,
            ),
            request.request_id,
        )

    async def AcceptServiceConnections(self, request: Any, context: Any) -> Any:
        return await self.h.run(
            "AcceptServiceConnections", request, context, lambda: self._decide(request, True)
        )

    async def RejectServiceConnections(self, request: Any, context: Any) -> Any:
        return await self.h.run(
            "RejectServiceConnections", request, context, lambda: self._decide(request, False)
        )

    async def WatchServices(self, request: Any, context: Any) -> Any:
        async for item in watch(self.b, "services", request, context):
            yield provider_service_pb2.WatchServicesResponse(**item)


class Consumer(consumer_service_pb2_grpc.ConsumerServiceServicer):
    def __init__(self, handlers: Handlers) -> None:
        self.h, self.b = handlers, handlers.backend

    async def CreateConnection(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            spec = request.connection
            if spec.consumer_account not in self.b.accounts:
                raise Abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"account {spec.consumer_account!r} is not registered",
                    "ACCOUNT_NOT_REGISTERED",
                    {"account": spec.consumer_account},
                )
            if spec.service and spec.service not in self.b.services:
                raise not_found("service", spec.service)
            connection_id = request.connection_id or f"conn-{uuid.uuid4().hex[:6]}"
            name = f"{request.parent}/connections/{connection_id}"
            if name in self.b.connections:
                raise Abort(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"connection {name!r} already exists",
                    "CONNECTION_ALREADY_EXISTS",
                    {"connection": name},
                )
            connection = Connection()
            connection.CopyFrom(spec)
            connection.name = name
            connection.state = Connection.STATE_CREATING
            connection.etag = "1"
            self.b.connections[name] = connection
            self.b.publish("connections", common_pb2.EVENT_TYPE_ADDED, connection)
            automatic = (
                spec.service
                and self.b.services[spec.service].acceptance_policy.mode
                == service_pb2.AcceptancePolicy.MODE_AUTOMATIC
            )

            def finish() -> Any:
                self.b.set_connection(
                    name,
                    state=Connection.STATE_AVAILABLE
                    if automatic
                    else Connection.STATE_PENDING_ACCEPTANCE,
                    endpoint_id=f"vpce-{uuid.uuid4().hex[:12]}",
                )
                return self.b.connections[name]

            return self.b.new_operation(
                name,
                "create",
                [
                    ("checking the target service", lambda: None),
                    ("creating the endpoint", lambda: None),
                ],
                finish,
                request.request_id,
            )

        return await self.h.run("CreateConnection", request, context, body)

    async def GetConnection(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            if request.name not in self.b.connections:
                raise not_found("connection", request.name)
            return self.b.connections[request.name]

        return await self.h.run("GetConnection", request, context, body)

    async def ListConnections(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            items = sorted(
                (c for n, c in self.b.connections.items() if n.startswith(request.parent + "/")),
                key=lambda c: c.name,
            )
            chunk, token = page(apply_filter(items, request.filter), request, "connections")
            return consumer_service_pb2.ListConnectionsResponse(
                connections=chunk, next_page_token=token
            )

        return await self.h.run("ListConnections", request, context, body)

    async def UpdateConnection(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            name = request.connection.name
            if name not in self.b.connections:
                raise not_found("connection", name)
            return self.b.new_operation(
                name,
                "update",
                [],
                lambda: self.b.connections[name],
                request.request_id,
            )

        return await self.h.run("UpdateConnection", request, context, body)

    async def DeleteConnection(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            name = request.name
            if name not in self.b.connections:
                raise not_found("connection", name)

            def finish() -> None:
                connection = self.b.connections.pop(name)
                self.b.publish("connections", common_pb2.EVENT_TYPE_DELETED, connection)

            return self.b.new_operation(
                name,
                "delete",
                [
                    (
                        "deleting the endpoint",
                        lambda: self.b.set_connection(name, state=Connection.STATE_DELETING),
                    )
                ],
                finish,
                request.request_id,
            )

        return await self.h.run("DeleteConnection", request, context, body)

    async def WatchConnections(self, request: Any, context: Any) -> Any:
        async for item in watch(self.b, "connections", request, context):
            yield consumer_service_pb2.WatchConnectionsResponse(
                type=item["type"], connection=item.get("service"), event_time=item.get("event_time")
            )


async def watch(backend: Backend, kind: str, request: Any, context: Any) -> Any:
    backend.watch_requests.append(request)
    store = backend.services if kind == "services" else backend.connections
    queue: asyncio.Queue[Any] = asyncio.Queue()
    subscription = (kind, request.parent, queue)
    backend.watchers.append(subscription)
    try:
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        if request.send_initial:
            for name in sorted(store):
                if name.startswith(request.parent + "/"):
                    yield {
                        "type": common_pb2.EVENT_TYPE_EXISTING,
                        "service": store[name],
                        "event_time": now,
                    }
            yield {"type": common_pb2.EVENT_TYPE_SYNCED}
        if backend.watch_fault is not None:
            mode, mutate = backend.watch_fault
            backend.watch_fault = None
            backend.watchers.remove(subscription)  # changes now happen "while disconnected"
            mutate()
            if mode == "abort":
                await context.abort(grpc.StatusCode.UNAVAILABLE, "server restarting")
            return
        while True:
            event, resource = await queue.get()
            copy = type(resource)()
            copy.CopyFrom(resource)
            yield {"type": event, "service": copy, "event_time": now}
    finally:
        if subscription in backend.watchers:
            backend.watchers.remove(subscription)


class Accounts(account_service_pb2_grpc.AccountServiceServicer):
    def __init__(self, handlers: Handlers) -> None:
        self.h, self.b = handlers, handlers.backend

    async def RegisterAccount(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            if not re.fullmatch(r"\d{12}", request.account_id):
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"account_id {request.account_id!r} is not a 12-digit AWS account id",
                    "INVALID_ACCOUNT_ID",
                    {"account_id": request.account_id},
                    [("account_id", "must be 12 digits")],
                )
            name = f"{request.parent}/accounts/{request.account_id}"
            if name in self.b.accounts:
                raise Abort(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"account {name!r} already exists",
                    "ACCOUNT_ALREADY_EXISTS",
                    {"account": name},
                )
            account = account_pb2.Account()
            account.CopyFrom(request.account)
            account.name, account.aws_account_id, account.etag = name, request.account_id, "1"
            if not request.validate_only:
                self.b.accounts[name] = account
            return account

        return await self.h.run("RegisterAccount", request, context, body)

    async def GetAccount(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            if request.name not in self.b.accounts:
                raise not_found("account", request.name)
            return self.b.accounts[request.name]

        return await self.h.run("GetAccount", request, context, body)

    async def ListAccounts(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            items = sorted(
                (a for n, a in self.b.accounts.items() if n.startswith(request.parent + "/")),
                key=lambda a: a.name,
            )
            chunk, token = page(apply_filter(items, request.filter), request, "accounts")
            return account_service_pb2.ListAccountsResponse(accounts=chunk, next_page_token=token)

        return await self.h.run("ListAccounts", request, context, body)

    async def UpdateAccount(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            name = request.account.name
            if name not in self.b.accounts:
                raise not_found("account", name)
            account = self.b.accounts[name]
            if "labels" in request.update_mask.paths:
                account.labels.clear()
                account.labels.update(request.account.labels)
            if "display_name" in request.update_mask.paths:
                account.display_name = request.account.display_name
            self.b.touch(account)
            return account

        return await self.h.run("UpdateAccount", request, context, body)

    async def DeleteAccount(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            if request.name not in self.b.accounts:
                raise not_found("account", request.name)
            del self.b.accounts[request.name]
            return empty_pb2.Empty()

        return await self.h.run("DeleteAccount", request, context, body)


class Operations(operations_pb2_grpc.OperationsServicer):
    def __init__(self, handlers: Handlers) -> None:
        self.h, self.b = handlers, handlers.backend

    def _get(self, name: str) -> FakeOperation:
        if name not in self.b.operations:
            raise not_found("operation", name)
        return self.b.operations[name]

    async def GetOperation(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            self._get(request.name)
            self.b.advance(request.name)
            return self.b.operations[request.name].proto

        return await self.h.run("GetOperation", request, context, body)

    async def ListOperations(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            items = [o.proto for o in self.b.operations.values()]
            if request.filter == "done = false":
                items = [o for o in items if not o.done]
            elif request.filter == "done = true":
                items = [o for o in items if o.done]
            elif request.filter:
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "bad filter",
                    "INVALID_FILTER",
                    {},
                    [("filter", "unsupported")],
                )
            chunk, token = page(items, request, "operations")
            return operations_pb2.ListOperationsResponse(operations=chunk, next_page_token=token)

        return await self.h.run("ListOperations", request, context, body)

    async def WaitOperation(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            op = self._get(request.name)
            while not op.proto.done:
                self.b.advance(request.name)
            return op.proto

        return await self.h.run("WaitOperation", request, context, body)

    async def CancelOperation(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            op = self._get(request.name)
            metadata = common_pb2.OperationMetadata()
            op.proto.metadata.Unpack(metadata)
            metadata.cancel_requested = True
            op.proto.metadata.Pack(metadata)
            return empty_pb2.Empty()

        return await self.h.run("CancelOperation", request, context, body)

    async def DeleteOperation(self, request: Any, context: Any) -> Any:
        def body() -> Any:
            self._get(request.name)
            del self.b.operations[request.name]
            return empty_pb2.Empty()

        return await self.h.run("DeleteOperation", request, context, body)


class FakeServer:
    """The fake on its own loop and thread; `address` is `127.0.0.1:{port}`."""

    def __init__(self) -> None:
        self.backend = Backend()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.address = ""
        self._server: grpc.aio.Server | None = None

    def start(self) -> FakeServer:
        self.thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        self.address = f"127.0.0.1:{port}"
        return self

    async def _start(self) -> int:
        server = grpc.aio.server()
        handlers = Handlers(self.backend)
        provider_service_pb2_grpc.add_ProviderServiceServicer_to_server(Provider(handlers), server)
        consumer_service_pb2_grpc.add_ConsumerServiceServicer_to_server(Consumer(handlers), server)
        account_service_pb2_grpc.add_AccountServiceServicer_to_server(Accounts(handlers), server)
        operations_pb2_grpc.add_OperationsServicer_to_server(Operations(handlers), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._server = server
        return port

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the server's loop (for state changes that publish watch events)."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(None), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
