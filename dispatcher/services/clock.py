"""Time as an injected dependency, so tests move time instead of sleeping
(``dispatcher.testing.FakeClock``, ``dispatcher.testing.FakeTimeSources``).

The daemon runs on a :class:`SteadyClock`: wall time read once, at start, then
advanced by a monotonic counter, so that a step of the system clock (an NTP
correction, an operator's ``date -s``) cannot hold a due escalation step back nor
make hours of steps fall due at once. ``dispatcher.services.clock_watch`` notices such
a step, moves the stored instants with it and only then lets the clock follow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The system's wall clock as it is, steps and all (for one-shot commands)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def system_wall() -> datetime:
    return datetime.now(UTC)


def system_elapsed() -> float:
    """Seconds on a counter that never steps. CLOCK_BOOTTIME, where there is one, also
    counts a suspend: the wall clock moves on during one, and a suspend is not a
    step of the clock (the escalation steps it held up are caught up, see
    ``dispatcher.core.calls.DueStep``)."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is not None:
        return time.clock_gettime(boottime)
    return time.monotonic()


# A divergence beyond this between the wall clock and the steady counter is a step
# of the system clock, not drift: NTP slews both counters alike, so they part only
# when the wall clock is set.
JUMP_THRESHOLD = timedelta(seconds=2)


class SteadyClock:
    """Wall time anchored once and advanced by ``elapsed`` (seconds, never stepping).

    :meth:`jump` compares it with ``wall`` and reports a step of the system clock;
    :meth:`follow` re-anchors on it, once the instants stored on the old footing
    have been moved (see ``ClockWatch``)."""

    def __init__(
        self,
        wall: Callable[[], datetime] = system_wall,
        elapsed: Callable[[], float] = system_elapsed,
        threshold: timedelta = JUMP_THRESHOLD,
    ) -> None:
        self._wall = wall
        self._elapsed = elapsed
        self._threshold = threshold
        self._anchor_wall = wall()
        self._anchor_elapsed = elapsed()

    def now(self) -> datetime:
        return self._anchor_wall + timedelta(seconds=self._elapsed() - self._anchor_elapsed)

    def jump(self) -> timedelta | None:
        """How far the system clock has stepped away from this clock, if beyond the
        threshold (positive: forward); else None."""
        delta = self._wall() - self.now()
        return delta if abs(delta) > self._threshold else None

    def follow(self, delta: timedelta) -> None:
        """Move this clock by ``delta`` (the jump just reported), and nothing else:
        elapsed time keeps counting from where it was."""
        self._anchor_wall += delta
