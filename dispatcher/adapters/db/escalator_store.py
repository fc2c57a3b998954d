"""The database side of :class:`dispatcher.services.escalator.EscalationStore` (and of
:class:`dispatcher.services.notify.NotifyStore`): the due calls, the locked call and
its timeline, a step's outbox rows and reply numbers, in one session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import case, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import reply_codes as replycodes
from dispatcher.adapters.db import schema as db
from dispatcher.core.calls import Call, CallState, Priority, TimelineEntry
from dispatcher.services.notify import OutboxRow


class SqlEscalationStore:
    """:class:`~dispatcher.services.escalator.EscalationStore` bound to one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _due(self, state: CallState, due_at: Any, now: datetime, limit: int) -> list[str]:
        # Alarms first, then the most overdue: the sort runs over the due rows only
        # (the index on the due time finds them), a few thousand at worst.
        alarms_first = case((db.calls.c.priority == Priority.CRITICAL.value, 0), else_=1)
        found = await self._session.scalars(
            select(db.calls.c.id)
            .where(db.calls.c.state == state.value, due_at <= now)
            .order_by(alarms_first, due_at, db.calls.c.id)
            .limit(limit)
        )
        return list(found)

    async def due_escalations(self, now: datetime, limit: int) -> list[str]:
        return await self._due(CallState.OPEN, db.calls.c.next_escalation_at, now, limit)

    async def due_ack_escalations(self, now: datetime, limit: int) -> list[str]:
        return await self._due(
            CallState.ACKNOWLEDGED, db.calls.c.next_ack_escalation_at, now, limit
        )

    async def lock_calls(self, call_ids: Sequence[str]) -> list[Call]:
        # One statement for the batch (a row lock each on PostgreSQL; SQLite's write
        # lock is taken at BEGIN IMMEDIATE).
        if not call_ids:
            return []
        found = await self._session.scalars(
            select(Call)
            .where(db.calls.c.id.in_(list(call_ids)))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return list(found)

    @asynccontextmanager
    async def savepoint(self, call: Call) -> AsyncIterator[None]:
        try:
            async with self._session.begin_nested():
                yield
        except BaseException:
            # The savepoint's rollback undoes what was flushed; the call's changes made
            # in Python since the last flush go too, so the batch's commit leaves the
            # call as it was (still due).
            self._session.expire(call)
            raise

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
