"""Injected faults: random 500/503 answers, added latency, late answers and eventual consistency.

The gateway consults ``FaultInjector.decide()`` for every AWS call. Rules come from the config
and the admin API; a seeded RNG makes a fault sequence reproducible. Eventual consistency is
tracked here too: after a Create with ``consistency_delay_s``, the gateway hides the new id from
Describe calls that name it until the (simulated) delay has passed, as AWS sometimes does.
"""

import dataclasses
import random
import threading

from linkplane.sim import clocks, config


@dataclasses.dataclass(frozen=True)
class Decision:
    """What to do to one request before serving it."""

    latency_ms: float = 0.0
    error_code: str | None = None
    status: int = 200
    consistency_delay_s: float = 0.0
    answer_delay_ms: float = 0.0


class FaultInjector:
    """Per-action fault rules and the RNG that draws from them."""

    def __init__(self, clock: clocks.SimClock, seed: int | None = None) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._rules: dict[str, config.FaultRule] = {}
        self._seed = seed
        self._rng = random.Random(seed)  # noqa: S311 - fault injection, not cryptography
        # id -> simulated time at which Describe calls may see it.
        self._hidden_until: dict[str, float] = {}

    @property
    def seed(self) -> int | None:
        return self._seed

    def rules(self) -> dict[str, config.FaultRule]:
        with self._lock:
            return dict(self._rules)

    def set_rules(
        self, rules: dict[str, config.FaultRule], *, replace: bool = True, seed: int | None = None
    ) -> None:
        with self._lock:
            if replace:
                self._rules = dict(rules)
            else:
                self._rules.update(rules)
            if seed is not None:
                self._seed = seed
                self._rng = random.Random(seed)  # noqa: S311

    def decide(self, action: str) -> Decision:
        with self._lock:
            rule = self._rules.get(action) or self._rules.get("*")
            if rule is None:
                return Decision()
            # One draw per request keeps a seeded sequence stable whatever the rates are.
            draw = self._rng.random()
            if draw < rule.internal_error_rate:
                return Decision(rule.latency_ms, "InternalError", 500, 0.0)
            if draw < rule.internal_error_rate + rule.unavailable_rate:
                return Decision(rule.latency_ms, "ServiceUnavailable", 503, 0.0)
            return Decision(
                rule.latency_ms, None, 200, rule.consistency_delay_s, rule.answer_delay_ms
            )

    def hide(self, resource_id: str, sim_seconds: float) -> None:
        with self._lock:
            self._hidden_until[resource_id] = self._clock.now() + sim_seconds

    def hidden_among(self, text: str) -> str | None:
        """The first still-hidden id mentioned in ``text`` (a request's parameters), if any."""
        now = self._clock.now()
        with self._lock:
            for resource_id, until in list(self._hidden_until.items()):
                if until <= now:
                    del self._hidden_until[resource_id]
                elif resource_id in text:
                    return resource_id
            return None

    def reset(self) -> None:
        with self._lock:
            self._rules.clear()
            self._hidden_until.clear()
            self._rng = random.Random(self._seed)  # noqa: S311
