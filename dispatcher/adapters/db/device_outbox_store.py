"""The device outbox's queries (``call_update`` and ``config`` commands waiting to be
published to devices), bound to one session: what is pending, and what was published.

Through :class:`~dispatcher.adapters.db.transactions.Transactions` like every other
writer, so that on SQLite marking rows published takes its turn at the write gate
instead of waiting in SQLite's busy handler, which sleeps between tries (1, 2, 5 ms
and more) while the intake and the escalator hold the lock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import schema as db

_o = db.device_outbox.c
_PENDING = (
    select(_o.id, _o.device_id, _o.payload)
    .where(_o.published_at.is_(None))
    .order_by(_o.id)
    .limit(bindparam("limit"))
)
_PUBLISHED = (
    update(db.device_outbox)
    .where(_o.id.in_(bindparam("ids", expanding=True)))
    .values(published_at=bindparam("now", type_=_o.published_at.type))
)


@dataclass(frozen=True)
class DeviceCommand:
    """One row of the device outbox: ``payload`` for ``{root}/dev/{device_id}/cmd``."""

    id: int
    device_id: str
    payload: str


class SqlDeviceOutboxStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def pending(self, limit: int) -> list[DeviceCommand]:
        """The oldest ``limit`` rows not yet published, in the order they were queued."""
        rows = await self._session.execute(_PENDING, {"limit": limit})
        return [DeviceCommand(r.id, r.device_id, r.payload) for r in rows]

    async def mark_published(self, ids: Sequence[int], now: datetime) -> None:
        if ids:
            await self._session.execute(_PUBLISHED, {"ids": list(ids), "now": now})
