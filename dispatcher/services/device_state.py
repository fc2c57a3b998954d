"""A device's state for the call page: online or offline, battery, last heard, and its
open technical alerts.

The stored link (``device_links``) lags behind: contact is held in memory and written
in batches (``dispatcher.services.heartbeats``). So the view takes the stored link and
puts what the tracker holds over it (any message means the device is connected, as
the intake's own writes say), and says when it was read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from dispatcher.core.calls import Call
from dispatcher.services.heartbeats import Seen
from dispatcher.services.read_models import DeviceAlertView, DeviceView


@dataclass(frozen=True)
class DeviceLink:
    """One row of the device links, as stored."""

    device_id: str
    last_seen_at: datetime
    status: str  # online, offline
    battery: int | None


class RecentContacts(Protocol):
    """Contact with devices noted in memory and not yet written (the heartbeat tracker)."""

    def latest(self, device_id: str) -> Seen | None: ...


class NoRecentContacts:
    """Nothing held in memory: the stored links alone."""

    def latest(self, device_id: str) -> Seen | None:
        return None


def device_view(
    device_id: str,
    link: DeviceLink | None,
    held: Seen | None,
    alerts: list[Call],
    now: datetime,
) -> DeviceView:
    status = link.status if link else "unknown"
    battery = link.battery if link else None
    last_seen = link.last_seen_at if link else None
    if held is not None and (last_seen is None or held.at >= last_seen):
        status, last_seen = "online", held.at
        battery = held.battery if held.battery is not None else battery
    return DeviceView(
        device_id=device_id,
        status=status,
        battery=battery,
        last_seen_at=last_seen,
        as_of=now,
        alerts=[
            DeviceAlertView(
                call_id=c.id,
                alert=c.alert_key or c.kind.value,
                detail=c.detail,
                opened_at=c.opened_at,
            )
            for c in alerts
        ],
    )
