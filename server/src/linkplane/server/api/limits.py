"""Caps on what callers may hold at once: Watch streams and concurrent unary calls.

One `Limits` per process, consulted by api/rpc.py's wrappers right after authentication (so the
caps count principals, not connections) and before anything touches the database. A call over a
cap is answered at once with RESOURCE_EXHAUSTED, an ErrorInfo naming the limit, and a RetryInfo
saying when to try again, instead of queueing behind the pool: one noisy caller (or a fleet of
watchers) cannot starve everyone else's GetService.

The counts are plain integers: the server runs on one event loop, so acquiring and releasing
never interleave.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from linkplane.server.config import Settings
from linkplane.server.domain import errors

# RetryInfo hints: a stream slot frees when a watcher goes away (rarely soon), a call slot when
# one of the caller's own calls returns (soon).
STREAM_RETRY_SECONDS = 5
CALL_RETRY_SECONDS = 1


@dataclass
class Lease:
    """One held slot of `principal`; `release` gives it back (idempotent)."""

    counts: Counter[str]
    principal: str
    on_release: Callable[[], None] | None = None
    released: bool = False

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.counts[self.principal] -= 1
        if self.counts[self.principal] <= 0:
            del self.counts[self.principal]
        if self.on_release is not None:
            self.on_release()


@dataclass
class Limits:
    """The caps of one process and what is held against them now."""

    max_streams: int = 2000
    max_streams_per_principal: int = 100
    max_calls_per_principal: int = 64
    open_streams: int = 0
    calls_in_flight: int = 0
    _streams: Counter[str] = field(default_factory=Counter)
    _calls: Counter[str] = field(default_factory=Counter)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_streams=settings.max_streams,
            max_streams_per_principal=settings.max_streams_per_principal,
            max_calls_per_principal=settings.max_concurrent_calls_per_principal,
        )

    def acquire_stream(self, principal: str) -> Lease:
        """A Watch stream slot for `principal`, or ResourceExhausted."""
        if self.open_streams >= self.max_streams:
            raise _exhausted(
                f"this server already serves {self.max_streams} watch streams; retry later or "
                "on another replica",
                reason="TOO_MANY_STREAMS",
                limit=self.max_streams,
                scope="process",
                retry=STREAM_RETRY_SECONDS,
            )
        if self._streams[principal] >= self.max_streams_per_principal:
            raise _exhausted(
                f"{principal!r} already holds {self.max_streams_per_principal} watch streams; "
                "close one or share a stream",
                reason="TOO_MANY_STREAMS",
                limit=self.max_streams_per_principal,
                scope="principal",
                retry=STREAM_RETRY_SECONDS,
            )
        self._streams[principal] += 1
        self.open_streams += 1
        return Lease(self._streams, principal, on_release=self._stream_closed)

    def acquire_call(self, principal: str) -> Lease:
        """A slot for one unary call of `principal`, or ResourceExhausted."""
        if self._calls[principal] >= self.max_calls_per_principal:
            raise _exhausted(
                f"{principal!r} already has {self.max_calls_per_principal} calls in flight; "
                "wait for some to complete",
                reason="TOO_MANY_CONCURRENT_CALLS",
                limit=self.max_calls_per_principal,
                scope="principal",
                retry=CALL_RETRY_SECONDS,
            )
        self._calls[principal] += 1
        self.calls_in_flight += 1
        return Lease(self._calls, principal, on_release=self._call_done)

    def _call_done(self) -> None:
        self.calls_in_flight -= 1

    def _stream_closed(self) -> None:
        self.open_streams -= 1


def _exhausted(
    message: str, *, reason: str, limit: int, scope: str, retry: int
) -> errors.ResourceExhausted:
    return errors.ResourceExhausted(
        message,
        reason=reason,
        retry_after_seconds=retry,
        metadata={"limit": str(limit), "scope": scope},
    )
