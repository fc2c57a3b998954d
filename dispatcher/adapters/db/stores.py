"""Database helpers shared by the services: small functions over an open session.

Each service method opens one transaction and calls these; nothing here commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from devices.protocol import CallUpdate
from dispatcher.adapters.db import reply_codes as replycodes
from dispatcher.adapters.db import schema as db
from dispatcher.core.calls import (
    DEVICE_TEXT,
    DISPATCH_TIMER,
    Call,
    CallKind,
    CallState,
    Transition,
)


def _next_call_ids(postgresql: bool) -> Any:
    upsert = (pg_insert if postgresql else sqlite_insert)(db.call_sequences)
    return (
        upsert.values(day=bindparam("day"), last=bindparam("count"))
        .on_conflict_do_update(
            index_elements=[db.call_sequences.c.day],
            set_={"last": db.call_sequences.c.last + upsert.excluded.last},
        )
        .returning(db.call_sequences.c.last)
    )


# Built once (as the intake's statements, dispatcher.adapters.db.intake_store), by
# whether the dialect is PostgreSQL's.
_NEXT_CALL_IDS = {postgresql: _next_call_ids(postgresql) for postgresql in (False, True)}


async def next_call_id(session: AsyncSession, now: datetime, timezone: str) -> str:
    """``C-YYYYMMDD-NNNN`` numbered per local day.

    One upsert statement, so two transactions opening the first calls of a day at the
    same moment cannot both start at 1 (on PostgreSQL the second waits for the row).
    """
    [call_id] = await next_call_ids(session, now, timezone, 1)
    return call_id


async def next_call_ids(
    session: AsyncSession, now: datetime, timezone: str, count: int
) -> list[str]:
    """``count`` consecutive call ids (see :func:`next_call_id`), in one statement."""
    day = now.astimezone(ZoneInfo(timezone)).strftime("%Y%m%d")
    statement = _NEXT_CALL_IDS[session.get_bind().dialect.name == "postgresql"]
    seq = await session.scalar(statement, {"day": day, "count": count})
    last = int(seq or 0)
    return [f"C-{day}-{n:04d}" for n in range(last - count + 1, last + 1)]


async def active_resident_call(session: AsyncSession, device_id: str) -> Call | None:
    """The device's one active (unresolved) resident call, if any, locked like
    :func:`lock_call`: on PostgreSQL a press racing an operator's resolve must wait
    and then not find the resolved call, rather than join it unseen."""
    found = await session.scalars(
        select(Call)
        .where(
            db.calls.c.device_id == device_id,
            db.calls.c.state != CallState.RESOLVED.value,
            db.calls.c.kind != CallKind.TECHNICAL.value,
        )
        .order_by(db.calls.c.opened_at.desc())
        .limit(1)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return found.first()


async def active_alert(session: AsyncSession, device_id: str, alert_key: str) -> Call | None:
    """The device's active alert of this kind, if any, locked (see above)."""
    found = await session.scalars(
        select(Call)
        .where(
            db.calls.c.device_id == device_id,
            db.calls.c.state != CallState.RESOLVED.value,
            db.calls.c.alert_key == alert_key,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return found.first()


async def lock_call(session: AsyncSession, call_id: str) -> Call | None:
    """Load a call for update (a row lock on PostgreSQL; SQLite's write lock is taken
    at BEGIN IMMEDIATE)."""
    return await session.get(Call, call_id, with_for_update=True, populate_existing=True)


async def record(session: AsyncSession, call: Call, transition: Transition, now: datetime) -> None:
    """Append a transition's timeline and queue its device update, in the caller's
    transaction: the update leaves only if the change is committed."""
    for entry in transition.timeline:
        entry.call_id = call.id
        session.add(entry)
    update_msg = device_update(call, transition)
    if update_msg is not None:
        await queue_device_message(session, call.device_id, update_msg, now)
    if call.state is CallState.RESOLVED:
        await replycodes.retire(session, call.id)  # its reply numbers may serve later calls


def device_update(call: Call, transition: Transition) -> str | None:
    """The ``call_update`` a transition sends the device, if any (as JSON)."""
    if transition.device_update is None:
        return None
    return CallUpdate(
        call_id=call.id,
        state=transition.device_update,
        text=DEVICE_TEXT[transition.device_update],
    ).model_dump_json()


async def queue_device_message(
    session: AsyncSession, device_id: str, payload: str, now: datetime
) -> None:
    await session.execute(
        insert(db.device_outbox).values(device_id=device_id, payload=payload, created_at=now)
    )


async def cancel_pending_sms(session: AsyncSession, call_id: str, why: str) -> int:
    """Cancel the call's escalation messages not yet sent. A dispatch's (a responder
    told where to go) is kept: acknowledging the call does not recall the responder;
    once the call is resolved the outbox no longer wants it and cancels it."""
    o = db.sms_outbox.c
    result = await session.execute(
        update(db.sms_outbox)
        .where(
            o.call_id == call_id,
            o.status == "pending",
            or_(o.timer.is_(None), o.timer != DISPATCH_TIMER),
        )
        .values(status="cancelled", error=why)
    )
    return int(getattr(result, "rowcount", 0) or 0)
