"""The database side of :class:`dispatcher.services.instance_lock.LockStore`: the one
row of ``dispatcher_lock``, and the technical alert a takeover raises."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db import stores as store
from dispatcher.adapters.db.intake_store import SqlIntakeStore
from dispatcher.core.calls import Call
from dispatcher.services.instance_lock import Lease, Owner
from dispatcher.services.intake import Intake

_lock = db.dispatcher_lock
_NAME = "dispatcher"


class SqlLockStore:
    """:class:`~dispatcher.services.instance_lock.LockStore` bound to one session; the
    alerts go through ``intake`` (the one place calls are opened)."""

    def __init__(self, session: AsyncSession, intake: Intake) -> None:
        self._session = session
        self._intake = intake

    async def current(self) -> Lease | None:
        row = (
            await self._session.execute(
                select(_lock).where(_lock.c.name == _NAME).with_for_update()
            )
        ).first()
        if row is None:
            return None
        owner = Owner(row.host, row.pid, row.instance_id, row.client_id)
        return Lease(owner, row.acquired_at, row.lease_until)

    async def put(self, lease: Lease) -> None:
        values = {
            "host": lease.owner.host,
            "pid": lease.owner.pid,
            "instance_id": lease.owner.instance_id,
            "client_id": lease.owner.client_id,
            "acquired_at": lease.acquired_at,
            "lease_until": lease.lease_until,
        }
        # The row was read (and locked) in this transaction: update it, or insert the first.
        done = await self._session.execute(
            update(_lock).where(_lock.c.name == _NAME).values(values)
        )
        if getattr(done, "rowcount", 0) == 0:
            await self._session.execute(_lock.insert().values(name=_NAME, **values))

    async def remove(self, instance_id: str) -> None:
        await self._session.execute(
            delete(_lock).where(_lock.c.name == _NAME, _lock.c.instance_id == instance_id)
        )

    async def raise_alert(self, device_id: str, key: str, now: datetime) -> Call | None:
        if await store.active_alert(self._session, device_id, key) is not None:
            return None
        return await self._intake.open_alert(SqlIntakeStore(self._session), device_id, key, now)
