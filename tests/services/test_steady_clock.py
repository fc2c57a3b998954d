"""The steady clock: wall time anchored once, advanced by a counter that never steps;
a step of the system clock is reported, and followed only when told."""

from __future__ import annotations

from datetime import timedelta

from dispatcher.services.clock import SteadyClock
from dispatcher.testing import FakeTimeSources
from tests.support.app import TUESDAY_10AM


def test_it_keeps_elapsed_time_through_a_step_of_the_system_clock() -> None:
    sources = FakeTimeSources(TUESDAY_10AM)
    clock = SteadyClock(sources.wall, sources.elapsed)
    sources.advance(90)
    assert clock.now() == TUESDAY_10AM + timedelta(seconds=90)
    assert clock.jump() is None
    sources.step_wall(-3600)
    assert clock.now() == TUESDAY_10AM + timedelta(seconds=90)  # not an hour back
    assert clock.jump() == timedelta(hours=-1)
    clock.follow(timedelta(hours=-1))
    assert clock.now() == sources.wall() and clock.jump() is None
    sources.advance(10)
    assert clock.now() == sources.wall()


def test_small_differences_and_a_suspend_are_not_jumps() -> None:
    sources = FakeTimeSources(TUESDAY_10AM)
    clock = SteadyClock(sources.wall, sources.elapsed, threshold=timedelta(seconds=2))
    sources.step_wall(1.5)
    assert clock.jump() is None
    sources.suspend(8 * 3600)  # CLOCK_BOOTTIME counts the time asleep
    assert clock.jump() is None
    assert clock.now() == TUESDAY_10AM + timedelta(hours=8)
    sources.step_wall(1.0)
    assert clock.jump() == timedelta(seconds=2.5)
