"""The pure escalation arithmetic and the call lifecycle, with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.core import calls as lifecycle
from dispatcher.core.calls import CallKind, CallState, InvalidTransitionError, Outcome
from dispatcher.core.escalation import EMERGENCY, SERVICE, Policy, Step, Target

T0 = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)


def new_call(kind: CallKind = CallKind.EMERGENCY, policy: Policy = EMERGENCY) -> lifecycle.Call:
    call, _ = lifecycle.open_call(
        call_id="C-1",
        device_id="dev-1",
        kind=kind,
        policy=policy,
        now=T0,
        resident_id="r-1",
        community_id="c-1",
    )
    return call


def index_of(due: lifecycle.DueStep | None) -> int | None:
    return None if due is None else due.index


def test_emergency_steps_fall_due_at_0_60_180_then_every_180() -> None:
    assert [EMERGENCY.due_at(T0, i) - T0 for i in range(5)] == [
        timedelta(seconds=s) for s in (0, 60, 180, 360, 540)
    ]
    assert EMERGENCY.step(10) == EMERGENCY.steps[-1]


def test_policy_round_trips_through_json() -> None:
    assert Policy.from_json(EMERGENCY.to_json()) == EMERGENCY


@pytest.mark.parametrize(
    "steps",
    [(), (Step(60, (Target.HOTLINE,)), Step(0, (Target.HOTLINE,))), (Step(-1, (Target.HOTLINE,)),)],
)
def test_malformed_policies_are_refused(steps: tuple[Step, ...]) -> None:
    with pytest.raises(ValueError):
        Policy("bad", steps, 60)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=400), min_size=1, max_size=40))
def test_a_step_never_fires_twice_early_or_not_at_all(polls: list[float]) -> None:
    """Whatever the polling pattern (the daemon polls again at once after firing),
    steps fire in order, each once, never before its due time, and none is lost:
    a poll late by more than a step's gap to the next fires one catch-up for the
    steps it missed, and nothing due is left unfired."""
    call = new_call()
    now = T0
    fired: list[tuple[lifecycle.DueStep, datetime]] = []
    for gap in polls:
        now += timedelta(seconds=gap)
        while (due := lifecycle.take_due_step(call, now)) is not None:
            fired.append((due, now))
    covered = [i for due, _ in fired for i in range(due.first, due.index + 1)]
    assert covered == list(range(len(covered)))
    for due, when in fired:
        assert when >= EMERGENCY.due_at(T0, due.index)
        caught_up = due.late >= EMERGENCY.gap_after(due.first)
        assert (due.missed > 0) == caught_up
    assert call.next_escalation_at is not None and call.next_escalation_at > now


def test_acknowledging_stops_escalation_and_is_idempotent() -> None:
    call = new_call()
    t = lifecycle.acknowledge(call, "op-1", "api", T0 + timedelta(seconds=5))
    assert call.state is CallState.ACKNOWLEDGED and call.next_escalation_at is None
    assert t.device_update is not None
    again = lifecycle.acknowledge(call, "op-2", "api", T0 + timedelta(seconds=9))
    assert again.timeline == [] and call.acknowledged_by == "op-1"
    assert lifecycle.take_due_step(call, T0 + timedelta(hours=1)) is None


def test_resolved_call_refuses_further_changes() -> None:
    call = new_call()
    lifecycle.resolve(call, "op-1", "api", Outcome.FALSE_ALARM, T0)
    with pytest.raises(InvalidTransitionError):
        lifecycle.acknowledge(call, "op-1", "api", T0)
    with pytest.raises(InvalidTransitionError):
        lifecycle.resolve(call, "op-1", "api", Outcome.OTHER, T0)


def test_repeated_press_brings_the_next_step_forward() -> None:
    call = new_call()
    assert index_of(lifecycle.take_due_step(call, T0)) == 0
    lifecycle.join(call, CallKind.EMERGENCY, T0 + timedelta(seconds=10), EMERGENCY)
    assert call.next_escalation_at == T0 + timedelta(seconds=10)
    assert index_of(lifecycle.take_due_step(call, T0 + timedelta(seconds=10))) == 1
    # The step after it keeps its own due time.
    assert call.next_escalation_at == T0 + timedelta(seconds=180)


def test_emergency_on_a_service_request_switches_to_the_emergency_policy() -> None:
    call = new_call(CallKind.SERVICE, SERVICE)
    lifecycle.take_due_step(call, T0)
    later = T0 + timedelta(minutes=5)
    lifecycle.join(call, CallKind.EMERGENCY, later, EMERGENCY)
    assert call.kind is CallKind.EMERGENCY and call.policy == EMERGENCY
    assert call.escalation_step == 0 and call.next_escalation_at == later


def test_cancel_then_press_again_reopens_and_escalates() -> None:
    call = new_call()
    lifecycle.cancel(call, T0 + timedelta(seconds=3))
    assert call.state is CallState.CANCELLED and not call.is_escalating
    lifecycle.join(call, CallKind.EMERGENCY, T0 + timedelta(seconds=20), EMERGENCY)
    assert call.state is CallState.OPEN and call.is_escalating
