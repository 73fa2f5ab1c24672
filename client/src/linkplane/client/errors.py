"""The client's exception tree and the one place gRPC failures become it.

Every public call of `AsyncClient`/`Client` raises a `LinkplaneError` subclass, never a raw
`grpc.RpcError`: callers branch on meaningful types (`NotFound`, `Aborted`, ...) and read the
server's rich details (AIP-193 `ErrorInfo` and `BadRequest`) as plain attributes. The details
travel in the `grpc-status-details-bin` trailer as a serialized `google.rpc.Status`; it is
decoded lazily, on first access, so errors that nobody inspects cost nothing. A failed
long-running operation carries the same `google.rpc.Status` in `Operation.error`, which
`OperationFailed` wraps.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "Aborted",
    "AlreadyExists",
    "Cancelled",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "LinkplaneError",
    "NotFound",
    "OperationFailed",
    "OperationTimeout",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "from_rpc_error",
    "from_status",
]

#: The trailing-metadata key gRPC uses for a serialized `google.rpc.Status`.
STATUS_DETAILS_KEY = "grpc-status-details-bin"

FieldViolation = tuple[str, str]
"""One invalid request field: `(field path, description)`."""


class LinkplaneError(Exception):
    """Base of every error the linkplane client raises.

    `code` is the gRPC status code, `message` the server's human-readable message. The rich
    details of the `google.rpc.Status` (`reason`, `domain`, `metadata` from `ErrorInfo`;
    `field_violations` from `BadRequest`) are decoded on first access.
    """

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode = grpc.StatusCode.UNKNOWN,
        status: Any = None,
        status_bytes: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        """The server's message (or a client-side description)."""
        self.code = code
        """The gRPC status code."""
        self._status = status
        self._status_bytes = status_bytes

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    @functools.cached_property
    def status(self) -> Any:
        """The full `google.rpc.Status`, or None when the server sent no rich details."""
        if self._status is not None:
            return self._status
        if not self._status_bytes:
            return None
        decoded = status_pb2.Status()
        try:
            decoded.ParseFromString(self._status_bytes)
        except Exception:  # a malformed trailer must not hide the original error
            return None
        return decoded

    @functools.cached_property
    def _error_info(self) -> Any:
        return _first_detail(self.status, error_details_pb2.ErrorInfo)

    @property
    def reason(self) -> str | None:
        """`ErrorInfo.reason` (UPPER_SNAKE, e.g. `SERVICE_NOT_FOUND`), if sent."""
        info = self._error_info
        return str(info.reason) if info is not None else None

    @property
    def domain(self) -> str | None:
        """`ErrorInfo.domain` (`linkplane.dev` for the server's own errors), if sent."""
        info = self._error_info
        return str(info.domain) if info is not None else None

    @property
    def metadata(self) -> Mapping[str, str]:
        """`ErrorInfo.metadata`: every dynamic value of the message, by name."""
        info = self._error_info
        return dict(info.metadata) if info is not None else {}

    @property
    def retry_delay(self) -> float | None:
        """Seconds the server advised waiting before a retry (`google.rpc.RetryInfo`), if sent.

        linkplane sends it with RESOURCE_EXHAUSTED (a per-caller cap on calls or streams) and
        UNAVAILABLE; the client's retries and watch reconnects honour it.
        """
        info = _first_detail(self.status, error_details_pb2.RetryInfo)
        if info is None or not info.HasField("retry_delay"):
            return None
        return max(0.0, float(info.retry_delay.ToTimedelta().total_seconds()))

    @functools.cached_property
    def field_violations(self) -> list[FieldViolation]:
        """`BadRequest.field_violations` as `(field, description)` pairs, in server order."""
        violations: list[FieldViolation] = []
        if self.status is None:
            return violations
        for detail in self.status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                violations.extend((v.field, v.description) for v in bad_request.field_violations)
        return violations


class InvalidArgument(LinkplaneError):
    """The request is malformed; see `field_violations`. Retrying it unchanged will fail."""


class NotFound(LinkplaneError):
    """The named resource (or operation) does not exist."""


class AlreadyExists(LinkplaneError):
    """A resource with that id already exists."""


