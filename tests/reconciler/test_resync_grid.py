"""Settled resources come due on a grid, so one account's passes share one snapshot."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from linkplane.server.reconciler.workspace import RESYNC_GRID_CAP_SECONDS, Timing


@given(
    now=st.floats(min_value=1e9, max_value=3e9),
    resync=st.floats(min_value=0.5, max_value=7200.0),
)
def test_a_resync_is_never_sooner_than_the_interval_and_lands_on_the_grid(
    now: float, resync: float
) -> None:
    timing = Timing(transitional_seconds=5.0, resync_seconds=resync)
    grid = min(RESYNC_GRID_CAP_SECONDS, resync / 5)
    delay = timing.resync_delay(now)
    assert resync - 1e-6 <= delay <= resync + grid + 1e-6
    ticks = (now + delay) / grid
    assert math.isclose(ticks, round(ticks), abs_tol=1e-6)


def test_resources_settled_within_one_tick_come_due_together() -> None:
    timing = Timing(transitional_seconds=5.0, resync_seconds=300.0)
    start = 1_800_000_000.0  # a multiple of 60
    due = {start + t + timing.resync_delay(start + t) for t in (0.5, 17.0, 42.0, 59.9)}
    assert due == {start + 360.0}
    # The next tick is a minute later, not a random moment.
    assert start + 61.0 + timing.resync_delay(start + 61.0) == start + 420.0
