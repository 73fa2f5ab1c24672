"""Domain errors: what went wrong, in terms a caller can act on.

The API layer maps each class to one gRPC status code (`api/errors.py`), attaching `reason` and
`metadata` as google.rpc.ErrorInfo and field violations as google.rpc.BadRequest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field: its path in the request (`service.region`) and what is wrong."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error linkplane reports to callers on purpose."""

    reason: str = "ERROR"

    def __init__(
        self, message: str, *, reason: str | None = None, metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(DomainError):
    """The request is malformed; `violations` names every bad field."""

    reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        violations: list[FieldViolation],
        *,
        message: str | None = None,
        reason: str | None = None,
    ) -> None:
        first = violations[0] if violations else FieldViolation("", "invalid request")
        text = message or f"invalid {first.field}: {first.description}" + (
            f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        )
        super().__init__(text, reason=reason, metadata={"field": first.field})
        self.violations = violations


class NotFound(DomainError):
    """The named resource does not exist."""

    reason = "RESOURCE_NOT_FOUND"

    def __init__(self, name: str, *, kind: str = "resource") -> None:
        super().__init__(f"{kind} {name!r} not found", metadata={"name": name, "kind": kind})


class AlreadyExists(DomainError):
    """A resource with that name already exists."""

    reason = "RESOURCE_ALREADY_EXISTS"

    def __init__(self, name: str, *, kind: str = "resource") -> None:
        super().__init__(f"{kind} {name!r} already exists", metadata={"name": name, "kind": kind})


class FailedPrecondition(DomainError):
    """The resource is not in a state that allows the request."""

    reason = "FAILED_PRECONDITION"


class Aborted(DomainError):
    """A concurrent change won: the etag no longer matches."""

    reason = "ETAG_MISMATCH"


class Unavailable(DomainError):
    """A dependency (Postgres, AWS) cannot be reached; retrying later may succeed."""

    reason = "UNAVAILABLE"


class Unauthenticated(DomainError):
    """No valid credentials were presented."""

    reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    """The caller may not do this here; `metadata` names the permission and the resource."""

    reason = "IAM_PERMISSION_DENIED"


class ResourceExhausted(DomainError):
    """A cap (streams, concurrent calls) is reached; retrying after `retry_after_seconds`
    may succeed. `metadata` names the limit and its scope."""

    reason = "RESOURCE_EXHAUSTED"

    def __init__(
        self,
        message: str,
        *,
        retry_after_seconds: int = 1,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after_seconds = retry_after_seconds
