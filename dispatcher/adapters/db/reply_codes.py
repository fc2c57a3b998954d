"""Short per-call reply codes, per phone number, as GoAlert's alert codes are.

A person notified about a call gets a small number for it (``7``) that is theirs
alone among their open calls, so that an SMS reply ``7A`` names the call without
the long call id. A number stays with its call until the call is resolved; then
it is retired and may be given to a later call. A reply naming a retired or an
unknown number is "stale" and gets a helpful answer, not an action.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import schema as db


async def assign(session: AsyncSession, phone: str, call_id: str, now: datetime) -> int:
    """The number ``phone`` uses for ``call_id``: the one already given, or the
    smallest number not in use by that phone's other active calls."""
    t = db.reply_codes
    rows = (
        await session.execute(select(t.c.number, t.c.call_id).where(t.c.phone == phone, t.c.active))
    ).all()
    for number, held_by in rows:
        if held_by == call_id:
            return int(number)
    taken = {int(n) for n, _ in rows}
    number = next(n for n in range(1, len(taken) + 2) if n not in taken)
    await session.execute(
        t.insert().values(phone=phone, number=number, call_id=call_id, created_at=now, active=True)
    )
    return number


async def find(session: AsyncSession, phone: str, number: int) -> str | None:
    """The active call that ``phone`` knows as ``number``, or None (stale or unknown)."""
    t = db.reply_codes
    found = await session.scalar(
        select(t.c.call_id).where(t.c.phone == phone, t.c.number == number, t.c.active)
    )
    return None if found is None else str(found)


async def retire(session: AsyncSession, call_id: str) -> None:
    """Free every number given for ``call_id`` (the call is resolved)."""
    t = db.reply_codes
    await session.execute(
        update(t).where(and_(t.c.call_id == call_id, t.c.active)).values(active=False)
    )
