"""OIDC/JWT bearer tokens: verified against the issuer's JWKS (a file or an HTTP URL).

Tokens are made with joserfc and real keys; the JWKS is served from a temporary file and from
an HTTP server on 127.0.0.1 that counts its fetches, so rotation and rate limiting are checked
by what actually reached the "identity provider".
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from linkplane.server.api import identity
from linkplane.server.config import Role, Settings
from linkplane.server.domain import errors
from linkplane.server.runtime import Runtime
from linkplane.v1 import account_service_pb2, account_service_pb2_grpc
from tests.support import runtimes

ISSUER = "https://idp.example.com"
AUDIENCE = "linkplane"


def ec_key(kid: str) -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid})


def jwks_of(*keys: Any) -> dict[str, Any]:
    return KeySet(list(keys)).as_dict(private=False)


def token(key: Any, alg: str = "ES256", kid: str | None = None, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    header = {"alg": alg, "kid": kid if kid is not None else key.kid}
    return jwt.encode(header, body, key, algorithms=[alg])


class FakeContext:
    """Only what the authenticator reads from a servicer context."""

    def __init__(self, bearer: str | None) -> None:
        self._metadata = (("authorization", f"Bearer {bearer}"),) if bearer is not None else ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}


class JwksServer:
    """An 'identity provider' on 127.0.0.1 serving a JWKS that tests can replace."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.discovery: dict[str, Any] | None = None
        self.fetches = 0
        self.failing = False
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    if owner.discovery is None:
                        self.send_error(404)
                        return
                    document = owner.discovery
                else:
                    owner.fetches += 1
                    document = owner.document
                if owner.failing:
                    self.send_error(503)
                    return
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.url = f"{self.base}/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def idp() -> Iterator[JwksServer]:
    server = JwksServer()
    try:
        yield server
    finally:
        server.close()


def authenticator(jwks: str, **overrides: Any) -> identity.Authenticator:
    config = identity.OidcConfig(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, **overrides)
    return identity.Authenticator(oidc=config)


async def principal_of(auth: identity.Authenticator, bearer: str | None) -> str:
    return await auth.authenticate(FakeContext(bearer))  # type: ignore[arg-type]


async def refused(auth: identity.Authenticator, bearer: str | None) -> str:
    with pytest.raises(errors.Unauthenticated) as caught:
        await principal_of(auth, bearer)
    return caught.value.reason


async def test_a_valid_token_names_its_subject_with_a_jwks_file(tmp_path):
    key = ec_key("k1")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks_of(key)))
    auth = authenticator(str(path))
    assert auth.enabled
    assert await principal_of(auth, token(key)) == "alice"
    assert await principal_of(auth, token(key, sub="bob")) == "bob"


async def test_a_valid_token_names_its_subject_with_a_jwks_url(idp):
    key = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
    idp.document = jwks_of(key)
    auth = authenticator(idp.url)
    assert await principal_of(auth, token(key, alg="RS256")) == "alice"
    assert await principal_of(auth, token(key, alg="RS256", sub="carol")) == "carol"
    assert idp.fetches == 1  # cached


async def test_the_principal_claim_is_configurable(tmp_path):
    key = ec_key("k1")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks_of(key)))
    auth = authenticator(str(path), principal_claim="email")
    assert await principal_of(auth, token(key, email="alice@example.com")) == "alice@example.com"
    assert await refused(auth, token(key)) == "INVALID_TOKEN"  # no email claim
    assert await refused(auth, token(key, email=42)) == "INVALID_TOKEN"


