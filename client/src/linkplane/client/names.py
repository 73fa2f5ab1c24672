"""Resource-name helpers (AIP-122): build and expand the paths the API speaks in.

Used by `lpctl` so people can type `payments` or `111111111111` where the API wants
`projects/default/services/payments` or `projects/default/accounts/111111111111`, and by the
operation handles to find which Get method reads an operation's target.
"""

from __future__ import annotations

__all__ = [
    "account_name",
    "connection_name",
    "kind_of",
    "operation_name",
    "project_name",
    "service_name",
    "short_id",
]


def project_name(project: str) -> str:
    """`projects/{project}` (a full project name is returned as is)."""
    return project if project.startswith("projects/") else f"projects/{project}"


def _expand(project: str, collection: str, ref: str) -> str:
    if "/" in ref:
        return ref
    return f"{project_name(project)}/{collection}/{ref}"


def service_name(project: str, ref: str) -> str:
    """Expand a service id to `projects/{project}/services/{id}`; full names pass through."""
    return _expand(project, "services", ref)


def connection_name(project: str, ref: str) -> str:
    """Expand a connection id to `projects/{project}/connections/{id}`."""
    return _expand(project, "connections", ref)


def account_name(project: str, ref: str) -> str:
    """Expand a 12-digit AWS account id to `projects/{project}/accounts/{id}`."""
    return _expand(project, "accounts", ref)


def operation_name(ref: str) -> str:
    """Expand an operation id to `operations/{id}`."""
    return ref if ref.startswith("operations/") else f"operations/{ref}"


def short_id(name: str) -> str:
    """The last segment of a resource name (`projects/p/services/s` -> `s`)."""
    return name.rsplit("/", 1)[-1]


def kind_of(name: str) -> str | None:
    """The collection of a project-scoped resource name (`services`, `connections`,
    `accounts`), or None for anything else."""
    parts = name.split("/")
    if len(parts) == 4 and parts[0] == "projects":
        return parts[2]
    return None
