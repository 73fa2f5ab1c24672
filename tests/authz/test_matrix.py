"""Role x RPC x same/other project: every cell of the matrix, generated from the descriptors.

The methods come from the services the server registers (api/server.py SERVICE_NAMES), so an
RPC added later is in the matrix — and fails `test_every_served_method_has_a_permission` until
api/authz.py gives it a rule. Each principal holds one role on project A and nothing on B:

- same project: allowed exactly when the role grants the method's permission; an allowed call
  is never PERMISSION_DENIED/UNAUTHENTICATED (reads must succeed; mutations run with
  validate_only, so the matrix changes nothing);
- other project: always refused — PERMISSION_DENIED, or NOT_FOUND for operations, whose
  existence must not leak — and the caller-scoped methods (ListOperations,
  TestIamPermissions) reveal nothing of B;
- no credentials: UNAUTHENTICATED everywhere.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.iam.v1 import iam_policy_pb2
from google.longrunning import operations_pb2
from google.protobuf import descriptor_pool, duration_pb2, field_mask_pb2, message_factory

from linkplane.server.api import authz
from linkplane.server.api import server as api_server
from linkplane.v1 import (
    account_pb2,
    account_service_pb2,
    connection_pb2,
    consumer_service_pb2,
    provider_service_pb2,
    service_pb2,
)
from tests.authz.conftest import ROLE_OF, Caller, aws_account_id, new_project

PROVIDER_ID = "111111111111"
CONSUMER_ID = "222222222222"
ROLES = ("viewer", "consumer", "provider", "admin", "nobody")
READS_THAT_MUST_SUCCEED = {
    "GetService",
    "ListServices",
    "GetConnection",
    "ListConnections",
    "GetAccount",
    "ListAccounts",
    "GetOperation",
    "ListOperations",
    "WaitOperation",
    "ListServiceConnections",
    "GetIamPolicy",
    "TestIamPermissions",
    "WatchServices",
    "WatchConnections",
    "PublishService",
    "UpdateService",
    "CreateConnection",
    "UpdateConnection",
    "DeleteConnection",
    "RegisterAccount",
    "UpdateAccount",
    "SetIamPolicy",
}


def served_methods() -> list[tuple[str, Any]]:
    """(full method name, method descriptor) of every method of every served service."""
    pool = descriptor_pool.Default()
    out = []
    for service_name in api_server.SERVICE_NAMES:
        service = pool.FindServiceByName(service_name)
        for method in service.methods:
            out.append((f"/{service.full_name}/{method.name}", method))
    return out


def test_every_served_method_has_a_permission():
    missing = [name for name, _ in served_methods() if name not in authz.RULES]
    assert missing == [], f"add a Rule to api/authz.py RULES for: {missing}"
    served = {name for name, _ in served_methods()}
    stale = sorted(set(authz.RULES) - served)
    assert stale == [], f"rules for methods the server does not serve: {stale}"
    # Health and reflection are the only services outside the table, and they are named.
    assert set(authz.EXEMPT_SERVICES) == {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    assert not set(authz.EXEMPT_SERVICES) & set(api_server.SERVICE_NAMES)


def test_every_permission_belongs_to_a_role_and_admin_implies_the_others():
    permissions = {rule.permission for rule in authz.RULES.values()}
    assert permissions <= authz.ROLES[authz.ADMIN]
    for role in (authz.VIEWER, authz.CONSUMER, authz.PROVIDER):
        assert authz.ROLES[role] <= authz.ROLES[authz.ADMIN]
    # One permission per RPC: no two methods share one.
    assert len(permissions) == len(authz.RULES)


@dataclass
class Project:
    """A project's resources, created by the bootstrap admin."""

    id: str
    service: str
    connection: str
    account: str
    consumer_account: str
    operation: str

    @property
    def parent(self) -> str:
        return f"projects/{self.id}"


async def make_project(root: Caller, project: str) -> Project:
    await root.register(project, PROVIDER_ID, role_arn=f"arn:aws:iam::{PROVIDER_ID}:role/lp")
    await root.register(project, CONSUMER_ID)
    published = await root.provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}", service_id="svc", service=_service(project)
        )
    )
    await root.consumer.CreateConnection(
        consumer_service_pb2.CreateConnectionRequest(
            parent=f"projects/{project}",
            connection_id="conn",
            connection=_connection(project),
        )
    )
    return Project(
        id=project,
        service=f"projects/{project}/services/svc",
        connection=f"projects/{project}/connections/conn",
        account=f"projects/{project}/accounts/{PROVIDER_ID}",
        consumer_account=f"projects/{project}/accounts/{CONSUMER_ID}",
        operation=published.name,
    )


