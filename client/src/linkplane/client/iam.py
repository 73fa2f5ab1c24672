"""IAM policy helpers shared by `AsyncClient`, `Client` and `lpctl iam`.

linkplane serves the standard `google.iam.v1.IAMPolicy` mixin on `projects/{project}`:
members are `user:{principal}`, roles are `roles/linkplane.viewer|consumer|provider|admin`.
Changing one binding is a read-modify-write of the whole policy with its etag; the functions
here compute the new policy without mutating the one read, and say whether anything changed,
so the clients can retry on a concurrent change (`Aborted`) and skip a no-op write.
"""

from __future__ import annotations

from google.iam.v1 import policy_pb2

__all__ = [
    "MEMBER_PREFIX",
    "ROLES",
    "member",
    "role",
    "with_binding",
    "without_binding",
]

MEMBER_PREFIX = "user:"
"""How linkplane names a principal in a policy member."""

ROLES = (
    "roles/linkplane.viewer",
    "roles/linkplane.consumer",
    "roles/linkplane.provider",
    "roles/linkplane.admin",
)
"""The predefined roles, from least to most privileged."""


def member(principal: str) -> str:
    """`alice` → `user:alice`; a value that already has a `type:` prefix is kept."""
    if ":" in principal and not principal.startswith(("spiffe://", "http://", "https://")):
        return principal
    return f"{MEMBER_PREFIX}{principal}"


def role(name: str) -> str:
    """`viewer` → `roles/linkplane.viewer`; a full role name is kept."""
    return name if name.startswith("roles/") else f"roles/linkplane.{name}"


def with_binding(
    policy: policy_pb2.Policy, role_name: str, member_name: str
) -> tuple[policy_pb2.Policy, bool]:
    """A copy of `policy` granting `role_name` to `member_name`, and whether that is new."""
    updated = policy_pb2.Policy()
    updated.CopyFrom(policy)
    for binding in updated.bindings:
        if binding.role == role_name:
            if member_name in binding.members:
                return updated, False
            binding.members.append(member_name)
            return updated, True
    updated.bindings.add(role=role_name, members=[member_name])
    return updated, True


def without_binding(
    policy: policy_pb2.Policy, role_name: str, member_name: str
) -> tuple[policy_pb2.Policy, bool]:
    """A copy of `policy` without `member_name` in `role_name`, and whether it was there.

    A binding left without members is dropped, as Google's IAM does.
    """
    updated = policy_pb2.Policy()
    updated.CopyFrom(policy)
    changed = False
    kept = []
    for binding in updated.bindings:
        if binding.role == role_name and member_name in binding.members:
            binding.members.remove(member_name)
            changed = True
        if binding.members:
            kept.append(binding)
    if changed:
        del updated.bindings[:]
        updated.bindings.extend(kept)
    return updated, changed
