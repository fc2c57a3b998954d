"""Repeated presses raise urgency, not a storm; a late poll catches up once.

Pure: the call lifecycle with instants given, no clock at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dispatcher.core import calls as lifecycle
from dispatcher.core.calls import Call, CallKind
from dispatcher.core.escalation import EMERGENCY, AckTimeout, Policy, Step

T0 = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def new_call(policy: Policy = EMERGENCY) -> Call:
    call, _ = lifecycle.open_call(
        call_id="C-1",
        device_id="dev-1",
        kind=CallKind.EMERGENCY,
        policy=policy,
        now=T0,
        resident_id="r-1",
        community_id="c-1",
    )
    return call


def press(call: Call, at: datetime) -> list[tuple[str, str]]:
    t = lifecycle.join(call, CallKind.EMERGENCY, at, EMERGENCY)
    return [(e.action, e.detail) for e in t.timeline]


def fire(call: Call, at: datetime) -> lifecycle.DueStep:
    due = lifecycle.take_due_step(call, at)
    assert due is not None
    return due


def test_a_press_brings_each_step_forward_once() -> None:
    call = new_call()
    assert fire(call, T0).index == 0
    entries = press(call, T0 + 10 * S)
    assert ("urgency_raised", "step 2 brought forward") in entries
    assert call.next_escalation_at == T0 + 10 * S and call.brought_forward_step == 1

    # Pressed again before the step fired: nothing more to bring forward, and said so.
    [(action, detail)] = press(call, T0 + 11 * S)
    assert action == "joined" and "already brought forward" in detail
    assert fire(call, T0 + 11 * S).index == 1

    # The next step may be brought forward once in its turn.
    assert ("urgency_raised", "step 3 brought forward") in press(call, T0 + 12 * S)
    assert fire(call, T0 + 12 * S).index == 2
    # Everyone the policy names has been told: its repeats keep their pace.
    [(_, detail)] = press(call, T0 + 13 * S)
    assert "repeats keep their pace" in detail
    assert call.next_escalation_at == EMERGENCY.due_at(T0, 3)
    assert lifecycle.take_due_step(call, T0 + 14 * S) is None


def test_a_thousand_presses_bring_forward_two_steps_and_list_few_presses() -> None:
    call = new_call()
    fired = [fire(call, T0).index]
    timeline: list[tuple[str, str]] = []
    for n in range(1000):
        at = T0 + timedelta(milliseconds=43 * (n + 1))
        timeline += press(call, at)
        while (due := lifecycle.take_due_step(call, at)) is not None:
            fired.append(due.index)
    assert fired == [0, 1, 2]  # the measured storm was 694 steps
    assert call.press_count == 1001
    assert [d for a, d in timeline if a == "urgency_raised"] == [
        "step 2 brought forward",
        "step 3 brought forward",
    ]
    joined = [d for a, d in timeline if a == "joined"]
    # Presses 2-10, every 10th to 100, every 100th to 1,000, plus the two that
    # brought a step forward (listed whatever their number).
    assert 27 <= len(joined) <= 29
    assert any("(press 1000)" in d for d in joined)
    assert not any("(press 999)" in d for d in joined)


def test_a_press_on_a_reloaded_call_remembers_what_it_brought_forward() -> None:
    call = new_call()
    fire(call, T0)
    press(call, T0 + 5 * S)
    again = Call(**{k: v for k, v in vars(call).items() if not k.startswith("_")})
    [(_, detail)] = press(again, T0 + 6 * S)
    assert "already brought forward" in detail


def test_a_poll_late_by_more_than_the_gap_fires_one_catch_up_step() -> None:
    call = new_call()
    later = T0 + timedelta(hours=4)
    due = fire(call, later)
    # Steps 1 and 2 and every repeat to 4 h: 4 h = 180 s + 79 repeats of 180 s.
    assert (due.first, due.index, due.missed) == (0, 81, 81)
    assert due.late == timedelta(hours=4)
    assert "catch-up: 81 steps/repeats missed" in due.catch_up_note()
    # The following step counts from the catch-up, one repeat later; none replayed.
    assert call.next_escalation_at == later + 180 * S
    assert lifecycle.take_due_step(call, later + 179 * S) is None
    nxt = fire(call, later + 180 * S)
    assert (nxt.first, nxt.index) == (82, 82)
    assert call.next_escalation_at == later + 360 * S


def test_a_poll_late_by_less_than_the_gap_is_no_catch_up() -> None:
    call = new_call()
    due = fire(call, T0 + 59 * S)
    assert due.missed == 0 and call.next_escalation_at == T0 + 60 * S
    assert fire(call, T0 + 60 * S).missed == 0


def test_a_catch_up_step_reaches_whom_the_missed_steps_name() -> None:
    policy = Policy(
        "p",
        (Step(0, ("hotline",)), Step(60, ("community",)), Step(120, ("emergency_contacts",))),
        300,
    )
    call = new_call(policy)
    due = fire(call, T0 + 150 * S)
    assert (due.first, due.index) == (0, 2)
    merged = policy.catch_up_step(due.first, due.index)
    assert merged.targets == ("hotline", "community", "emergency_contacts")
    assert policy.catch_up_step(2, 2) == policy.step(2)


def test_steps_due_at_the_same_moment_are_not_merged_into_a_catch_up() -> None:
    policy = Policy("p", (Step(0, ("hotline",)), Step(0, ("community",))), 60)
    call = new_call(policy)
    assert fire(call, T0 + 10 * S).missed == 0
    assert fire(call, T0 + 10 * S).missed == 0


def test_the_acknowledgement_timeout_catches_up_once_too() -> None:
    timeout = AckTimeout(100, (Step(0, ("acknowledger",)), Step(20, ("hotline",))), 50)
    policy = Policy("p", (Step(0, ("hotline",)),), 60, ack_timeout=timeout)
    call = new_call(policy)
    fire(call, T0)
    lifecycle.acknowledge(call, "op-1", "api", T0)
    later = T0 + timedelta(hours=2)
    due = lifecycle.take_due_ack_step(call, later)
    assert due is not None and due.first == 0 and due.missed > 100
    assert call.next_ack_escalation_at == later + 50 * S
