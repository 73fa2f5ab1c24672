"""Authorization: one permission per RPC, checked in one place before any handler runs.

`rpc.unary`/`rpc.streaming` call `Authorizer.check` right after authentication. The check finds
the method's `Rule` in `RULES` (keyed by the full gRPC method name), derives the project from
the request's resource field, and asks whether the caller's roles on that project grant the
rule's permission. Roles come from the project's google.iam.v1 policy (api/iam.py, stored by
storage/iam.py) and from the bootstrap administrators (`LINKPLANE_ADMINS`).

Existence never leaks: for project-scoped names the decision depends on the project alone, so
a caller without the permission gets PERMISSION_DENIED whether the resource exists or not.
Operations (`operations/{id}`) carry no project in their name; a caller who may not see an
operation's project gets NOT_FOUND, exactly like for an operation that does not exist.

With authentication off (dev mode) every caller is the local administrator.

Why one module of ~475 lines: ``RULES`` names the permission of every RPC (a test fails if one
is missing); keeping that table next to the one check that reads it is the point.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from google.protobuf.message import Message

from linkplane.server.api import fields
from linkplane.server.domain import errors, names, specs
from linkplane.server.storage import database, iam, models, operations, records

VIEWER = "roles/linkplane.viewer"
CONSUMER = "roles/linkplane.consumer"
PROVIDER = "roles/linkplane.provider"
ADMIN = "roles/linkplane.admin"
MEMBER_PREFIX = "user:"


class Shape(StrEnum):
    """How a request's resource field names its project."""

    PROJECT = "projects/{project}"
    SERVICE = "projects/{project}/services/{service}"
    CONNECTION = "projects/{project}/connections/{connection}"
    ACCOUNT = "projects/{project}/accounts/{account}"
    OPERATION = "operations/{operation}"
    CALLER = "(none: the handler returns only what the caller may see)"


_COLLECTIONS = {
    Shape.SERVICE: "services",
    Shape.CONNECTION: "connections",
    Shape.ACCOUNT: "accounts",
}


@dataclass(frozen=True)
class Rule:
    """What one RPC needs: a permission on the project named by `field`."""

    permission: str
    field: str  # dotted path of the request field naming the resource; "" for Shape.CALLER
    shape: Shape
    # Account references (dotted paths) that must name an account of the same project.
    references: tuple[str, ...] = ()


def _m(service: str, method: str) -> str:
    return f"/{service}/{method}"


_PROVIDER = "linkplane.v1.ProviderService"
_CONSUMER = "linkplane.v1.ConsumerService"
_ACCOUNTS = "linkplane.v1.AccountService"
_OPERATIONS = "google.longrunning.Operations"
_IAM = "google.iam.v1.IAMPolicy"
_AUDIT = "linkplane.v1.AuditService"

