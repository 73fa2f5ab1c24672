"""Who is calling: turns an RPC's credentials into the caller's principal.

`rpc.unary`/`rpc.streaming` call `Authenticator.authenticate` before anything else; the
principal it returns is what authorization checks and what the audit log records as the actor.
Credentials, in order:

- a bearer token (`authorization: Bearer …`, scheme case-insensitive): a static token from
  `LINKPLANE_AUTH_TOKENS`, else a verified OIDC/JWT token when an issuer is configured. A token
  that is presented must verify; a bad one is never silently replaced by another credential;
- the TLS client certificate, when the server requires one (`LINKPLANE_TLS_CLIENT_CA_FILE`).

With nothing configured, every caller is `LOCAL_PRINCIPAL` (dev mode: the local user).

Why one module of ~530 lines: the three credential kinds (static tokens, OIDC/JWT with its JWKS
cache and rotation, mTLS with SPIFFE/subject) answer one question in one order of precedence;
the order is the security property, so it is read in one place.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import ipaddress
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import structlog
from cryptography import x509
from cryptography.x509.oid import NameOID
from joserfc import errors as jose_errors
from joserfc import jws, jwt
from joserfc.jwk import ECKey, Key, KeySet, OKPKey, RSAKey

from linkplane.server.config import Settings
from linkplane.server.domain import errors

log = structlog.get_logger("linkplane.identity")

LOCAL_PRINCIPAL = "local"
"""The principal of every caller when authentication is off (dev mode treats it as an admin)."""

# Which key type verifies which JWS algorithm. Only asymmetric algorithms: an HMAC algorithm
# would let anyone holding the (public) JWKS forge tokens, and `none` verifies nothing.
KEY_TYPES_BY_ALGORITHM = {
    **dict.fromkeys(("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), "RSA"),
    **dict.fromkeys(("ES256", "ES384", "ES512", "ES256K"), "EC"),
    **dict.fromkeys(("EdDSA", "Ed25519"), "OKP"),
}
MAX_JWKS_BYTES = 1024 * 1024
# Verifying an ES256 token costs ~0.3 ms of CPU; a client sends the same token for minutes, so
# verified tokens are remembered briefly (never past their `exp`, the JWKS TTL or a key change).
VERIFIED_TOKEN_SECONDS = 60.0
MAX_VERIFIED_TOKENS = 10_000
JWKS_FETCH_TIMEOUT_SECONDS = 5.0


def bearer_token(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The credentials of the `authorization: Bearer …` header, None when there is no header.

    RFC 6750 makes the scheme case-insensitive. Two authorization headers are refused rather
    than guessed between.
    """
    values = [
        value
        for key, value in (context.invocation_metadata() or ())
        if key == "authorization" and isinstance(value, str)
    ]
    if not values:
        return None
    if len(values) > 1:
        raise errors.Unauthenticated(
            "more than one authorization header", reason="INVALID_CREDENTIALS"
        )
    scheme, _, credentials = values[0].strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        raise errors.Unauthenticated(
            "the authorization header must be `Bearer <token>`", reason="INVALID_CREDENTIALS"
        )
    return credentials


def invalid_token(message: str, reason: str = "INVALID_TOKEN") -> errors.Unauthenticated:
    return errors.Unauthenticated(message, reason=reason)


