"""The database side of :class:`dispatcher.services.dispatches.DispatchStore`: the
responders sent to calls, their due times, and the SMS that tell them (and the
call's owner) where to go, in the caller's session. Mixed into the operators' and
the intake's stores, so that a dispatch commits with the call's change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import reply_codes as replycodes
from dispatcher.adapters.db import schema as db
from dispatcher.core.dispatches import Dispatch, DispatchState, ResponderKind

d_ = db.dispatches
_FIELDS = [c.name for c in d_.columns if c.name != "id"]


def _dispatch(row: Row[Any]) -> Dispatch:
    values = dict(row._mapping)
    values["responder_kind"] = ResponderKind(values["responder_kind"])
    values["state"] = DispatchState(values["state"])
    return Dispatch(**values)


def _values(d: Dispatch) -> dict[str, Any]:
    values = {name: getattr(d, name) for name in _FIELDS}
    values["responder_kind"] = d.responder_kind.value
    values["state"] = d.state.value
    return values


class SqlDispatches:
    """The dispatch queries, over ``self._session`` (set by the store it is mixed into)."""

    _session: AsyncSession

    async def dispatches(self, call_ids: Sequence[str]) -> list[Dispatch]:
        if not call_ids:
            return []
        rows = await self._session.execute(
            select(d_).where(d_.c.call_id.in_(list(call_ids))).order_by(d_.c.call_id, d_.c.number)
        )
        return [_dispatch(r) for r in rows]

    async def lock_dispatches(self, call_id: str) -> list[Dispatch]:
        rows = await self._session.execute(
            select(d_).where(d_.c.call_id == call_id).order_by(d_.c.number).with_for_update()
        )
        return [_dispatch(r) for r in rows]

    async def add_dispatch(self, d: Dispatch) -> None:
        d.id = await self._session.scalar(insert(d_).values(**_values(d)).returning(d_.c.id))

    async def save_dispatch(self, d: Dispatch) -> None:
        await self._session.execute(update(d_).where(d_.c.id == d.id).values(**_values(d)))

    async def due_dispatches(self, now: datetime, limit: int) -> list[tuple[int, str]]:
        rows = await self._session.execute(
            select(d_.c.id, d_.c.call_id)
            .where(d_.c.overdue_due_at.is_not(None), d_.c.overdue_due_at <= now)
            .order_by(d_.c.overdue_due_at)
            .limit(limit)
        )
        return [(r.id, r.call_id) for r in rows]

    async def lock_dispatch(self, dispatch_id: int) -> Dispatch | None:
        rows = await self._session.execute(
            select(d_).where(d_.c.id == dispatch_id).with_for_update()
        )
        row = rows.first()
        return None if row is None else _dispatch(row)

    async def dispatch_reply_code(self, phone: str, call_id: str, now: datetime) -> int:
        return await replycodes.assign(self._session, phone, call_id, now)

    async def queue_dispatch_sms(self, row: dict[str, Any]) -> int:
        found = await self._session.scalar(
            insert(db.sms_outbox).values(**row).returning(db.sms_outbox.c.id)
        )
        return int(found or 0)

    async def cancel_dispatch_sms(self, row_id: int, why: str) -> bool:
        result = await self._session.execute(
            update(db.sms_outbox)
            .where(db.sms_outbox.c.id == row_id, db.sms_outbox.c.status == "pending")
            .values(status="cancelled", error=why)
        )
        return bool(getattr(result, "rowcount", 0))
