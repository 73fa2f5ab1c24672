"""aiobotocore clients per (account, region, service), with assumed-role credentials.

The reconciler works across many AWS accounts: for each it either uses linkplane's own (base)
credentials or assumes a role in the account. This module turns an :class:`AccountRef` and a
Region into a ready client, creating each client once and reusing it (clients hold connection
pools; creating one per call would cost a TLS handshake per call), and closes them all on
shutdown. ``calls`` is the only caller; it adds rate limiting, error classification and
metrics on top.

SDK retries are off (``total_max_attempts=1``): linkplane owns retrying and rate limiting.
botocore's retries would hide throttling from the limiter (it would never learn to slow
down), sleep without regard to other work, and in standard mode draw from a retry quota that
a throttling storm drains, after which every call fails with "retry quota exceeded".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from datetime import datetime
from typing import Any

import structlog
from aiobotocore import config as aio_config
from aiobotocore import credentials as aio_credentials
from aiobotocore import session as aio_session
from botocore import loaders as botocore_loaders
from botocore import utils as botocore_utils

logger = structlog.get_logger(__name__)

Client = Any
"""An aiobotocore client; its methods are generated at runtime, so there is no static type."""


GLOBAL_SERVICES = {"route53": "us-east-1", "iam": "us-east-1"}
"""Global services and the Region their clients are made for."""

SERVICES = ("ec2", "elbv2", "route53", "sts", "service-quotas")
"""The AWS services linkplane calls (`AwsClients.load_models` loads their models)."""


@dataclasses.dataclass(frozen=True)
class AccountRef:
    """An AWS account linkplane acts in, and how to get credentials for it."""

    account_id: str
    """The 12-digit account id; also the key of the account's clients and rate-limit buckets."""
    role_arn: str | None = None
    """The role to assume in the account; None = use the base credentials as they are."""
    external_id: str | None = None
    """The ExternalId the role's trust policy demands, if any."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """How to reach AWS. Plain values, so that ``config`` can fill them from its own settings."""

    endpoint_url: str | None = None
    """None for real AWS; the simulator's URL in development and tests (all services)."""
    access_key_id: str | None = None
    """Base credentials; None = botocore's default chain (environment, profile, instance role)."""
    # Secrets stay out of repr(), so logging the settings cannot leak them.
    secret_access_key: str | None = dataclasses.field(default=None, repr=False)
    """The base secret key; only used together with ``access_key_id``."""
    session_token: str | None = dataclasses.field(default=None, repr=False)
    """The base session token, for temporary base credentials."""
    sts_region: str = "us-east-1"
    """Region of the STS endpoint used for AssumeRole."""
    connect_timeout: float = 5.0
    """Seconds to establish a connection."""
    read_timeout: float = 30.0
    """Seconds to wait for a response."""
    max_pool_connections: int = 20
    """Connections per client (per account, Region and service)."""
    role_duration_seconds: int = 3600
    """Lifetime requested for assumed-role credentials (AWS allows 900 up to the role's max)."""
    refresh_advisory_seconds: float = 600.0
    """Refresh assumed credentials this long before they expire; a failure here is tolerated."""
    refresh_mandatory_seconds: float = 300.0
    """From this long before expiry a refresh must succeed, or the call fails."""


def parse_timestamp(value: str | float) -> datetime:
    """A response's timestamp, read with `datetime.fromisoformat` when it is ISO 8601 with a
    time zone (as EC2, ELBv2, STS and Route 53 write them: `2026-11-30T22:26:04.000Z`), else
    by botocore's own parser (epoch seconds, RFC 822).

    botocore's parser tries `float()` and then dateutil for every value: a profile of the
    reconciler converging 1,000 endpoints put half of its DescribeVpcEndpoints parsing in
    dateutil, every pending endpoint's CreationTimestamp read again at each snapshot.
    """
    if isinstance(value, str) and "T" in value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    result: datetime = botocore_utils.parse_timestamp(value)
    return result


@functools.cache
def _data_loader() -> botocore_loaders.Loader:
    """The process's one botocore data loader (a first session's, so AWS_DATA_PATH holds).
    Service models, paginators and endpoint rules are read-only JSON that botocore caches per
    loader, and each new session would parse them again (EC2's model alone is megabytes: in
    the test suite, where every control plane has its own AwsClients, that was ~4 % of all
    CPU)."""
    loader: botocore_loaders.Loader = aio_session.AioSession().get_component("data_loader")
    return loader