async def test_tokens_that_must_not_pass_are_unauthenticated(tmp_path):
    key, stranger = ec_key("k1"), ec_key("k1")  # same kid, different key: a forgery
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks_of(key)))
    auth = authenticator(str(path), leeway_seconds=5)
    now = int(time.time())
    assert await refused(auth, token(key, iss="https://evil.example.com")) == "INVALID_TOKEN"
    assert await refused(auth, token(key, iss=None)) == "INVALID_TOKEN"
    assert await refused(auth, token(key, aud="another-service")) == "INVALID_TOKEN"
    assert await refused(auth, token(key, aud=None)) == "INVALID_TOKEN"
    assert await principal_of(auth, token(key, aud=["other", AUDIENCE])) == "alice"
    assert await refused(auth, token(key, exp=now - 60)) == "TOKEN_EXPIRED"
    assert await refused(auth, token(key, exp=None)) == "INVALID_TOKEN"
    assert await refused(auth, token(key, nbf=now + 600)) == "INVALID_TOKEN"
    assert await refused(auth, token(key, iat=now + 600)) == "INVALID_TOKEN"
    assert await refused(auth, token(stranger)) == "INVALID_TOKEN"  # bad signature
    tampered = token(key).split(".")
    tampered[1] = token(key, sub="root").split(".")[1]
    assert await refused(auth, ".".join(tampered)) == "INVALID_TOKEN"
    assert await refused(auth, "not-a-jwt") == "INVALID_CREDENTIALS"
    assert await refused(auth, "a.b.c") == "INVALID_TOKEN"
    assert await refused(auth, None) == "MISSING_CREDENTIALS"


async def test_small_clock_skew_is_tolerated(tmp_path):
    key = ec_key("k1")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks_of(key)))
    auth = authenticator(str(path), leeway_seconds=30)
    now = int(time.time())
    assert await principal_of(auth, token(key, exp=now - 5)) == "alice"
    assert await principal_of(auth, token(key, nbf=now + 5, iat=now + 5)) == "alice"


async def test_none_and_symmetric_algorithms_are_refused(tmp_path):
    key = ec_key("k1")
    secret = OctKey.generate_key(256, parameters={"kid": "shared"})
    path = tmp_path / "jwks.json"
    # An oct key in the JWKS is never used: a published HMAC key would let anyone sign.
    path.write_text(json.dumps({"keys": [*jwks_of(key)["keys"], secret.as_dict(private=True)]}))
    auth = authenticator(str(path), algorithms=("ES256",))
    assert await refused(auth, token(secret, alg="HS256")) == "INVALID_TOKEN"
    unsigned = token(key).split(".")
    header = jwt.encode({"alg": "none", "kid": "k1"}, {"sub": "x"}, None, algorithms=["none"])
    assert await refused(auth, header.split(".")[0] + "." + unsigned[1] + ".") == "INVALID_TOKEN"
    # An RS256 token naming an EC key's kid must not be checked against the EC key.
    mixed = authenticator(str(path), algorithms=("ES256", "RS256"))
    impostor = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    assert await refused(mixed, token(impostor, alg="RS256")) == "INVALID_TOKEN"
    assert await principal_of(mixed, token(key)) == "alice"
    for algorithms in (("none",), ("HS256",), ()):
        with pytest.raises(ValueError, match="ALGORITHMS"):
            identity.OidcConfig(
                issuer=ISSUER, audience=AUDIENCE, jwks=str(path), algorithms=algorithms
            )


def test_configuration_is_checked_at_start_up(tmp_path):
    with pytest.raises(ValueError, match="https"):
        identity.OidcConfig(issuer=ISSUER, audience=AUDIENCE, jwks="http://idp.example.com/jwks")
    with pytest.raises(ValueError, match="AUDIENCE"):
        identity.OidcConfig(issuer=ISSUER, audience="", jwks=str(tmp_path / "jwks.json"))
    # Without a JWKS location the keys come through the issuer's discovery document, so the
    # issuer must then be an https URL.
    identity.OidcConfig(issuer=ISSUER, audience=AUDIENCE, jwks="")
    with pytest.raises(ValueError, match="LINKPLANE_OIDC_JWKS is required"):
        identity.OidcConfig(issuer="corp-idp", audience=AUDIENCE, jwks="")
    with pytest.raises(ValueError, match="https"):
        identity.OidcConfig(issuer="http://idp.example.com", audience=AUDIENCE, jwks="")
    settings = Settings(oidc_issuer="corp-idp", oidc_audience=AUDIENCE)  # no JWKS
    with pytest.raises(ValueError, match="JWKS"):
        identity.Authenticator.from_settings(settings)


