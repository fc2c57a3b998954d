"""Keeps the daemon's time steady through a step of the system clock.

Every stored instant that the daemon compares with "now" (the calls' due steps and
their bases, the outbox's attempts, claims and throttle, the device links' last
contact) was written on the clock's old footing. When the system clock steps, the
watch logs ``clock_jumped`` loudly, moves all of them by the step in ONE transaction
and then lets the :class:`~dispatcher.services.clock.SteadyClock` follow: a due step
stays due after the same elapsed time, a silent device is silent for as long as it
was, and no hour of steps or heartbeat alerts falls due at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from dispatcher.core.calls import TimelineEntry
from dispatcher.services.clock import SteadyClock
from dispatcher.services.ports import Transactions

log = structlog.get_logger(__name__)


class TimeShiftStore(Protocol):
    """The stored instants that follow the clock, in one transaction."""

    async def shift_instants(self, delta: timedelta, now: datetime) -> dict[str, int]:
        """Move by ``delta`` every instant the daemon's arithmetic compares with the
        time (``now`` is the old footing's); returns how many rows moved, per table."""
        ...

    async def active_calls(self) -> list[str]:
        """The ids of the calls not yet resolved."""
        ...

    def add_timeline(self, entry: TimelineEntry) -> None: ...


class ClockWatch:
    def __init__(
        self,
        tx: Transactions[TimeShiftStore],
        clock: SteadyClock,
        on_change: Callable[[], None] = lambda: None,
        on_followed: Callable[[timedelta], None] = lambda _delta: None,
    ) -> None:
        self._tx = tx
        self._clock = clock
        self._on_change = on_change  # wakes the escalator: due times have moved
        # Moves the instants held in memory (the intake's unflushed contacts) with the
        # clock, at the same moment: nothing is awaited in between.
        self._on_followed = on_followed

    async def check(self) -> int:
        """Follow a step of the system clock, if there was one; returns 1 if so."""
        delta = self._clock.jump()
        if delta is None:
            return 0
        before = self._clock.now()
        async with self._tx.begin() as store:
            moved = await store.shift_instants(delta, before)
            # On each active call's timeline, whose times now step by ``delta`` too.
            said = (
                f"the system clock stepped {_signed(delta)}; the call's due times moved "
                "with it, so each step still falls due after the time it waits"
            )
            for call_id in await store.active_calls():
                store.add_timeline(
                    TimelineEntry(before + delta, "system", "clock_jumped", "system", said, call_id)
                )
        # Only once committed: if the shift fails, the clock stays on the footing of
        # what is stored and the next check tries again. (A transaction that read the
        # time before this and commits after it writes one instant on the old
        # footing; the window is one commit long.)
        self._clock.follow(delta)
        self._on_followed(delta)
        log.warning(
            "clock_jumped",
            delta_s=round(delta.total_seconds(), 3),
            was=before.isoformat(),
            now=self._clock.now().isoformat(),
            moved=moved,
        )
        self._on_change()
        return 1


def _signed(delta: timedelta) -> str:
    seconds = round(delta.total_seconds())
    sign = "+" if seconds >= 0 else "-"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours} h {minutes:02d} min {secs:02d} s"
