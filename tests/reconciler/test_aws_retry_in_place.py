"""The reconcilers' AWS calls retry a transient or throttled failure in place (bounded,
jittered, never sooner than AWS's Retry-After), and nothing else (`calls.RetryPolicy`)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from linkplane.server.aws import calls, sessions, throttlers
from linkplane.server.aws import errors as aws_errors
from linkplane.server.reconciler.workspace import Timing

ACCOUNT = sessions.AccountRef(account_id="222222222222", role_arn=None, external_id=None)


def client_error(code: str, status: int, retry_after: str | None = None) -> ClientError:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return ClientError(
        {
            "Error": {"Code": code, "Message": code},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers},
        },
        "DescribeVpcs",
    )


class Scripted:
    """An EC2 client whose describe_vpcs answers the scripted failures, then succeeds."""

    def __init__(self, failures: list[ClientError]) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def client(self, service: str, account: sessions.AccountRef, region: str) -> Any:
        return self

    async def describe_vpcs(self, **params: Any) -> dict[str, Any]:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return {"Vpcs": [{"VpcId": "vpc-1"}]}


def context(source: Scripted, policy: calls.RetryPolicy | None) -> calls.Context:
    limiter = throttlers.Limiter(time_scale=1000.0)
    return calls.Context(source, limiter, ACCOUNT, "us-east-1", retry=policy)


FAST = calls.RetryPolicy(retries=3, base_seconds=0.001, cap_seconds=0.01)


async def test_transient_and_throttled_failures_are_retried_in_place() -> None:
    source = Scripted([client_error("InternalError", 500)] * 2)
    response = await context(source, FAST).call("ec2", "DescribeVpcs")
    assert response["Vpcs"] == [{"VpcId": "vpc-1"}]
    assert source.calls == 3


def test_a_throttled_retry_waits_at_least_the_throttling_delay() -> None:
    throttled = aws_errors.from_code("RequestLimitExceeded", http_status=503)
    assert throttled.kind is aws_errors.Kind.THROTTLE
    delay = FAST.delay(throttled, 0)
    assert delay is not None and delay >= aws_errors.THROTTLE_DELAY
    transient = aws_errors.from_code("InternalError", http_status=500)
    delay = FAST.delay(transient, 0)
    assert delay is not None and delay <= FAST.base_seconds


async def test_retries_are_bounded() -> None:
    source = Scripted([client_error("ServiceUnavailable", 503)] * 10)
    with pytest.raises(aws_errors.AwsError) as raised:
        await context(source, FAST).call("ec2", "DescribeVpcs")
    assert raised.value.retryable and raised.value.code == "ServiceUnavailable"
    assert source.calls == 1 + FAST.retries


@pytest.mark.parametrize(
    ("code", "status"),
    [("IncorrectState", 400), ("InvalidParameterValue", 400), ("UnauthorizedOperation", 403)],
)
async def test_conflicts_and_permanent_errors_are_not_retried_in_place(
    code: str, status: int
) -> None:
    source = Scripted([client_error(code, status)])
    with pytest.raises(aws_errors.AwsError):
        await context(source, FAST).call("ec2", "DescribeVpcs")
    assert source.calls == 1


async def test_without_a_policy_the_first_failure_is_raised() -> None:
    source = Scripted([client_error("InternalError", 500)])
    with pytest.raises(aws_errors.AwsError):
        await context(source, None).call("ec2", "DescribeVpcs")
    assert source.calls == 1


async def test_aws_retry_after_is_honoured() -> None:
    source = Scripted([client_error("InternalError", 500, retry_after="0.3")])
    started = time.monotonic()
    await context(source, FAST).call("ec2", "DescribeVpcs")
    assert time.monotonic() - started >= 0.3
    assert source.calls == 2


def test_the_delays_are_jittered_and_grow_to_the_cap() -> None:
    policy = calls.RetryPolicy(retries=5, base_seconds=1.0, cap_seconds=3.0)
    error = aws_errors.from_code("InternalError", http_status=500)
    for retry, ceiling in enumerate([1.0, 2.0, 3.0, 3.0, 3.0]):
        delays = {policy.delay(error, retry) for _ in range(50)}
        assert all(d is not None and 0.0 <= d <= ceiling for d in delays)
        assert len(delays) > 1, "jittered"
    assert policy.delay(error, 5) is None


def test_the_workspace_policy_follows_the_transitional_interval() -> None:
    assert Timing(5.0, 300.0).retry == calls.RetryPolicy(3, 0.5, 5.0)
    assert Timing(0.2, 2.0).retry == calls.RetryPolicy(3, 0.02, 0.2)


async def test_a_listing_restarts_after_a_transient_page_failure() -> None:
    class Pages:
        def __init__(self) -> None:
            self.attempts = 0

        async def client(self, service: str, account: sessions.AccountRef, region: str) -> Any:
            return self

        def get_paginator(self, name: str) -> Any:
            outer = self

            class Paginator:
                def paginate(self, **params: Any) -> Any:
                    outer.attempts += 1
                    return self._pages()

                async def _pages(self) -> Any:
                    yield {"Items": [1]}
                    if outer.attempts == 1:
                        raise client_error("InternalError", 500)
                    yield {"Items": [2]}

            return Paginator()

    source = Pages()
    ctx = calls.Context(source, throttlers.Limiter(time_scale=1000.0), ACCOUNT, "us-east-1", FAST)
    assert await ctx.collect("ec2", "DescribeVpcs", "Items") == [1, 2]
    assert source.attempts == 2