async def test_key_rotation_is_picked_up_and_unknown_kids_are_rate_limited(idp):
    old, new = ec_key("2024"), ec_key("2025")
    idp.document = jwks_of(old)
    auth = authenticator(idp.url, jwks_min_refresh_seconds=3600)
    assert await principal_of(auth, token(old)) == "alice"
    assert idp.fetches == 1
    # A flood of tokens with made-up kids within the refresh interval of the last fetch costs
    # the identity provider nothing more.
    for n in range(20):
        assert await refused(auth, token(ec_key(f"bogus-{n}"))) == "UNKNOWN_SIGNING_KEY"
    assert idp.fetches == 1

    # The IdP publishes the new key, then signs with it: one refetch finds it.
    rotating = authenticator(idp.url, jwks_min_refresh_seconds=0)
    idp.document = jwks_of(old)
    assert await principal_of(rotating, token(old)) == "alice"
    idp.document = jwks_of(old, new)
    before = idp.fetches
    assert await principal_of(rotating, token(new, sub="bob")) == "bob"
    assert await principal_of(rotating, token(old)) == "alice"
    assert idp.fetches == before + 1


async def test_keys_expire_with_their_ttl(idp):
    old, new = ec_key("old"), ec_key("new")
    idp.document = jwks_of(old, new)
    auth = authenticator(idp.url, jwks_ttl_seconds=3600, jwks_min_refresh_seconds=0)
    assert await principal_of(auth, token(old)) == "alice"
    idp.document = jwks_of(new)  # the old key is withdrawn
    assert await principal_of(auth, token(old)) == "alice"  # still cached, within the TTL
    expiring = authenticator(idp.url, jwks_ttl_seconds=0.001, jwks_min_refresh_seconds=0)
    idp.document = jwks_of(old, new)
    assert await principal_of(expiring, token(old)) == "alice"
    idp.document = jwks_of(new)
    reason = None
    deadline = time.monotonic() + 30
    while reason is None and time.monotonic() < deadline:  # the next call after the TTL refetches
        try:
            await principal_of(expiring, token(old))
        except errors.Unauthenticated as error:
            reason = error.reason
    assert reason == "UNKNOWN_SIGNING_KEY", "a withdrawn key stayed trusted past the JWKS TTL"
    assert await principal_of(expiring, token(new)) == "alice"


async def test_an_unreachable_jwks_is_unavailable_and_stale_keys_keep_working(idp):
    key = ec_key("k1")
    idp.document = jwks_of(key)
    idp.failing = True
    auth = authenticator(idp.url, jwks_ttl_seconds=0.001, jwks_min_refresh_seconds=0)
    with pytest.raises(errors.Unavailable):
        await principal_of(auth, token(key))
    idp.failing = False
    assert await principal_of(auth, token(key)) == "alice"
    idp.failing = True
    fetched = idp.fetches
    assert await principal_of(auth, token(key)) == "alice"  # the IdP is down: keep the keys
    assert idp.fetches > fetched


@pytest.fixture(scope="module")
def module_key() -> ECKey:
    return ec_key("server-key")


