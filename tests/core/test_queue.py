"""The queue's order and lateness: pure, on given instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dispatcher.core import queue
from dispatcher.core.calls import CallKind, CallState, Priority

T0 = datetime(2030, 6, 1, 9, 0, tzinfo=UTC)


def entry(
    call_id: str, kind: CallKind, age_s: int, state: CallState = CallState.OPEN
) -> queue.QueueEntry:
    priority = {
        CallKind.EMERGENCY: Priority.CRITICAL,
        CallKind.FALL: Priority.CRITICAL,
        CallKind.SERVICE: Priority.NORMAL,
        CallKind.TECHNICAL: Priority.TECHNICAL,
    }[kind]
    owner = None if state in (CallState.OPEN, CallState.CANCELLED) else "ann"
    return queue.QueueEntry(call_id, kind, priority, state, T0 - timedelta(seconds=age_s), owner)


def test_alarms_first_then_the_longest_waiting() -> None:
    entries = [
        entry("tech", CallKind.TECHNICAL, 900),
        entry("service", CallKind.SERVICE, 600),
        entry("new-fall", CallKind.FALL, 5),
        entry("old-emergency", CallKind.EMERGENCY, 30, CallState.ACKNOWLEDGED),
    ]
    assert [e.call_id for e in queue.ordered(entries)] == [
        "old-emergency",
        "new-fall",
        "service",
        "tech",
    ]


def test_lateness_against_the_60_and_180_second_targets() -> None:
    assert queue.lateness(60) is queue.Lateness.ON_TIME  # 60 s is still within 60 s
    assert queue.lateness(61) is queue.Lateness.AMBER
    assert queue.lateness(180) is queue.Lateness.AMBER
    assert queue.lateness(181) is queue.Lateness.RED


def test_an_untaken_alarm_is_new_and_flagged_after_a_minute() -> None:
    fresh = entry("e", CallKind.EMERGENCY, 10)
    old = entry("e", CallKind.EMERGENCY, 60)
    taken = entry("e", CallKind.EMERGENCY, 300, CallState.ACKNOWLEDGED)
    assert queue.is_new_alarm(fresh) and not queue.is_unattended(fresh, T0)
    assert queue.is_unattended(old, T0)
    assert not queue.is_new_alarm(taken) and not queue.is_unattended(taken, T0)
    assert not queue.is_new_alarm(entry("s", CallKind.SERVICE, 10))
