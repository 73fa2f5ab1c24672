"""The one place that decides what an AWS failure means.

Every exception that comes out of aiobotocore (a ``ClientError`` with an AWS error code, a
transport error, a timeout) is turned into an :class:`AwsError` here, by :func:`classify`. The
reconciler never looks at botocore exceptions or raw error codes to decide what to do next; it
looks at ``AwsError.retryable`` / ``retry_after`` (the ``TemporaryError(delay)`` vs
``PermanentError`` split) and, where the meaning matters, at :func:`is_not_found`,
:func:`is_throttle` or ``AwsError.kind``.

Why a fixed table rather than botocore's retry handlers: linkplane disables SDK retries
(see ``sessions``) and owns retrying, so it must know on its own which codes are throttling
(``RequestLimitExceeded`` is throttling even though its name looks like a quota), which are
eventual consistency (a Describe right after a Create can answer NotFound) and which can never
succeed (bad parameters, missing permissions, exhausted quotas).
"""

from __future__ import annotations

import asyncio
import enum
import re
from typing import Any

from botocore import exceptions as botocore_exceptions
from botocore import parsers as botocore_parsers


class Kind(enum.StrEnum):
    """What kind of failure an :class:`AwsError` is; bounded, so it is also a metric label."""

    THROTTLE = "throttle"
    """AWS rate-limited the call: back off, the limiter's buckets are drained."""
    TRANSIENT = "transient"
    """A 5xx, a dropped connection or a timeout: retry soon, the call may even have applied."""
    NOT_FOUND = "not_found"
    """The object does not exist (or, right after its creation, is not visible yet)."""
    CONFLICT = "conflict"
    """The object is in a state that forbids the call now (in use, dependency, transition)."""
    INVALID = "invalid"
    """The request can never succeed as sent: a bad or missing parameter."""
    AUTH = "auth"
    """The credentials or the role's permissions do not allow the call."""
    QUOTA = "quota"
    """An account quota is exhausted (endpoints per VPC, load balancers, ...): a human must act."""
    IDEMPOTENCY = "idempotency"
    """The ClientToken was reused with different parameters: a linkplane bug, not AWS."""
    UNKNOWN = "unknown"
    """Anything else AWS answered with a 4xx: treated as permanent."""


# Suggested delays before a retry, in seconds. The reconciler adds its own jitter and growth;
# these only say "how soon is sensible" for each kind.
THROTTLE_DELAY = 2.0
TRANSIENT_DELAY = 1.0
NOT_FOUND_DELAY = 2.0
CONFLICT_DELAY = 10.0

# EC2 answers RequestLimitExceeded (HTTP 503), ELBv2 ThrottlingException (code "Throttling").
# The rest are the names botocore's standard retry mode recognises as throttling, so a service
# we add later is covered too. Deliberately absent: "LimitExceededException", which some
# services use for quotas.
THROTTLE_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "EC2ThrottledException",
        "BandwidthLimitExceeded",
        "SlowDown",
        "PriorRequestNotComplete",
    }
)

TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "Unavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "InsufficientCapacity",
        # Session credentials that AWS considers expired: the refreshable credentials in
        # ``sessions`` renew them before the next call, so a retry is the right answer.
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
    }
)

# NotFound codes that, right after a create, mean "not visible yet" (eventual consistency)
# rather than "gone". Any other code ending in NotFound is also treated as not-found (see
# _is_not_found_code); these are listed so the known ones are explicit. InvalidServiceName is
# what CreateVpcEndpoint answers for a service name it cannot see (yet): an inference from the
# API's behaviour, not documented as eventual consistency.
NOT_FOUND_CODES = frozenset(
    {
        "InvalidVpcEndpointId.NotFound",
        "InvalidVpcEndpointServiceId.NotFound",
        "InvalidVpcEndpointService.NotFound",
        "InvalidServiceName",
        "InvalidSubnetID.NotFound",
        "InvalidVpcID.NotFound",
        "InvalidSecurityGroupID.NotFound",
        "LoadBalancerNotFound",
        "TargetGroupNotFound",
        "ListenerNotFound",
        "SubnetNotFound",
        "ResourceNotFound",
    }
)

CONFLICT_CODES = frozenset(
    {
        # ELBv2: an NLB attached to an endpoint service cannot be deleted until it is detached.
        "ResourceInUse",
        "DependencyViolation",
        "IncorrectState",
        "IncorrectInstanceState",
        # DeleteVpcEndpointServiceConfigurations while connections are live (reject them first).
        "ExistingVpcEndpointConnections",
    }
)

