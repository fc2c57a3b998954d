"""What the daemon wrote, read back from its database after (or during) a scenario.

Read-only, through the daemon's own table definitions so that the same code reads
SQLite and PostgreSQL; the bench never writes the daemon's database.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from dispatcher.adapters.db import schema as db
from dispatcher.core.escalation import Policy
from dispatcher.services.notify import ESCALATION

T = TypeVar("T")
STEP_RE = re.compile(r"^step (\d+) ")


def read(url: str, query: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await query(conn)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def links_seen(url: str, since: datetime) -> tuple[int, datetime | None, datetime | None]:
    """Devices heard from since ``since``: how many, the first and the last time."""

    async def query(conn: AsyncConnection) -> tuple[int, datetime | None, datetime | None]:
        c = db.device_links.c
        row = (
            await conn.execute(
                select(func.count(), func.min(c.last_seen_at), func.max(c.last_seen_at)).where(
                    c.last_seen_at >= since
                )
            )
        ).one()
        return int(row[0]), row[1], row[2]

    return read(url, query)


def events_received(url: str, event_type: str) -> list[datetime]:
    async def query(conn: AsyncConnection) -> list[datetime]:
        c = db.events.c
        rows = await conn.execute(select(c.received_at).where(c.type == event_type))
        return [r[0] for r in rows]

    return read(url, query)


@dataclass(frozen=True)
class StepFired:
    call_id: str
    index: int  # 0-based, as the outbox's step column
    due: datetime
    fired: datetime


@dataclass(frozen=True)
class Escalations:
    fired: list[StepFired]
    due_unfired: list[tuple[str, int, datetime]]  # steps due before the end, not fired
    sms_sids: dict[tuple[str, int], list[str]]  # (call, step) -> the sink's message sids
    sms_unsent: dict[tuple[str, int], int]  # (call, step) -> SMS queued, not yet sent
    open_calls: int


def escalations(url: str, until: datetime) -> Escalations:
    """Every emergency step fired, with the time it was due (from the call's own policy
    and escalation start), and the steps due before ``until`` that did not fire."""

    async def query(conn: AsyncConnection) -> Escalations:
        calls = {
            r.id: (r.policy, r.escalation_started_at)
            for r in await conn.execute(
                select(db.calls.c.id, db.calls.c.policy, db.calls.c.escalation_started_at).where(
                    db.calls.c.kind == "emergency"
                )
            )
        }
        t = db.timeline.c
        fired: list[StepFired] = []
        seen: set[tuple[str, int]] = set()
        rows = await conn.execute(
            select(t.call_id, t.at, t.detail).where(t.action == "escalated").order_by(t.id)
        )
        for call_id, at, detail in rows:
            match = STEP_RE.match(detail)
            if call_id not in calls or not match:
                continue
            policy, started = calls[call_id]
            index = int(match.group(1)) - 1
            seen.add((call_id, index))
            fired.append(StepFired(call_id, index, _due(policy, started, index), at))
        due_unfired = []
        for call_id, (policy, started) in calls.items():
            index = 0
            while (due := _due(policy, started, index)) < until:
                if (call_id, index) not in seen:
                    due_unfired.append((call_id, index, due))
                index += 1
        o = db.sms_outbox.c
        sids: dict[tuple[str, int], list[str]] = {}
        unsent: dict[tuple[str, int], int] = {}
        # The steps' own SMS: the watchdog's pages (a step numbering of their own, page
        # 1 is step 0) and a step's fallbacks by another channel are not.
        steps_sms = select(o.call_id, o.step, o.provider_sid).where(
            o.timer == ESCALATION, o.channel == "sms"
        )
        for call_id, step, sid in await conn.execute(steps_sms):
            if sid:
                sids.setdefault((call_id, step), []).append(sid)
            else:
                unsent[(call_id, step)] = unsent.get((call_id, step), 0) + 1
        return Escalations(fired, due_unfired, sids, unsent, len(calls))

    return read(url, query)


def _due(policy: Policy, started: datetime, index: int) -> datetime:
    return policy.due_at(started, index)
