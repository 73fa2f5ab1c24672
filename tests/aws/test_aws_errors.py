"""AWS error classification: what the reconciler retries and what it gives up on."""

from __future__ import annotations

import pytest
from botocore import exceptions as botocore_exceptions
from botocore import parsers as botocore_parsers
from hypothesis import given
from hypothesis import strategies as st

from linkplane.server.aws import errors
from linkplane.server.aws.errors import Kind


def client_error(
    code: str, status: int = 400, message: str = "boom", headers: dict[str, str] | None = None
) -> botocore_exceptions.ClientError:
    return botocore_exceptions.ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {
                "HTTPStatusCode": status,
                "RequestId": "req-1",
                "HTTPHeaders": headers or {},
            },
        },
        "CreateVpcEndpoint",
    )


@pytest.mark.parametrize(
    ("code", "status", "kind", "retryable"),
    [
        # Throttling, EC2 (503) and ELBv2 style: always retryable.
        ("RequestLimitExceeded", 503, Kind.THROTTLE, True),
        ("Throttling", 400, Kind.THROTTLE, True),
        ("ThrottlingException", 400, Kind.THROTTLE, True),
        ("TooManyRequestsException", 429, Kind.THROTTLE, True),
        # Server side trouble.
        ("InternalError", 500, Kind.TRANSIENT, True),
        ("InternalFailure", 500, Kind.TRANSIENT, True),
        ("ServiceUnavailable", 503, Kind.TRANSIENT, True),
        ("Unavailable", 503, Kind.TRANSIENT, True),
        ("SomethingNewAndBroken", 502, Kind.TRANSIENT, True),
        # NotFound without a recent create: absent, permanent.
        ("InvalidVpcEndpointId.NotFound", 400, Kind.NOT_FOUND, False),
        ("InvalidVpcEndpointServiceId.NotFound", 400, Kind.NOT_FOUND, False),
        ("InvalidVpcEndpointService.NotFound", 400, Kind.NOT_FOUND, False),
        ("LoadBalancerNotFound", 400, Kind.NOT_FOUND, False),
        ("TargetGroupNotFound", 400, Kind.NOT_FOUND, False),
        ("InvalidSubnetID.NotFound", 400, Kind.NOT_FOUND, False),
        # Can never succeed as sent.
        ("IdempotentParameterMismatch", 400, Kind.IDEMPOTENCY, False),
        ("InvalidParameterValue", 400, Kind.INVALID, False),
        ("InvalidParameterCombination", 400, Kind.INVALID, False),
        ("ValidationError", 400, Kind.INVALID, False),
        ("UnauthorizedOperation", 403, Kind.AUTH, False),
        ("AccessDenied", 403, Kind.AUTH, False),
        # Quotas are permanent; RequestLimitExceeded above is *not* a quota.
        ("VpcEndpointLimitExceeded", 400, Kind.QUOTA, False),
        ("TooManyLoadBalancers", 400, Kind.QUOTA, False),
        ("TooManyTargetGroups", 400, Kind.QUOTA, False),
        # Blocked by another object's state: retry once the blocker is gone.
        ("ResourceInUse", 400, Kind.CONFLICT, True),
        ("ExistingVpcEndpointConnections", 400, Kind.CONFLICT, True),
        ("DependencyViolation", 400, Kind.CONFLICT, True),
        # Unknown client errors are permanent.
        ("SomethingOdd", 400, Kind.UNKNOWN, False),
    ],
)
def test_client_error_table(code: str, status: int, kind: Kind, retryable: bool) -> None:
    err = errors.classify(client_error(code, status))
    assert (err.code, err.kind, err.retryable) == (code, kind, retryable)
    assert err.action == "CreateVpcEndpoint"
    assert err.http_status == status
    assert err.request_id == "req-1"
    assert (err.retry_after is not None) == retryable


def test_not_found_is_retryable_only_right_after_a_create() -> None:
    exc = client_error("InvalidVpcEndpointId.NotFound")
    absent = errors.classify(exc)
    lagging = errors.classify(exc, recently_created=True)
    assert errors.is_not_found(absent)
    assert errors.is_not_found(lagging)
    assert not absent.retryable
    assert lagging.retryable
    assert lagging.retry_after == errors.NOT_FOUND_DELAY


