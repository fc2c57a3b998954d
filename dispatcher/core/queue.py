"""The operators' live queue: which open call comes first and how late each one is.

Pure rules over plain values, taking ``now``; the console shows what they decide and
decides nothing itself (``dispatcher.services.live_queue`` feeds it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from dispatcher.core.calls import CallKind, CallState, Priority
from dispatcher.core.reports import TARGETS

# The answer targets (97.5 % within 60 s, 99 % within 180 s): a call waiting past the
# first is amber on every screen, past the second red.
AMBER_AFTER_S = TARGETS[0].within_s
RED_AFTER_S = TARGETS[1].within_s
# Nobody has taken a call this long after it opened: it is flagged on every screen
# (and the watchdog pages the shift supervisor after its own, longer delay).
UNTAKEN_FLAG_S = AMBER_AFTER_S

_RANK = {Priority.CRITICAL: 0, Priority.NORMAL: 1, Priority.TECHNICAL: 2}
ALARMS = frozenset({CallKind.EMERGENCY, CallKind.FALL})
# A call that nobody owns yet: the ones the queue shouts about.
UNTAKEN_STATES = frozenset({CallState.OPEN, CallState.CANCELLED})


class Lateness(StrEnum):
    ON_TIME = "on_time"
    AMBER = "amber"  # past the 60 s target
    RED = "red"  # past the 180 s limit


@dataclass(frozen=True)
class QueueEntry:
    """What the queue needs of one unresolved call."""

    call_id: str
    kind: CallKind
    priority: Priority
    state: CallState
    opened_at: datetime
    taken_by: str | None  # who owns it (首问负责), None while nobody has taken it
    # Raised again: a responder sent to it is overdue (dispatcher.core.dispatches).
    attention: bool = False


def lateness(waited_s: float) -> Lateness:
    if waited_s > RED_AFTER_S:
        return Lateness.RED
    if waited_s > AMBER_AFTER_S:
        return Lateness.AMBER
    return Lateness.ON_TIME


def is_untaken(entry: QueueEntry) -> bool:
    return entry.state in UNTAKEN_STATES


def is_unattended(entry: QueueEntry, now: datetime) -> bool:
    """Open and untaken past the flag: flagged on every screen."""
    return is_untaken(entry) and (now - entry.opened_at).total_seconds() >= UNTAKEN_FLAG_S


def is_new_alarm(entry: QueueEntry) -> bool:
    """An emergency or fall nobody has taken: colour, title and sound."""
    return entry.kind in ALARMS and is_untaken(entry)


def ordered(entries: Iterable[QueueEntry]) -> list[QueueEntry]:
    """Calls raised again (a responder overdue) first, then by priority (alarms
    first), then the longest waiting first: a taken call keeps its place (shown as
    taken), so that rows do not jump under the mouse."""
    return sorted(
        entries, key=lambda e: (not e.attention, _RANK[e.priority], e.opened_at, e.call_id)
    )
