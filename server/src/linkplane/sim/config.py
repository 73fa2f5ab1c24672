"""Configuration of the simulator: time scale, throttling switch, delays, faults.

Read by ``server.start()`` and the CLI (``--config FILE``, TOML or JSON), changed at runtime via
the admin API. Delays are in simulated seconds at scale 1 and default to what AWS shows in the
field (see docs/sim.md), so a sim at ``time_scale=1`` feels like AWS.
"""

import dataclasses
import json
import pathlib
import tomllib
from collections.abc import Mapping


@dataclasses.dataclass
class Delays:
    """Simulated seconds each asynchronous AWS transition takes at ``time_scale=1``."""

    load_balancer_provisioning: float = 120.0
    """NLB/ALB ``provisioning`` → ``active`` (AWS: about 2-3 minutes)."""

    endpoint_service_pending: float = 60.0
    """Endpoint service ``Pending`` → ``Available`` (AWS: 1-4 minutes)."""

    endpoint_pending: float = 60.0
    """Interface endpoint ``pending`` → ``available`` after acceptance (AWS: 1-3 minutes)."""

    endpoint_deleting: float = 30.0
    """Interface endpoint ``deleting`` → gone (its ENIs are released then)."""


@dataclasses.dataclass
class FaultRule:
    """Faults injected into one API action (or every action, under the key ``*``)."""

    internal_error_rate: float = 0.0
    """Probability in [0, 1] of answering ``InternalError`` (HTTP 500) instead of serving."""

    unavailable_rate: float = 0.0
    """Probability in [0, 1] of answering ``ServiceUnavailable`` (HTTP 503) instead of serving."""

    latency_ms: float = 0.0
    """Wall-clock milliseconds added before the request is served (not scaled)."""

    answer_delay_ms: float = 0.0
    """Wall-clock milliseconds the answer is held back after it is computed (not scaled): an
    answer still in flight while the world changes, as a slow network or a large page makes
    it. A Describe answered this way can be older than a change made while it travelled."""

    consistency_delay_s: float = 0.0
    """For Create actions: simulated seconds during which a Describe naming the new object's
    id answers its NotFound error, like AWS's eventual consistency."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> "FaultRule":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}; known: {sorted(known)}")
        values: dict[str, float] = {}
        for key, value in data.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise TypeError(f"fault field {key!r} must be a number, got {value!r}")
            values[key] = float(value)
        rule = cls(**values)
        for rate in (rule.internal_error_rate, rule.unavailable_rate):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rates must be within [0, 1], got {rate}")
        return rule


@dataclasses.dataclass
class SimConfig:
    """Everything that shapes the simulator's behaviour; all of it changeable at runtime."""

    time_scale: float = 1.0
    """Divides every delay and multiplies every token-bucket refill rate."""

    throttling: bool = True
    """Whether AWS's per-account token buckets are enforced."""

    seed: int | None = None
    """Seed of the fault RNG; set it for reproducible fault sequences."""

    delays: Delays = dataclasses.field(default_factory=Delays)
    """Durations of the asynchronous transitions."""

    faults: dict[str, FaultRule] = dataclasses.field(default_factory=dict)
    """Fault rules by action name (``CreateVpcEndpoint``) or ``*`` for every action."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> "SimConfig":
        config = cls()
        for key, value in data.items():
            if key == "time_scale" and isinstance(value, int | float):
                config.time_scale = float(value)
            elif key == "throttling" and isinstance(value, bool):
                config.throttling = value
            elif key == "seed" and (value is None or isinstance(value, int)):
                config.seed = value
            elif key == "delays" and isinstance(value, Mapping):
                config.delays = Delays(**{str(k): float(v) for k, v in value.items()})
            elif key == "faults" and isinstance(value, Mapping):
                config.faults = parse_fault_rules(value)
            else:
                raise ValueError(f"invalid config entry {key!r}: {value!r}")
        return config

    @classmethod
    def load(cls, path: pathlib.Path) -> "SimConfig":
        """Read a TOML (``.toml``) or JSON (anything else) config file."""
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        if not isinstance(data, dict):
            raise TypeError(f"{path}: the config must be a table/object at top level")
        return cls.from_mapping(data)


def parse_fault_rules(data: Mapping[str, object]) -> dict[str, FaultRule]:
    rules: dict[str, FaultRule] = {}
    for action, rule in data.items():
        if not isinstance(rule, Mapping):
            raise TypeError(f"fault rule for {action!r} must be an object, got {rule!r}")
        rules[str(action)] = FaultRule.from_mapping(rule)
    return rules
