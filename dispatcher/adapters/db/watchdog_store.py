"""The database side of :class:`dispatcher.services.watchdog.WatchdogStore`: the calls
whose supervisor page is due, one call locked, its page's outbox rows, reply numbers
and timeline entry, in one session."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import reply_codes as replycodes
from dispatcher.adapters.db import schema as db
from dispatcher.core.calls import Call, CallState, Priority, TimelineEntry
from dispatcher.services.notify import OutboxRow


class SqlWatchdogStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def due_pages(self, now: datetime, limit: int) -> list[str]:
        c = db.calls.c
        alarms_first = case((c.priority == Priority.CRITICAL.value, 0), else_=1)
        found = await self._session.scalars(
            select(c.id)
            .where(c.state == CallState.OPEN.value, c.watchdog_at <= now)
            .order_by(alarms_first, c.watchdog_at, c.id)
            .limit(limit)
        )
        return list(found)

    async def lock_call(self, call_id: str) -> Call | None:
        found = await self._session.scalars(
            select(Call)
            .where(db.calls.c.id == call_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return found.first()

    async def reply_code(self, phone: str, call_id: str, now: datetime) -> int:
        return await replycodes.assign(self._session, phone, call_id, now)

    async def queue_notifications(self, rows: list[OutboxRow]) -> None:
        if rows:
            await self._session.execute(insert(db.sms_outbox), rows)

    def add_timeline(self, entry: TimelineEntry) -> None:
        self._session.add(entry)
