"""The database side of :class:`dispatcher.services.boards.BoardStore`: the device links
worth a look and the answer times of a period, scoped, in one read transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import schema as db
from dispatcher.core.boards import OFFLINE, DeviceLink
from dispatcher.services.operations import CallTimes

_links = db.device_links.c
_calls = db.calls.c


class SqlBoardStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def links_to_watch(
        self,
        silent_since: datetime,
        low_battery_pct: int,
        device_ids: frozenset[str] | None,
        limit: int,
    ) -> tuple[list[DeviceLink], int]:
        # A superset of what dispatcher.core.boards.device_problems says is wrong, so
        # that a district of 100,000 devices reads only the few worth a look.
        where: list[ColumnElement[bool]] = [
            or_(
                _links.status == OFFLINE,
                _links.last_seen_at < silent_since,
                _links.battery <= low_battery_pct,
            )
        ]
        if device_ids is not None:
            where.append(_links.device_id.in_(sorted(device_ids)) if device_ids else false())
        total = await self._session.scalar(
            select(func.count()).select_from(db.device_links).where(*where)
        )
        rows = await self._session.execute(
            select(
                _links.device_id,
                _links.last_seen_at,
                _links.status,
                _links.status_at,
                _links.battery,
            )
            .where(*where)
            .order_by(_links.last_seen_at, _links.device_id)
            .limit(limit)
        )
        return [
            DeviceLink(
                device_id=r.device_id,
                last_seen_at=r.last_seen_at,
                status=r.status,
                status_at=r.status_at,
                battery=r.battery,
            )
            for r in rows.all()
        ], int(total or 0)

    async def call_times(
        self, start: datetime, end: datetime, communities: frozenset[str] | None
    ) -> list[CallTimes]:
        where: list[ColumnElement[bool]] = [_calls.opened_at >= start, _calls.opened_at < end]
        if communities is not None:
            where.append(_calls.community_id.in_(sorted(communities)) if communities else false())
        rows = await self._session.execute(
            select(
                _calls.id,
                _calls.kind,
                _calls.opened_at,
                _calls.answered_at,
                _calls.answered_by,
                _calls.answered_channel,
                _calls.answered_level,
                _calls.acknowledged_at,
                _calls.acknowledged_by,
                _calls.resolved_at,
            ).where(*where)
        )
        return [
            CallTimes(
                id=r.id,
                kind=r.kind,
                opened_at=r.opened_at,
                answered_at=r.answered_at,
                answered_by=r.answered_by,
                answered_channel=r.answered_channel,
                answered_level=r.answered_level,
                acknowledged_at=r.acknowledged_at,
                acknowledged_by=r.acknowledged_by,
                resolved_at=r.resolved_at,
            )
            for r in rows.all()
        ]
