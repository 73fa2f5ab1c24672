"""Coalesced lookups (storage/coalescing.py): one statement for the lookups that wait together,
and never an answer older than the lookup."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest

from linkplane.server.storage.coalescing import Coalescer


async def settle() -> None:
    """Let every task that can run, run (a few loop iterations: lookups, then statements)."""
    for _ in range(5):
        await asyncio.sleep(0)


class Store:
    """A fake table whose reads can be held, so that a test decides when a statement ends."""

    def __init__(self, values: dict[str, int]) -> None:
        self.values = values
        self.statements: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.failure: Exception | None = None

    async def fetch(self, keys: Sequence[str]) -> Mapping[str, int]:
        self.statements.append(list(keys))
        snapshot = {key: self.values[key] for key in keys if key in self.values}  # at its start
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:  # as it is when the statement ends
            raise self.failure
        return snapshot


async def test_lookups_that_wait_together_share_one_statement():
    store = Store({f"k{i}": i for i in range(10)})
    gets = Coalescer(store.fetch)
    keys = [f"k{i % 10}" for i in range(30)] + ["missing"]

    answers = await asyncio.gather(*(gets.get(key) for key in keys))

    assert answers == [i % 10 for i in range(30)] + [None]
    # The first starts at once, alone; the other 30 lookups (11 keys) wait and go together.
    assert [len(keys) for keys in store.statements] == [1, 11]
    assert gets.statements == 2 and gets.lookups == 31


async def test_a_lone_lookup_does_not_wait_for_a_batch():
    store = Store({"a": 1})
    gets = Coalescer(store.fetch)
    assert await gets.get("a") == 1
    assert await gets.get("a") == 1
    assert store.statements == [["a"], ["a"]]


async def test_a_lookup_never_joins_a_statement_that_started_before_it():
    """Read-your-writes: a write committed before a Get was asked for is in its answer."""
    store = Store({"a": 1})
    store.gate = asyncio.Event()
    gets = Coalescer(store.fetch)
    first = asyncio.ensure_future(gets.get("a"))
    await settle()
    assert store.statements == [["a"]]  # in flight, with its snapshot taken

    store.values["a"] = 2  # a write commits
    second = asyncio.ensure_future(gets.get("a"))
    await settle()
    store.gate.set()

    assert await first == 1
    assert await second == 2
    assert store.statements == [["a"], ["a"]]


async def test_a_cancelled_caller_leaves_the_statement_to_the_others():
    store = Store({"a": 1, "b": 2})
    store.gate = asyncio.Event()
    gets = Coalescer(store.fetch)
    leader = asyncio.ensure_future(gets.get("a"))
    await settle()
    waiting = [asyncio.ensure_future(gets.get(key)) for key in ("a", "b", "b")]
    await settle()
    leader.cancel()
    waiting[1].cancel()
    store.gate.set()

    with pytest.raises(asyncio.CancelledError):
        await leader
    assert await waiting[0] == 1
    assert await waiting[2] == 2
    assert store.statements == [["a"], ["a", "b"]]


async def test_a_failed_statement_fails_its_lookups_and_the_next_ones_run():
    store = Store({"a": 1, "b": 2})
    store.gate = asyncio.Event()
    store.failure = ConnectionError("database unreachable")
    gets = Coalescer(store.fetch)
    first = asyncio.ensure_future(gets.get("a"))
    await settle()
    carried = [asyncio.ensure_future(gets.get(key)) for key in ("a", "b")]
    await settle()
    store.gate.set()

    with pytest.raises(ConnectionError):
        await first
    store.failure = None  # the database is back before the waiting lookups' statement ends
    assert await asyncio.gather(*carried) == [1, 2]
    assert store.statements == [["a"], ["a", "b"]]
