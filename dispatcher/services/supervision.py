"""Link supervision: a device that stops sending heartbeats, or whose Last Will said
offline and that has not come back within the grace period, may not be able to call
for help. Each raises a technical alert (a call of kind ``technical``); the device's
return clears it (see ``Intake``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from dispatcher.config import DeviceSettings
from dispatcher.core.calls import Call
from dispatcher.services.clock import Clock
from dispatcher.services.intake import Intake
from dispatcher.services.metrics import NULL_METRICS, Metrics
from dispatcher.services.ports import Transactions

log = structlog.get_logger(__name__)


def silent_since(settings: DeviceSettings, now: datetime) -> datetime:
    """A device last heard before this may be silent: it missed ``missed_heartbeats`` of
    the shortest interval of any model (each device is then held to its own model's)."""
    return now - timedelta(seconds=settings.shortest_heartbeat_s * settings.missed_heartbeats)


def offline_since(settings: DeviceSettings, now: datetime) -> datetime:
    """A device offline since before this has not come back within the grace period."""
    return now - timedelta(seconds=settings.offline_grace_s)


class LinkStore(Protocol):
    """The device links, in one transaction."""

    async def silent_devices(self, since: datetime) -> list[tuple[str, datetime]]:
        """The devices last seen before ``since``, with when."""
        ...

    async def offline_devices(self, since: datetime) -> list[str]:
        """The devices whose status has been offline since before ``since``."""
        ...

    async def lock_if_silent(self, device_id: str, since: datetime) -> bool:
        """Lock the device's link if it is still last seen before ``since``."""
        ...

    async def lock_if_offline(self, device_id: str, since: datetime) -> bool:
        """Lock the device's link if it is still offline since before ``since``."""
        ...

    async def active_alert(self, device_id: str, key: str) -> Call | None:
        """The device's active alert of this kind, if any, locked."""
        ...

    async def open_alert(self, intake: Intake, device_id: str, key: str, now: datetime) -> Call:
        """Open a technical alert through ``intake``, in this transaction."""
        ...


class LinkSupervisor:
    def __init__(
        self,
        tx: Transactions[LinkStore],
        intake: Intake,
        clock: Clock,
        settings: DeviceSettings,
        on_change: Callable[[], None] = lambda: None,
        before_check: Callable[[], Awaitable[object]] | None = None,
        metrics: Metrics = NULL_METRICS,
        heartbeat_of: Callable[[str], int] | None = None,
    ) -> None:
        self._tx = tx
        # Each device's interval (its model's); None: the configured one for all.
        self._heartbeat_of = heartbeat_of
        self._metrics = metrics
        self._intake = intake
        self._clock = clock
        self._settings = settings
        self._on_change = on_change  # wakes the escalator
        # Writes the contacts the intake holds in memory, so the links read are current.
        self._before_check = before_check

    async def check(self) -> int:
        """Open an alert for each device newly found silent or offline; returns how many."""
        now = self._clock.now()
        s = self._settings
        if self._before_check is not None:
            await self._before_check()
        async with self._tx.read() as links:
            silent = await links.silent_devices(silent_since(s, now))
            offline = await links.offline_devices(offline_since(s, now))
        opened = 0
        for device_id, last_seen in silent:
            if last_seen >= now - self._silence(device_id):
                continue  # a model with a longer interval: not silent yet
            opened += await self._raise(
                device_id,
                "heartbeat_missed",
                lambda links, d, now: links.lock_if_silent(d, now - self._silence(d)),
            )
        for device_id in offline:
            opened += await self._raise(
                device_id,
                "offline",
                lambda links, d, now: links.lock_if_offline(d, offline_since(s, now)),
            )
        if opened:
            self._on_change()
        self._metrics.supervision_checked()
        return opened

    def _silence(self, device_id: str) -> timedelta:
        """How long the device may be silent: its missed heartbeats' worth."""
        s = self._settings
        every = self._heartbeat_of(device_id) if self._heartbeat_of else s.heartbeat_s
        return timedelta(seconds=every * s.missed_heartbeats)

    async def _raise(
        self,
        device_id: str,
        key: str,
        still: Callable[[LinkStore, str, datetime], Awaitable[bool]],
    ) -> int:
        if self._before_check is not None:
            await self._before_check()  # the device may have been heard since the read
        async with self._tx.begin() as links:
            # Checked again inside the transaction, against the time read inside it: the
            # device may have just come back, or the clock's watch may have just moved
            # the links with a step of the system clock (ClockWatch).
            now = self._clock.now()
            if not await still(links, device_id, now):
                return 0
            if await links.active_alert(device_id, key) is not None:
                return 0
            call = await links.open_alert(self._intake, device_id, key, now)
        log.warning("device_link_alert", call_id=call.id, device_id=device_id, alert=key)
        return 1
