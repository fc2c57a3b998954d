"""The database side of :class:`dispatcher.services.clock_watch.TimeShiftStore`: after a
step of the system clock, the stored instants that the daemon compares with the time
move with it, in the watch's one transaction.

What moves, and why:

- unresolved calls: their due steps (the watchdog's page too) and the bases those are
  counted from (``escalation_started_at``, ``ack_timeout_at``), so that a step falls due after
  the elapsed time it would have;
- the outbox rows of unresolved calls: ``created_at``, compared with
  ``ack_timeout_at`` (which rows an acknowledged call still wants) and with the
  escalation's start (who was already told of a step);
- outbox rows still to send: their next attempt and their claim (a stale claim is
  taken again after two minutes, not two minutes plus the step);
- rows sent in the last hour: ``sent_at``, from which the per-number throttle counts;
- every device link: its last contact and status change, so that silence is
  measured as long as it really lasted.

History (the timeline, when a call opened or was answered, the events) is left as it
was recorded. Rows are read locked and written back by key: the same statement on
SQLite and PostgreSQL, with no date arithmetic in SQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import schema as db
from dispatcher.core.calls import CallState, TimelineEntry

# Sent rows whose sent_at still matters (the throttle is a minute by default).
RECENTLY_SENT = timedelta(hours=1)
_LIVE = ("pending", "sending")
_CALL_INSTANTS = (
    "escalation_started_at",
    "next_escalation_at",
    "ack_timeout_at",
    "next_ack_escalation_at",
    "watchdog_at",
)


class SqlTimeShiftStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def shift_instants(self, delta: timedelta, now: datetime) -> dict[str, int]:
        calls, outbox, links = db.calls.c, db.sms_outbox.c, db.device_links.c
        unresolved = calls.state != CallState.RESOLVED.value
        open_calls = select(calls.id).where(unresolved).scalar_subquery()
        moved = {
            "calls": await self._shift(
                db.calls,
                _CALL_INSTANTS,
                unresolved,
                delta,
            ),
            "sms_outbox created": await self._shift(
                db.sms_outbox, ("created_at",), outbox.call_id.in_(open_calls), delta
            ),
            "sms_outbox to send": await self._shift(
                db.sms_outbox, ("next_attempt_at", "claimed_at"), outbox.status.in_(_LIVE), delta
            ),
            "sms_outbox sent": await self._shift(
                db.sms_outbox, ("sent_at",), outbox.sent_at >= now - RECENTLY_SENT, delta
            ),
            "device_links": await self._shift(
                db.device_links, ("last_seen_at", "status_at"), links.device_id.is_not(None), delta
            ),
        }
        return moved

    async def active_calls(self) -> list[str]:
        calls = db.calls.c
        found = await self._session.scalars(
            select(calls.id).where(calls.state != CallState.RESOLVED.value)
        )
        return list(found)

    def add_timeline(self, entry: TimelineEntry) -> None:
        self._session.add(entry)

    async def _shift(
        self,
        table: Table,
        columns: tuple[str, ...],
        where: ColumnElement[bool],
        delta: timedelta,
    ) -> int:
        [key] = table.primary_key.columns
        found = await self._session.execute(
            select(key, *(table.c[c] for c in columns)).where(where).with_for_update()
        )
        params: list[dict[str, Any]] = []
        for key_value, *instants in found:
            moved = {
                f"{c}_": None if at is None else at + delta
                for c, at in zip(columns, instants, strict=True)
            }
            params.append({"k_": key_value, **moved})
        if params:
            await self._session.execute(
                update(table)
                .where(key == bindparam("k_"))
                .values({c: bindparam(f"{c}_") for c in columns}),
                params,
            )
        return len(params)
