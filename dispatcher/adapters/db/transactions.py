"""The database side of :class:`dispatcher.services.ports.Transactions`: a store bound
to one SQLAlchemy session, in one transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dispatcher.adapters.db.schema import READ_ONLY_SESSION
from dispatcher.adapters.db.write_gate import WriteGate

Store = TypeVar("Store")


class Transactions(Generic[Store]):
    """``begin()`` yields ``store_for(session)`` inside ``session.begin()`` (commit on a
    normal exit, rollback on an exception); ``read()`` inside a plain session marked
    read-only (on SQLite a deferred BEGIN: no write lock). With a ``gate`` (SQLite),
    ``begin()`` first waits for its turn there (see :mod:`.write_gate`)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        store_for: Callable[[AsyncSession], Store],
        gate: WriteGate | None = None,
    ) -> None:
        self._sessions = sessions
        self._store_for = store_for
        self._gate = gate

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[Store]:
        if self._gate is None:
            async with self._sessions.begin() as session:
                yield self._store_for(session)
            return
        async with self._gate.hold(), self._sessions.begin() as session:
            yield self._store_for(session)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Store]:
        async with self._sessions(execution_options=READ_ONLY_SESSION) as session:
            yield self._store_for(session)
