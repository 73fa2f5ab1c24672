"""Concurrent lookups by key, answered by one statement for all of them (group commit, for reads).

Under load most of a Get's CPU is not its row but the round trip around it: a pool checkout
and checkin, asyncpg's execute, a socket write that wakes Postgres, the answer's read callback.
So one kind's lookups go to Postgres one statement at a time, and each statement takes every
lookup that waited while the one before it ran (`WHERE name = ANY(…)`): the busier the
process, the more lookups a statement carries. A lone lookup starts its statement at once (one
task hop later), so at low load nothing waits for a batch to fill. One statement at a time
also lets the statements run on a connection of their own (storage/driver.py's `Dedicated`),
without a pool checkout per statement.

What a caller reads is what it would have read alone: a lookup joins only a statement that
has not started yet, so that statement's snapshot is taken after the lookup was asked for and
sees every write committed before (read-your-writes holds, across replicas too). A caller that
is cancelled (its deadline passed) leaves the statement running for the others; a statement
that fails fails every lookup it carried, with the same error.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_KEYS = 256
"""Keys one statement carries: bounds its parameter array and its answer."""


class Coalescer(Generic[K, V]):
    """Lookups of one key each, answered by `fetch` (keys → the values found) in batches, one
    batch at a time."""

    def __init__(
        self,
        fetch: Callable[[Sequence[K]], Awaitable[Mapping[K, V]]],
        *,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._fetch = fetch
        self._max_keys = max_keys
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        # The context of each waiting key's first lookup: a statement runs in its first key's
        # (so it is a span of an RPC that asked for it, not of whichever ran before).
        self._contexts: dict[K, contextvars.Context] = {}
        self._running: asyncio.Task[None] | None = None  # also its strong reference
        self.statements = 0
        self.lookups = 0

    async def get(self, key: K) -> V | None:
        """The value of `key`, or None when `fetch` found none."""
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.get(key)
        if waiting is None:
            waiting = self._waiting[key] = []
            self._contexts[key] = contextvars.copy_context()
        waiting.append(future)
        self.lookups += 1
        self._start()
        return await future

    def _start(self) -> None:
        if self._waiting and self._running is None:
            keys = list(itertools.islice(self._waiting, self._max_keys))
            batch = {key: self._waiting.pop(key) for key in keys}
            contexts = [self._contexts.pop(key) for key in keys]
            self.statements += 1
            # Its own task: a cancelled caller must not cancel the statement others wait on.
            task = asyncio.get_running_loop().create_task(self._answer(batch), context=contexts[0])
            self._running = task
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running = None
        self._start()

    async def _answer(self, batch: dict[K, list[asyncio.Future[V | None]]]) -> None:
        try:
            found = await self._fetch(list(batch))
        except asyncio.CancelledError:
            # The process is stopping (the loop cancels its tasks): so are the callers.
            for futures in batch.values():
                for future in futures:
                    future.cancel()
            raise
        except Exception as error:
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
            return
        for key, futures in batch.items():
            value = found.get(key)
            for future in futures:
                if not future.done():  # not when its caller was cancelled meanwhile
                    future.set_result(value)
