"""The database side of :class:`dispatcher.services.phone_desk.PhoneStore`: the reply
codes, outbox rows and calls that acknowledging by phone reads, in one session."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import reply_codes as replycodes
from dispatcher.adapters.db import schema as db
from dispatcher.core.calls import Call, CallKind, CallState, TimelineEntry
from dispatcher.core.phone_texts import OpenCode
from dispatcher.services.phone_desk import Notification


class SqlPhoneStore:
    """:class:`~dispatcher.services.phone_desk.PhoneStore` bound to one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def call_with_code(self, phone: str, number: int) -> str | None:
        return await replycodes.find(self._session, phone, number)

    async def open_codes(self, phone: str) -> list[OpenCode]:
        t, c = db.reply_codes, db.calls
        rows = await self._session.execute(
            select(t.c.number, t.c.call_id, c.c.kind)
            .join(c, c.c.id == t.c.call_id)
            .where(t.c.phone == phone, t.c.active, c.c.state != CallState.RESOLVED.value)
            .order_by(t.c.number)
        )
        return [OpenCode(int(n), str(cid), CallKind(kind)) for n, cid, kind in rows]

    async def call(self, call_id: str) -> Call | None:
        return await self._session.get(Call, call_id)

    async def last_recipient(self, call_id: str, phone: str) -> str | None:
        o = db.sms_outbox
        recipient = await self._session.scalar(
            select(o.c.recipient)
            .where(o.c.call_id == call_id, o.c.to_number == phone)
            .order_by(o.c.id.desc())
            .limit(1)
        )
        return None if recipient is None else str(recipient)

    async def notification(self, notification_id: int) -> Notification | None:
        o = db.sms_outbox
        row = (
            await self._session.execute(
                select(o.c.call_id, o.c.recipient, o.c.to_number).where(o.c.id == notification_id)
            )
        ).first()
        if row is None:
            return None
        return Notification(row.call_id, row.recipient, row.to_number)

    def add_timeline(self, entry: TimelineEntry) -> None:
        self._session.add(entry)

    async def handled(self, sid: str) -> str | None:
        h = db.handled_webhooks
        answer = await self._session.scalar(select(h.c.answer).where(h.c.sid == sid))
        return None if answer is None else str(answer)

    async def remember(self, sid: str, kind: str, answer: str, now: datetime) -> None:
        # Two copies of one webhook handled at once: the first record stays.
        insert = (
            pg_insert if self._session.get_bind().dialect.name == "postgresql" else sqlite_insert
        )
        await self._session.execute(
            insert(db.handled_webhooks)
            .values(sid=sid, kind=kind, answer=answer, handled_at=now)
            .on_conflict_do_nothing(index_elements=["sid"])
        )
