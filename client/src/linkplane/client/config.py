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

    tls: bool = False
    """Connect with TLS. Without `tls_root_certificates`, the system trust store is used."""

    tls_root_certificates: bytes | None = None
    """PEM-encoded CA certificates to verify the server with (implies `tls`)."""

    default_timeout: float = 30.0
    """Deadline in seconds of every unary call that does not pass its own `timeout`. With
    retries, the deadline covers all attempts together."""

    max_attempts: int = 5
    """Attempts of a unary call (first try included) while the server answers UNAVAILABLE.
    No other code is ever retried; mutations re-send the same `request_id`."""

    retry_backoff: Backoff = dataclasses.field(default_factory=Backoff)
    """Delays between attempts of a unary call answered with UNAVAILABLE."""

    poll_backoff: Backoff = dataclasses.field(
        default_factory=lambda: Backoff(initial=0.2, maximum=5.0, multiplier=1.5, jitter=0.1)
    )
    """Delays between GetOperation polls while waiting for a long-running operation."""

    watch_backoff: Backoff = dataclasses.field(
        default_factory=lambda: Backoff(initial=0.2, maximum=10.0)
    )
    """Delays between reconnects of a broken watch stream."""

    watch_max_reconnects: int | None = 20
    """Consecutive reconnects of a watch, with no event received in between, before the
    iterator gives up with `Unavailable`; None retries forever."""

    user_agent: str = "linkplane-client-python"
    """Prefix of the gRPC user agent, so server logs tell clients apart."""

    @property
    def uses_tls(self) -> bool:
        """Whether the channel is TLS (asked for, or root certificates given)."""
        return self.tls or self.tls_root_certificates is not None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> ClientConfig:
        """Build a config from `LINKPLANE_ADDRESS` (default `127.0.0.1:50051`),
        `LINKPLANE_TOKEN`, `LINKPLANE_TLS_CA` (path to a PEM bundle; enables TLS) and
        `LINKPLANE_TLS` (`1`/`true`: TLS with the system trust store). Keyword `overrides`
        replace fields afterwards, e.g. `ClientConfig.from_env(default_timeout=5)`.
        """
        env = os.environ if environ is None else environ
        ca_path = env.get("LINKPLANE_TLS_CA") or None
        config = cls(
            address=env.get("LINKPLANE_ADDRESS") or DEFAULT_ADDRESS,
            token=env.get("LINKPLANE_TOKEN") or None,
            tls=env.get("LINKPLANE_TLS", "").lower() in {"1", "true", "yes"},
            tls_root_certificates=Path(ca_path).read_bytes() if ca_path else None,
        )
        return dataclasses.replace(config, **overrides)  # type: ignore[arg-type]