def _service(project: str) -> service_pb2.Service:
    return service_pb2.Service(
        provider_account=f"projects/{project}/accounts/{PROVIDER_ID}",
        region="us-east-1",
        load_balancer=service_pb2.LoadBalancer(
            managed=service_pb2.ManagedLoadBalancer(
                subnet_ids=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                listeners=[service_pb2.Listener(port=443)],
                targets=[service_pb2.Target(id="10.0.1.10")],
            )
        ),
        allowed_principals=[CONSUMER_ID],
    )


def _connection(project: str) -> connection_pb2.Connection:
    return connection_pb2.Connection(
        service=f"projects/{project}/services/svc",
        consumer_account=f"projects/{project}/accounts/{CONSUMER_ID}",
        region="us-east-1",
        vpc_id="vpc-0123456789abcdef0",
        subnet_ids=["subnet-0fedcba9876543210"],
    )


Builder = Callable[[Project, Caller], Awaitable[Any]]


async def _policy_request(p: Project, root: Caller) -> Any:
    current = await root.iam.GetIamPolicy(iam_policy_pb2.GetIamPolicyRequest(resource=p.parent))
    return iam_policy_pb2.SetIamPolicyRequest(resource=p.parent, policy=current)


def _sync(build: Callable[[Project], Any]) -> Builder:
    async def builder(p: Project, root: Caller) -> Any:
        return build(p)

    return builder


MASK = field_mask_pb2.FieldMask(paths=["display_name"])
VPCE = "vpce-0123456789abcdef0"
P = "/linkplane.v1.ProviderService/"
C = "/linkplane.v1.ConsumerService/"
A = "/linkplane.v1.AccountService/"
OPS = "/google.longrunning.Operations/"
IAM = "/google.iam.v1.IAMPolicy/"

# Valid requests (mutations with validate_only) so an allowed cell shows the call going through.
BUILDERS: dict[str, Builder] = {
    P + "PublishService": _sync(
        lambda p: provider_service_pb2.PublishServiceRequest(
            parent=p.parent, service_id="other", service=_service(p.id), validate_only=True
        )
    ),
    P + "GetService": _sync(lambda p: provider_service_pb2.GetServiceRequest(name=p.service)),
    P + "ListServices": _sync(lambda p: provider_service_pb2.ListServicesRequest(parent=p.parent)),
    P + "UpdateService": _sync(
        lambda p: provider_service_pb2.UpdateServiceRequest(
            service=service_pb2.Service(name=p.service, display_name="x"),
            update_mask=MASK,
            validate_only=True,
        )
    ),
    P + "DeleteService": _sync(
        lambda p: provider_service_pb2.DeleteServiceRequest(name=p.service, validate_only=True)
    ),
    P + "ListServiceConnections": _sync(
        lambda p: provider_service_pb2.ListServiceConnectionsRequest(parent=p.service)
    ),
    P + "AcceptServiceConnections": _sync(
        lambda p: provider_service_pb2.AcceptServiceConnectionsRequest(
            service=p.service, endpoint_ids=[VPCE], validate_only=True
        )
    ),
    P + "RejectServiceConnections": _sync(
        lambda p: provider_service_pb2.RejectServiceConnectionsRequest(
            service=p.service, endpoint_ids=[VPCE], validate_only=True
        )
    ),
    P + "WatchServices": _sync(
        lambda p: provider_service_pb2.WatchServicesRequest(parent=p.parent, send_initial=True)
    ),
    C + "CreateConnection": _sync(
        lambda p: consumer_service_pb2.CreateConnectionRequest(
            parent=p.parent,
            connection_id="other",
            connection=_connection(p.id),
            validate_only=True,
        )
    ),
    C + "GetConnection": _sync(
        lambda p: consumer_service_pb2.GetConnectionRequest(name=p.connection)
    ),
    C + "ListConnections": _sync(
        lambda p: consumer_service_pb2.ListConnectionsRequest(parent=p.parent)
    ),
    C + "UpdateConnection": _sync(
        lambda p: consumer_service_pb2.UpdateConnectionRequest(
            connection=connection_pb2.Connection(name=p.connection, display_name="x"),
            update_mask=MASK,
            validate_only=True,
        )
    ),
    C + "DeleteConnection": _sync(
        lambda p: consumer_service_pb2.DeleteConnectionRequest(
            name=p.connection, validate_only=True
        )
    ),
    C + "WatchConnections": _sync(
        lambda p: consumer_service_pb2.WatchConnectionsRequest(parent=p.parent, send_initial=True)
    ),
    A + "RegisterAccount": _sync(
        lambda p: account_service_pb2.RegisterAccountRequest(
            parent=p.parent,
            account_id=aws_account_id(),
            account=account_pb2.Account(display_name="x"),
            validate_only=True,
        )
    ),
    A + "GetAccount": _sync(lambda p: account_service_pb2.GetAccountRequest(name=p.account)),
    A + "ListAccounts": _sync(lambda p: account_service_pb2.ListAccountsRequest(parent=p.parent)),
    A + "UpdateAccount": _sync(
        lambda p: account_service_pb2.UpdateAccountRequest(
            account=account_pb2.Account(name=p.account, display_name="x"),
            update_mask=MASK,
            validate_only=True,
        )
    ),
    A + "DeleteAccount": _sync(
        lambda p: account_service_pb2.DeleteAccountRequest(name=p.account, validate_only=True)
    ),
    OPS + "GetOperation": _sync(lambda p: operations_pb2.GetOperationRequest(name=p.operation)),
    OPS + "ListOperations": _sync(lambda p: operations_pb2.ListOperationsRequest(page_size=1000)),
    OPS + "WaitOperation": _sync(
        lambda p: operations_pb2.WaitOperationRequest(
            name=p.operation, timeout=duration_pb2.Duration(seconds=0)
        )
    ),
    OPS + "CancelOperation": _sync(
        lambda p: operations_pb2.CancelOperationRequest(name=p.operation)
    ),
    OPS + "DeleteOperation": _sync(
        lambda p: operations_pb2.DeleteOperationRequest(name=p.operation)
    ),
    IAM + "GetIamPolicy": _sync(lambda p: iam_policy_pb2.GetIamPolicyRequest(resource=p.parent)),
    IAM + "SetIamPolicy": _policy_request,
    IAM + "TestIamPermissions": _sync(
        lambda p: iam_policy_pb2.TestIamPermissionsRequest(
            resource=p.parent, permissions=sorted(authz.ALL_PERMISSIONS)
        )
    ),
}


