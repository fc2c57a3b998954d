"""When each poller of the engine (the escalator, the outbox) last completed a cycle,
on the injected clock, so that ``/health/engine`` can tell a poller that hangs or keeps
failing from one that is merely idle: an idle poller still completes a cycle every poll
interval."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from dispatcher.services.clock import Clock


class EngineCycles:
    def __init__(self, clock: Clock, parts: Iterable[str]) -> None:
        self._clock = clock
        self._last: dict[str, datetime | None] = dict.fromkeys(parts)

    def completed(self, part: str) -> None:
        """``part`` has just completed a cycle."""
        self._last[part] = self._clock.now()

    def recorder(self, part: str) -> Callable[[], None]:
        """A callable that records a cycle of ``part`` (for the poll loop)."""
        return lambda: self.completed(part)

    @property
    def parts(self) -> list[str]:
        return list(self._last)

    def last(self, part: str) -> datetime | None:
        return self._last[part]

    def stale(self, max_age_s: float) -> dict[str, str]:
        """The parts whose last cycle is older than ``max_age_s`` (or that never
        completed one), each with why."""
        now = self._clock.now()
        stale: dict[str, str] = {}
        for part, last in self._last.items():
            if last is None:
                stale[part] = "has not completed a cycle since the start"
            elif (age := (now - last).total_seconds()) > max_age_s:
                stale[part] = f"last completed a cycle {age:.0f} s ago (limit {max_age_s:g} s)"
        return stale
