"""Authentication with the static token map: who the caller is, and who is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from linkplane.server.api import identity
from linkplane.server.config import Role, Settings
from linkplane.server.runtime import Runtime
from linkplane.v1 import account_service_pb2, account_service_pb2_grpc

TOKENS = {"alice-token": "alice", "bob-token": "bob"}


@pytest.fixture(scope="module")
async def token_server(database_url: str) -> AsyncIterator[Runtime]:
    runtime = Runtime(
        # alice administers everything, so these calls test authentication, not authorization.
        Settings(listen="127.0.0.1:0", role=Role.API, auth_tokens=TOKENS, admins=["alice"]),
        database_url,
    )
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


@pytest.fixture(scope="module")
async def stub(token_server: Runtime) -> AsyncIterator[account_service_pb2_grpc.AccountServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{token_server.port}") as channel:
        yield account_service_pb2_grpc.AccountServiceStub(channel)


async def call(
    stub: account_service_pb2_grpc.AccountServiceStub,
    metadata: tuple[tuple[str, str], ...],
) -> grpc.StatusCode:
    try:
        await stub.ListAccounts(
            account_service_pb2.ListAccountsRequest(parent="projects/ident"),
            metadata=metadata,
            timeout=30,
        )
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_the_bearer_scheme_is_case_insensitive(stub, scheme):
    assert await call(stub, (("authorization", f"{scheme} alice-token"),)) == grpc.StatusCode.OK


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer wrong"),),
        (("authorization", "Bearer alice-token-but-longer"),),
        (("authorization", "Basic alice-token"),),
        (("authorization", "alice-token"),),
        (("authorization", "Bearer "),),
        (("authorization", "Bearer alice-token"), ("authorization", "Bearer bob-token")),
    ],
    ids=["none", "wrong", "prefix", "basic", "no-scheme", "empty", "two-headers"],
)
async def test_missing_or_invalid_credentials_are_unauthenticated(stub, metadata):
    assert await call(stub, metadata) == grpc.StatusCode.UNAUTHENTICATED


class FakeContext:
    """Only what the authenticator reads from a servicer context."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}


async def test_each_token_maps_to_its_principal():
    authenticator = identity.Authenticator(tokens=TOKENS)
    assert authenticator.enabled
    alice = FakeContext((("authorization", "Bearer alice-token"),))
    bob = FakeContext((("authorization", "bearer bob-token"),))
    assert await authenticator.authenticate(alice) == "alice"  # type: ignore[arg-type]
    assert await authenticator.authenticate(bob) == "bob"  # type: ignore[arg-type]


async def test_without_configuration_every_caller_is_the_local_principal():
    authenticator = identity.Authenticator.from_settings(Settings())
    assert not authenticator.enabled
    anyone = FakeContext((("authorization", "Bearer whatever"),))
    assert await authenticator.authenticate(anyone) == identity.LOCAL_PRINCIPAL  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        (
            {"LINKPLANE_OIDC_ISSUER": "corp-idp", "LINKPLANE_OIDC_AUDIENCE": "lp"},
            "LINKPLANE_OIDC_JWKS is required",
        ),
        (
            {"LINKPLANE_OIDC_ISSUER": "https://idp", "LINKPLANE_OIDC_JWKS": "/etc/jwks.json"},
            "LINKPLANE_OIDC_AUDIENCE is required",
        ),
        (
            {
                "LINKPLANE_OIDC_ISSUER": "https://idp",
                "LINKPLANE_OIDC_AUDIENCE": "lp",
                "LINKPLANE_OIDC_JWKS": "/etc/jwks.json",
                "LINKPLANE_OIDC_ALGORITHMS": '["HS256"]',
            },
            "never `none` or HS*",
        ),
        (
            {
                "LINKPLANE_OIDC_ISSUER": "https://idp",
                "LINKPLANE_OIDC_AUDIENCE": "lp",
                "LINKPLANE_OIDC_JWKS": "http://idp.example.com/jwks",
            },
            "must come over https",
        ),
        ({"LINKPLANE_TLS_CLIENT_CA_FILE": "/etc/ca.pem"}, "needs LINKPLANE_TLS_CERT_FILE"),
    ],
)
def test_serve_refuses_half_configured_identities(environment, message):
    from typer.testing import CliRunner

    from linkplane.server import cli

    env = {
        "LINKPLANE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "LINKPLANE_PAGE_TOKEN_SECRET": "s",
        **environment,
    }
    result = CliRunner().invoke(cli.app, ["serve"], env=env)
    assert result.exit_code == 2
    assert message in result.output
