"""An API server with authentication on (static bearer tokens), and callers holding each role.

`root` is a bootstrap administrator (LINKPLANE_ADMINS); `viewer`, `consumer`, `provider` and
`admin` hold those roles on project A only (granted through the real SetIamPolicy); `nobody`
is authenticated but holds nothing; `alice` and `bob` administer their own projects in the
tenancy tests. Each test run uses fresh project ids, so runs never see each other's policies.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.iam.v1 import iam_policy_pb2, iam_policy_pb2_grpc, policy_pb2
from google.longrunning import operations_pb2_grpc

from linkplane.server.config import Role, Settings
from linkplane.server.runtime import Runtime
from linkplane.v1 import (
    account_pb2,
    account_service_pb2,
    account_service_pb2_grpc,
    consumer_service_pb2_grpc,
    provider_service_pb2_grpc,
)
from tests.support import runtimes

PRINCIPALS = ("root", "viewer", "consumer", "provider", "admin", "nobody", "alice", "bob")
TOKENS = {f"{p}-token": p for p in PRINCIPALS}
ROLE_OF = {
    "viewer": "roles/linkplane.viewer",
    "consumer": "roles/linkplane.consumer",
    "provider": "roles/linkplane.provider",
    "admin": "roles/linkplane.admin",
}


class _Bearer:
    """Adds `authorization: Bearer …` to a call's metadata (None: no credentials)."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    def _details(self, details: Any) -> Any:
        if self.token is None:
            return details
        metadata = [*(details.metadata or ()), ("authorization", f"Bearer {self.token}")]
        return details._replace(metadata=metadata)


# grpc.aio files a channel interceptor under one kind only, hence one class per kind.
class _UnaryBearer(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(details), request)


class _StreamBearer(_Bearer, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(details), request)


@dataclass
class Caller:
    """Stubs on a channel that presents one principal's token (None: no credentials)."""

    principal: str | None
    channel: grpc.aio.Channel
    accounts: account_service_pb2_grpc.AccountServiceStub = field(init=False)
    provider: provider_service_pb2_grpc.ProviderServiceStub = field(init=False)
    consumer: consumer_service_pb2_grpc.ConsumerServiceStub = field(init=False)
    operations: operations_pb2_grpc.OperationsStub = field(init=False)
    iam: iam_policy_pb2_grpc.IAMPolicyStub = field(init=False)

    def __post_init__(self) -> None:
        self.accounts = account_service_pb2_grpc.AccountServiceStub(self.channel)
        self.provider = provider_service_pb2_grpc.ProviderServiceStub(self.channel)
        self.consumer = consumer_service_pb2_grpc.ConsumerServiceStub(self.channel)
        self.operations = operations_pb2_grpc.OperationsStub(self.channel)
        self.iam = iam_policy_pb2_grpc.IAMPolicyStub(self.channel)

    async def grant(self, project: str, role: str, *principals: str) -> policy_pb2.Policy:
        """Add `principals` to `role` on `project` (read-modify-write with the etag)."""
        resource = f"projects/{project}"
        policy = await self.iam.GetIamPolicy(iam_policy_pb2.GetIamPolicyRequest(resource=resource))
        for binding in policy.bindings:
            if binding.role == role:
                binding.members.extend(f"user:{p}" for p in principals)
                break
        else:
            policy.bindings.add(role=role, members=[f"user:{p}" for p in principals])
        return await self.iam.SetIamPolicy(
            iam_policy_pb2.SetIamPolicyRequest(resource=resource, policy=policy)
        )

    async def register(self, project: str, account_id: str, **fields: Any) -> account_pb2.Account:
        return await self.accounts.RegisterAccount(
            account_service_pb2.RegisterAccountRequest(
                parent=f"projects/{project}",
                account_id=account_id,
                account=account_pb2.Account(**fields),
                request_id=str(uuid.uuid4()),
            )
        )


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "role": Role.API,
        "shutdown_grace_seconds": 1.0,
        "auth_tokens": TOKENS,
        "admins": ["root"],
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="package")
async def authz_server(database_url: str) -> AsyncIterator[Runtime]:
    async with runtimes.running(settings(), database_url, wait_for_feed=True) as runtime:
        yield runtime


TOKENS_BY_PRINCIPAL = {p: t for t, p in TOKENS.items()}


@contextlib.asynccontextmanager
async def callers_of(
    runtime: Runtime, principals: Iterable[str | None]
) -> AsyncIterator[dict[str | None, Caller]]:
    """One Caller per principal on `runtime` (`None`: a caller without credentials); their
    channels are closed afterwards."""
    out: dict[str | None, Caller] = {}
    channels = []
    for principal in principals:
        token = TOKENS_BY_PRINCIPAL.get(principal) if principal else None
        interceptors = [_UnaryBearer(token), _StreamBearer(token)]
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{runtime.port}", interceptors=interceptors)
        channels.append(channel)
        out[principal] = Caller(principal, channel)
    try:
        yield out
    finally:
        for channel in channels:
            await channel.close()


@pytest.fixture(scope="package")
async def callers(authz_server: Runtime) -> AsyncIterator[dict[str | None, Caller]]:
    """One Caller per principal, and `None` for a caller without credentials."""
    async with callers_of(authz_server, (*PRINCIPALS, None)) as out:
        yield out


def new_project(prefix: str = "z") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def aws_account_id() -> str:
    """A random 12-digit AWS account id, so tests never collide on account ownership."""
    return f"{random.randrange(10**11, 10**12)}"