def test_recently_created_does_not_make_invalid_parameters_retryable() -> None:
    err = errors.classify(client_error("InvalidParameterValue"), recently_created=True)
    assert not err.retryable


def test_retry_after_header_lengthens_the_delay() -> None:
    err = errors.classify(client_error("Throttling", 400, headers={"retry-after": "7"}))
    assert errors.is_throttle(err)
    assert err.retry_after == 7.0


def test_elbv2_exception_suffix_is_accepted() -> None:
    assert errors.classify(client_error("LoadBalancerNotFoundException")).kind is Kind.NOT_FOUND
    assert errors.classify(client_error("TooManyLoadBalancersException")).kind is Kind.QUOTA


@pytest.mark.parametrize(
    "exc",
    [
        botocore_exceptions.EndpointConnectionError(endpoint_url="https://ec2"),
        botocore_exceptions.ConnectionClosedError(endpoint_url="https://ec2"),
        botocore_exceptions.ReadTimeoutError(endpoint_url="https://ec2"),
        botocore_exceptions.ConnectTimeoutError(endpoint_url="https://ec2"),
        TimeoutError(),
        botocore_parsers.ResponseParserError("Unable to parse response"),
    ],
)
def test_transport_failures_are_transient(exc: BaseException) -> None:
    err = errors.classify(exc, action="DescribeVpcEndpoints")
    assert err.kind is Kind.TRANSIENT
    assert err.retryable
    assert err.action == "DescribeVpcEndpoints"


def test_client_side_validation_and_missing_credentials_are_permanent() -> None:
    invalid = errors.classify(botocore_exceptions.ParamValidationError(report="VpcId missing"))
    assert (invalid.kind, invalid.retryable) == (Kind.INVALID, False)
    nocreds = errors.classify(botocore_exceptions.NoCredentialsError())
    assert (nocreds.kind, nocreds.retryable) == (Kind.AUTH, False)


def test_programming_errors_are_not_swallowed() -> None:
    with pytest.raises(TypeError):
        errors.classify(KeyError("VpcEndpoint"))


def test_an_aws_error_passes_through_unchanged() -> None:
    err = errors.from_code("Throttling")
    assert errors.classify(err) is err


def test_batch_item_codes_classify_like_raised_ones() -> None:
    err = errors.from_code("ExistingVpcEndpointConnections", "vpce-svc-1: live", action="Delete")
    assert err.kind is Kind.CONFLICT
    assert err.retryable
    assert "ExistingVpcEndpointConnections in Delete" in str(err)


resource = st.from_regex(r"\A[A-Z][A-Za-z]{2,20}\Z")


@given(resource=resource, recent=st.booleans())
def test_any_dotted_not_found_code_follows_the_grace_window(resource: str, recent: bool) -> None:
    err = errors.classify(client_error(f"Invalid{resource}.NotFound"), recently_created=recent)
    assert errors.is_not_found(err)
    assert err.retryable is recent


@given(name=resource)
def test_any_limit_exceeded_code_except_throttling_is_a_permanent_quota(name: str) -> None:
    code = f"{name}LimitExceeded"
    err = errors.classify(client_error(code))
    if code in errors.THROTTLE_CODES:
        assert errors.is_throttle(err)
    else:
        assert (err.kind, err.retryable) == (Kind.QUOTA, False)


@given(code=st.sampled_from(sorted(errors.THROTTLE_CODES)), status=st.integers(400, 599))
def test_throttling_wins_whatever_the_status(code: str, status: int) -> None:
    err = errors.classify(client_error(code, status))
    assert errors.is_throttle(err)
    assert err.retryable


@given(code=st.from_regex(r"\AZz[a-y]{3,12}\Z"), status=st.integers(500, 599))
def test_an_unknown_code_with_a_server_status_is_transient(code: str, status: int) -> None:
    err = errors.classify(client_error(code, status))
    assert (err.kind, err.retryable) == (Kind.TRANSIENT, True)


@given(code=st.from_regex(r"\AZz[a-y]{3,12}\Z"), status=st.integers(400, 499))
def test_an_unknown_code_with_a_client_status_is_permanent(code: str, status: int) -> None:
    err = errors.classify(client_error(code, status))
    assert (err.kind, err.retryable, err.retry_after) == (Kind.UNKNOWN, False, None)