AUTH_CODES = frozenset(
    {
        "UnauthorizedOperation",
        "AccessDenied",
        "AccessDeniedException",
        "AuthFailure",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "OptInRequired",
        "Blocked",
    }
)

INVALID_CODES = frozenset(
    {
        "MissingParameter",
        "ValidationError",
        "InvalidAction",
        "InvalidConfigurationRequest",
        "UnsupportedOperation",
        "DuplicateLoadBalancerName",
        "DuplicateTargetGroupName",
        "DuplicateListener",
        "ParamValidation",
    }
)

_QUOTA_PATTERN = re.compile(r"(LimitExceeded|^TooMany|Limit$|QuotaExceeded)")


class AwsError(Exception):
    """A classified AWS failure: what happened and whether trying again can help.

    ``retryable`` is the single bit the reconciler needs (TemporaryError vs PermanentError);
    ``retry_after`` is a suggested minimum delay when retryable. ``kind`` says why.
    ``hinted`` is the delay AWS itself asked for (a ``Retry-After`` header), if any.
    ``requeue_after`` is set by a reconciler that knows exactly when to look again (a grace
    period it schedules itself, e.g. for permissions to propagate): the engine then uses it
    instead of its exponential backoff.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        kind: Kind,
        retryable: bool,
        action: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        requeue_after: float | None = None,
    ) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.kind = kind
        self.retryable = retryable
        self.action = action
        self.http_status = http_status
        self.retry_after = retry_after if retryable else None
        self.request_id = request_id
        self.hinted: float | None = None
        self.requeue_after = requeue_after if retryable else None

    def __str__(self) -> str:
        where = f" in {self.action}" if self.action else ""
        status = f" (HTTP {self.http_status})" if self.http_status is not None else ""
        return f"{self.code}{where}{status}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"AwsError(code={self.code!r}, kind={self.kind.value!r}, "
            f"retryable={self.retryable!r}, action={self.action!r})"
        )


def is_not_found(err: AwsError) -> bool:
    """Whether the object does not exist (or is not visible yet): deletes treat this as done."""
    return err.kind is Kind.NOT_FOUND


def is_throttle(err: AwsError) -> bool:
    """Whether AWS rate-limited the call: the caller penalizes the limiter's buckets."""
    return err.kind is Kind.THROTTLE


def _is_not_found_code(code: str) -> bool:
    # ".NotFound" (EC2) and "...NotFound" (ELBv2) alike.
    return code in NOT_FOUND_CODES or code.endswith("NotFound")


def kind_of_code(code: str, http_status: int | None = None) -> Kind:
    """The kind of an AWS error code; the HTTP status only decides codes we do not know."""
    # ELBv2's model names errors "...Exception" but puts the bare code on the wire; accept
    # both spellings so a moto or SDK difference cannot change the classification.
    bare = code.removesuffix("Exception")
    candidates = (code, bare)
    if any(c in THROTTLE_CODES for c in candidates):
        return Kind.THROTTLE
    if code == "IdempotentParameterMismatch":
        return Kind.IDEMPOTENCY
    if any(c in TRANSIENT_CODES for c in candidates):
        return Kind.TRANSIENT
    if any(_is_not_found_code(c) for c in candidates):
        return Kind.NOT_FOUND
    if any(c in CONFLICT_CODES for c in candidates):
        return Kind.CONFLICT
    if any(c in AUTH_CODES for c in candidates):
        return Kind.AUTH
    if _QUOTA_PATTERN.search(bare):
        return Kind.QUOTA
    # EC2's "Invalid*" codes that are neither NotFound nor auth (InvalidParameterValue,
    # InvalidVpcID.Malformed, ...) describe the request itself.
    if any(c in INVALID_CODES for c in candidates) or code.startswith("Invalid"):
        return Kind.INVALID
    if http_status is not None and http_status >= 500:
        return Kind.TRANSIENT
    return Kind.UNKNOWN


def _decide(kind: Kind, *, recently_created: bool) -> tuple[bool, float | None]:
    if kind is Kind.THROTTLE:
        return True, THROTTLE_DELAY
    if kind is Kind.TRANSIENT:
        return True, TRANSIENT_DELAY
    if kind is Kind.CONFLICT:
        return True, CONFLICT_DELAY
    if kind is Kind.NOT_FOUND and recently_created:
        return True, NOT_FOUND_DELAY
    return False, None


