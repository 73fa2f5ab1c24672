"""Resource names and ids (AIP-122): parsing, formatting and generation."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

RESOURCE_ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
AWS_ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
ENDPOINT_ID = re.compile(r"^vpce-[0-9a-f]{8,17}$")


@dataclass(frozen=True)
class ResourceName:
    """A parsed `projects/{project}/{collection}/{id}` name."""

    project: str
    collection: str
    id: str

    def __str__(self) -> str:
        return f"projects/{self.project}/{self.collection}/{self.id}"

    @property
    def parent(self) -> str:
        return project_name(self.project)


def project_name(project: str) -> str:
    return f"projects/{project}"


def parse_parent(value: str) -> str | None:
    """Return the project id of `projects/{project}`, or None when malformed."""
    parts = value.split("/")
    if len(parts) == 2 and parts[0] == "projects" and RESOURCE_ID.match(parts[1]):
        return parts[1]
    return None


def parse_name(value: str, collection: str) -> ResourceName | None:
    """Parse a resource name of the given collection, or None when malformed."""
    parts = value.split("/")
    if len(parts) != 4 or parts[0] != "projects" or parts[2] != collection:
        return None
    project, resource_id = parts[1], parts[3]
    if not RESOURCE_ID.match(project):
        return None
    pattern = AWS_ACCOUNT_ID if collection == "accounts" else RESOURCE_ID
    if not pattern.match(resource_id):
        return None
    return ResourceName(project, collection, resource_id)


def generate_id(prefix: str) -> str:
    """A fresh resource id for callers that did not choose one, e.g. `svc-k3x9q2m1`."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "-" + "".join(secrets.choice(alphabet) for _ in range(10))
