"""The guard against mutation loops: no reconciler re-issues an ignored AWS call blindly.

A level-triggered reconciler compares what it wants with what AWS reports and mutates the
difference. If AWS accepts a mutation but the next observation does not reflect it (a field
AWS reports differently from how it is set, a setting AWS silently refuses, a misread
response), the naive loop calls AWS again on every pass, forever: issue 8 measured 2,357
ModifyVpcEndpoint calls in 11 minutes from one connection, drawn from the account's shared
endpoint-mutation bucket (0.3 calls/s for every endpoint of the account and Region).

Every reconciler asks a :class:`MutationGuard` before each mutating call, per field:

- the first :data:`STALL_AFTER` identical attempts (same action, field and wanted value, with
  the observation not moving to it) go through;
- after that the field is *stalled*: the caller sets the ``Stalled`` condition (see
  :func:`set_stalled_condition`, naming the field, the wanted and the observed value) and the
  next attempt waits an exponentially growing delay (:data:`BACKOFF_BASE_SECONDS` doubling,
  capped at :data:`BACKOFF_CAP_SECONDS`);
- whatever happens, at most :data:`HOURLY_CEILING` identical calls per resource and field go
  out in any rolling hour.

When the observation matches the wanted value the caller calls :meth:`MutationGuard.clear`:
the stall count starts again, but the hour's call times stay, so a field that flaps (another
controller reverting it) is still held to the ceiling. A different wanted value (the user
changed the spec) starts afresh.

The bookkeeping lives in the resource's status JSON under ``"mutations"``, so it survives a
restart and is shared by every replica (whoever holds the lease reads and writes it with the
rest of the status). Times are wall-clock epoch seconds for that reason, passed in by the
caller so that tests control them.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, MutableMapping
from typing import Any

from linkplane.server.reconciler import progress

STATUS_KEY = "mutations"
"""Where the guard's bookkeeping lives in a resource's status JSON."""

STALLED = "Stalled"
"""The condition type set on a resource with a stalled field."""

STALL_AFTER = 3
"""Identical attempts allowed before a field counts as stalled."""

BACKOFF_BASE_SECONDS = 30.0
"""Delay before the first attempt after the stall; doubles with each further attempt."""

BACKOFF_CAP_SECONDS = 3600.0
"""The longest delay between two attempts of a stalled field."""

HOURLY_CEILING = 10
"""Identical mutating calls per resource and field allowed in any rolling hour."""

HOUR_SECONDS = 3600.0


def render(value: object) -> str:
    """A value as it is recorded and compared: canonical JSON (sorted keys, no spaces).

    Two wanted values are "identical" when their renderings are equal, so lists should be
    passed sorted where their order does not matter.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclasses.dataclass
