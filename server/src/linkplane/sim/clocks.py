"""The simulated clock: one knob (``time_scale``) that speeds up every delay and refill.

Every delay in the simulator (NLB provisioning, endpoint acceptance, deletion, eventual
consistency) and every token-bucket refill is expressed in *simulated seconds* and compared
against this clock, so changing the scale at runtime changes all of them at once, consistently,
without rescheduling timers.
"""

import threading
import time


class SimClock:
    """Simulated seconds that advance ``time_scale`` times faster than the wall clock."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        self._lock = threading.Lock()
        self._scale = time_scale
        # Rebase points: the simulated time at the last scale change and the wall time then.
        # Rebasing keeps simulated time continuous (never jumps back) when the scale changes.
        self._sim_base = 0.0
        self._real_base = time.monotonic()

    @property
    def time_scale(self) -> float:
        return self._scale

    def now(self) -> float:
        """Simulated seconds since the clock was created."""
        with self._lock:
            return self._sim_base + (time.monotonic() - self._real_base) * self._scale

    def set_time_scale(self, time_scale: float) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        with self._lock:
            real_now = time.monotonic()
            self._sim_base += (real_now - self._real_base) * self._scale
            self._real_base = real_now
            self._scale = time_scale

    def real_seconds(self, sim_seconds: float) -> float:
        """How long ``sim_seconds`` of simulated time take on the wall clock right now."""
        return sim_seconds / self._scale
