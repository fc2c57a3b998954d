"""Queues the notifications of one escalation step, inside the step's transaction.

The escalator decides *who* (routing) and *when*; this module decides *what* each
person is sent and writes it to the outbox, so that the step, its messages and
the call's new escalation state commit together and leave through the outbox.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher import db, replycodes
from dispatcher.calls import Call
from dispatcher.directory import Directory, Resident
from dispatcher.messages import call_sms
from dispatcher.routing import Recipient


async def queue_step(
    session: AsyncSession,
    call: Call,
    resident: Resident | None,
    directory: Directory,
    people: list[Recipient],
    step_index: int,
    now: datetime,
) -> int:
    """Write one outbox row per person for step ``step_index``; returns how many."""
    rows = []
    for p in people:
        code = await replycodes.assign(session, p.phone, call.id, now)
        rows.append(
            {
                "call_id": call.id,
                "step": step_index,
                "recipient": p.id,
                "to_number": p.phone,
                "body": call_sms(call, resident, directory, p.language, step_index, code),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    if rows:
        await session.execute(insert(db.sms_outbox), rows)
    return len(rows)
