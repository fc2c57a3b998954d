"""The database side of :class:`dispatcher.services.rota_overrides.OverrideStore`: the
rota overrides made through the API, in one transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import schema as db
from dispatcher.core.rota.model import Override, OverrideKind


def _from_row(row: Row[Any]) -> Override:
    return Override(
        id=row.id,
        area_id=row.area_id,
        kind=OverrideKind(row.kind),
        start=row.start_at,
        end=row.end_at,
        staff_id=row.staff_id,
        replaces=row.replaces,
        role=row.role,
        reason=row.reason,
        created_by=row.created_by,
    )


async def read_stored(session: AsyncSession) -> list[Override]:
    """Every override stored in the database."""
    rows = await session.execute(select(db.rota_overrides).order_by(db.rota_overrides.c.start_at))
    return [_from_row(r) for r in rows]


class RotaOverridesStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def stored(self) -> list[Override]:
        return await read_stored(self._session)

    async def add(self, override: Override, created_at: datetime) -> None:
        await self._session.execute(
            insert(db.rota_overrides).values(
                id=override.id,
                area_id=override.area_id,
                kind=override.kind.value,
                staff_id=override.staff_id,
                replaces=override.replaces,
                role=override.role,
                start_at=override.start,
                end_at=override.end,
                reason=override.reason,
                created_by=override.created_by,
                created_at=created_at,
            )
        )

    async def remove(self, override_id: str) -> None:
        await self._session.execute(
            delete(db.rota_overrides).where(db.rota_overrides.c.id == override_id)
        )
