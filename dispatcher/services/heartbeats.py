"""Contact with devices, kept in memory and written to the device links in batches.

A heartbeat says only "still here": writing each one in its own transaction made a
storm of them (a district's base units all reconnecting) bury the next red button.
So every message from a device notes the device as seen here, in memory, and
:meth:`HeartbeatTracker.flush` writes all that is new in one transaction: every few
seconds, before each supervision check (which reads the links) and at shutdown. A
crash loses at most those few seconds of "last seen", never an event.

The tracker also knows which devices have an open ``heartbeat_missed`` alert (loaded
once from the database, then kept up to date by the intake and supervision), so that
the heartbeat of such a device still goes through a transaction at once and closes
its alert promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from dispatcher.services.ports import Transactions

log = structlog.get_logger(__name__)

HEARTBEAT_MISSED = "heartbeat_missed"


@dataclass(frozen=True)
class Seen:
    """The latest contact with one device: when, and the battery it reported last."""

    device_id: str
    at: datetime
    battery: int | None


class ContactStore(Protocol):
    """The device links, in one transaction."""

    async def write_seen(self, seen: list[Seen]) -> None:
        """Record each contact (inserting the link row the first time), never moving
        a device's ``last seen`` backwards."""

    async def devices_with_alert(self, alert_key: str) -> set[str]:
        """The devices with an active alert of this kind."""
        ...


class HeartbeatTracker:
    def __init__(self, tx: Transactions[ContactStore]) -> None:
        self._tx = tx
        self._pending: dict[str, Seen] = {}
        self._in_flight: dict[str, Seen] = {}  # taken by a flush not yet committed
        self._alerted: set[str] | None = None  # loaded on first use
        self._opened_before_load: set[str] = set()
        self._flushing = asyncio.Lock()

    def seen(self, device_id: str, at: datetime, battery: int | None) -> None:
        """The device was heard at ``at`` (its battery, if it said)."""
        before = self._pending.get(device_id)
        if battery is None and before is not None:
            battery = before.battery
        self._pending[device_id] = Seen(device_id, at, battery)

    def take(self, device_id: str) -> Seen | None:
        """Remove and return what is pending for the device (its link is about to be
        written in a transaction of the intake's own)."""
        return self._pending.pop(device_id, None)

    def latest(self, device_id: str) -> Seen | None:
        """The contact held for the device and not yet committed, if any (for the
        call page: the stored link may be a few seconds behind)."""
        return self._pending.get(device_id) or self._in_flight.get(device_id)

    def knows(self, device_id: str) -> bool:
        """Whether contact with the device is waiting to be written."""
        return device_id in self._pending

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def alerted(self) -> set[str]:
        """The devices with an open ``heartbeat_missed`` alert (as far as we know: a
        device in it whose alert was closed by hand is taken out at its next message)."""
        if self._alerted is None:
            async with self._tx.read() as store:
                found = await store.devices_with_alert(HEARTBEAT_MISSED)
            if self._alerted is None:
                self._alerted = found | self._opened_before_load
        return self._alerted

    def alert_opened(self, device_id: str) -> None:
        if self._alerted is None:
            self._opened_before_load.add(device_id)
        else:
            self._alerted.add(device_id)

    def alert_closed(self, device_id: str) -> None:
        if self._alerted is not None:
            self._alerted.discard(device_id)

    async def flush(self) -> int:
        """Write what is pending in one transaction; returns how many devices. On a
        failure what was taken is put back (newer contact kept) and the error raised."""
        async with self._flushing:
            if not self._pending:
                return 0
            self._in_flight, self._pending = self._pending, {}
            try:
                async with self._tx.begin() as store:
                    batch = self._in_flight  # as shifted, if the clock stepped meanwhile
                    await store.write_seen(list(batch.values()))
            except BaseException:
                for device_id, seen in self._in_flight.items():
                    newer = self._pending.get(device_id)
                    if newer is None or newer.at < seen.at:
                        self._pending[device_id] = seen
                raise
            finally:
                self._in_flight = {}
        log.debug("contacts_flushed", devices=len(batch))
        return len(batch)

    def shift(self, delta: timedelta) -> None:
        """The system clock stepped by ``delta`` and the stored instants moved with it
        (dispatcher.services.clock_watch): so do those held here."""
        for held in (self._pending, self._in_flight):
            for device_id, seen in held.items():
                held[device_id] = Seen(device_id, seen.at + delta, seen.battery)

    async def run(self, every_s: float, stop: asyncio.Event) -> None:
        """Flush every ``every_s`` until ``stop``; once more at the end."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every_s):
                    await stop.wait()
            try:
                await self.flush()
            except Exception:
                log.exception("contacts_flush_failed", pending=len(self._pending))
