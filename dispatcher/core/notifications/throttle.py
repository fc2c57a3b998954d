"""Per phone number, non-urgent SMS are throttled: while that number had an SMS in
the last ``window``, a service request or technical alert waits (held, never
dropped) until the window ends. An emergency or a fall is never held back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from dispatcher.core.notifications.bundle import is_urgent
from dispatcher.core.notifications.item import OutboxItem


def applies(due: Sequence[OutboxItem], window: timedelta) -> bool:
    """Whether the throttle may hold ``due`` back at all (nothing urgent among them,
    and a window set); when not, there is no need to look up the last SMS."""
    return bool(window) and not any(is_urgent(i) for i in due)


def held_until(last_sent: datetime | None, now: datetime, window: timedelta) -> datetime | None:
    """When the held SMS may leave, given the number's last SMS; None if they may now."""
    if last_sent is None or now - last_sent >= window:
        return None
    return last_sent + window