class FailedPrecondition(LinkplaneError):
    """The resource is in a state that does not allow the request (e.g. live connections)."""


class Aborted(LinkplaneError):
    """A concurrency conflict, typically a stale `etag`: re-read the resource and retry."""


class Unavailable(LinkplaneError):
    """The server (or its database / AWS) is unreachable; raised after retries gave up."""


class PermissionDenied(LinkplaneError):
    """The caller may not do this."""


class Unauthenticated(LinkplaneError):
    """The caller's credentials are missing or invalid."""


class DeadlineExceeded(LinkplaneError):
    """The call's deadline passed before the server answered."""


class ResourceExhausted(LinkplaneError):
    """A quota or rate limit was hit."""


class Internal(LinkplaneError):
    """A bug on the server."""


class Cancelled(LinkplaneError):
    """The call was cancelled, usually by the caller."""


class Unknown(LinkplaneError):
    """An error the server did not classify, or a client-side failure of unknown cause."""


class Unimplemented(LinkplaneError):
    """The server does not implement this method (an older server version?)."""


class OutOfRange(LinkplaneError):
    """A value is outside the accepted range."""


class DataLoss(LinkplaneError):
    """Unrecoverable data loss or corruption."""


class OperationFailed(LinkplaneError):
    """A long-running operation finished with an error.

    `error` is the mapped `Operation.error` (e.g. a `FailedPrecondition` with its ErrorInfo);
    `code`, `message` and the rich details are the inner error's.
    """

    def __init__(self, operation_name: str, error: LinkplaneError) -> None:
        super().__init__(error.message, code=error.code, status=error.status)
        self.operation_name = operation_name
        """The failed operation, `operations/{id}`."""
        self.error = error
        """The operation's error, mapped to its own `LinkplaneError` subclass."""

    def __str__(self) -> str:
        return f"operation {self.operation_name} failed: {self.error}"


class OperationTimeout(DeadlineExceeded, TimeoutError):
    """`result(timeout=...)` gave up waiting; the operation itself may still finish later."""

    def __init__(self, operation_name: str, timeout: float) -> None:
        super().__init__(
            f"operation {operation_name} not done after {timeout:g}s",
            code=grpc.StatusCode.DEADLINE_EXCEEDED,
        )
        self.operation_name = operation_name
        """The operation that is still running, `operations/{id}`."""


_BY_CODE: dict[grpc.StatusCode, type[LinkplaneError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNKNOWN: Unknown,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
    grpc.StatusCode.DATA_LOSS: DataLoss,
}

# google.rpc.Code numbers match grpc.StatusCode's first value; index them once.
_CODE_BY_NUMBER: dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}


def error_class(code: grpc.StatusCode) -> type[LinkplaneError]:
    """The exception class for a status code (`Unknown` for codes with no meaning here)."""
    return _BY_CODE.get(code, Unknown)


def from_rpc_error(error: grpc.RpcError) -> LinkplaneError:
    """Map a failed gRPC call (sync or asyncio) to its `LinkplaneError` subclass."""
    code_fn = getattr(error, "code", None)
    details_fn = getattr(error, "details", None)
    trailers_fn = getattr(error, "trailing_metadata", None)
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    message = (details_fn() if callable(details_fn) else None) or str(error) or code.name
    trailers = trailers_fn() if callable(trailers_fn) else None
    return error_class(code)(str(message), code=code, status_bytes=_status_bytes(trailers or ()))


def from_status(status: Any) -> LinkplaneError:
    """Map a `google.rpc.Status` (e.g. `Operation.error`) to its `LinkplaneError` subclass."""
    code = _CODE_BY_NUMBER.get(int(status.code), grpc.StatusCode.UNKNOWN)
    if code is grpc.StatusCode.OK:
        # An operation error with code OK is a server bug; do not pretend it succeeded.
        code = grpc.StatusCode.UNKNOWN
    return error_class(code)(status.message or code.name, code=code, status=status)


def _status_bytes(trailers: Iterable[Any]) -> bytes | None:
    for item in trailers:
        key, value = item[0], item[1]
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return value
    return None


def _first_detail(status: Any, message_type: Any) -> Any:
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(message_type.DESCRIPTOR):
            message = message_type()
            detail.Unpack(message)
            return message
    return None
