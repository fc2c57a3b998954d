"""The fleet: the morning report of devices that need a visit, and test mode.

The report (``dispatcher.core.fleet``) is read in one transaction from the device
links and the open technical alerts, for the viewer's area; the CLI, the API and
the CSV for the staff who visit homes all come from :meth:`Fleet.report`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from dispatcher.config import DeviceSettings
from dispatcher.core.directory import Directory, Staff
from dispatcher.core.directory_holder import DirectoryHolder, ReadsDirectory, hold
from dispatcher.core.fleet import FleetReport, Link, ReportRules, fleet_report
from dispatcher.core.scope import visible_communities
from dispatcher.services.clock import Clock
from dispatcher.services.device_tests import TestModes
from dispatcher.services.ports import Transactions

log = structlog.get_logger(__name__)


class UnknownDeviceError(LookupError):
    """A device neither registered nor ever heard from."""


class FleetStore(Protocol):
    async def links(self) -> list[Link]: ...

    async def open_alerts(self) -> dict[str, frozenset[str]]:
        """Each device's unresolved technical alerts, by key."""
        ...

    async def is_known_device(self, device_id: str) -> bool: ...

    async def set_test_mode(self, device_id: str, until: datetime | None, now: datetime) -> None:
        """The device's test mode ends at ``until`` (None: none); its link row is
        inserted if it has none."""

    async def test_modes(self, now: datetime) -> dict[str, datetime]:
        """The devices in test mode at ``now``, until when."""
        ...


class Fleet(ReadsDirectory):
    def __init__(
        self,
        tx: Transactions[FleetStore],
        directory: Directory | DirectoryHolder,
        clock: Clock,
        settings: DeviceSettings,
        test_modes: TestModes,
    ) -> None:
        self._tx = tx
        self._directories = hold(directory)
        self._clock = clock
        self._settings = settings
        self.test_modes = test_modes
        # Writes the contacts the intake holds in memory first, so the links are current.
        self.before_read: Callable[[], Awaitable[object]] | None = None
        self.rules = ReportRules(
            untested_after=timedelta(days=settings.untested_after_days),
            silent_after=timedelta(hours=settings.silent_after_hours),
            low_battery_pct=settings.low_battery_pct,
        )

    async def load(self) -> None:
        """The test modes in force, from the links (at start)."""
        async with self._tx.read() as store:
            self.test_modes.load(await store.test_modes(self._clock.now()))

    async def report(self, viewer: Staff | None = None) -> FleetReport:
        """The devices with a problem now, those of ``viewer``'s area (None: all)."""
        if self.before_read is not None:
            await self.before_read()
        now = self._clock.now()
        async with self._tx.read() as store:
            links = await store.links()
            alerts = await store.open_alerts()
        areas = None if viewer is None else visible_communities(self._directory, viewer)
        return fleet_report(self._directory, links, alerts, now, self.rules, area_ids=areas)

    async def start_test_mode(
        self, device_id: str, minutes: int | None = None, by: str = "system"
    ) -> datetime:
        """Put the device in test mode: its next press within ``minutes`` (the
        configured default) is its end-to-end test, not a call. Returns the end."""
        now = self._clock.now()
        until = now + timedelta(minutes=minutes or self._settings.test_mode_minutes)
        async with self._tx.begin() as store:
            known = device_id in self._directory.residents_by_device
            if not known and not await store.is_known_device(device_id):
                raise UnknownDeviceError(device_id)
            await store.set_test_mode(device_id, until, now)
        self.test_modes.started(device_id, until)
        log.info("device_test_mode", device_id=device_id, until=until.isoformat(), by=by)
        return until

    async def end_test_mode(self, device_id: str, by: str = "system") -> None:
        now = self._clock.now()
        async with self._tx.begin() as store:
            await store.set_test_mode(device_id, None, now)
        self.test_modes.ended(device_id)
        log.info("device_test_mode_ended", device_id=device_id, by=by)
