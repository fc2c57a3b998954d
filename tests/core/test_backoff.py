"""Retry waits: doubling from the base, capped, scaled by the caller's jitter; an
emergency or a fall is tried again within seconds, the rest backs off for minutes."""

from __future__ import annotations

from dispatcher.core.notifications.backoff import (
    CALLBACK_BACKOFF_S,
    MAX_BACKOFF_S,
    URGENT_MAX_BACKOFF_S,
    backoff_s,
    send_retry_s,
)


def test_backoff_doubles_from_the_base_and_is_capped() -> None:
    assert [backoff_s(n, 1.0) for n in (0, 1, 2, 3)] == [1.0, 1.0, 2.0, 4.0]
    assert backoff_s(2, 1.0, CALLBACK_BACKOFF_S) == 60.0
    assert backoff_s(30, 1.0) == MAX_BACKOFF_S


def test_jitter_scales_the_wait() -> None:
    assert backoff_s(3, 0.5) == 2.0
    assert backoff_s(30, 0.5) == MAX_BACKOFF_S / 2


def test_an_urgent_message_is_tried_again_within_seconds() -> None:
    waits = [send_retry_s(n, 1.0, urgent=True) for n in range(1, 8)]
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]
    assert send_retry_s(1000, 1.0, urgent=True) == URGENT_MAX_BACKOFF_S
    assert send_retry_s(4, 0.5, urgent=True) == URGENT_MAX_BACKOFF_S / 2


def test_other_messages_back_off_up_to_minutes() -> None:
    waits = [send_retry_s(n, 1.0, urgent=False) for n in range(1, 5)]
    assert waits == [2.0, 4.0, 8.0, 16.0]
    assert send_retry_s(30, 1.0, urgent=False) == MAX_BACKOFF_S