@pytest.fixture(scope="module")
def module_jwks(module_key: ECKey, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path: Path = tmp_path_factory.mktemp("oidc") / "jwks.json"
    path.write_text(json.dumps(jwks_of(module_key)))
    return path


@pytest.fixture(scope="module")
async def oidc_server(database_url: str, module_jwks: Path) -> AsyncIterator[Runtime]:
    path = module_jwks
    settings = Settings(
        listen="127.0.0.1:0",
        role=Role.API,
        auth_tokens={"static-token": "robot"},
        admins=["alice", "robot"],  # authentication is under test here, not authorization
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks=str(path),
    )
    async with runtimes.running(settings, database_url) as runtime:
        yield runtime


async def test_the_server_accepts_oidc_and_static_tokens_and_refuses_bad_ones(
    oidc_server, module_key
):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{oidc_server.port}") as channel:
        stub = account_service_pb2_grpc.AccountServiceStub(channel)
        request = account_service_pb2.ListAccountsRequest(parent="projects/oidc")

        async def code(bearer: str) -> grpc.StatusCode:
            try:
                await stub.ListAccounts(
                    request, metadata=(("authorization", f"Bearer {bearer}"),), timeout=30
                )
            except grpc.aio.AioRpcError as error:
                return error.code()
            return grpc.StatusCode.OK

        assert await code(token(module_key)) == grpc.StatusCode.OK
        assert await code("static-token") == grpc.StatusCode.OK
        expired = token(module_key, exp=int(time.time()) - 3600)
        assert await code(expired) == grpc.StatusCode.UNAUTHENTICATED
        assert await code(token(module_key, aud="x")) == grpc.StatusCode.UNAUTHENTICATED
        assert await code(token(ec_key("server-key"))) == grpc.StatusCode.UNAUTHENTICATED


async def test_a_malformed_key_in_the_jwks_does_not_hide_the_good_ones(tmp_path):
    key = ec_key("good")
    path = tmp_path / "jwks.json"
    broken = {"kty": "EC", "kid": "broken", "crv": "P-256", "x": "not-base64!", "y": "?"}
    encryption = {**jwks_of(ec_key("enc"))["keys"][0], "use": "enc"}
    path.write_text(json.dumps({"keys": [broken, encryption, *jwks_of(key)["keys"]]}))
    auth = authenticator(str(path))
    assert await principal_of(auth, token(key)) == "alice"
    assert auth.oidc is not None
    assert sorted(auth.oidc.keys._keys) == ["good"]


async def test_verified_tokens_are_reused_until_they_expire(tmp_path, monkeypatch):
    key = ec_key("k1")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks_of(key)))
    now = [float(int(time.time()))]
    config = identity.OidcConfig(
        issuer=ISSUER, audience=AUDIENCE, jwks=str(path), leeway_seconds=10
    )
    verifier = identity.OidcVerifier(config, clock=lambda: now[0])
    decodes = []
    real_decode = identity.jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        decodes.append(1)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(identity.jwt, "decode", counting_decode)
    issued = token(key, exp=int(now[0]) + 100, iat=int(now[0]))
    assert await verifier.principal(issued) == "alice"
    assert await verifier.principal(issued) == "alice"
    assert len(decodes) == 1  # the second call was answered from the cache
    now[0] += 105  # past exp, within the leeway: still accepted, still cached
    assert await verifier.principal(issued) == "alice"
    assert len(decodes) == 1
    now[0] += 10  # past exp + leeway: the cached answer is dropped and the token refused
    with pytest.raises(errors.Unauthenticated) as caught:
        await verifier.principal(issued)
    assert caught.value.reason == "TOKEN_EXPIRED"
    assert len(decodes) == 2


async def test_a_key_change_drops_tokens_verified_with_the_old_keys(idp):
    old, new = ec_key("old"), ec_key("new")
    idp.document = jwks_of(old)
    config = identity.OidcConfig(
        issuer=ISSUER, audience=AUDIENCE, jwks=idp.url, jwks_min_refresh_seconds=0
    )
    verifier = identity.OidcVerifier(config)
    cached = token(old)
    assert await verifier.principal(cached) == "alice"
    # The IdP withdraws the old key; a token with the new kid makes linkplane refetch.
    idp.document = jwks_of(new)
    assert await verifier.principal(token(new, sub="bob")) == "bob"
    with pytest.raises(errors.Unauthenticated) as caught:
        await verifier.principal(cached)
    assert caught.value.reason == "UNKNOWN_SIGNING_KEY"


async def test_keys_are_found_through_the_issuers_discovery_document(idp):
    key = ec_key("discovered")
    idp.document = jwks_of(key)
    idp.discovery = {"issuer": idp.base, "jwks_uri": idp.url}
    config = identity.OidcConfig(issuer=idp.base, audience=AUDIENCE, jwks="")
    auth = identity.Authenticator(oidc=config)
    assert await principal_of(auth, token(key, iss=idp.base)) == "alice"
    assert idp.fetches == 1

    # A discovery document naming another issuer is not trusted (OIDC Discovery 4.3).
    idp.discovery = {"issuer": "https://evil.example.com", "jwks_uri": idp.url}
    impostor = identity.Authenticator(oidc=config)
    with pytest.raises(errors.Unavailable):
        await principal_of(impostor, token(key, iss=idp.base))
    # Nor one sending keys over plain http from elsewhere than loopback.
    idp.discovery = {"issuer": idp.base, "jwks_uri": "http://keys.example.com/jwks"}
    downgraded = identity.Authenticator(oidc=config)
    with pytest.raises(errors.Unavailable):
        await principal_of(downgraded, token(key, iss=idp.base))
