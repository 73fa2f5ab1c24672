"""The one place that maps domain errors to gRPC statuses with rich details (AIP-193).

Every status carries google.rpc.ErrorInfo (reason, domain "linkplane.dev", metadata), and
INVALID_ARGUMENT also google.rpc.BadRequest with one field violation per bad field.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from linkplane.server.domain import errors

DOMAIN = "linkplane.dev"

CODES: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def code_of(error: errors.DomainError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in CODES:
            return CODES[cls]
    return grpc.StatusCode.INTERNAL


def to_status(error: errors.DomainError) -> status_pb2.Status:
    """The google.rpc.Status for a domain error, details included."""
    code = code_of(error)
    details: list[any_pb2.Any] = []
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata)
    )
    details.append(info)
    if isinstance(error, errors.Unavailable | errors.ResourceExhausted):
        # Clients (and linkplane.client) back off by this hint instead of retrying at once.
        delay = error.retry_after_seconds if isinstance(error, errors.ResourceExhausted) else 1
        retry = any_pb2.Any()
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=delay)))
        details.append(retry)
    if isinstance(error, errors.InvalidArgument):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in error.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad_request)
        details.append(packed)
    return status_pb2.Status(code=code.value[0], message=error.message, details=details)


def internal_status(message: str) -> status_pb2.Status:
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason="INTERNAL", domain=DOMAIN))
    return status_pb2.Status(code=code_pb2.INTERNAL, message=message, details=[info])


def to_rpc_status(error: errors.DomainError) -> grpc.Status:
    return rpc_status.to_status(to_status(error))
