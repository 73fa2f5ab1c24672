"""The mutation-loop guard (reconciler/stalls.py), pure: no AWS, no database."""

from __future__ import annotations

from typing import Any

import pytest

from linkplane.server.reconciler import stalls

ACTION = "ModifyVpcEndpoint"
FIELD = "PrivateDnsEnabled"


def attempt(guard: stalls.MutationGuard, now: float, wanted: object = True) -> stalls.Decision:
    return guard.before(action=ACTION, field=FIELD, wanted=wanted, observed=False, now=now)


def test_three_identical_attempts_then_stalled_with_backoff() -> None:
    guard = stalls.MutationGuard()
    for n in range(stalls.STALL_AFTER):
        decision = attempt(guard, 1000.0 + n)
        assert isinstance(decision, stalls.Allowed)
        assert decision.attempt == n + 1
    decision = attempt(guard, 1003.0)
    assert isinstance(decision, stalls.Stalled)
    assert decision.field == FIELD
    assert decision.wanted == "true"
    assert decision.observed == "false"
    assert decision.attempts == stalls.STALL_AFTER
    assert decision.retry_after == pytest.approx(stalls.BACKOFF_BASE_SECONDS - 1.0)
    assert FIELD in decision.message() and "true" in decision.message()
    assert guard.stalled_fields() == [FIELD]

    # After the delay one more attempt goes out, then the delay doubles.
    last = 1002.0 + stalls.BACKOFF_BASE_SECONDS
    assert isinstance(attempt(guard, last), stalls.Allowed)
    later = attempt(guard, last + 1)
    assert isinstance(later, stalls.Stalled)
    assert later.retry_after == pytest.approx(2 * stalls.BACKOFF_BASE_SECONDS - 1)


def test_hourly_ceiling_holds_whatever_the_timing() -> None:
    guard = stalls.MutationGuard()
    now = 0.0
    sent: list[float] = []
    # Poll every second for two hours, sending whenever allowed.
    while now < 2 * stalls.HOUR_SECONDS:
        if isinstance(attempt(guard, now), stalls.Allowed):
            sent.append(now)
        now += 1.0
    for start in sent:
        in_hour = [t for t in sent if start <= t < start + stalls.HOUR_SECONDS]
        assert len(in_hour) <= stalls.HOURLY_CEILING
    # Exponential: far fewer than the ceiling allows.
    assert stalls.STALL_AFTER < len(sent) <= 2 * stalls.HOURLY_CEILING


def test_ceiling_reported_when_reached() -> None:
    guard = stalls.MutationGuard()
    entry = stalls.Attempts(
        action=ACTION,
        wanted=stalls.render(True),
        observed=stalls.render(False),
        times=[float(t) for t in range(stalls.HOURLY_CEILING)],
        count=0,
    )
    guard.fields[FIELD] = entry
    decision = attempt(guard, 100.0)
    assert isinstance(decision, stalls.Stalled)
    assert decision.ceiling_reached
    assert decision.retry_after == pytest.approx(stalls.HOUR_SECONDS - 100.0)
    assert "ceiling" in decision.message()


def test_changed_wanted_value_starts_afresh_and_clear_forgets() -> None:
    guard = stalls.MutationGuard()
    for n in range(stalls.STALL_AFTER):
        attempt(guard, float(n))
    assert isinstance(attempt(guard, 5.0), stalls.Stalled)
    assert isinstance(attempt(guard, 5.0, wanted=False), stalls.Allowed)
    for n in range(stalls.STALL_AFTER):
        attempt(guard, 10.0 + n)
    guard.clear(FIELD, now=13.0)
    assert guard.stalled_fields() == []
    assert isinstance(attempt(guard, 20.0), stalls.Allowed)
    # An hour after the last call nothing is left to remember.
    guard.clear(FIELD, now=20.0 + stalls.HOUR_SECONDS)
    assert guard.fields == {}


def test_a_flapping_field_is_still_held_to_the_hourly_ceiling() -> None:
    # Another controller reverts the field after every call: each observation in between
    # matches, so the stall count restarts, but the calls still count against the ceiling.
    guard = stalls.MutationGuard()
    sent = 0
    for second in range(0, 3600, 10):
        if isinstance(attempt(guard, float(second)), stalls.Allowed):
            sent += 1
        guard.clear(FIELD, now=second + 5.0)
    assert sent == stalls.HOURLY_CEILING


def test_bookkeeping_survives_a_round_trip_through_status_json() -> None:
    guard = stalls.MutationGuard()
    for n in range(stalls.STALL_AFTER):
        attempt(guard, float(n))
    status: dict[str, Any] = {"endpoint_id": "vpce-1"}
    guard.save(status)
    # Another replica (or this one after a restart) reads the same decision.
    reloaded = stalls.MutationGuard.load(status)
    assert reloaded == guard
    assert isinstance(attempt(reloaded, 3.0), stalls.Stalled)
    reloaded.clear(FIELD, now=3.0 + stalls.HOUR_SECONDS)
    reloaded.save(status)
    assert stalls.STATUS_KEY not in status
    assert stalls.MutationGuard.load({}) == stalls.MutationGuard()


def test_fields_are_independent() -> None:
    guard = stalls.MutationGuard()
    for n in range(stalls.STALL_AFTER):
        attempt(guard, float(n))
    other = guard.before(
        action=ACTION, field="IpAddressType", wanted="dualstack", observed="ipv4", now=3.0
    )
    assert isinstance(other, stalls.Allowed)


def test_stalled_condition_set_and_cleared() -> None:
    guard = stalls.MutationGuard()
    for n in range(stalls.STALL_AFTER):
        attempt(guard, float(n))
    decision = attempt(guard, 3.0)
    assert isinstance(decision, stalls.Stalled)
    status: dict[str, Any] = {}
    stalls.set_stalled_condition(status, [decision], generation=4)
    (condition,) = status["conditions"]
    assert condition["type"] == stalls.STALLED
    assert condition["status"] == "TRUE"
    assert condition["observed_generation"] == 4
    assert FIELD in condition["message"] and "false" in condition["message"]
    assert stalls.soonest_retry([decision], 300.0) == decision.retry_after
    stalls.set_stalled_condition(status, [], generation=4)
    assert status["conditions"][0]["status"] == "FALSE"
    # Never stalled: no condition appears at all.
    clean: dict[str, Any] = {}
    stalls.set_stalled_condition(clean, [], generation=1)
    assert "conditions" not in clean
