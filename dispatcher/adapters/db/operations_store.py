"""The database side of :class:`dispatcher.services.operations.CallStore`: the calls,
timelines and outbox rows that operators list, show, acknowledge and resolve, in one
session."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db import stores as store
from dispatcher.adapters.db.dispatch_store import SqlDispatches
from dispatcher.core.calls import Call, CallKind, CallState, TimelineEntry, Transition
from dispatcher.services.device_state import DeviceLink
from dispatcher.services.operations import CallTimes
from dispatcher.services.read_models import NotificationView


class SqlCallStore(SqlDispatches):
    """:class:`~dispatcher.services.operations.CallStore` bound to one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def latest_calls(
        self,
        limit: int,
        *,
        active_only: bool = False,
        state: CallState | None = None,
        communities: frozenset[str] | None = None,
    ) -> list[Call]:
        query = select(Call).order_by(db.calls.c.opened_at.desc()).limit(limit)
        if active_only:
            query = query.where(db.calls.c.state != CallState.RESOLVED.value)
        if state is not None:
            query = query.where(db.calls.c.state == state.value)
        if communities is not None:  # a call of no community (NULL) is never IN a set
            query = query.where(db.calls.c.community_id.in_(sorted(communities)))
        return list(await self._session.scalars(query))

    async def call(self, call_id: str) -> Call | None:
        return await self._session.get(Call, call_id)

    async def timeline(self, call_id: str) -> list[TimelineEntry]:
        entries = await self._session.scalars(
            select(TimelineEntry)
            .where(db.timeline.c.call_id == call_id)
            .order_by(db.timeline.c.at, db.timeline.c.id)
        )
        return list(entries)

    async def notifications(self, call_id: str) -> list[NotificationView]:
        rows = await self._session.execute(
            select(db.sms_outbox)
            .where(db.sms_outbox.c.call_id == call_id)
            .order_by(db.sms_outbox.c.id)
        )
        return [NotificationView.model_validate(row, from_attributes=True) for row in rows]

    async def lock_call(self, call_id: str) -> Call | None:
        return await store.lock_call(self._session, call_id)

    async def record(self, call: Call, transition: Transition, now: datetime) -> None:
        await store.record(self._session, call, transition, now)

    async def cancel_pending_sms(self, call_id: str, why: str) -> int:
        return await store.cancel_pending_sms(self._session, call_id, why)

    def add_timeline(self, entry: TimelineEntry) -> None:
        self._session.add(entry)

    async def call_times(self, start: datetime, end: datetime) -> list[CallTimes]:
        c = db.calls.c
        rows = await self._session.execute(
            select(
                c.id,
                c.kind,
                c.opened_at,
                c.answered_at,
                c.answered_by,
                c.answered_channel,
                c.answered_level,
                c.acknowledged_at,
                c.acknowledged_by,
                c.resolved_at,
            ).where(c.opened_at >= start, c.opened_at < end)
        )
        return [
            CallTimes(
                id=row.id,
                kind=row.kind,
                opened_at=row.opened_at,
                answered_at=row.answered_at,
                answered_by=row.answered_by,
                answered_channel=row.answered_channel,
                answered_level=row.answered_level,
                acknowledged_at=row.acknowledged_at,
                acknowledged_by=row.acknowledged_by,
                resolved_at=row.resolved_at,
            )
            for row in rows.all()
        ]

    async def device_link(self, device_id: str) -> DeviceLink | None:
        links = db.device_links.c
        row = (
            await self._session.execute(
                select(links.last_seen_at, links.status, links.battery).where(
                    links.device_id == device_id
                )
            )
        ).first()
        if row is None:
            return None
        return DeviceLink(device_id, row.last_seen_at, row.status, row.battery)

    async def open_technical_alerts(self, device_id: str) -> list[Call]:
        c = db.calls.c
        found = await self._session.scalars(
            select(Call)
            .where(
                c.device_id == device_id,
                c.kind == CallKind.TECHNICAL.value,
                c.state != CallState.RESOLVED.value,
            )
            .order_by(c.opened_at)
        )
        return list(found)