def _generic(method: Any) -> Builder:
    """A request naming the project's resource in the rule's field (for methods added later)."""
    request_class = message_factory.GetMessageClass(method.input_type)
    rule = authz.RULES[f"/{method.containing_service.full_name}/{method.name}"]

    async def builder(p: Project, root: Caller) -> Any:
        value = {
            authz.Shape.PROJECT: p.parent,
            authz.Shape.SERVICE: p.service,
            authz.Shape.CONNECTION: p.connection,
            authz.Shape.ACCOUNT: p.account,
            authz.Shape.OPERATION: p.operation,
        }.get(rule.shape, "")
        request = request_class()
        if rule.field:
            *path, last = rule.field.split(".")
            target = request
            for part in path:
                target = getattr(target, part)
            setattr(target, last, value)
        return request

    return builder


@dataclass
class Outcome:
    code: grpc.StatusCode
    response: Any


async def invoke(caller: Caller, name: str, method: Any, request: Any) -> Outcome:
    response_class = message_factory.GetMessageClass(method.output_type)
    kwargs = {
        "request_serializer": type(request).SerializeToString,
        "response_deserializer": response_class.FromString,
    }
    try:
        if method.server_streaming:
            call = caller.channel.unary_stream(name, **kwargs)(request, timeout=10)
            async for first in call:
                call.cancel()
                return Outcome(grpc.StatusCode.OK, first)
            return Outcome(grpc.StatusCode.OK, None)
        response = await caller.channel.unary_unary(name, **kwargs)(request, timeout=30)
        return Outcome(grpc.StatusCode.OK, response)
    except grpc.aio.AioRpcError as error:
        return Outcome(error.code(), None)


def _unimplemented(name: str) -> bool:
    """A method the servicer does not implement yet (the generated base answers UNIMPLEMENTED
    without running linkplane's wrappers): reported, not counted as a success."""
    from linkplane.server.api import accounts, consumer, iam, operations, provider

    servicers = (
        provider.ProviderServicer,
        consumer.ConsumerServicer,
        accounts.AccountServicer,
        operations.OperationsServicer,
        iam.IamPolicyServicer,
    )
    method = name.rsplit("/", 1)[1]
    for servicer in servicers:
        handler = getattr(servicer, method, None)
        if handler is not None:
            return not hasattr(handler, "__wrapped__")
    return True


