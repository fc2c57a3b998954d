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

:class:`Allocations` gives many numbers in one transaction (an escalation batch, a
burst's first steps: hundreds of SMS to the few people on duty): it reads each phone's
state once and writes the numbers together, where :func:`assign` costs three built
statements for each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import schema as db

# Read a few free numbers at a time: a phone may hold thousands after a burst.
FREE_CHUNK = 64

_r, _f = db.reply_codes.c, db.reply_code_free.c
_LOCK = select(func.pg_advisory_xact_lock(func.hashtext(bindparam("phone", type_=String))))
_HIGHEST = select(func.max(_r.number)).where(_r.phone == bindparam("phone"), _r.active)
_FREE_AFTER = (
    select(_f.number)
    .where(_f.phone == bindparam("phone"), _f.number > bindparam("after"))
    .order_by(_f.number)
    .limit(bindparam("chunk", type_=Integer))
)
_TAKE_FREE = delete(db.reply_code_free).where(
    _f.phone == bindparam("phone"), _f.number == bindparam("number")
)
_DROP_FREE_FROM = delete(db.reply_code_free).where(
    _f.phone == bindparam("phone"), _f.number >= bindparam("number")
)
_INSERT = insert(db.reply_codes)


async def assign(session: AsyncSession, phone: str, call_id: str, now: datetime) -> int:
    """The number ``phone`` uses for ``call_id``: the one already given, or the
    smallest number not in use by that phone's other active calls."""
    t, free = db.reply_codes, db.reply_code_free
    if session.get_bind().dialect.name == "postgresql":
        # Two transactions giving the same phone a number at once would both see it
        # free; SQLite's write lock already serializes them.
        await session.execute(_LOCK, {"phone": phone})
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


@dataclass
class _Phone:
    """One phone's numbers as this transaction sees them."""

    top: int  # the highest active number, those given here included
    free: list[int]  # free numbers read and not yet given, ascending
    read_to: int  # the highest free number read so far (0: none)
    more: bool  # there may be free numbers above read_to
    drop_from: int | None = None  # free numbers from here up are no longer kept


@dataclass
class Allocations:
    """Reply numbers for many (phone, call) pairs of one transaction, as :func:`assign`
    gives them one by one. The caller knows that the calls hold no number for the
    phone yet (their numbers read ahead, the calls locked); it asks each pair once.

    Written at :meth:`flush` (one statement per kind for all), or at once with
    ``immediate`` (inside a savepoint: after its rollback, :meth:`forget` and the
    database is right again). Nothing else may give numbers to these phones in the
    transaction between the first :meth:`take` and the last :meth:`flush`."""

    session: AsyncSession
    immediate: bool = False
    _phones: dict[str, _Phone] = field(default_factory=dict)
    _given: list[dict[str, Any]] = field(default_factory=list)
    _taken: list[dict[str, Any]] = field(default_factory=list)

    async def take(self, phone: str, call_id: str, now: datetime) -> int:
        state = self._phones.get(phone) or await self._load(phone)
        number = await self._next(phone, state)
        self._given.append(
            {
                "phone": phone,
                "number": number,
                "call_id": call_id,
                "created_at": now,
                "active": True,
            }
        )
        if self.immediate:
            await self.flush()
        return number

    async def flush(self) -> None:
        if self._taken:
            await self.session.execute(_TAKE_FREE, self._taken)
        for phone, state in self._phones.items():
            if state.drop_from is not None:
                await self.session.execute(
                    _DROP_FREE_FROM, {"phone": phone, "number": state.drop_from}
                )
                state.drop_from = None
        if self._given:
            await self.session.execute(_INSERT, self._given)
        self._given, self._taken = [], []

    def forget(self) -> None:
        """Read every phone again on its next take (what was written was rolled back)."""
        self._phones.clear()
        self._given, self._taken = [], []

    async def _load(self, phone: str) -> _Phone:
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(_LOCK, {"phone": phone})  # as in assign
        top = await self.session.scalar(_HIGHEST, {"phone": phone})
        state = _Phone(top=int(top or 0), free=[], read_to=0, more=True)
        self._phones[phone] = state
        return state

    async def _next(self, phone: str, state: _Phone) -> int:
        while not state.free and state.more:
            found = list(
                await self.session.scalars(
                    _FREE_AFTER, {"phone": phone, "after": state.read_to, "chunk": FREE_CHUNK}
                )
            )
            state.free = [int(n) for n in found]
            state.more = len(found) == FREE_CHUNK
            if found:
                state.read_to = state.free[-1]
        if state.free and state.free[0] <= state.top:
            number = state.free.pop(0)
            self._taken.append({"phone": phone, "number": number})
            return number
        if state.free:
            # Free numbers above the highest active one are no longer kept (assign).
            state.drop_from = state.top + 1
            state.free, state.more = [], False
        state.top += 1
        return state.top