@dataclass(frozen=True)
class OidcConfig:
    """How OIDC/JWT bearer tokens are verified (`LINKPLANE_OIDC_*`)."""

    issuer: str
    """Exact `iss` every token must carry."""
    audience: str
    """A value the token's `aud` must contain: this linkplane installation."""
    jwks: str
    """Where the issuer's public keys are: a file path, an https URL (http only on loopback),
    or "" for the `jwks_uri` of the issuer's OpenID discovery document."""
    principal_claim: str = "sub"
    """The claim whose (string) value is the caller's principal."""
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    """Accepted JWS algorithms; asymmetric only."""
    leeway_seconds: int = 30
    """Clock skew tolerated on exp, nbf and iat."""
    jwks_ttl_seconds: float = 300.0
    """How long fetched keys are used before they are fetched again."""
    jwks_min_refresh_seconds: float = 10.0
    """At most one refetch per this interval for tokens naming an unknown `kid`."""

    def __post_init__(self) -> None:
        unsupported = [a for a in self.algorithms if a not in KEY_TYPES_BY_ALGORITHM]
        if unsupported or not self.algorithms:
            raise ValueError(
                f"LINKPLANE_OIDC_ALGORITHMS: unsupported {unsupported or 'empty list'}; "
                f"allowed: {sorted(KEY_TYPES_BY_ALGORITHM)} (never `none` or HS*)"
            )
        if not self.audience:
            raise ValueError("LINKPLANE_OIDC_AUDIENCE is required with LINKPLANE_OIDC_ISSUER")
        if not self.principal_claim:
            raise ValueError("LINKPLANE_OIDC_PRINCIPAL_CLAIM must name a claim")
        # Refuse a bad location at start-up, not at the first call.
        if self.jwks:
            jwks_source(self.jwks)
        elif not isinstance(jwks_source(discovery_url(self.issuer), "LINKPLANE_OIDC_ISSUER"), str):
            raise ValueError(
                "LINKPLANE_OIDC_JWKS is required when LINKPLANE_OIDC_ISSUER is not an https URL "
                "(its keys are otherwise found through its OpenID discovery document)"
            )


