"""Retry waits: doubling from the base, capped, scaled by the caller's jitter."""

from __future__ import annotations

from dispatcher.core.notifications.backoff import CALLBACK_BACKOFF_S, MAX_BACKOFF_S, backoff_s


def test_backoff_doubles_from_the_base_and_is_capped() -> None:
    assert [backoff_s(n, 1.0) for n in (0, 1, 2, 3)] == [1.0, 1.0, 2.0, 4.0]
    assert backoff_s(2, 1.0, CALLBACK_BACKOFF_S) == 60.0
    assert backoff_s(30, 1.0) == MAX_BACKOFF_S


def test_jitter_scales_the_wait() -> None:
    assert backoff_s(3, 0.5) == 2.0
    assert backoff_s(30, 0.5) == MAX_BACKOFF_S / 2