RULES: Mapping[str, Rule] = {
    _m(_PROVIDER, "PublishService"): Rule(
        "linkplane.services.publish", "parent", Shape.PROJECT, ("service.provider_account",)
    ),
    _m(_PROVIDER, "GetService"): Rule("linkplane.services.get", "name", Shape.SERVICE),
    _m(_PROVIDER, "ListServices"): Rule("linkplane.services.list", "parent", Shape.PROJECT),
    _m(_PROVIDER, "UpdateService"): Rule(
        "linkplane.services.update", "service.name", Shape.SERVICE, ("service.provider_account",)
    ),
    _m(_PROVIDER, "DeleteService"): Rule("linkplane.services.delete", "name", Shape.SERVICE),
    _m(_PROVIDER, "VerifyServicePrivateDns"): Rule(
        "linkplane.services.verifyPrivateDns", "name", Shape.SERVICE
    ),
    _m(_PROVIDER, "ListServiceConnections"): Rule(
        "linkplane.serviceConnections.list", "parent", Shape.SERVICE
    ),
    _m(_PROVIDER, "AcceptServiceConnections"): Rule(
        "linkplane.serviceConnections.accept", "service", Shape.SERVICE
    ),
    _m(_PROVIDER, "RejectServiceConnections"): Rule(
        "linkplane.serviceConnections.reject", "service", Shape.SERVICE
    ),
    _m(_PROVIDER, "WatchServices"): Rule("linkplane.services.watch", "parent", Shape.PROJECT),
    _m(_CONSUMER, "CreateConnection"): Rule(
        "linkplane.connections.create",
        "parent",
        Shape.PROJECT,
        ("connection.consumer_account",),
    ),
    _m(_CONSUMER, "GetConnection"): Rule("linkplane.connections.get", "name", Shape.CONNECTION),
    _m(_CONSUMER, "ListConnections"): Rule("linkplane.connections.list", "parent", Shape.PROJECT),
    _m(_CONSUMER, "UpdateConnection"): Rule(
        "linkplane.connections.update",
        "connection.name",
        Shape.CONNECTION,
        ("connection.consumer_account",),
    ),
    _m(_CONSUMER, "DeleteConnection"): Rule(
        "linkplane.connections.delete", "name", Shape.CONNECTION
    ),
    _m(_CONSUMER, "WatchConnections"): Rule("linkplane.connections.watch", "parent", Shape.PROJECT),
    _m(_ACCOUNTS, "RegisterAccount"): Rule("linkplane.accounts.register", "parent", Shape.PROJECT),
    _m(_ACCOUNTS, "GetAccount"): Rule("linkplane.accounts.get", "name", Shape.ACCOUNT),
    _m(_ACCOUNTS, "ListAccounts"): Rule("linkplane.accounts.list", "parent", Shape.PROJECT),
    _m(_ACCOUNTS, "UpdateAccount"): Rule(
        "linkplane.accounts.update", "account.name", Shape.ACCOUNT
    ),
    _m(_ACCOUNTS, "DeleteAccount"): Rule("linkplane.accounts.delete", "name", Shape.ACCOUNT),
    _m(_ACCOUNTS, "CheckAccount"): Rule("linkplane.accounts.check", "name", Shape.ACCOUNT),
    _m(_OPERATIONS, "GetOperation"): Rule("linkplane.operations.get", "name", Shape.OPERATION),
    _m(_OPERATIONS, "ListOperations"): Rule("linkplane.operations.list", "", Shape.CALLER),
    _m(_OPERATIONS, "WaitOperation"): Rule("linkplane.operations.wait", "name", Shape.OPERATION),
    _m(_OPERATIONS, "CancelOperation"): Rule(
        "linkplane.operations.cancel", "name", Shape.OPERATION
    ),
    _m(_OPERATIONS, "DeleteOperation"): Rule(
        "linkplane.operations.delete", "name", Shape.OPERATION
    ),
    _m(_AUDIT, "ListAuditEvents"): Rule("linkplane.auditEvents.list", "parent", Shape.PROJECT),
    _m(_IAM, "GetIamPolicy"): Rule("linkplane.projects.getIamPolicy", "resource", Shape.PROJECT),
    _m(_IAM, "SetIamPolicy"): Rule("linkplane.projects.setIamPolicy", "resource", Shape.PROJECT),
    # Like Google's: anyone may ask which of some permissions they hold; the answer is about
    # the caller only, and is empty on a project where the caller holds nothing.
    _m(_IAM, "TestIamPermissions"): Rule(
        "linkplane.projects.testIamPermissions", "resource", Shape.PROJECT
    ),
}
"""Every RPC the server answers, keyed by full method name (tests/authz checks completeness)."""

EXEMPT_SERVICES: Mapping[str, str] = {
    "grpc.health.v1.Health": "anonymous, so load balancers and orchestrators can probe",
    "grpc.reflection.v1alpha.ServerReflection": "describes the API only, no data; "
    "LINKPLANE_REFLECTION=false turns it off",
}
"""Services served without authentication or authorization, and why."""

# Permissions every authenticated caller holds on every project (see TestIamPermissions).
PUBLIC = frozenset({"linkplane.projects.testIamPermissions"})

