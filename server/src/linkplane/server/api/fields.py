"""Checks of the request fields every resource shares: parents, names, ids, masks, etags.

`check_request` is the boundary every request crosses before its handler (api/boundary.py):
it walks the message by its descriptor, so every string field of every RPC — present and
future — is bounded in length and free of control characters, and a request id is
normalised, before any handler, validate_only path or SQL statement sees the value.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection

from google.protobuf import descriptor, duration_pb2, field_mask_pb2
from google.protobuf.message import Message

from linkplane.server.domain import errors, names, validation
from linkplane.server.protocol import converters

# Only the canonical textual form (either case): uuid.UUID also takes braces, "urn:uuid:" and
# hyphens anywhere, which would make one id many different keys.
CANONICAL_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
MAX_VIOLATIONS = 20  # a request with thousands of bad strings gets a readable answer


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
    *,
    immutable: Collection[str] = (),
) -> set[str]:
    """The fields to update; empty or `*` means every writable field.

    An `immutable` field may be named (the caller then checks its value is unchanged) but is
    never offered as updatable.
    """
    if not mask.paths or list(mask.paths) == ["*"]:
        return set(writable) | set(immutable)
    violations = []
    for i, field in enumerate(mask.paths):
        if field in writable or field in immutable:
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


def request_id(value: str, path: str = "request_id") -> str:
    """The canonical (lower-case, hyphenated) form of a request id; "" stays "" (none)."""
    if not value:
        return ""
    if not CANONICAL_UUID.match(value):
        raise _bad(path, "must be a UUID in canonical form, e.g. 9b2d5c3e-8f1a-4c2b-9d3e-…")
    return value.lower()


def clamped_seconds(duration: duration_pb2.Duration, maximum: float) -> float:
    """A Duration in seconds, within [0, maximum]: huge or negative values clamp, never overflow."""
    seconds = duration.seconds + duration.nanos / 1e9
    return min(max(seconds, 0.0), maximum)


CHECKS_AFTER_AUTHENTICATION = "linkplane_checks_after_authentication"
"""Set on handlers (rpc.unary/rpc.streaming) that run `check_decoded` and `check_request`
themselves once the caller is authenticated and authorized; api/boundary.py checks the rest."""


class Malformed:
    """What the boundary's request deserializer returns for bytes that do not parse as the
    message: the call then answers INVALID_ARGUMENT (after authentication, see api/boundary.py)
    instead of grpc.aio's UNKNOWN "Unexpected DecodeError"."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def check_decoded(request: object, method: str) -> None:
    """Raise InvalidArgument when `request` is `Malformed` (bytes that are not a `method`
    request message)."""
    if isinstance(request, Malformed):
        raise errors.InvalidArgument(
            [errors.FieldViolation("", "is not a valid request message for this method")],
            message=f"the request is not a valid {method} message: {request.error}",
            reason="MALFORMED_REQUEST",
        )


def check_request(request: Message) -> None:
    """Bound and clean every string of `request`; normalise its `request_id` in place.

    Raises InvalidArgument naming each bad field (`service.labels['team']`, `filter`).
    """
    violations: list[errors.FieldViolation] = []
    _walk(request, "", violations)
    if violations:
        raise errors.InvalidArgument(violations[:MAX_VIOLATIONS])
    if "request_id" in request.DESCRIPTOR.fields_by_name:
        normalised = request_id(getattr(request, "request_id"))  # noqa: B009
        setattr(request, "request_id", normalised)  # noqa: B010


def _walk(message: Message, prefix: str, out: list[errors.FieldViolation]) -> None:
    for fd, value in message.ListFields():
        path = f"{prefix}{fd.name}"
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            for key, item in value.items():
                entry = f"{path}[{str(key)[:64]!r}]"
                if isinstance(key, str):
                    _check_string(fd.name, key, entry, out)
                if value_fd.message_type is not None:
                    _walk(item, f"{entry}.", out)
                elif isinstance(item, str):
                    _check_string(fd.name, item, entry, out)
        elif fd.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
            for i, child in enumerate(value) if fd.is_repeated else ((None, value),):
                _walk(child, f"{path}[{i}]." if i is not None else f"{path}.", out)
        elif fd.type == descriptor.FieldDescriptor.TYPE_STRING:
            for i, item in enumerate(value) if fd.is_repeated else ((None, value),):
                _check_string(fd.name, item, f"{path}[{i}]" if i is not None else path, out)


def _check_string(field: str, value: str, path: str, out: list[errors.FieldViolation]) -> None:
    limit = validation.FIELD_LIMITS.get(field, validation.FieldLimit(validation.MAX_STRING))
    problem = validation.string_problem(value, limit)
    if problem is not None:
        out.append(errors.FieldViolation(path, problem))
