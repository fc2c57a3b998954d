"""The observations the services make for watching the daemon, as a port.

The services never import a metrics library: they call the few methods of
:class:`Metrics` at the moments that matter (an event answered, a transaction of events
committed, an escalation step fired, a notification's fate learnt), and
``dispatcher.adapters.metrics.prometheus`` turns them into Prometheus series.
:class:`NullMetrics` is the default, so a service built without metrics (a test, a
tool) behaves exactly the same.

Figures that are a state rather than an event (open calls, the outbox's oldest pending
entry, silent devices) are not observed here: the adapter reads them from the
database when it is scraped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from dispatcher.core.calls import PRIORITY_OF, CallKind

# Kinds of answered messages that are not an event type of the device protocol.
INVALID = "invalid"  # an event we could not read, answered "invalid"
NO_PRIORITY = "none"  # cancel, presence, an invalid event: the protocol gives no priority
_TECHNICAL_EVENTS = frozenset({"battery_low", "battery_ok", "power_lost", "power_restored"})


class Metrics(Protocol):
    def answered(self, priority: str, kind: str, seconds: float) -> None:
        """An event (``kind``: its type, or ``invalid``) was received and its answer is
        ready, ``seconds`` after it was received."""

    def queue_depth(self, priority: str, depth: int) -> None:
        """``depth`` device messages of ``priority`` wait to be handled."""

    def batch_committed(self, size: int) -> None:
        """One transaction committed ``size`` device messages."""

    def step_fired(self, lateness_s: float, timer: str = "escalation") -> None:
        """An escalation step (``timer``: ``escalation``, ``ack_timeout``, or ``watchdog``
        for a supervisor's page) fired ``lateness_s`` seconds after it was due."""

    def notification(self, channel: str, result: str) -> None:
        """A message or call on ``channel`` was sent (``sent``), refused (``failed_temporary``,
        ``failed_permanent``), or reported on by the provider (``delivered``,
        ``undelivered``, ``completed``, ``unanswered``, ``canceled``)."""

    def supervision_checked(self) -> None:
        """The link supervision looked at every device once."""

    def watchdog_paged(self, kind: str) -> None:
        """The shift supervisor was paged about a call of ``kind`` nobody had taken."""


class NullMetrics:
    """Observes nothing: the default of every service."""

    def answered(self, priority: str, kind: str, seconds: float) -> None:
        pass

    def queue_depth(self, priority: str, depth: int) -> None:
        pass

    def batch_committed(self, size: int) -> None:
        pass

    def step_fired(self, lateness_s: float, timer: str = "escalation") -> None:
        pass

    def notification(self, channel: str, result: str) -> None:
        pass

    def supervision_checked(self) -> None:
        pass

    def watchdog_paged(self, kind: str) -> None:
        pass


def event_priority(kind: str) -> str:
    """The device protocol's priority of an event type (critical, normal, technical), or
    ``none`` for the types it gives none (cancel, presence, an unreadable event)."""
    if kind in _TECHNICAL_EVENTS:
        return PRIORITY_OF[CallKind.TECHNICAL].value
    try:
        return PRIORITY_OF[CallKind(kind)].value
    except ValueError:
        return NO_PRIORITY


def seconds_between(start: datetime | None, end: datetime) -> float:
    """``end - start`` in seconds; 0 without a start (nothing was due)."""
    return 0.0 if start is None else (end - start).total_seconds()


# The default of the services' ``metrics`` argument (stateless, so one serves all).
NULL_METRICS: Metrics = NullMetrics()