_READ = (
    "linkplane.services.get",
    "linkplane.services.list",
    "linkplane.services.watch",
    "linkplane.connections.get",
    "linkplane.connections.list",
    "linkplane.connections.watch",
    "linkplane.accounts.get",
    "linkplane.accounts.list",
    "linkplane.operations.get",
    "linkplane.operations.list",
    "linkplane.operations.wait",
    "linkplane.auditEvents.list",
)
_OPERATE = ("linkplane.operations.cancel", "linkplane.operations.delete")
_CONNECT = (
    "linkplane.connections.create",
    "linkplane.connections.update",
    "linkplane.connections.delete",
)
_PROVIDE = (
    "linkplane.services.publish",
    "linkplane.services.update",
    "linkplane.services.delete",
    "linkplane.services.verifyPrivateDns",
    "linkplane.serviceConnections.list",
    "linkplane.serviceConnections.accept",
    "linkplane.serviceConnections.reject",
)
_ADMINISTER = (
    "linkplane.accounts.register",
    "linkplane.accounts.update",
    "linkplane.accounts.delete",
    # Assumes the account's role and calls AWS with it: as sensitive as seeing the role ARN.
    "linkplane.accounts.check",
    "linkplane.projects.getIamPolicy",
    "linkplane.projects.setIamPolicy",
)

ROLES: Mapping[str, frozenset[str]] = {
    VIEWER: frozenset(_READ) | PUBLIC,
    CONSUMER: frozenset(_READ + _OPERATE + _CONNECT) | PUBLIC,
    PROVIDER: frozenset(_READ + _OPERATE + _PROVIDE) | PUBLIC,
    ADMIN: frozenset(_READ + _OPERATE + _CONNECT + _PROVIDE + _ADMINISTER) | PUBLIC,
}
"""Predefined roles → the permissions they grant; admin implies the others."""

ROLE_TITLES: Mapping[str, str] = {
    VIEWER: "read services, connections, accounts (without role ARNs), operations and the "
    "audit log",
    CONSUMER: "viewer, plus create, update and delete connections",
    PROVIDER: "viewer, plus publish, update and delete services, see their connection "
    "inventory and accept or reject connection requests",
    ADMIN: "everything: the above, accounts (role ARNs included) and the project's IAM policy",
}

ALL_PERMISSIONS = frozenset().union(*ROLES.values())

# Who may see an account's role ARN: holders of this (admins).
SEE_ROLE_ARN = "linkplane.accounts.update"


def member(principal: str) -> str:
    return f"{MEMBER_PREFIX}{principal}"


def principal_of(value: str) -> str:
    """`user:alice` or `alice` → `alice` (LINKPLANE_ADMINS may use either form)."""
    return value.removeprefix(MEMBER_PREFIX)


def method_name(servicer: object, handler: str) -> str:
    """`/package.Service/Method` of a handler of a generated servicer's subclass.

    Generated `FooServicer` classes live in `x_pb2_grpc`; their service `Foo` is described in
    the matching `x_pb2` module, which the stubs have already imported.
    """
    cls = type(servicer)
    service = _SERVICE_OF_CLASS.get(cls)
    if service is None:
        service = _service_of(cls)
        _SERVICE_OF_CLASS[cls] = service
    return f"/{service}/{handler}"


_SERVICE_OF_CLASS: dict[type, str] = {}


def _service_of(cls: type) -> str:
    for base in cls.__mro__:
        module = sys.modules.get(base.__module__)
        if not base.__module__.endswith("_pb2_grpc") or module is None:
            continue
        descriptors = sys.modules.get(base.__module__.removesuffix("_grpc"))
        if descriptors is None or not base.__name__.endswith("Servicer"):
            continue
        services = descriptors.DESCRIPTOR.services_by_name
        short = base.__name__.removesuffix("Servicer")
        if short in services:
            return str(services[short].full_name)
    raise LookupError(f"{cls.__name__} does not derive from a generated gRPC servicer")


def _get_field(request: Message, path: str) -> str:
    value: Any = request
    for part in path.split("."):
        value = getattr(value, part)
    return str(value)


