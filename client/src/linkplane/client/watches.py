"""Watch iterators that survive server restarts and still tell a coherent story.

A `Watch*` stream breaks whenever the server restarts or a proxy drops it. Reconnecting naively
would replay the whole snapshot as EXISTING and silently miss deletions that happened while
disconnected. So every (re)connection asks for `send_initial=True`, and `_Coherence` compares the
new snapshot with what the caller has already seen (by name and etag): unchanged resources are
dropped, changed ones become MODIFIED, new ones ADDED, and those missing from the snapshot are
reported DELETED when SYNCED arrives. The caller sees one stream, as if nothing broke.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar

import grpc

from linkplane.client import config as config_
from linkplane.client import errors
from linkplane.client._transport import spread
from linkplane.v1 import common_pb2

__all__ = ["AsyncWatch", "Watch", "WatchEvent"]

ResourceT = TypeVar("ResourceT")

EXISTING = common_pb2.EVENT_TYPE_EXISTING
ADDED = common_pb2.EVENT_TYPE_ADDED
MODIFIED = common_pb2.EVENT_TYPE_MODIFIED
DELETED = common_pb2.EVENT_TYPE_DELETED
SYNCED = common_pb2.EVENT_TYPE_SYNCED

# A clean end of a watch is never normal (watches are open-ended), so it is treated like
# UNAVAILABLE: the server went away gracefully, e.g. a rolling restart.
# RESOURCE_EXHAUSTED only counts when it carries a RetryInfo (see `_reconnect_delay`).
_RECONNECT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})


@dataclasses.dataclass(frozen=True)
class WatchEvent(Generic[ResourceT]):
    """One change in a watched collection."""

    type: common_pb2.EventType.ValueType
    """EXISTING, SYNCED, ADDED, MODIFIED or DELETED (`linkplane.v1.EventType`)."""

    resource: ResourceT | None
    """The resource after the change (its last state for DELETED); None for SYNCED."""

    event_time: datetime.datetime | None = None
    """When the server committed the change; None for changes inferred after a reconnect."""

    @property
    def type_name(self) -> str:
        """The event type without prefix, e.g. `ADDED`."""
        return common_pb2.EventType.Name(self.type).removeprefix("EVENT_TYPE_")


class _Coherence(Generic[ResourceT]):
    """Turns a sequence of (re)connections into one stream without duplicates or gaps."""

    def __init__(self, *, show_initial: bool) -> None:
        self._show_initial = show_initial
        self._known: dict[str, Any] = {}
        self._synced = False
        self._seen: set[str] = set()

    def connected(self) -> None:
        self._seen = set()

    def apply(self, response: Any, field: str) -> list[WatchEvent[ResourceT]]:
        kind = response.type
        resource = getattr(response, field) if response.HasField(field) else None
        when = (
            response.event_time.ToDatetime(datetime.UTC)
            if response.HasField("event_time")
            else None
        )
        if kind == SYNCED:
            return self._synced_event()
        if resource is None:
            return []
        name = resource.name
        previous = self._known.get(name)
        if kind == DELETED:
            self._known.pop(name, None)
            return [WatchEvent(DELETED, resource, when)]
        self._known[name] = resource
        if kind == EXISTING:
            self._seen.add(name)
            if not self._synced:
                # A snapshot interrupted before SYNCED is replayed; skip what was already shown.
                if previous is not None and previous.etag == resource.etag:
                    return []
                return [WatchEvent(EXISTING, resource, when)] if self._show_initial else []
            if previous is None:
                return [WatchEvent(ADDED, resource, None)]
        if previous is not None and previous.etag == resource.etag:
            return []  # the caller already has exactly this version
        if kind == EXISTING:
            return [WatchEvent(MODIFIED, resource, None)]
        return [WatchEvent(kind, resource, when)]

    def _synced_event(self) -> list[WatchEvent[ResourceT]]:
        # Whatever the caller knows but this connection's snapshot lacks was deleted meanwhile.
        gone = [name for name in self._known if name not in self._seen]
        events: list[WatchEvent[ResourceT]] = [
            WatchEvent(DELETED, self._known.pop(name), None) for name in gone
        ]
        if not self._synced:
            self._synced = True
            if self._show_initial:
                events.append(WatchEvent(SYNCED, None))
        return events


def _reconnect_delay(
    error: grpc.RpcError, failures: int, config: config_.ClientConfig
) -> float | None:
    """Seconds to wait before reconnecting after `error`, or None when it is final.

    UNAVAILABLE reconnects with backoff; RESOURCE_EXHAUSTED with a RetryInfo (the server's
    stream cap) reconnects too, after the advised delay. Either way a RetryInfo longer than the
    backoff is honoured, so watchers refused together do not all come back at once.
    """
    mapped = errors.from_rpc_error(error)
    advised = mapped.retry_delay
    if mapped.code is grpc.StatusCode.RESOURCE_EXHAUSTED and advised is None:
        return None
    if mapped.code not in _RECONNECT_CODES:
        return None
    _give_up_after(failures, config, mapped)
    backoff = config.watch_backoff.delay(failures - 1)
    if advised is None:
        return backoff
    return max(backoff, advised + spread(advised))


class _Reconnects:
    """When a watch connects again, and when it gives up: the count of connections in a row
    that ended without an event, and the delay the last one's end asks for."""

    def __init__(self, config: config_.ClientConfig) -> None:
        self._config = config
        self._failures = 0
        # Stays None for a clean end of the stream: reconnect with backoff.
        self._delay: float | None = None

    def received(self) -> None:
        """An event arrived: the connection works, so failures start counting from zero."""
        self._failures = 0

    def failed(self, error: grpc.RpcError) -> None:
        """The stream broke with `error`; raises it (mapped) when reconnecting cannot help."""
        self._delay = _reconnect_delay(error, self._failures + 1, self._config)
        if self._delay is None:
            raise errors.from_rpc_error(error) from error

    def next_delay(self) -> float:
        """Seconds to wait before connecting again; `Unavailable` past the reconnect limit."""
        self._failures += 1
        delay, self._delay = self._delay, None
        if delay is None:
            _give_up_after(self._failures, self._config)
            delay = self._config.watch_backoff.delay(self._failures - 1)
        return delay


