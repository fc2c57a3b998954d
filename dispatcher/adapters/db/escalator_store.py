"""The database side of :class:`dispatcher.services.escalator.EscalationStore` (and of
:class:`dispatcher.services.notify.NotifyStore`): the due calls, the locked call and
its timeline, a step's outbox rows and reply numbers, in one session.

It also holds the two pieces of SQL that the SMS outbox shares with the escalator:
:func:`outbox_row_wanted` (its claim's rule) and :func:`outbox_row` (a fallback's row).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import reply_codes as replycodes
from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db import stores as store
from dispatcher.core.calls import Call, CallState, TimelineEntry
from dispatcher.core.contact_methods import ContactMethod
from dispatcher.core.directory import Directory, Resident
from dispatcher.services.notify import OutboxRow, outbox_values


def outbox_row_wanted() -> ColumnElement[bool]:
    """Whether an outbox row's call still wants it sent (for the outbox's claim,
    joined on ``calls``): an unacknowledged call, or an acknowledged one whose
    acknowledgement timeout queued the row (created since the timeout fell). The same
    rule as ``Call.wants_notification``."""
    return or_(
        db.calls.c.state == CallState.OPEN.value,
        and_(
            db.calls.c.state == CallState.ACKNOWLEDGED.value,
            db.calls.c.ack_timeout_at.is_not(None),
            db.sms_outbox.c.created_at >= db.calls.c.ack_timeout_at,
        ),
    )


async def outbox_row(
    session: AsyncSession,
    call: Call,
    resident: Resident | None,
    directory: Directory,
    *,
    recipient: str,
    language: str,
    method: ContactMethod,
    step_index: int,
    now: datetime,
) -> OutboxRow:
    """The outbox row that reaches ``recipient`` about ``call`` by ``method``, its
    reply number assigned in ``session``."""
    code = await replycodes.assign(session, method.number, call.id, now)
    return outbox_values(
        call,
        resident,
        directory,
        recipient=recipient,
        language=language,
        method=method,
        step_index=step_index,
        now=now,
        code=code,
    )


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