def _new_session() -> aio_session.AioSession:
    """An aiobotocore session whose clients read timestamps with :func:`parse_timestamp` and
    which shares the process's data loader."""
    session = aio_session.AioSession()
    session.register_component("data_loader", _data_loader())
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=parse_timestamp
    )
    return session


class AwsClients:
    """The shared aiobotocore session and every client made from it; close with :meth:`close`.

    Use as ``async with AwsClients(settings) as clients: ec2 = await clients.ec2(account, region)``.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._session = _new_session()
        self._config = aio_config.AioConfig(
            # "total_max_attempts", not "max_attempts": botocore's max_attempts counts
            # *retries* (max_attempts=1 means two requests); total_max_attempts=1 means exactly
            # one request and no SDK retry at all.
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=self.settings.connect_timeout,
            read_timeout=self.settings.read_timeout,
            max_pool_connections=self.settings.max_pool_connections,
        )
        # A plaintext endpoint (the simulator) has no certificate to verify: without this,
        # every client loads the CA bundle into an SSL context it never uses (~5 % of the
        # test suite's CPU). Any https endpoint, and AWS's own, is verified as before.
        endpoint = self.settings.endpoint_url
        self._verify: bool | None = False if endpoint and endpoint.startswith("http://") else None
        self._stack = contextlib.AsyncExitStack()
        # Keyed by the whole AccountRef, not just the id: if an account's role or ExternalId
        # is changed, the next call assumes the new role instead of reusing the old credentials.
        self._clients: dict[tuple[AccountRef, str, str], Client] = {}
        self._account_sessions: dict[AccountRef, aio_session.AioSession] = {}
        self._account_locks: dict[AccountRef, asyncio.Lock] = {}
        self._sts: Client | None = None
        # Guards client creation only. Creating a client does no network I/O (AssumeRole runs
        # before, under a per-account lock), so serialising creations is cheap and guarantees
        # one client per key even when many reconcile steps ask at once.
        self._lock = asyncio.Lock()
        self._closed = False
        self.assume_role_calls = 0
        """How many AssumeRole calls were made (first fetches and refreshes); for metrics/tests."""

    async def __aenter__(self) -> AwsClients:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def load_models(self) -> None:
        """Load what creating and using a client of each of `SERVICES` loads (service model,
        paginators, endpoint rules), now, once: botocore caches it per session's data loader,
        which every account's session shares.

        Called by the server's entry point just before it freezes its start-up heap (cli.py,
        through `Runtime.load_aws_models`): loaded later,
        on the first reconcile, EC2's model alone is hundreds of thousands of objects that
        every full garbage collection walks. Converging 1,000 endpoints, full collections took
        0.2 s each, every 1.5-3 s, with the event loop standing still (bench/README.md).
        A client made here makes no request; the dummy keys keep botocore from looking for
        credentials (on a machine outside AWS, the instance-metadata lookup waits seconds).
        """
        for service in SERVICES:
            region = GLOBAL_SERVICES.get(service, self.settings.sts_region)
            async with self._session.create_client(
                service,
                region_name=region,
                endpoint_url=self.settings.endpoint_url,
                config=self._config,
                verify=self._verify,
                aws_access_key_id="unused",
                aws_secret_access_key="unused",  # noqa: S106 - no request is made
            ) as client:
                # Asking whether any operation pages loads the service's paginator model.
                client.can_paginate(next(iter(client.meta.method_to_api_mapping)))

    async def close(self) -> None:
        """Close every client (and its connection pool). Idempotent."""
        self._closed = True
        async with self._lock:
            self._clients.clear()
            self._sts = None
            await self._stack.aclose()

    async def ec2(self, account: AccountRef, region: str) -> Client:
        """The EC2 client (VPC endpoints and endpoint services live in EC2's API)."""
        return await self.client("ec2", account, region)

    async def elbv2(self, account: AccountRef, region: str) -> Client:
        """The ELBv2 client (the Network Load Balancers behind endpoint services)."""
        return await self.client("elbv2", account, region)

    async def route53(self, account: AccountRef) -> Client:
        """The Route 53 client (private DNS verification records); Route 53 is global."""
        return await self.client("route53", account, GLOBAL_SERVICES["route53"])

    async def client(self, service: str, account: AccountRef, region: str) -> Client:
        """The client for one (account, region, service), created on first use and then reused.

        For an account with a role, the first client triggers AssumeRole, so this may raise
        the STS call's ClientError (``calls`` classifies it like any other AWS error).
        """
        if service in GLOBAL_SERVICES:
            # One client per account, whatever Region the caller's context is in.
            region = GLOBAL_SERVICES[service]
        key = (account, region, service)
        existing = self._clients.get(key)
        if existing is not None:
            return existing
        session = await self._session_for(account)
        async with self._lock:
            existing = self._clients.get(key)
            if existing is not None:
                return existing
            client = await self._create(session, service, region, base=account.role_arn is None)
            self._clients[key] = client
        logger.debug(
            "aws.client.created", service=service, account=account.account_id, region=region
        )
        return client

    async def _create(
        self, session: aio_session.AioSession, service: str, region: str, *, base: bool
    ) -> Client:
        """Create a client and register it for closing; the caller holds ``_lock``."""
        if self._closed:
            raise RuntimeError("AwsClients is closed")
        credentials: dict[str, str] = {}
        if base and self.settings.access_key_id is not None:
            credentials = {
                "aws_access_key_id": self.settings.access_key_id,
                "aws_secret_access_key": self.settings.secret_access_key or "",
            }
            if self.settings.session_token:
                credentials["aws_session_token"] = self.settings.session_token
        return await self._stack.enter_async_context(
            session.create_client(
                service,
                region_name=region,
                endpoint_url=self.settings.endpoint_url,
                config=self._config,
                verify=self._verify,
                **credentials,
            )
        )

    async def _session_for(self, account: AccountRef) -> aio_session.AioSession:
        """The base session for base credentials; a per-account session for assumed roles.

        Why refreshable credentials on a per-account session rather than recreating clients
        when credentials near expiry: a client in use by in-flight calls cannot be closed and
        swapped without either breaking those calls or reference-counting them, whereas
        refreshable credentials are renewed under a lock right before a request is signed, so
        every client of the account keeps its connection pool and sees fresh credentials. A
        failed refresh in the advisory window is tolerated (the old credentials still work);
        only in the mandatory window does it fail the call, and that failure is classified
        like any other AWS error. aiobotocore takes a credentials *object* only from a session
        (``create_client`` accepts plain keys), hence one small session per assumed account;
        it shares the process's data loader, so botocore's large EC2 model is parsed once.
        The first AssumeRole happens here, eagerly, so a wrong role or ExternalId fails the
        first call for the account with AccessDenied rather than surfacing later.
        """
        if account.role_arn is None:
            return self._session
        session = self._account_sessions.get(account)
        if session is not None:
            return session
        lock = self._account_locks.setdefault(account, asyncio.Lock())
        async with lock:
            session = self._account_sessions.get(account)
            if session is not None:
                return session
            metadata = await self._assume_role(account)
            credentials = aio_credentials.AioRefreshableCredentials.create_from_metadata(
                metadata=metadata,
                refresh_using=functools.partial(self._assume_role, account),
                method="assume-role",
                advisory_timeout=self.settings.refresh_advisory_seconds,
                mandatory_timeout=self.settings.refresh_mandatory_seconds,
            )
            session = _new_session()
            session.register_component("credential_provider", _FixedCredentials(credentials))
            self._account_sessions[account] = session
            return session

    async def _sts_client(self) -> Client:
        async with self._lock:
            if self._sts is None:
                self._sts = await self._create(
                    self._session, "sts", self.settings.sts_region, base=True
                )
            return self._sts

    async def _assume_role(self, account: AccountRef) -> dict[str, str]:
        """Fetch fresh credentials for the account's role: first use, then whenever botocore
        finds them within the refresh windows before expiry."""
        if account.role_arn is None:
            raise ValueError(f"account {account.account_id} has no role to assume")
        sts = await self._sts_client()
        params: dict[str, Any] = {
            "RoleArn": account.role_arn,
            "RoleSessionName": f"linkplane-{account.account_id}",
            "DurationSeconds": self.settings.role_duration_seconds,
        }
        if account.external_id is not None:
            params["ExternalId"] = account.external_id
        response = await sts.assume_role(**params)
        self.assume_role_calls += 1
        creds = response["Credentials"]
        expiration: datetime = creds["Expiration"]
        logger.debug(
            "aws.assume_role",
            account=account.account_id,
            role_arn=account.role_arn,
            expires=expiration.isoformat(),
        )
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": expiration.isoformat(),
        }


class _FixedCredentials:
    """A credential provider that always answers with one (refreshable) credentials object."""

    def __init__(self, credentials: aio_credentials.AioRefreshableCredentials) -> None:
        self._credentials = credentials

    async def load_credentials(self) -> aio_credentials.AioRefreshableCredentials:
        return self._credentials