class _WatchBase(Generic[ResourceT]):
    """What both watches share: how to (re)open the stream and turn it into one story."""

    def __init__(
        self,
        start: Callable[[], Any],
        field: str,
        *,
        config: config_.ClientConfig,
        send_initial: bool,
    ) -> None:
        self._start = start
        self._field = field
        self._config = config
        self._coherence: _Coherence[ResourceT] = _Coherence(show_initial=send_initial)


class AsyncWatch(_WatchBase[ResourceT]):
    """An endless async iterator of `WatchEvent`s that reconnects on transient failures.

    Stop it by breaking out of the loop (the stream is cancelled when the iterator is closed) or
    with `aclose()`.
    """

    _iterator: AsyncIterator[WatchEvent[ResourceT]] | None = None

    def __aiter__(self) -> AsyncIterator[WatchEvent[ResourceT]]:
        if self._iterator is None:
            self._iterator = self._events()
        return self._iterator

    async def __anext__(self) -> WatchEvent[ResourceT]:
        return await self.__aiter__().__anext__()

    async def aclose(self) -> None:
        """Cancel the stream."""
        if self._iterator is not None:
            await self._iterator.aclose()  # type: ignore[attr-defined]

    async def _events(self) -> AsyncIterator[WatchEvent[ResourceT]]:
        reconnects = _Reconnects(self._config)
        while True:
            self._coherence.connected()
            call = self._start()
            try:
                async for response in call:
                    reconnects.received()
                    for event in self._coherence.apply(response, self._field):
                        yield event
            except grpc.RpcError as error:
                reconnects.failed(error)
            finally:
                call.cancel()
            await asyncio.sleep(reconnects.next_delay())


class Watch(_WatchBase[ResourceT]):
    """An endless blocking iterator of `WatchEvent`s that reconnects on transient failures.

    Stop it by breaking out of the loop or with `close()`; either cancels the stream.
    """

    _iterator: Iterator[WatchEvent[ResourceT]] | None = None

    def __iter__(self) -> Iterator[WatchEvent[ResourceT]]:
        if self._iterator is None:
            self._iterator = self._events()
        return self._iterator

    def __next__(self) -> WatchEvent[ResourceT]:
        return next(iter(self))

    def close(self) -> None:
        """Cancel the stream."""
        if self._iterator is not None:
            self._iterator.close()  # type: ignore[attr-defined]

    def _events(self) -> Iterator[WatchEvent[ResourceT]]:
        reconnects = _Reconnects(self._config)
        while True:
            self._coherence.connected()
            call = self._start()
            try:
                for response in call:
                    reconnects.received()
                    yield from self._coherence.apply(response, self._field)
            except grpc.RpcError as error:
                reconnects.failed(error)
            finally:
                call.cancel()
            time.sleep(reconnects.next_delay())


def _give_up_after(
    failures: int, config: config_.ClientConfig, last: errors.LinkplaneError | None = None
) -> None:
    limit = config.watch_max_reconnects
    if limit is not None and failures > limit:
        if last is not None and last.code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise last  # still refused: the caller should see the cap, not a vague Unavailable
        raise errors.Unavailable(
            f"watch stream lost {failures} times in a row without an event; giving up",
            code=grpc.StatusCode.UNAVAILABLE,
        )
