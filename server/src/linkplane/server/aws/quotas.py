"""Account quotas that pre-flight checks compare against, read from Service Quotas.

The per-VPC limit on interface (and Gateway Load Balancer) endpoints is 50 by default, but AWS
raises it per account and Region on request; a constant would refuse connections an account is
entitled to, or let through ones AWS then fails. Service Quotas answers it: ``GetServiceQuota``
gives the applied value (absent until the quota was ever changed: ``NoSuchResourceException``),
``GetAWSDefaultServiceQuota`` the default. When neither answers (no permission for
``servicequotas:*``, a partition without Service Quotas) the documented default is used, so a
missing permission costs accuracy, never the connection.

Answers are kept per (account, Region) for :data:`CACHE_SECONDS`: a quota changes rarely and a
rollout asks the same question for every connection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import structlog

from linkplane.server.aws import calls, errors

log = structlog.get_logger(__name__)

SERVICE_CODE = "vpc"
VPC_ENDPOINTS_QUOTA_CODE = "L-29B6F2EB"
"""``vpc`` quota "Interface and Gateway Load Balancer endpoints per VPC"."""
VPC_ENDPOINTS_DEFAULT = 50
"""AWS's documented default, used when Service Quotas cannot be asked."""
CACHE_SECONDS = 3600.0


@dataclasses.dataclass(frozen=True)
class Quota:
    """One quota's value and where it came from (``applied``, ``default`` or ``fallback``)."""

    value: int
    source: str


class QuotaCache:
    """Quota answers per (account, role, Region, quota code), kept for ``ttl`` seconds."""

    def __init__(self, ttl: float = CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._values: dict[tuple[str, str | None, str, str], tuple[float, Quota]] = {}
        self._locks: dict[tuple[str, str | None, str, str], asyncio.Lock] = {}

    async def vpc_endpoints_per_vpc(self, ctx: calls.Context) -> Quota:
        """The interface endpoints one VPC of this account and Region may hold."""
        key = (ctx.account.account_id, ctx.account.role_arn, ctx.region, VPC_ENDPOINTS_QUOTA_CODE)
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._values.get(key)
            if cached is not None and time.monotonic() - cached[0] <= self.ttl:
                return cached[1]
            quota = await read_quota(
                ctx, SERVICE_CODE, VPC_ENDPOINTS_QUOTA_CODE, VPC_ENDPOINTS_DEFAULT
            )
            self._values[key] = (time.monotonic(), quota)
            return quota


async def read_quota(
    ctx: calls.Context, service_code: str, quota_code: str, fallback: int
) -> Quota:
    """The applied value of a quota, else AWS's default, else ``fallback``.

    Retryable failures (throttling, 5xx) propagate, so the caller retries instead of caching
    a fallback that may be too small.
    """
    for action, source in (
        ("GetServiceQuota", "applied"),
        ("GetAWSDefaultServiceQuota", "default"),
    ):
        try:
            response = await ctx.call(
                "service-quotas", action, ServiceCode=service_code, QuotaCode=quota_code
            )
        except errors.AwsError as error:
            if error.retryable:
                raise
            log.debug("aws.quota.unavailable", action=action, quota=quota_code, code=error.code)
            continue
        value = (response.get("Quota") or {}).get("Value")
        if value is not None:
            return Quota(int(value), source)
    return Quota(fallback, "fallback")
