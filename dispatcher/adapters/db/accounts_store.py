"""The database side of :class:`dispatcher.services.accounts.AccountStore`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import schema as db
from dispatcher.core.accounts import Credential, Session


def _credential(row: Row[Any]) -> Credential:
    return Credential(
        staff_id=row.staff_id,
        password_hash=row.password_hash,
        set_at=row.set_at,
        failures=row.failures,
        first_failure_at=row.first_failure_at,
        locked_until=row.locked_until,
    )


class SqlAccountStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def credential(self, staff_id: str) -> Credential | None:
        t = db.staff_credentials
        row = (await self._session.execute(select(t).where(t.c.staff_id == staff_id))).first()
        return _credential(row) if row else None

    async def save_credential(self, credential: Credential) -> None:
        t = db.staff_credentials
        # Delete and insert: the same two statements on SQLite and PostgreSQL.
        await self._session.execute(delete(t).where(t.c.staff_id == credential.staff_id))
        await self._session.execute(
            insert(t).values(
                staff_id=credential.staff_id,
                password_hash=credential.password_hash,
                set_at=credential.set_at,
                failures=credential.failures,
                first_failure_at=credential.first_failure_at,
                locked_until=credential.locked_until,
            )
        )

    async def add_session(self, session: Session) -> None:
        await self._session.execute(
            insert(db.staff_sessions).values(
                token_hash=session.token_hash,
                staff_id=session.staff_id,
                csrf_token=session.csrf_token,
                created_at=session.created_at,
                expires_at=session.expires_at,
                revoked_at=session.revoked_at,
            )
        )

    async def session(self, token_hash: str) -> Session | None:
        t = db.staff_sessions
        row = (await self._session.execute(select(t).where(t.c.token_hash == token_hash))).first()
        if row is None:
            return None
        return Session(
            token_hash=row.token_hash,
            staff_id=row.staff_id,
            csrf_token=row.csrf_token,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
        )

    async def revoke_session(self, token_hash: str, now: datetime) -> None:
        t = db.staff_sessions
        await self._session.execute(
            update(t)
            .where(t.c.token_hash == token_hash, t.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def revoke_sessions_of(self, staff_id: str, now: datetime) -> int:
        t = db.staff_sessions
        result = await self._session.execute(
            update(t)
            .where(t.c.staff_id == staff_id, t.c.revoked_at.is_(None), t.c.expires_at > now)
            .values(revoked_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)
