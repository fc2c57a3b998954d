"""Queues the notifications of one escalation step, inside the step's transaction.

The escalator decides *who* (routing) and *when*; this module decides *how* each
person is reached (their contact methods, per channel) and *what* they are sent, and
writes it to the outbox, so that the step, its messages and the call's new escalation
state commit together and leave through the outbox.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import reply_codes as replycodes
from dispatcher.adapters.db import schema as db
from dispatcher.core.calls import Call
from dispatcher.core.contact_methods import Channel, ContactMethod, first_of_kind, methods_for
from dispatcher.core.directory import Directory, Resident
from dispatcher.core.messages import call_sms, call_summary, voice_script
from dispatcher.core.routing import Recipient


def methods_to_use(
    directory: Directory, person: Recipient, channels: Iterable[str]
) -> list[ContactMethod]:
    """For each requested channel the person's first method of that kind; a person who
    has none of the requested kinds is reached by their first method all the same."""
    methods = methods_for(directory, person.id, person.phone)
    chosen: list[ContactMethod] = []
    for channel in dict.fromkeys(Channel(c) for c in channels):
        method = first_of_kind(methods, channel)
        if method is not None:
            chosen.append(method)
    if not chosen and methods:
        chosen.append(methods[0])
    return chosen


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
) -> dict[str, Any]:
    """The outbox row that reaches ``recipient`` about ``call`` by ``method``."""
    code = await replycodes.assign(session, method.number, call.id, now)
    if method.kind is Channel.VOICE:
        # The TwiML is made when Twilio asks for it; the body records what it reads.
        body = voice_script(call, resident, directory, language, step_index)
    else:
        body = call_sms(call, resident, directory, language, step_index, code)
    return {
        "call_id": call.id,
        "step": step_index,
        "recipient": recipient,
        "to_number": method.number,
        "body": body,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "channel": method.kind.value,
        "method_order": method.order,
        "language": language,
        "reply_code": code,
        "summary": call_summary(call, resident, language),
    }


async def queue_step(
    session: AsyncSession,
    call: Call,
    resident: Resident | None,
    directory: Directory,
    people: list[Recipient],
    step_index: int,
    now: datetime,
    channels: Iterable[str] = ("sms",),
) -> int:
    """Write one outbox row per person per channel for step ``step_index``; returns how many."""
    wanted = tuple(channels)
    rows = []
    for p in people:
        for method in methods_to_use(directory, p, wanted):
            rows.append(
                await outbox_row(
                    session,
                    call,
                    resident,
                    directory,
                    recipient=p.id,
                    language=p.language,
                    method=method,
                    step_index=step_index,
                    now=now,
                )
            )
    if rows:
        await session.execute(insert(db.sms_outbox), rows)
    return len(rows)
