"""Link supervision: a device that stops sending heartbeats, or whose Last Will said
offline and that has not come back within the grace period, may not be able to call
for help. Each raises a technical alert (a call of kind ``technical``); the device's
return clears it (see ``Intake``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import structlog
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db import stores as store
from dispatcher.adapters.db.intake_store import SqlIntakeStore
from dispatcher.config import DeviceSettings
from dispatcher.services.clock import Clock
from dispatcher.services.intake import Intake

log = structlog.get_logger(__name__)


class LinkSupervisor:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        intake: Intake,
        clock: Clock,
        settings: DeviceSettings,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._intake = intake
        self._clock = clock
        self._settings = settings
        self._on_change = on_change  # wakes the escalator

    async def check(self) -> int:
        """Open an alert for each device newly found silent or offline; returns how many."""
        now = self._clock.now()
        s = self._settings
        silent_since = now - timedelta(seconds=s.heartbeat_s * s.missed_heartbeats)
        offline_since = now - timedelta(seconds=s.offline_grace_s)
        links = db.device_links.c
        async with self._sessions() as session:
            silent = list(
                await session.scalars(
                    select(links.device_id).where(links.last_seen_at < silent_since)
                )
            )
            offline = list(
                await session.scalars(
                    select(links.device_id).where(
                        links.status == "offline", links.status_at < offline_since
                    )
                )
            )
        opened = 0
        for device_id in silent:
            opened += await self._raise(
                device_id, "heartbeat_missed", links.last_seen_at < silent_since
            )
        for device_id in offline:
            opened += await self._raise(
                device_id,
                "offline",
                (links.status == "offline") & (links.status_at < offline_since),
            )
        if opened:
            self._on_change()
        return opened

    async def _raise(self, device_id: str, key: str, still: ColumnElement[bool]) -> int:
        now = self._clock.now()
        async with self._sessions.begin() as session:
            # Checked again inside the transaction: the device may have just come back.
            if (
                await session.scalar(
                    select(db.device_links.c.device_id)
                    .where(db.device_links.c.device_id == device_id, still)
                    .with_for_update()
                )
                is None
            ):
                return 0
            if await store.active_alert(session, device_id, key) is not None:
                return 0
            call = await self._intake.open_alert(SqlIntakeStore(session), device_id, key, now)
        log.warning("device_link_alert", call_id=call.id, device_id=device_id, alert=key)
        return 1
