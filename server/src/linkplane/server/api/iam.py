"""google.iam.v1.IAMPolicy on `projects/{project}`: who holds which linkplane role.

The standard mixin (as on Google Cloud resources), so generic tooling and `lpctl iam` speak it:
GetIamPolicy, SetIamPolicy (read-modify-write with the etag; a stale etag is ABORTED) and
TestIamPermissions. Members are `user:{principal}`; roles are api/authz.py's ROLES. Every
change is written to the audit log in the same transaction, as the bindings added and removed.
Conditions and audit configs are not supported and are refused rather than ignored.
"""

from __future__ import annotations

import hashlib
from typing import Any

import grpc
from google.iam.v1 import iam_policy_pb2, iam_policy_pb2_grpc, policy_pb2

from linkplane.server.api import authz, fields, rpc
from linkplane.server.domain import errors
from linkplane.server.storage import audit, iam

Context = grpc.aio.ServicerContext[Any, Any]
POLICY_VERSION = 1
MAX_MEMBERS = 1500  # Google's limit of principals per policy
MAX_PRINCIPAL_LENGTH = 200
UPDATABLE = {"bindings", "etag"}


def etag(project: str, revision: int) -> bytes:
    """Opaque etag of a policy revision (stable across replicas: derived, not stored)."""
    return hashlib.sha256(f"iam/{project}/{revision}".encode()).digest()[:12]


def to_message(policy: iam.StoredPolicy) -> policy_pb2.Policy:
    return policy_pb2.Policy(
        version=POLICY_VERSION,
        bindings=[
            policy_pb2.Binding(role=b.role, members=list(b.members)) for b in policy.bindings
        ],
        etag=etag(policy.project, policy.revision),
    )


def _bad(path: str, description: str) -> errors.FieldViolation:
    return errors.FieldViolation(path, description)


def normalize(policy: policy_pb2.Policy) -> tuple[iam.Binding, ...]:
    """Validated bindings, one per role, members sorted; INVALID_ARGUMENT names bad fields."""
    violations: list[errors.FieldViolation] = []
    if policy.version not in {0, 1}:
        violations.append(_bad("policy.version", "must be 1 (conditions are not supported)"))
    if policy.audit_configs:
        violations.append(_bad("policy.audit_configs", "are not supported"))
    by_role: dict[str, set[str]] = {}
    total = 0
    for i, binding in enumerate(policy.bindings):
        path = f"policy.bindings[{i}]"
        if binding.role not in authz.ROLES:
            known = ", ".join(sorted(authz.ROLES))
            violations.append(_bad(f"{path}.role", f"must be one of {known}"))
        if binding.HasField("condition"):
            violations.append(_bad(f"{path}.condition", "conditions are not supported"))
        if not binding.members:
            violations.append(_bad(f"{path}.members", "at least 1 required"))
        for j, value in enumerate(binding.members):
            principal = value.removeprefix(authz.MEMBER_PREFIX)
            if (
                not value.startswith(authz.MEMBER_PREFIX)
                or not principal
                or len(principal) > MAX_PRINCIPAL_LENGTH
                or principal != principal.strip()
            ):
                violations.append(
                    _bad(f"{path}.members[{j}]", "must be user:{principal}, e.g. user:alice")
                )
        total += len(binding.members)
        by_role.setdefault(binding.role, set()).update(binding.members)
    if total > MAX_MEMBERS:
        violations.append(_bad("policy.bindings", f"at most {MAX_MEMBERS} members in all"))
    if violations:
        raise errors.InvalidArgument(violations)
    return tuple(
        iam.Binding(role=role, members=tuple(sorted(members)))
        for role, members in sorted(by_role.items())
    )


def _pairs(bindings: tuple[iam.Binding, ...]) -> set[tuple[str, str]]:
    return {(b.role, m) for b in bindings for m in b.members}


class IamPolicyServicer(iam_policy_pb2_grpc.IAMPolicyServicer):  # type: ignore[misc]
    def __init__(self, deps: rpc.Dependencies) -> None:
        self.deps = deps

    @rpc.unary
    async def GetIamPolicy(
        self, request: iam_policy_pb2.GetIamPolicyRequest, context: Context, actor: str
    ) -> policy_pb2.Policy:
        project = fields.project_of(request.resource, "resource")
        if request.options.requested_policy_version not in {0, 1, 3}:
            raise errors.InvalidArgument(
                [_bad("options.requested_policy_version", "must be 0, 1 or 3")]
            )
        async with self.deps.db.transaction() as session:
            return to_message(await iam.read(session, project))

    @rpc.unary
    async def SetIamPolicy(
        self, request: iam_policy_pb2.SetIamPolicyRequest, context: Context, actor: str
    ) -> policy_pb2.Policy:
        project = fields.project_of(request.resource, "resource")
        if not request.HasField("policy"):
            raise errors.InvalidArgument([_bad("policy", "is required")])
        bad_paths = [
            errors.FieldViolation(f"update_mask.paths[{i}]", "must be bindings or etag")
            for i, path in enumerate(request.update_mask.paths)
            if path not in UPDATABLE
        ]
        if bad_paths:
            raise errors.InvalidArgument(bad_paths)
        bindings = normalize(request.policy)
        async with self.deps.db.transaction() as session:
            current = await iam.lock(session, project)
            current_etag = etag(project, current.revision)
            if request.policy.etag and request.policy.etag != current_etag:
                raise errors.Aborted(
                    f"the IAM policy of {request.resource} changed since it was read; "
                    "get it again, reapply the change and retry",
                    metadata={"resource": request.resource},
                )
            before, after = _pairs(current.bindings), _pairs(bindings)
            stored = await iam.write(session, project, bindings, current.revision + 1)
            await audit.record(
                session,
                audit.entry(
                    actor=actor,
                    action="SetIamPolicy",
                    resource=request.resource,
                    resource_uid=None,
                    details={
                        "added": [{"role": r, "member": m} for r, m in sorted(after - before)],
                        "removed": [{"role": r, "member": m} for r, m in sorted(before - after)],
                        "revision": stored.revision,
                    },
                ),
            )
        self.deps.authorizer.invalidate(project)
        return to_message(stored)

    @rpc.unary
    async def TestIamPermissions(
        self, request: iam_policy_pb2.TestIamPermissionsRequest, context: Context, actor: str
    ) -> iam_policy_pb2.TestIamPermissionsResponse:
        project = fields.project_of(request.resource, "resource")
        violations = [
            _bad(f"permissions[{i}]", "must be a permission name like linkplane.services.get")
            for i, permission in enumerate(request.permissions)
            if not permission or "*" in permission or len(permission) > 128
        ]
        if len(request.permissions) > 100:
            violations.append(_bad("permissions", "at most 100 permissions per request"))
        if violations:
            raise errors.InvalidArgument(violations)
        held = await self.deps.authorizer.permissions(actor, project)
        return iam_policy_pb2.TestIamPermissionsResponse(
            permissions=[p for p in request.permissions if p in held]
        )