def _operation_id(value: str, path: str) -> str:
    rest = value.removeprefix("operations/")
    # Checked before the request's own fields are (api/rpc.py), and read from the database:
    # no NUL or other control character may reach the query.
    bad = not rest or "/" in rest or len(rest) > 64 or not rest.isprintable()
    if not value.startswith("operations/") or bad:
        raise errors.InvalidArgument([errors.FieldViolation(path, "must be operations/{id}")])
    return rest


def admits(allowed_principals: Iterable[str], aws_account_id: str) -> bool:
    """Whether a service's allowed principals let `aws_account_id` create endpoints to it.

    `*`, the account id, and IAM ARNs in the account admit it (AWS then checks the exact role).
    Organization principals cannot be verified without asking AWS Organizations, so they do
    not count here: list the consumer's account id to connect across projects.
    """
    for principal in allowed_principals:
        if principal in {"*", aws_account_id}:
            return True
        parts = principal.split(":")
        if len(parts) >= 6 and parts[2] == "iam" and parts[4] == aws_account_id:
            return True
    return False


@dataclass(frozen=True)
class Target:
    """What a request acts on: the resource name as the caller wrote it, and its project."""

    resource: str
    project: str


class Authorizer:
    """Decides RPCs from IAM policies; caches each project's policy for `ttl` seconds.

    A policy change made through this process takes effect at once (SetIamPolicy invalidates
    the entry); other replicas see it within `ttl`.
    """

    MAX_CACHED_PROJECTS = 10_000

    def __init__(
        self,
        db: database.Database,
        *,
        admins: Collection[str] = (),
        enabled: bool = True,
        ttl: float = 2.0,
    ) -> None:
        self.db = db
        self.admins = frozenset(principal_of(a) for a in admins)
        self.enabled = enabled
        self.ttl = ttl
        # project → (expiry on the monotonic clock, member → permissions)
        self._cache: dict[str, tuple[float, dict[str, frozenset[str]]]] = {}
        # Bumped by every invalidation: a read that began before it must not be cached after it.
        self._epoch = 0

    def is_admin_everywhere(self, principal: str) -> bool:
        return not self.enabled or principal in self.admins

    def invalidate(self, project: str) -> None:
        self._epoch += 1
        self._cache.pop(project, None)

    async def permissions(self, principal: str, project: str) -> frozenset[str]:
        """What `principal` may do in `project`."""
        if self.is_admin_everywhere(principal):
            return ALL_PERMISSIONS
        now = time.monotonic()
        cached = self._cache.get(project)
        if cached is None or cached[0] <= now:
            epoch = self._epoch
            async with self.db.transaction() as session:
                policy = await iam.read(session, project)
            cached = (now + self.ttl, _grants(policy.bindings))
            if epoch == self._epoch:
                if len(self._cache) >= self.MAX_CACHED_PROJECTS:
                    self._cache.clear()
                self._cache[project] = cached
        return cached[1].get(member(principal), PUBLIC)

    async def has(self, principal: str, project: str, permission: str) -> bool:
        return permission in await self.permissions(principal, project)

    async def visible_projects(self, principal: str, permission: str) -> list[str] | None:
        """Projects where `principal` holds `permission`; None means every project."""
        if self.is_admin_everywhere(principal):
            return None
        roles = [role for role, granted in ROLES.items() if permission in granted]
        async with self.db.transaction() as session:
            return await iam.projects_granting(session, member(principal), roles)

    async def check(self, method: str, request: Message, principal: str) -> None:
        """Raise unless `principal` may call `method` with `request`."""
        rule = RULES.get(method)
        if rule is None:
            # Unreachable while tests/authz passes: every served method has a rule.
            raise LookupError(f"{method} has no permission rule in api/authz.py")
        if rule.shape is Shape.CALLER:
            return
        target = await self._target(rule, request, principal)
        if not await self.has(principal, target.project, rule.permission):
            if rule.shape is Shape.OPERATION:
                raise errors.NotFound(target.resource, kind="operation")
            raise denied(rule.permission, target.resource)
        for path in rule.references:
            _check_reference(request, path, target.project, rule.permission)
        if method == _m(_CONSUMER, "CreateConnection"):
            await self._check_connection_target(request, target.project)

    async def _target(self, rule: Rule, request: Message, principal: str) -> Target:
        value = _get_field(request, rule.field)
        if rule.shape is Shape.PROJECT:
            return Target(value, fields.project_of(value, rule.field))
        if rule.shape is Shape.OPERATION:
            operation_id = _operation_id(value, rule.field)
            async with self.db.transaction() as session:
                project = await operations.project_of_operation(session, operation_id)
            if project is None:
                raise errors.NotFound(value, kind="operation")
            return Target(value, project)
        parsed = fields.name_of(value, _COLLECTIONS[rule.shape], rule.field)
        return Target(value, parsed.project)

    async def _check_connection_target(self, request: Message, project: str) -> None:
        """A connection to another project's service needs the service to admit the consumer.

        PrivateLink's own rule (the endpoint service's allowed principals), checked before AWS
        would refuse. A missing service and a service that does not admit the consumer answer
        alike, so the caller learns nothing about the other project.
        """
        connection = getattr(request, "connection", None)
        service = str(getattr(connection, "service", ""))
        target = names.parse_name(service, "services")
        consumer = names.parse_name(str(getattr(connection, "consumer_account", "")), "accounts")
        if target is None or consumer is None or target.project == project:
            return  # same project, or malformed: the handler's validation answers
        async with self.db.transaction() as session:
            row = await records.get(session, models.Service, service)
            admitted = (
                row is not None
                and row.delete_time is None
                and admits(specs.service_from_json(row.spec).allowed_principals, consumer.id)
            )
        if not admitted:
            raise errors.PermissionDenied(
                f"service {service!r} does not exist or does not admit AWS account "
                f"{consumer.id}; ask its provider to add {consumer.id} to its allowed principals",
                reason="SERVICE_NOT_SHARED",
                metadata={
                    "permission": "linkplane.connections.create",
                    "resource": service,
                    "aws_account_id": consumer.id,
                },
            )


