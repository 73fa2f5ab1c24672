"""Who is calling: turns an RPC's credentials into the caller's principal.

`rpc.unary`/`rpc.streaming` call `Authenticator.authenticate` before anything else; the
principal it returns is what authorization checks and what the audit log records as the actor.
Credentials, in order:

- a bearer token (`authorization: Bearer …`, scheme case-insensitive): a static token from
  `LINKPLANE_AUTH_TOKENS`, else a verified OIDC/JWT token when an issuer is configured. A token
  that is presented must verify; a bad one is never silently replaced by another credential;
- the TLS client certificate, when the server requires one (`LINKPLANE_TLS_CLIENT_CA_FILE`).

With nothing configured, every caller is `LOCAL_PRINCIPAL` (dev mode: the local user).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

import grpc

from linkplane.server.config import Settings
from linkplane.server.domain import errors

LOCAL_PRINCIPAL = "local"
"""The principal of every caller when authentication is off (dev mode treats it as an admin)."""


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


class Authenticator:
    """Verifies callers' credentials; built once per process from the settings."""

    def __init__(self, *, tokens: Mapping[str, str] | None = None) -> None:
        self._tokens = {token.encode(): principal for token, principal in (tokens or {}).items()}

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        return cls(tokens=settings.auth_tokens)

    @property
    def enabled(self) -> bool:
        """False in dev mode: every caller is `LOCAL_PRINCIPAL`."""
        return bool(self._tokens)

    async def authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        """The caller's principal, or `errors.Unauthenticated`."""
        if not self.enabled:
            return LOCAL_PRINCIPAL
        token = bearer_token(context)
        if token is None:
            raise errors.Unauthenticated(
                "this call needs credentials: a bearer token", reason="MISSING_CREDENTIALS"
            )
        principal = self._static_principal(token)
        if principal is not None:
            return principal
        raise errors.Unauthenticated("invalid bearer token", reason="INVALID_CREDENTIALS")

    def _static_principal(self, token: str) -> str | None:
        presented = token.encode()
        found: str | None = None
        # Compare with every configured token, so timing does not reveal which one nearly matched.
        for known, principal in self._tokens.items():
            if hmac.compare_digest(known, presented):
                found = principal
        return found
