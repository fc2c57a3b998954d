"""Short per-call reply codes, per phone number, as GoAlert's alert codes are.

A person notified about a call gets a small number for it (``7``) that is theirs
alone among their open calls, so that an SMS reply ``7A`` names the call without
the long call id. A number stays with its call until the call is resolved; then
it is retired and may be given to a later call. A reply naming a retired or an
unknown number is "stale" and gets a helpful answer, not an action.

One hotline number can hold thousands of active codes in a burst, so an assignment
never reads them: the smallest free number is the smallest of ``reply_code_free``
(the phone's retired numbers, kept below its highest active one) or else one more
than the highest active number, each an index look-up. Invariants: no number in
``reply_code_free`` is active for its phone, and every inactive number below the
phone's highest active one is in it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import schema as db


async def assign(session: AsyncSession, phone: str, call_id: str, now: datetime) -> int:
    """The number ``phone`` uses for ``call_id``: the one already given, or the
    smallest number not in use by that phone's other active calls."""
    t, free = db.reply_codes, db.reply_code_free
    if session.get_bind().dialect.name == "postgresql":
        # Two transactions giving the same phone a number at once would both see it
        # free; SQLite's write lock already serializes them.
        await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(phone))))
    held = (
        select(t.c.number)
        .where(t.c.call_id == call_id, t.c.phone == phone, t.c.active)
        .limit(1)
        .scalar_subquery()
    )
    smallest_free = select(func.min(free.c.number)).where(free.c.phone == phone).scalar_subquery()
    highest = select(func.max(t.c.number)).where(t.c.phone == phone, t.c.active).scalar_subquery()
    given, lowest, top = (await session.execute(select(held, smallest_free, highest))).one()
    if given is not None:
        return int(given)
    top = int(top or 0)
    if lowest is not None and int(lowest) <= top:
        number = int(lowest)
        await session.execute(delete(free).where(free.c.phone == phone, free.c.number == number))
    else:
        number = top + 1
        if lowest is not None:  # free numbers above the highest active: no longer kept
            await session.execute(
                delete(free).where(free.c.phone == phone, free.c.number >= number)
            )
    await session.execute(
        t.insert().values(phone=phone, number=number, call_id=call_id, created_at=now, active=True)
    )
    return number


async def find(session: AsyncSession, phone: str, number: int) -> str | None:
    """The active call that ``phone`` knows as ``number``, or None (stale or unknown)."""
    t = db.reply_codes
    found = await session.scalar(
        select(t.c.call_id).where(t.c.phone == phone, t.c.active, t.c.number == number)
    )
    return None if found is None else str(found)


async def retire(session: AsyncSession, call_id: str) -> None:
    """Free every number given for ``call_id`` (the call is resolved)."""
    t, free = db.reply_codes, db.reply_code_free
    retired = (
        await session.execute(
            update(t)
            .where(and_(t.c.call_id == call_id, t.c.active))
            .values(active=False)
            .returning(t.c.phone, t.c.number)
        )
    ).all()
    if not retired:
        return
    dialect = session.get_bind().dialect.name
    upsert = (pg_insert if dialect == "postgresql" else sqlite_insert)(free)
    await session.execute(
        upsert.on_conflict_do_nothing(),
        [{"phone": str(phone), "number": int(number)} for phone, number in retired],
    )