def from_code(
    code: str,
    message: str = "",
    *,
    action: str | None = None,
    http_status: int | None = None,
    recently_created: bool = False,
    request_id: str | None = None,
) -> AwsError:
    """An AwsError for a code AWS reported without raising, e.g. in a batch's ``Unsuccessful[]``."""
    kind = kind_of_code(code, http_status)
    retryable, delay = _decide(kind, recently_created=recently_created)
    return AwsError(
        code,
        message,
        kind=kind,
        retryable=retryable,
        action=action,
        http_status=http_status,
        retry_after=delay,
        request_id=request_id,
    )


def _retry_after_header(response: dict[str, Any]) -> float | None:
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}) or {}
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None  # An HTTP-date form: rare for AWS APIs; fall back to our own delay.


def _transport_failure(code: str, message: str, action: str | None) -> AwsError:
    """A call that failed on its way to or from AWS (no answer, no credentials yet, a garbled
    body): worth retrying after the transient delay."""
    return AwsError(
        code,
        message,
        kind=Kind.TRANSIENT,
        retryable=True,
        action=action,
        retry_after=TRANSIENT_DELAY,
    )


def classify(
    exc: BaseException,
    *,
    recently_created: bool = False,
    action: str | None = None,
) -> AwsError:
    """Turn an exception raised by an aiobotocore call into an :class:`AwsError`.

    ``recently_created``: the caller created the object this call refers to within its grace
    window, so a NotFound is eventual consistency and worth retrying; otherwise NotFound is
    permanent (and :func:`is_not_found` lets a delete treat it as success).

    Transport failures are retryable even for mutating calls: the request may have been
    applied, which is why every create carries a deterministic ClientToken and ownership tags
    (see ``tags``) so that the retry adopts instead of duplicating.
    """
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, botocore_exceptions.ClientError):
        response: dict[str, Any] = exc.response or {}
        error = response.get("Error", {}) or {}
        metadata = response.get("ResponseMetadata", {}) or {}
        status = metadata.get("HTTPStatusCode")
        code = str(error.get("Code") or (f"HTTP{status}" if status else "Unknown"))
        err = from_code(
            code,
            str(error.get("Message") or ""),
            # The failing operation wins over the caller's: when AssumeRole fails while a
            # CreateVpcEndpoint is being signed, the error should say AssumeRole.
            action=exc.operation_name or action,
            http_status=int(status) if status is not None else None,
            recently_created=recently_created,
            request_id=metadata.get("RequestId"),
        )
        hinted = _retry_after_header(response)
        if err.retryable and hinted is not None:
            err.hinted = hinted
            err.retry_after = max(hinted, err.retry_after or 0.0)
        return err
    if isinstance(exc, botocore_exceptions.ParamValidationError):
        # Raised by botocore before anything is sent: a bug in the caller's parameters.
        return AwsError(
            "ParamValidation", str(exc), kind=Kind.INVALID, retryable=False, action=action
        )
    if isinstance(
        exc,
        botocore_exceptions.NoCredentialsError
        | botocore_exceptions.PartialCredentialsError
        | botocore_exceptions.UnknownCredentialError,
    ):
        return AwsError("NoCredentials", str(exc), kind=Kind.AUTH, retryable=False, action=action)
    if isinstance(exc, botocore_exceptions.CredentialRetrievalError):
        # The credential source (metadata service, web identity, ...) did not answer.
        return _transport_failure("CredentialRetrieval", str(exc), action)
    if isinstance(
        exc, botocore_exceptions.ReadTimeoutError | botocore_exceptions.ConnectTimeoutError
    ):
        return _transport_failure("Timeout", str(exc), action)
    if isinstance(exc, botocore_exceptions.HTTPClientError | botocore_exceptions.ConnectionError):
        # EndpointConnectionError, ConnectionClosedError, SSL and proxy failures.
        return _transport_failure("ConnectionError", str(exc), action)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return _transport_failure("Timeout", str(exc) or "timed out", action)
    if isinstance(exc, botocore_parsers.ResponseParserError):
        # An unparseable body: a proxy's or load balancer's error page, or a truncated
        # response. Transient, like the 5xx it usually is.
        first_line = str(exc).splitlines()[0] if str(exc) else "unparseable response"
        return _transport_failure("ResponseParserError", first_line, action)
    if isinstance(exc, botocore_exceptions.BotoCoreError):
        return AwsError(
            type(exc).__name__, str(exc), kind=Kind.UNKNOWN, retryable=False, action=action
        )
    raise TypeError(f"not an AWS failure: {type(exc).__name__}: {exc}") from exc


CLASSIFIABLE: tuple[type[BaseException], ...] = (
    botocore_exceptions.BotoCoreError,
    botocore_exceptions.ClientError,
    botocore_parsers.ResponseParserError,
    TimeoutError,
)
"""The exception types :func:`classify` understands; ``calls`` catches exactly these."""
