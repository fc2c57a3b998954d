"""The database side of :class:`dispatcher.services.fleet.FleetStore`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import schema as db
from dispatcher.core.calls import CallKind, CallState
from dispatcher.core.fleet import Link

_links = db.device_links.c
_calls = db.calls.c


class SqlFleetStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def links(self) -> list[Link]:
        rows = await self._session.execute(
            select(
                _links.device_id,
                _links.last_seen_at,
                _links.status,
                _links.status_at,
                _links.battery,
                _links.power_lost_at,
                _links.last_test_at,
            )
        )
        return [Link(*row) for row in rows]

    async def open_alerts(self) -> dict[str, frozenset[str]]:
        rows = await self._session.execute(
            select(_calls.device_id, _calls.alert_key).where(
                _calls.kind == CallKind.TECHNICAL.value,
                _calls.state != CallState.RESOLVED.value,
                _calls.alert_key.is_not(None),
            )
        )
        found: dict[str, set[str]] = {}
        for device_id, key in rows:
            found.setdefault(device_id, set()).add(key)
        return {device: frozenset(keys) for device, keys in found.items()}

    async def is_known_device(self, device_id: str) -> bool:
        found = await self._session.scalar(
            select(_links.device_id).where(_links.device_id == device_id)
        )
        return found is not None

    async def set_test_mode(self, device_id: str, until: datetime | None, now: datetime) -> None:
        changed = await self._session.execute(
            update(db.device_links)
            .where(_links.device_id == device_id)
            .values(test_mode_until=until)
        )
        if not getattr(changed, "rowcount", 0) and until is not None:
            # Registered, never heard from: a link row of its own, last seen "now" so
            # supervision counts its silence from the installer's visit.
            await self._session.execute(
                insert(db.device_links).values(
                    device_id=device_id,
                    last_seen_at=now,
                    status="online",
                    status_at=now,
                    test_mode_until=until,
                )
            )

    async def test_modes(self, now: datetime) -> dict[str, datetime]:
        rows = await self._session.execute(
            select(_links.device_id, _links.test_mode_until).where(
                _links.test_mode_until.is_not(None), _links.test_mode_until > now
            )
        )
        return {device_id: until for device_id, until in rows}