@pytest.fixture(scope="module")
async def world(callers: dict[str | None, Caller]) -> dict[str, Project]:
    root = callers["root"]
    a, b = new_project("a"), new_project("b")
    projects = {"same": await make_project(root, a), "other": await make_project(root, b)}
    for principal, role in ROLE_OF.items():
        await root.grant(a, role, principal)
    # B has an owner of its own, so its policy is not empty.
    await root.grant(b, "roles/linkplane.admin", "bob")
    return projects


@pytest.mark.timeout(120)
async def test_the_matrix(callers, world):
    root = callers["root"]
    same, other = world["same"], world["other"]
    failures: list[str] = []
    cross_project_successes = 0
    cells = 0
    for name, method in served_methods():
        rule = authz.RULES[name]
        build = BUILDERS.get(name) or _generic(method)
        short = method.name
        pending = _unimplemented(name)
        for role in ROLES:
            caller = callers[role]
            granted = authz.ROLES.get(ROLE_OF.get(role, ""), authz.PUBLIC)
            for where, project in (("same", same), ("other", other)):
                cells += 1
                outcome = await invoke(caller, name, method, await build(project, root))
                cell = f"{role:8} {where:5} {short}: {outcome.code.name}"
                if pending and outcome.code == grpc.StatusCode.UNIMPLEMENTED:
                    continue
                if rule.shape is authz.Shape.CALLER or rule.permission in authz.PUBLIC:
                    # Answers about the caller only: OK, and nothing of B shows.
                    leaked = _mentions(outcome.response, other.id)
                    if outcome.code != grpc.StatusCode.OK or leaked:
                        failures.append(f"{cell} (leaked B: {leaked})")
                    if where == "other" and _grants_anything(outcome.response):
                        cross_project_successes += 1
                        failures.append(f"{cell}: holds permissions on B")
                    continue
                allowed = where == "same" and rule.permission in granted
                if allowed:
                    refused = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}
                    if outcome.code in refused:
                        failures.append(f"{cell}, expected allowed")
                    elif short in READS_THAT_MUST_SUCCEED and outcome.code != grpc.StatusCode.OK:
                        failures.append(f"{cell}, expected OK")
                else:
                    expected = (
                        grpc.StatusCode.NOT_FOUND
                        if rule.shape is authz.Shape.OPERATION
                        else grpc.StatusCode.PERMISSION_DENIED
                    )
                    if outcome.code != expected:
                        failures.append(f"{cell}, expected {expected.name}")
                    if where == "other" and outcome.code == grpc.StatusCode.OK:
                        cross_project_successes += 1
        # Without credentials nothing answers.
        anonymous = await invoke(callers[None], name, method, await build(same, root))
        cells += 1
        if anonymous.code != grpc.StatusCode.UNAUTHENTICATED and not pending:
            failures.append(f"anonymous {short}: {anonymous.code.name}")
    assert failures == [], "\n".join(failures)
    assert cells >= 5 * 2 * 30
    assert cross_project_successes == 0


def _mentions(message: Any, text: str) -> bool:
    return message is not None and text.encode() in message.SerializeToString()


def _grants_anything(message: Any) -> bool:
    return isinstance(message, iam_policy_pb2.TestIamPermissionsResponse) and bool(
        set(message.permissions) - authz.PUBLIC
    )


async def test_list_operations_shows_only_the_callers_projects(callers, world):
    same, other = world["same"], world["other"]
    listed = await callers["viewer"].operations.ListOperations(
        operations_pb2.ListOperationsRequest(page_size=1000)
    )
    names = {op.name for op in listed.operations}
    assert same.operation in names
    assert other.operation not in names
    nothing = await callers["nobody"].operations.ListOperations(
        operations_pb2.ListOperationsRequest(page_size=1000)
    )
    assert list(nothing.operations) == []
    everything = await callers["root"].operations.ListOperations(
        operations_pb2.ListOperationsRequest(page_size=1000)
    )
    assert {same.operation, other.operation} <= {op.name for op in everything.operations}


async def test_an_unknown_operation_and_someone_elses_answer_alike(callers, world):
    viewer = callers["viewer"]
    answers = []
    for name in (world["other"].operation, f"operations/{uuid.uuid4().hex}"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await viewer.operations.GetOperation(operations_pb2.GetOperationRequest(name=name))
        answers.append((caught.value.code(), caught.value.details().replace(name, "NAME")))
    assert answers[0] == answers[1]
    assert answers[0][0] == grpc.StatusCode.NOT_FOUND
