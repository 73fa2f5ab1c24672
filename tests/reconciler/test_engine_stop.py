"""stop() ends the engine's loop even when a wake-up and the stop meet in one turn of the
event loop. On Python 3.11 `asyncio.wait_for` returns normally when a cancellation arrives
just after the awaited event was set, so a loop waiting with it kept running after stop():
a test worker of the suite hung for 300 s at the end of its session (pytest-timeout) waiting
for such a task to finish cancelling."""

from __future__ import annotations

import asyncio

from linkplane.server.reconciler import engine
from linkplane.server.storage import changes, database
from tests.reconciler.test_engine_bugs import db  # noqa: F401 - `db` is a fixture

ROUNDS = 20


async def test_stop_ends_the_loop_even_when_it_was_just_woken(
    db: database.Database,  # noqa: F811 - the fixture imported above
    own_database_url: str,
) -> None:
    for _ in range(ROUNDS):
        worker = engine.Engine(
            db=db,
            feed=changes.ChangeFeed(own_database_url),
            reconcilers=[],
            concurrency=1,
            lease_seconds=5.0,
            poll_seconds=0.2,
        )
        await worker.start()
        loop_task = worker._task
        assert loop_task is not None
        try:
            await asyncio.sleep(0.02)  # the loop waits for a wake-up now
            # A change arrives: the waiting is over, and its task is resumed in the next turn.
            worker._wake.set()
            await asyncio.sleep(0)
            # The stop, in the same turn as the waiting's end.
            await worker.stop(grace_seconds=1.0)
            assert loop_task.done(), "the engine's loop outlived stop()"
        finally:
            # Do not leave a looping task behind if the assertion failed: a cancel that does
            # not meet a wake-up ends it.
            if not loop_task.done():
                loop_task.cancel()
                await asyncio.wait([loop_task], timeout=2.0)
