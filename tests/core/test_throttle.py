"""Per number: a non-urgent SMS waits out the window after the last one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dispatcher.core.notifications import throttle
from tests.core.outbox_items import item

T = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
MINUTE = timedelta(seconds=60)


def test_urgent_calls_and_a_zero_window_are_never_held() -> None:
    assert throttle.applies([item(1, "C-1")], MINUTE)
    assert not throttle.applies([item(1, "C-1"), item(2, "C-2", "fall")], MINUTE)
    assert not throttle.applies([item(1, "C-1")], timedelta(0))


def test_held_until_the_window_after_the_last_sms_ends() -> None:
    assert throttle.held_until(T, T + timedelta(seconds=10), MINUTE) == T + MINUTE
    assert throttle.held_until(T, T + MINUTE, MINUTE) is None
    assert throttle.held_until(None, T, MINUTE) is None