def discovery_url(issuer: str) -> str:
    """Where OpenID Connect Discovery 1.0 puts the issuer's metadata (and its `jwks_uri`)."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def jwks_source(location: str, what: str = "LINKPLANE_OIDC_JWKS") -> str | Path:
    """A JWKS location as a URL (str) or a file (Path); plain http only on loopback."""
    parsed = urllib.parse.urlsplit(location)
    if parsed.scheme == "https":
        return location
    if parsed.scheme == "http":
        host = parsed.hostname or ""
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(
                f"{what} {location!r}: keys must come over https "
                "(plain http is accepted only on loopback)"
            )
        return location
    if parsed.scheme in {"", "file"}:
        return Path(parsed.path if parsed.scheme == "file" else location)
    raise ValueError(f"{what} {location!r}: use a file path or an https URL")


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    """Follows redirects, except from https to anything else (keys must not travel in clear)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if req.full_url.startswith("https://") and not newurl.startswith("https://"):
            raise OSError(f"refusing a redirect from {req.full_url} to {newurl}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_NoDowngrade)


def read_jwks(source: str | Path) -> bytes:
    """A JSON document's bytes from a file or URL (blocking: run in a thread); at most 1 MiB."""
    if isinstance(source, Path):
        with source.open("rb") as file:
            body = file.read(MAX_JWKS_BYTES + 1)
    else:
        request = urllib.request.Request(source, headers={"Accept": "application/json"})  # noqa: S310
        with _OPENER.open(request, timeout=JWKS_FETCH_TIMEOUT_SECONDS) as response:
            body = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError(f"{source} is larger than {MAX_JWKS_BYTES} bytes")
    return bytes(body)


def fetch_jwks(config: OidcConfig) -> bytes:
    """The issuer's JWKS: from LINKPLANE_OIDC_JWKS, else through its discovery document."""
    if config.jwks:
        return read_jwks(jwks_source(config.jwks))
    metadata = json.loads(read_jwks(jwks_source(discovery_url(config.issuer))))
    if not isinstance(metadata, dict) or metadata.get("issuer") != config.issuer:
        # OpenID Connect Discovery 1.0, section 4.3: the document must name the same issuer.
        raise ValueError(f"{discovery_url(config.issuer)} names another issuer")
    jwks_uri = metadata.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
        raise ValueError(f"{discovery_url(config.issuer)} has no https jwks_uri")
    return read_jwks(jwks_source(jwks_uri, "jwks_uri"))


def public_signing_keys(document: bytes) -> dict[str, Key]:
    """Keys by `kid` from a JWKS: asymmetric, for signatures, public parts only.

    Symmetric (`oct`) keys are dropped: a verifier must never accept an HMAC made with key
    material that is published. Keys without a `kid` are indexed under "" (usable only when the
    set holds exactly one key).
    """
    data = json.loads(document)
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("not a JWKS: expected an object with a `keys` list")  # noqa: TRY004
    keys: dict[str, Key] = {}
    for entry in data["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") not in {"RSA", "EC", "OKP"}:
            continue
        if entry.get("use", "sig") != "sig":
            continue
        public = {k: v for k, v in entry.items() if k not in {"d", "p", "q", "dp", "dq", "qi"}}
        try:
            key: Key = KeySet.registry_cls.import_key(public)
        except (jose_errors.JoseError, ValueError, TypeError) as error:
            # One malformed key must not take the issuer's other keys down with it.
            log.warning("oidc.jwks_key_skipped", kid=str(entry.get("kid", "")), error=str(error))
            continue
        keys[str(entry.get("kid", ""))] = key
    if not keys:
        raise ValueError("the JWKS holds no public signing key")
    return keys


class JwksCache:
    """The issuer's signing keys, refetched when stale or when a token names an unknown key.

    Identity providers rotate keys by publishing the new key first and signing with it later,
    so an unknown `kid` means "fetch again" — but at most once per `min_refresh_seconds`, so a
    flood of tokens with made-up kids cannot turn linkplane into a load generator against the IdP.
    """

    def __init__(self, config: OidcConfig) -> None:
        self._config = config
        self._keys: dict[str, Key] = {}
        self._fetched_at = float("-inf")  # last successful fetch (monotonic)
        self._attempted_at = float("-inf")  # last attempt, successful or not
        self._lock = asyncio.Lock()
        self.fetches = 0
        self.generation = 0
        """Bumped whenever the fetched keys differ from the previous ones."""

    async def key(self, kid: str) -> Key | None:
        now = time.monotonic()
        if now - self._fetched_at >= self._config.jwks_ttl_seconds:
            await self._refresh(force=False)
        found = self._lookup(kid)
        if found is None and await self._refresh(force=True):
            found = self._lookup(kid)
        return found

    def _lookup(self, kid: str) -> Key | None:
        if kid:
            return self._keys.get(kid)
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    async def _refresh(self, *, force: bool) -> bool:
        """Fetch the keys; False when rate-limited. Stale keys stay in use if a fetch fails."""
        attempted = self._attempted_at
        async with self._lock:
            if self._attempted_at != attempted:
                return True  # another caller fetched while this one waited
            now = time.monotonic()
            recently = now - self._attempted_at < self._config.jwks_min_refresh_seconds
            if not self._keys and recently:
                raise self._unavailable()
            if force and recently:
                return False
            if not force and (recently or now - self._fetched_at < self._config.jwks_ttl_seconds):
                return True
            self._attempted_at = now
            self.fetches += 1
            try:
                document = await asyncio.to_thread(fetch_jwks, self._config)
                keys = public_signing_keys(document)
                if _fingerprint(keys) != _fingerprint(self._keys):
                    self.generation += 1
                self._keys = keys
            except (OSError, ValueError, jose_errors.JoseError) as error:
                log.warning("oidc.jwks_unavailable", jwks=self._config.jwks, error=str(error))
                if not self._keys:
                    raise self._unavailable() from None
                return True
            self._fetched_at = now
            log.info("oidc.jwks_fetched", jwks=self._config.jwks, keys=sorted(self._keys))
            return True

    @staticmethod
    def _unavailable() -> errors.Unavailable:
        return errors.Unavailable(
            "cannot read the identity provider's signing keys (JWKS); retry later",
            reason="JWKS_UNAVAILABLE",
        )


def _fingerprint(keys: Mapping[str, Key]) -> list[tuple[str, str]]:
    return sorted(
        (kid, json.dumps(key.as_dict(private=False), sort_keys=True)) for kid, key in keys.items()
    )


@dataclass(frozen=True)
class _Verified:
    """A token that verified: whom it names and how long that answer may be reused."""

    principal: str
    expires: float  # the token's `exp` (wall clock, seconds since the epoch)
    until: float  # monotonic end of this cache entry
    generation: int  # JwksCache.generation it was verified against


class OidcVerifier:
    """Verifies OIDC/JWT bearer tokens: signature, algorithm, issuer, audience and times."""

    def __init__(self, config: OidcConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.keys = JwksCache(config)
        self._clock = clock
        self._verified: dict[bytes, _Verified] = {}
        self._claims = jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            leeway=config.leeway_seconds,
            iss={"essential": True, "value": config.issuer},
            aud={"essential": True, "value": config.audience},
            exp={"essential": True},
        )

    @staticmethod
    def looks_like_jwt(token: str) -> bool:
        return token.count(".") == 2

    async def principal(self, token: str) -> str:
        """The principal a valid token names; `errors.Unauthenticated` otherwise."""
        digest = hashlib.sha256(token.encode()).digest()
        hit = self._verified.get(digest)
        if hit is not None:
            if (
                hit.generation == self.keys.generation
                and time.monotonic() < hit.until
                and self._clock() < hit.expires + self.config.leeway_seconds
            ):
                return hit.principal
            del self._verified[digest]
        principal, expires = await self._verify(token)
        if len(self._verified) >= MAX_VERIFIED_TOKENS:
            del self._verified[next(iter(self._verified))]  # the oldest entry
        lifetime = min(VERIFIED_TOKEN_SECONDS, self.config.jwks_ttl_seconds)
        self._verified[digest] = _Verified(
            principal, expires, time.monotonic() + lifetime, self.keys.generation
        )
        return principal

    async def _verify(self, token: str) -> tuple[str, float]:
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (jose_errors.JoseError, ValueError):
            raise invalid_token("the bearer token is not a valid JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self.config.algorithms:
            raise invalid_token(f"JWT algorithm {algorithm!r} is not accepted")
        kid = header.get("kid", "")
        key = await self.keys.key(kid if isinstance(kid, str) else "")
        if key is None:
            raise invalid_token(
                "the JWT is signed with an unknown key", reason="UNKNOWN_SIGNING_KEY"
            )
        if key.key_type != KEY_TYPES_BY_ALGORITHM[algorithm] or not isinstance(
            key, RSAKey | ECKey | OKPKey
        ):
            raise invalid_token("the JWT's algorithm does not match its key")
        try:
            decoded = jwt.decode(token, key, algorithms=[algorithm])
            self._claims.validate(decoded.claims)
        except jose_errors.ExpiredTokenError:
            raise invalid_token("the JWT has expired", reason="TOKEN_EXPIRED") from None
        except jose_errors.BadSignatureError:
            raise invalid_token("the JWT's signature does not verify") from None
        except jose_errors.ClaimError as error:
            raise invalid_token(f"the JWT's {error.claim!r} claim is missing or invalid") from None
        except (jose_errors.JoseError, ValueError):
            raise invalid_token("the bearer token is not a valid JWT") from None
        principal = decoded.claims.get(self.config.principal_claim)
        if not isinstance(principal, str) or not principal:
            raise invalid_token(
                f"the JWT has no string {self.config.principal_claim!r} claim to name the caller"
            )
        return principal, float(decoded.claims["exp"])


def certificate_principal(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The principal of a verified TLS client certificate: its SPIFFE ID, else its subject CN.

    Called only when the server requires client certificates, so gRPC has already verified the
    chain against LINKPLANE_TLS_CLIENT_CA_FILE; None when the connection has no certificate.
    """
    pems = list(context.auth_context().get("x509_pem_cert") or [])
    if not pems:
        return None
    named = _name_in_certificate(bytes(pems[0]))
    if isinstance(named, _Refused):
        raise errors.Unauthenticated(named.message, reason="INVALID_CREDENTIALS")
    return named


@dataclass(frozen=True)
class _Refused:
    message: str


# A connection presents the same certificate on every call: parse it once (~40 us each).
@functools.lru_cache(maxsize=1024)
def _name_in_certificate(pem: bytes) -> str | _Refused:
    certificate = x509.load_pem_x509_certificate(pem)
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uris = names.value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    spiffe = [uri for uri in uris if uri.lower().startswith("spiffe://")]
    if len(spiffe) > 1:
        # The SPIFFE X.509-SVID spec allows exactly one; several would be ambiguous.
        return _Refused("the client certificate has several SPIFFE IDs")
    if spiffe:
        return spiffe[0]
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if common_names:
        value = common_names[0].value
        text = value.decode() if isinstance(value, bytes) else str(value)
        if text:
            return text
    return _Refused("the client certificate names no SPIFFE ID and no common name")


class Authenticator:
    """Verifies callers' credentials; built once per process from the settings."""

    def __init__(
        self,
        *,
        tokens: Mapping[str, str] | None = None,
        oidc: OidcConfig | None = None,
        client_certificates: bool = False,
    ) -> None:
        self._tokens = {token.encode(): principal for token, principal in (tokens or {}).items()}
        self.oidc = OidcVerifier(oidc) if oidc is not None else None
        self.client_certificates = client_certificates

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        oidc = None
        if settings.oidc_issuer:
            oidc = OidcConfig(
                issuer=settings.oidc_issuer,
                audience=settings.oidc_audience or "",
                jwks=settings.oidc_jwks or "",
                principal_claim=settings.oidc_principal_claim,
                algorithms=tuple(settings.oidc_algorithms),
                leeway_seconds=settings.oidc_leeway_seconds,
                jwks_ttl_seconds=settings.oidc_jwks_ttl_seconds,
                jwks_min_refresh_seconds=settings.oidc_jwks_min_refresh_seconds,
            )
        return cls(
            tokens=settings.auth_tokens,
            oidc=oidc,
            client_certificates=settings.tls_client_ca_file is not None,
        )

    @property
    def enabled(self) -> bool:
        """False in dev mode: every caller is `LOCAL_PRINCIPAL`."""
        return bool(self._tokens) or self.oidc is not None or self.client_certificates

    async def authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        """The caller's principal, or `errors.Unauthenticated`."""
        if not self.enabled:
            return LOCAL_PRINCIPAL
        token = bearer_token(context)
        if token is not None:
            return await self._token_principal(token)
        if self.client_certificates:
            principal = certificate_principal(context)
            if principal is not None:
                return principal
        raise errors.Unauthenticated(
            f"this call needs credentials: {self._accepted()}", reason="MISSING_CREDENTIALS"
        )

    async def _token_principal(self, token: str) -> str:
        principal = self._static_principal(token)
        if principal is not None:
            return principal
        if self.oidc is not None and OidcVerifier.looks_like_jwt(token):
            return await self.oidc.principal(token)
        raise errors.Unauthenticated("invalid bearer token", reason="INVALID_CREDENTIALS")

    def _static_principal(self, token: str) -> str | None:
        presented = token.encode()
        found: str | None = None
        # Compare with every configured token, so timing does not reveal which one nearly matched.
        for known, principal in self._tokens.items():
            if hmac.compare_digest(known, presented):
                found = principal
        return found

    def _accepted(self) -> str:
        kinds: Sequence[str] = [
            kind
            for kind, on in (
                ("a bearer token", bool(self._tokens) or self.oidc is not None),
                ("a TLS client certificate", self.client_certificates),
            )
            if on
        ]
        return " or ".join(kinds)
