"""The SQLite engine makes one trip to aiosqlite's thread per statement
(dispatcher.adapters.db.sqlite_driver), and a statement answers as before: rows,
rowcount, lastrowid, executemany, RETURNING, errors, the ORM, server-side cursors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.adapters.db import migrate
from dispatcher.adapters.db import schema as db
from dispatcher.core.calls import TimelineEntry
from tests.support.app import TUESDAY_10AM, sqlite_url


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = db.make_engine(sqlite_url(tmp_path))
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions sent to aiosqlite's thread, in order."""
    sent: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return sent


async def test_a_statement_is_one_trip_to_the_database_thread(
    engine: AsyncEngine, trips: list[str]
) -> None:
    now = TUESDAY_10AM
    async with engine.begin() as conn:  # the connection, BEGIN IMMEDIATE
        trips.clear()
        await conn.execute(
            insert(db.device_links).values(device_id="d1", last_seen_at=now, status_at=now)
        )
        assert len(trips) == 1  # before: cursor, execute, close
        trips.clear()
        rows = (await conn.execute(select(db.device_links.c.device_id))).all()
        assert rows == [("d1",)]
        assert len(trips) == 1  # before: cursor, execute, fetchall, close


async def test_statements_answer_as_sqlite3_does(engine: AsyncEngine) -> None:
    now = TUESDAY_10AM
    async with engine.begin() as conn:
        many = await conn.execute(
            insert(db.device_links),
            [{"device_id": f"d{i}", "last_seen_at": now, "status_at": now} for i in range(3)],
        )
        assert many.rowcount == 3
        one = await conn.execute(
            insert(db.device_outbox).values(device_id="d1", payload="{}", created_at=now)
        )
        assert one.inserted_primary_key == (1,)  # cursor.lastrowid
        changed = await conn.execute(
            update(db.device_links).where(db.device_links.c.device_id != "d1").values(battery=5)
        )
        assert changed.rowcount == 2
        returned = await conn.execute(
            insert(db.device_outbox)
            .values(device_id="d2", payload="{}", created_at=now)
            .returning(db.device_outbox.c.id, db.device_outbox.c.created_at)
        )
        assert returned.all() == [(2, now)]  # types processed as before (aware UTC)
        empty = await conn.execute(select(db.calls.c.id))
        assert empty.all() == []
        with pytest.raises(IntegrityError):
            await conn.execute(
                insert(db.device_links).values(device_id="d1", last_seen_at=now, status_at=now)
            )
        # A server-side cursor still fetches as it goes.
        streamed = await conn.stream(text("SELECT device_id FROM device_links ORDER BY device_id"))
        assert [row.device_id async for row in streamed] == ["d0", "d1", "d2"]


async def test_the_orm_flushes_and_a_savepoint_rolls_back(engine: AsyncEngine) -> None:
    sessions = db.make_sessionmaker(engine)
    now = TUESDAY_10AM
    async with sessions.begin() as session:
        with pytest.raises(IntegrityError):  # no such call (foreign keys are on)
            async with session.begin_nested():
                session.add(TimelineEntry(now, "test", "noted", "mqtt", call_id="none"))
                await session.flush()
        await session.execute(
            insert(db.device_links).values(device_id="d1", last_seen_at=now, status_at=now)
        )
    async with sessions() as session:
        assert (await session.scalars(select(db.device_links.c.device_id))).all() == ["d1"]
        assert (await session.scalars(select(db.timeline.c.id))).all() == []
