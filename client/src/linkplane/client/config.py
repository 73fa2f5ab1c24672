"""Configuration of the linkplane client: where to connect, how to authenticate, how to retry.

`ClientConfig` is what `AsyncClient`, `Client` and `lpctl` are built from; `from_env()` reads the
same `LINKPLANE_*` variables `lpctl` documents, so scripts and the CLI agree. The backoff maths
lives here too, so unary retries, operation polling and watch reconnects share one definition.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DEFAULT_ADDRESS", "Backoff", "ClientConfig"]

DEFAULT_ADDRESS = "127.0.0.1:50051"


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter, for retries, polling and reconnects."""

    initial: float = 0.1
    """Delay before the first retry, in seconds."""

    maximum: float = 5.0
    """Upper bound of one delay, in seconds."""

    multiplier: float = 2.0
    """Growth factor between consecutive delays."""

    jitter: float = 0.2
    """Fraction of each delay that is randomised (0 to 1), so many clients do not retry in step
    after a server restart."""

    def delay(self, attempt: int) -> float:
        """The delay before retry number `attempt` (0-based), jitter applied."""
        base = min(self.maximum, self.initial * self.multiplier**attempt)
        # Random here is for spreading load, not for security.
        spread = base * self.jitter * random.random()  # noqa: S311
        return base - spread


@dataclasses.dataclass(frozen=True)
class ClientConfig:
    """How a linkplane client connects, authenticates, times out and retries."""

    address: str = DEFAULT_ADDRESS
    """`host:port` of the linkplane gRPC server."""

    token: str | None = None
    """Bearer token sent as `authorization: Bearer <token>` on every call; None sends none."""

    token_file: str | Path | None = None
    """File holding the bearer token (e.g. a projected service-account token). It is read
    again on every call, so a token rotated on disk is picked up without a restart. Give
    `token` or `token_file`, not both."""

    tls: bool = False
    """Connect with TLS. Without `tls_root_certificates`, the system trust store is used."""

    tls_root_certificates: bytes | None = None
    """PEM-encoded CA certificates to verify the server with (implies `tls`)."""

    tls_client_certificate_chain: bytes | None = None
    """PEM client certificate chain for mTLS (with `tls_client_private_key`; implies `tls`).
    A server with a client CA configured names the caller after this certificate."""

    tls_client_private_key: bytes | None = None
    """PEM private key of `tls_client_certificate_chain`."""

    default_timeout: float = 30.0
    """Deadline in seconds of every unary call that does not pass its own `timeout`. With
    retries, the deadline covers all attempts together."""

    max_attempts: int = 5
    """Attempts of a unary call (first try included) while the server answers UNAVAILABLE.
    Besides RESOURCE_EXHAUSTED with a RetryInfo (`max_exhausted_attempts`), no other code is
    ever retried; mutations re-send the same `request_id`."""

    max_exhausted_attempts: int = 3
    """Attempts of a unary call (first try included) while the server answers
    RESOURCE_EXHAUSTED with a `google.rpc.RetryInfo` (a per-caller cap on concurrent calls or
    streams): each retry waits the advised delay. Fewer than for UNAVAILABLE because the advised
    waits are long and an over-cap caller should back off, not keep pressing. RESOURCE_EXHAUSTED
    without RetryInfo is never retried."""

    retry_backoff: Backoff = dataclasses.field(default_factory=Backoff)
    """Delays between attempts of a unary call answered with UNAVAILABLE."""

    poll_backoff: Backoff = dataclasses.field(
        default_factory=lambda: Backoff(initial=0.2, maximum=5.0, multiplier=1.5, jitter=0.1)
    )
    """Delays between GetOperation polls while waiting for a long-running operation."""

    watch_backoff: Backoff = dataclasses.field(
        default_factory=lambda: Backoff(initial=0.2, maximum=10.0)
    )
    """Delays between reconnects of a broken watch stream (a RetryInfo the server sent with
    its refusal, e.g. the stream cap's, is waited out instead when longer)."""

    watch_max_reconnects: int | None = 20
    """Consecutive reconnects of a watch, with no event received in between, before the
    iterator gives up with `Unavailable`; None retries forever."""

    user_agent: str = "linkplane-client-python"
    """Prefix of the gRPC user agent, so server logs tell clients apart."""

    def __post_init__(self) -> None:
        if self.token and self.token_file:
            raise ValueError("give a token or a token file, not both")
        if (self.tls_client_certificate_chain is None) != (self.tls_client_private_key is None):
            raise ValueError("a TLS client certificate needs its private key, and vice versa")

    @property
    def uses_tls(self) -> bool:
        """Whether the channel is TLS (asked for, root or client certificates given)."""
        return (
            self.tls
            or self.tls_root_certificates is not None
            or self.tls_client_certificate_chain is not None
        )

    @property
    def has_credentials(self) -> bool:
        """Whether calls carry a bearer token (given, or read from a file)."""
        return bool(self.token or self.token_file)

    def bearer_token(self) -> str | None:
        """The token to send now: `token`, or the current contents of `token_file`.

        Raises `OSError` when the token file cannot be read and `ValueError` when it is empty,
        so a broken credential fails loudly instead of calling the server without one.
        """
        if self.token:
            return self.token
        if not self.token_file:
            return None
        token = Path(self.token_file).read_text().strip()
        if not token:
            raise ValueError(f"token file {self.token_file} is empty")
        return token

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> ClientConfig:
        """Build a config from `LINKPLANE_ADDRESS` (default `127.0.0.1:50051`),
        `LINKPLANE_TOKEN` or `LINKPLANE_TOKEN_FILE` (a file holding the token; the token wins
        when both are set), `LINKPLANE_TLS_CA` (path to a PEM bundle; enables TLS),
        `LINKPLANE_TLS_CERT` and `LINKPLANE_TLS_KEY` (client certificate and key for mTLS) and
        `LINKPLANE_TLS` (`1`/`true`: TLS with the system trust store). Keyword `overrides`
        replace fields afterwards, e.g. `ClientConfig.from_env(default_timeout=5)`.
        """
        env = os.environ if environ is None else environ
        ca_path = env.get("LINKPLANE_TLS_CA") or None
        cert_path = env.get("LINKPLANE_TLS_CERT") or None
        key_path = env.get("LINKPLANE_TLS_KEY") or None
        token = env.get("LINKPLANE_TOKEN") or None
        fields: dict[str, object] = {
            "address": env.get("LINKPLANE_ADDRESS") or DEFAULT_ADDRESS,
            "token": token,
            "token_file": None if token else env.get("LINKPLANE_TOKEN_FILE") or None,
            "tls": env.get("LINKPLANE_TLS", "").lower() in {"1", "true", "yes"},
            "tls_root_certificates": Path(ca_path).read_bytes() if ca_path else None,
            "tls_client_certificate_chain": Path(cert_path).read_bytes() if cert_path else None,
            "tls_client_private_key": Path(key_path).read_bytes() if key_path else None,
        }
        if "token" in overrides or "token_file" in overrides:
            # An explicit credential replaces whichever kind the environment gave.
            fields["token"] = fields["token_file"] = None
        fields.update(overrides)
        return cls(**fields)  # type: ignore[arg-type]