def denied(permission: str, resource: str) -> errors.PermissionDenied:
    return errors.PermissionDenied(
        f"permission {permission!r} denied on {resource!r} (or it does not exist)",
        metadata={"permission": permission, "resource": resource},
    )


def _check_reference(request: Message, path: str, project: str, permission: str) -> None:
    value = _get_field(request, path)
    parsed = names.parse_name(value, "accounts")
    if parsed is not None and parsed.project != project:
        raise errors.PermissionDenied(
            f"{path} must be an account of project {project!r}; register the AWS account "
            f"there (its current project's admins can share it)",
            reason="CROSS_PROJECT_REFERENCE",
            metadata={"permission": permission, "resource": value, "field": path},
        )


def _grants(bindings: Iterable[iam.Binding]) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for binding in bindings:
        granted = ROLES.get(binding.role, frozenset())
        for who in binding.members:
            out.setdefault(who, set(PUBLIC)).update(granted)
    return {who: frozenset(perms) for who, perms in out.items()}


def markdown_tables() -> str:
    """docs/security.md's roles and permissions tables, rendered from ROLES and RULES.

    `uv run python -c "from linkplane.server.api import authz; print(authz.markdown_tables())"`
    prints them; tests/authz/test_docs.py fails when the document and this code disagree.
    """
    roles = (VIEWER, CONSUMER, PROVIDER, ADMIN)
    lines = ["| role | grants |", "|---|---|"]
    lines += [f"| `{role}` | {ROLE_TITLES[role]} |" for role in roles]
    short = [role.removeprefix("roles/linkplane.") for role in roles]
    lines += [
        "",
        "| RPC | permission | resource | " + " | ".join(short) + " |",
        "|---|---|---|" + "---|" * len(roles),
    ]
    for method, rule in RULES.items():
        marks = " | ".join("✓" if rule.permission in ROLES[role] else "" for role in roles)
        resource = f"`{rule.field}`: {rule.shape.value}" if rule.field else rule.shape.value
        lines.append(f"| `{method}` | `{rule.permission}` | {resource} | {marks} |")
    return "\n".join(lines)