class Attempts:
    """What the guard remembers about one field: the mutation tried and when."""

    action: str
    """The AWS action, e.g. ``ModifyVpcEndpoint``."""
    wanted: str
    """The wanted value, rendered by :func:`render`."""
    observed: str
    """The value AWS reported before the latest attempt, rendered by :func:`render`."""
    times: list[float] = dataclasses.field(default_factory=list)
    """Epoch seconds of the attempts in the last hour (older ones are dropped)."""
    count: int = 0
    """Identical attempts since the wanted value was last set or reached."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attempts:
        return cls(
            action=str(data.get("action", "")),
            wanted=str(data.get("wanted", "")),
            observed=str(data.get("observed", "")),
            times=[float(t) for t in data.get("times", [])],
            count=int(data.get("count", 0)),
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Allowed:
    """The mutation may be sent now. ``attempt`` counts identical attempts, this one included."""

    attempt: int

    @property
    def stalled(self) -> bool:
        return False


@dataclasses.dataclass(frozen=True)
class Change:
    """One field of a planned mutation, as the guard judges it: what AWS reports, what the spec
    wants, and the parameters of the call that moves it (both reconcilers plan in these)."""

    field: str
    wanted: object
    observed: object
    params: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Stalled:
    """The mutation must not be sent now: AWS ignored it ``attempts`` times already.

    ``retry_after`` is how many seconds from now the next attempt may go out; the caller
    requeues no later than that and reports :func:`set_stalled_condition`.
    """

    action: str
    field: str
    wanted: str
    observed: str
    attempts: int
    retry_after: float
    ceiling_reached: bool

    @property
    def stalled(self) -> bool:
        return True

    def message(self) -> str:
        why = (
            f"the ceiling of {HOURLY_CEILING} identical calls an hour is reached"
            if self.ceiling_reached
            else "backing off"
        )
        return (
            f"{self.action} set {self.field} to {self.wanted} {self.attempts} times but AWS "
            f"still reports {self.observed}; {why}, next attempt in {round(self.retry_after)} s"
        )


Decision = Allowed | Stalled


@dataclasses.dataclass
class MutationGuard:
    """Per-field attempt bookkeeping of one resource; see the module docstring."""

    fields: dict[str, Attempts] = dataclasses.field(default_factory=dict)

    @classmethod
    def load(cls, status: Mapping[str, Any]) -> MutationGuard:
        """The guard stored in a status JSON (an empty guard when there is none)."""
        raw = status.get(STATUS_KEY) or {}
        return cls({str(k): Attempts.from_json(v) for k, v in raw.items()})

    def save(self, status: MutableMapping[str, Any]) -> None:
        """Write the bookkeeping back into a status JSON (removed when empty)."""
        if self.fields:
            status[STATUS_KEY] = {k: v.to_json() for k, v in sorted(self.fields.items())}
        else:
            status.pop(STATUS_KEY, None)

    def admit(
        self,
        action: str,
        change: Change,
        *,
        now: float,
        stalled: list[Stalled],
        log: Any,
        event: str,
        **context: object,
    ) -> bool:
        """Whether `change` may be sent now (see :meth:`before`). A stalled change joins
        `stalled`, for the condition and the requeue, and is logged as `event` on the caller's
        logger with `context`."""
        decision = self.before(
            action=action,
            field=change.field,
            wanted=change.wanted,
            observed=change.observed,
            now=now,
        )
        if isinstance(decision, Stalled):
            stalled.append(decision)
            log.warning(
                event,
                field=change.field,
                wanted=decision.wanted,
                observed=decision.observed,
                attempts=decision.attempts,
                retry_after=round(decision.retry_after, 1),
                **context,
            )
            return False
        return True

    def before(
        self, *, action: str, field: str, wanted: object, observed: object, now: float
    ) -> Decision:
        """Decide whether ``action`` may set ``field`` from ``observed`` to ``wanted`` now.

        An :class:`Allowed` answer is recorded as an attempt (call this only right before
        sending the call). A changed wanted value or action starts a fresh count.
        """
        wanted_text, observed_text = render(wanted), render(observed)
        entry = self.fields.get(field)
        if entry is None or entry.action != action or entry.wanted != wanted_text:
            entry = Attempts(action=action, wanted=wanted_text, observed=observed_text)
            self.fields[field] = entry
        entry.times = [t for t in entry.times if now - t < HOUR_SECONDS]
        entry.observed = observed_text
        wait = 0.0
        ceiling = len(entry.times) >= HOURLY_CEILING
        if ceiling:
            wait = entry.times[0] + HOUR_SECONDS - now
        if entry.count >= STALL_AFTER and entry.times:
            doublings = entry.count - STALL_AFTER
            delay = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**doublings)
            wait = max(wait, entry.times[-1] + delay - now)
        if wait > 0:
            return Stalled(
                action=action,
                field=field,
                wanted=wanted_text,
                observed=observed_text,
                attempts=entry.count,
                retry_after=wait,
                ceiling_reached=ceiling,
            )
        entry.count += 1
        entry.times.append(now)
        return Allowed(entry.count)

    def clear(self, field: str, now: float | None = None) -> None:
        """The observation shows ``field`` as wanted: its stall count starts again.

        The times of the last hour's calls are kept, so the hourly ceiling also holds when the
        field flaps (another controller reverting it, AWS reflecting it only now and then);
        the entry goes once the last of them is an hour old.
        """
        entry = self.fields.get(field)
        if entry is None:
            return
        when = time.time() if now is None else now
        entry.count = 0
        entry.times = [t for t in entry.times if when - t < HOUR_SECONDS]
        if not entry.times:
            del self.fields[field]

    def stalled_fields(self) -> list[str]:
        """Fields whose identical attempts reached :data:`STALL_AFTER`."""
        return sorted(k for k, v in self.fields.items() if v.count >= STALL_AFTER)


def set_stalled_condition(status: dict[str, Any], outcomes: list[Stalled], generation: int) -> None:
    """Report stalled fields in the ``Stalled`` condition (False, reason ``Progressing``, when
    there are none, so a cleared stall is visible as such)."""
    if outcomes:
        progress.set_condition(
            status,
            STALLED,
            True,
            "MutationIgnored",
            "; ".join(o.message() for o in outcomes),
            generation,
        )
    elif any(c.get("type") == STALLED for c in status.get("conditions", [])):
        progress.set_condition(
            status, STALLED, False, "Progressing", "AWS reflects every change made", generation
        )


def soonest_retry(outcomes: list[Stalled], default: float) -> float:
    """When to look again: the earliest retry of the stalled fields, at most ``default``."""
    return min([default, *(o.retry_after for o in outcomes)])
