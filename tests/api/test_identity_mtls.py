"""mTLS: with a client CA configured, the caller is named by its verified client certificate.

A CA, a server certificate and client certificates are made with `cryptography`; calls go over
real TLS to a real server, and `lpctl`-style bearer tokens still take precedence when sent.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from linkplane.server.api import identity
from linkplane.server.config import Role, Settings
from linkplane.server.domain import errors
from linkplane.server.runtime import Runtime
from linkplane.v1 import account_service_pb2, account_service_pb2_grpc
from tests.support import runtimes


@dataclass(frozen=True)
class Issued:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def issue(
    common_name: str | None,
    *,
    issuer: Issued | None = None,
    sans: list[x509.GeneralName] | None = None,
    ca: bool = False,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "linkplane tests")]
    if common_name:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    subject = x509.Name(attributes)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    certificate = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    return Issued(key, certificate)


@dataclass(frozen=True)
class Pki:
    ca: Issued
    server: Issued
    directory: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("mtls")
    ca = issue("linkplane test CA", ca=True)
    server = issue(
        "localhost",
        issuer=ca,
        sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    (directory / "ca.pem").write_bytes(ca.cert_pem)
    (directory / "server.pem").write_bytes(server.cert_pem + ca.cert_pem)
    (directory / "server.key").write_bytes(server.key_pem)
    return Pki(ca, server, directory)


@pytest.fixture(scope="module")
async def mtls_server(database_url: str, pki: Pki) -> AsyncIterator[Runtime]:
    settings = Settings(
        listen="127.0.0.1:0",
        role=Role.API,
        page_token_secret="mtls-test",
        tls_cert_file=pki.directory / "server.pem",
        tls_key_file=pki.directory / "server.key",
        tls_client_ca_file=pki.directory / "ca.pem",
        auth_tokens={"robot-token": "robot"},
        admins=["robot"],
    )
    async with runtimes.running(settings, database_url) as runtime:
        yield runtime


async def who(
    server: Runtime, pki: Pki, client: Issued | None, token: str | None = None
) -> str | grpc.StatusCode:
    """The principal the server saw for a call with this client certificate (and token)."""
    seen: list[str] = []
    authenticator = server_authenticator(server)
    original = authenticator.authenticate

    async def spy(context: grpc.aio.ServicerContext) -> str:  # type: ignore[type-arg]
        principal = await original(context)
        seen.append(principal)
        return principal

    authenticator.authenticate = spy  # type: ignore[method-assign]
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.cert_pem,
        private_key=client.key_pem if client else None,
        certificate_chain=client.cert_pem if client else None,
    )
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    try:
        async with grpc.aio.secure_channel(f"localhost:{server.port}", credentials) as channel:
            stub = account_service_pb2_grpc.AccountServiceStub(channel)
            await stub.ListAccounts(
                account_service_pb2.ListAccountsRequest(parent="projects/mtls"),
                metadata=metadata,
                timeout=10,
            )
    except grpc.aio.AioRpcError as error:
        # Authenticated callers without a role here are refused by authorization (7) after
        # authentication saw them: the principal is what this helper reports.
        return (
            seen[-1] if seen and error.code() == grpc.StatusCode.PERMISSION_DENIED else error.code()
        )
    finally:
        del authenticator.authenticate
    return seen[-1]


def server_authenticator(server: Runtime) -> identity.Authenticator:
    assert server.deps is not None
    return server.deps.authenticator


async def test_the_principal_is_the_spiffe_id_of_the_client_certificate(mtls_server, pki):
    spiffe = "spiffe://example.org/ns/payments/sa/billing"
    client = issue(
        "billing",
        issuer=pki.ca,
        sans=[x509.DNSName("billing.internal"), x509.UniformResourceIdentifier(spiffe)],
    )
    assert await who(mtls_server, pki, client) == spiffe


async def test_without_a_spiffe_id_the_principal_is_the_subject_common_name(mtls_server, pki):
    client = issue("ops-robot", issuer=pki.ca, sans=[x509.DNSName("ops.internal")])
    assert await who(mtls_server, pki, client) == "ops-robot"
    bare = issue("alice", issuer=pki.ca)
    assert await who(mtls_server, pki, bare) == "alice"


async def test_a_bearer_token_takes_precedence_and_must_verify(mtls_server, pki):
    client = issue("ops-robot", issuer=pki.ca)
    assert await who(mtls_server, pki, client, token="robot-token") == "robot"
    assert await who(mtls_server, pki, client, token="wrong") == grpc.StatusCode.UNAUTHENTICATED


async def test_certificates_without_a_name_or_with_two_spiffe_ids_are_unauthenticated(
    mtls_server, pki
):
    nameless = issue(None, issuer=pki.ca, sans=[x509.DNSName("x.internal")])
    assert await who(mtls_server, pki, nameless) == grpc.StatusCode.UNAUTHENTICATED
    ambiguous = issue(
        "two",
        issuer=pki.ca,
        sans=[
            x509.UniformResourceIdentifier("spiffe://example.org/a"),
            x509.UniformResourceIdentifier("spiffe://example.org/b"),
        ],
    )
    assert await who(mtls_server, pki, ambiguous) == grpc.StatusCode.UNAUTHENTICATED


async def test_the_handshake_refuses_no_certificate_and_a_foreign_ca(mtls_server, pki):
    assert await who(mtls_server, pki, None) == grpc.StatusCode.UNAVAILABLE
    foreign_ca = issue("someone else's CA", ca=True)
    stranger = issue("alice", issuer=foreign_ca)
    assert await who(mtls_server, pki, stranger) == grpc.StatusCode.UNAVAILABLE


def test_client_certificates_need_a_server_certificate(pki):
    from linkplane.server.api import server as api_server

    with pytest.raises(ValueError, match="server certificate"):
        api_server.build(None, "127.0.0.1:0", None, pki.ca.cert_pem)  # type: ignore[arg-type]


async def test_the_authenticator_reads_only_verified_certificates_it_was_told_to():
    plain = identity.Authenticator(tokens={"t": "p"})

    class Context:
        def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
            return ()

        def auth_context(self) -> dict[str, list[bytes]]:
            raise AssertionError("certificates are not consulted without a client CA")

    with pytest.raises(errors.Unauthenticated):
        await plain.authenticate(Context())  # type: ignore[arg-type]


async def test_linkplane_client_presents_its_certificate(mtls_server, pki, tmp_path):
    from linkplane.client import AsyncClient, ClientConfig
    from linkplane.client import errors as client_errors

    spiffe = "spiffe://example.org/ns/ops/sa/lpctl"
    client = issue("ops", issuer=pki.ca, sans=[x509.UniformResourceIdentifier(spiffe)])
    seen: list[str] = []
    authenticator = server_authenticator(mtls_server)
    original = authenticator.authenticate

    async def spy(context: grpc.aio.ServicerContext) -> str:  # type: ignore[type-arg]
        principal = await original(context)
        seen.append(principal)
        return principal

    authenticator.authenticate = spy  # type: ignore[method-assign]
    config = ClientConfig(
        address=f"localhost:{mtls_server.port}",
        tls_root_certificates=pki.ca.cert_pem,
        tls_client_certificate_chain=client.cert_pem,
        tls_client_private_key=client.key_pem,
        max_attempts=1,
        default_timeout=10,
    )
    try:
        async with AsyncClient(config) as linkplane:
            # Authenticated is what counts here; authorization is another test's concern.
            with contextlib.suppress(client_errors.PermissionDenied):
                [a async for a in linkplane.list_accounts(parent="projects/mtls")]
        assert seen == [spiffe]
        # The same through the environment lpctl and ClientConfig.from_env read.
        (tmp_path / "c.pem").write_bytes(client.cert_pem)
        (tmp_path / "k.pem").write_bytes(client.key_pem)
        (tmp_path / "ca.pem").write_bytes(pki.ca.cert_pem)
        from_env = ClientConfig.from_env(
            {
                "LINKPLANE_ADDRESS": f"localhost:{mtls_server.port}",
                "LINKPLANE_TLS_CA": str(tmp_path / "ca.pem"),
                "LINKPLANE_TLS_CERT": str(tmp_path / "c.pem"),
                "LINKPLANE_TLS_KEY": str(tmp_path / "k.pem"),
            },
            max_attempts=1,
        )
        async with AsyncClient(from_env) as linkplane:
            with contextlib.suppress(client_errors.PermissionDenied):
                [a async for a in linkplane.list_accounts(parent="projects/mtls")]
        assert seen == [spiffe, spiffe]
    finally:
        del authenticator.authenticate
    with pytest.raises(ValueError, match="private key"):
        ClientConfig(tls_client_certificate_chain=client.cert_pem)


async def test_a_spiffe_identity_is_granted_roles_like_any_principal(mtls_server, pki):
    from google.iam.v1 import policy_pb2

    from linkplane.client import AsyncClient, ClientConfig
    from linkplane.client import errors as client_errors

    spiffe = "spiffe://example.org/ns/payments/sa/reader"
    workload = issue("reader", issuer=pki.ca, sans=[x509.UniformResourceIdentifier(spiffe)])
    base = {
        "address": f"localhost:{mtls_server.port}",
        "tls_root_certificates": pki.ca.cert_pem,
        "tls_client_certificate_chain": workload.cert_pem,
        "tls_client_private_key": workload.key_pem,
        "max_attempts": 1,
        "default_timeout": 10,
    }
    project = "projects/spiffe-grant"
    async with (
        AsyncClient(ClientConfig(**base)) as reader,  # type: ignore[arg-type]
        AsyncClient(ClientConfig(**base, token="robot-token")) as admin,  # type: ignore[arg-type]
    ):
        with pytest.raises(client_errors.PermissionDenied):
            [a async for a in reader.list_accounts(parent=project)]
        current = await admin.get_iam_policy(resource=project)
        await admin.set_iam_policy(
            resource=project,
            policy=policy_pb2.Policy(
                bindings=[
                    policy_pb2.Binding(role="roles/linkplane.viewer", members=[f"user:{spiffe}"])
                ],
                etag=current.etag,
            ),
        )
        assert [a async for a in reader.list_accounts(parent=project)] == []
        events = [e async for e in reader.list_audit_events(parent=project)]
        assert [(e.actor, e.method) for e in events] == [("robot", "SetIamPolicy")]
