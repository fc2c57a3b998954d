"""The database side of :class:`dispatcher.services.escalator.EscalationStore` (and of
:class:`dispatcher.services.notify.NotifyStore`): the due calls, the locked call and
its timeline, a step's outbox rows and reply numbers, in one session."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import reply_codes as replycodes
from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db import stores as store
from dispatcher.core.calls import Call, CallState, TimelineEntry
from dispatcher.services.notify import OutboxRow


class SqlEscalationStore:
    """:class:`~dispatcher.services.escalator.EscalationStore` bound to one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _due(self, state: CallState, due_at: Any, now: datetime, limit: int) -> list[str]:
        found = await self._session.scalars(
            select(db.calls.c.id)
            .where(db.calls.c.state == state.value, due_at <= now)
            .order_by(due_at)
            .limit(limit)
        )
        return list(found)

    async def due_escalations(self, now: datetime, limit: int) -> list[str]:
        return await self._due(CallState.OPEN, db.calls.c.next_escalation_at, now, limit)

    async def due_ack_escalations(self, now: datetime, limit: int) -> list[str]:
        return await self._due(
            CallState.ACKNOWLEDGED, db.calls.c.next_ack_escalation_at, now, limit
        )

    async def lock_call(self, call_id: str) -> Call | None:
        return await store.lock_call(self._session, call_id)

    def add_timeline(self, entry: TimelineEntry) -> None:
        self._session.add(entry)

    async def reply_code(self, phone: str, call_id: str, now: datetime) -> int:
        return await replycodes.assign(self._session, phone, call_id, now)

    async def queue_notifications(self, rows: list[OutboxRow]) -> None:
        await self._session.execute(insert(db.sms_outbox), rows)

    async def queued_for_step(
        self, call_id: str, timer: str, step: int, since: datetime
    ) -> set[str]:
        t = db.sms_outbox.c
        found = await self._session.scalars(
            select(t.recipient)
            .where(
                t.call_id == call_id,
                t.timer == timer,
                t.step == step,
                t.created_at >= since,
                t.status != "cancelled",
            )
            .distinct()
        )
        return set(found)
