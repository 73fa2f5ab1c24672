"""Checks of the request fields every resource shares: parents, names, ids, masks, etags."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from google.protobuf import field_mask_pb2

from linkplane.server.domain import errors, names
from linkplane.server.protocol import converters


def _bad(path: str, description: str) -> errors.InvalidArgument:
    return errors.InvalidArgument([errors.FieldViolation(path, description)])


def project_of(parent: str, path: str = "parent") -> str:
    if not parent:
        raise _bad(path, "is required, e.g. projects/default")
    project = names.parse_parent(parent)
    if project is None:
        raise _bad(path, "must be projects/{project} with a lower-case id")
    return project


def name_of(value: str, collection: str, path: str = "name") -> names.ResourceName:
    if not value:
        raise _bad(path, "is required")
    parsed = names.parse_name(value, collection)
    if parsed is None:
        shape = "{12-digit id}" if collection == "accounts" else "{id}"
        raise _bad(path, f"must be projects/{{project}}/{collection}/{shape}")
    return parsed


def resource_id(value: str, prefix: str, path: str) -> str:
    if not value:
        return names.generate_id(prefix)
    if not names.RESOURCE_ID.match(value):
        raise _bad(path, "must match ^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
    return value


def mask_paths(
    mask: field_mask_pb2.FieldMask,
    writable: Collection[str],
    output_only: Collection[str],
    path: str = "update_mask",
) -> set[str]:
    """The fields to update; empty or `*` means every writable field."""
    if not mask.paths or list(mask.paths) == ["*"]:
        return set(writable)
    violations = []
    for i, field in enumerate(mask.paths):
        if field in writable:
            continue
        description = (
            "is output only"
            if field in output_only or field in {"name", "uid", "etag"}
            else f"is not an updatable field; updatable: {', '.join(sorted(writable))}"
        )
        violations.append(errors.FieldViolation(f"{path}.paths[{i}]", description))
    if violations:
        raise errors.InvalidArgument(violations)
    return set(mask.paths)


def check_etag(given: str, uid: uuid.UUID, revision: int, name: str) -> None:
    if given and given != converters.etag(uid, revision):
        raise errors.Aborted(
            f"{name} changed since etag {given!r} was read; read it again and retry",
            metadata={"name": name, "etag": given},
        )
