"""On SQLite a read-only session (``Transactions.read()``) begins deferred: it takes no
write lock, so a read never waits behind a writer (the intake's batch, the escalator,
an outbox) and sees the last commit; writers still take the lock up front."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert, select

from dispatcher.adapters.db import migrate
from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db.transactions import Transactions
from dispatcher.testing import FakeClock
from tests.support.app import TUESDAY_10AM, sqlite_url


async def test_a_read_does_not_wait_for_a_writer_and_sees_the_last_commit(tmp_path: Path) -> None:
    engine = db.make_engine(sqlite_url(tmp_path))
    await migrate.upgrade(engine)
    sessions = db.make_sessionmaker(engine)
    now = FakeClock(TUESDAY_10AM).now()
    try:
        async with sessions.begin() as s:
            await s.execute(
                insert(db.device_links).values(device_id="d1", last_seen_at=now, status_at=now)
            )
        tx = Transactions(sessions, lambda session: session)
        async with sessions.begin() as writer:  # holds the write lock (BEGIN IMMEDIATE)
            await writer.execute(
                insert(db.device_links).values(device_id="d2", last_seen_at=now, status_at=now)
            )
            # Before: BEGIN IMMEDIATE here waited out the 30 s busy timeout, then failed.
            async with tx.read() as reader:
                seen = (await reader.scalars(select(db.device_links.c.device_id))).all()
            assert seen == ["d1"]  # the last commit, not the writer's work in progress
        async with tx.read() as reader:
            seen = (await reader.scalars(select(db.device_links.c.device_id))).all()
        assert sorted(seen) == ["d1", "d2"]
    finally:
        await engine.dispose()
