"""The database side of :class:`dispatcher.services.supervision.LinkStore`: the
device links a :class:`~dispatcher.services.supervision.LinkSupervisor` reads, in one
transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db import stores as store
from dispatcher.adapters.db.intake_store import SqlIntakeStore
from dispatcher.core.calls import Call
from dispatcher.services.intake import Intake

_links = db.device_links.c


def _silent(since: datetime) -> ColumnElement[bool]:
    return _links.last_seen_at < since


def _offline(since: datetime) -> ColumnElement[bool]:
    return (_links.status == "offline") & (_links.status_at < since)


class SupervisionStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def silent_devices(self, since: datetime) -> list[tuple[str, datetime]]:
        rows = await self._session.execute(
            select(_links.device_id, _links.last_seen_at).where(_silent(since))
        )
        return [(row.device_id, row.last_seen_at) for row in rows]

    async def offline_devices(self, since: datetime) -> list[str]:
        return list(
            await self._session.scalars(
                select(_links.device_id).where(_links.status == "offline", _links.status_at < since)
            )
        )

    async def lock_if_silent(self, device_id: str, since: datetime) -> bool:
        return await self._lock_if(device_id, _silent(since))

    async def lock_if_offline(self, device_id: str, since: datetime) -> bool:
        return await self._lock_if(device_id, _offline(since))

    async def _lock_if(self, device_id: str, still: ColumnElement[bool]) -> bool:
        found = await self._session.scalar(
            select(_links.device_id).where(_links.device_id == device_id, still).with_for_update()
        )
        return found is not None

    async def active_alert(self, device_id: str, key: str) -> Call | None:
        return await store.active_alert(self._session, device_id, key)

    async def open_alert(self, intake: Intake, device_id: str, key: str, now: datetime) -> Call:
        return await intake.open_alert(SqlIntakeStore(self._session), device_id, key, now)
