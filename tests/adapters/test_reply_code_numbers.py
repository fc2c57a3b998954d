"""Reply numbers on one phone holding many open calls (a hotline in a burst): the
smallest free number is reused after a retire, from the free list, on SQLite and
PostgreSQL; and migration 0010 fills that list in for the numbers already given."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from sqlalchemy import select

from dispatcher.adapters.db import reply_codes as replycodes
from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db.migrate import alembic_config
from dispatcher.bootstrap import App
from dispatcher.core.calls import Outcome
from dispatcher.testing import FakeClock
from tests.support.app import event, sqlite_url

PHONE = "+8613900000099"  # nobody's: only these numbers are on it


async def open_call(app: App, n: int, ref: str = "a") -> str:
    device = f"dev-{n:04d}"
    ack = await app.intake.on_event(
        device, f"eldercall/v1/dev/{device}/event", event(f"{ref}{n}", "emergency")
    )
    assert ack is not None and ack.call_id is not None
    return ack.call_id


async def test_the_smallest_free_number_is_reused_among_many(app: App, clock: FakeClock) -> None:
    calls = [await open_call(app, n) for n in range(1, 31)]
    async with app.sessions.begin() as s:
        given = [await replycodes.assign(s, PHONE, c, clock.now()) for c in calls]
    assert given == list(range(1, 31))

    for n in (20, 7, 3):  # resolved in no particular order
        await app.operations.resolve(calls[n - 1], "demo-operator", "api", Outcome.FALSE_ALARM, "")
    later = [await open_call(app, n, "b") for n in (3, 7, 20, 31)]  # their devices are free
    async with app.sessions.begin() as s:
        again = await replycodes.assign(s, PHONE, calls[9], clock.now())
        reused = [await replycodes.assign(s, PHONE, c, clock.now()) for c in later]
        kept = await replycodes.assign(s, PHONE, later[0], clock.now())
    assert again == 10  # an open call keeps its number
    assert reused == [3, 7, 20, 31]  # the smallest free first, then one above the highest
    assert kept == 3
    async with app.sessions() as s:
        assert await replycodes.find(s, PHONE, 7) == later[1]
        assert await replycodes.find(s, PHONE, 31) == later[3]
        free = await s.scalars(
            select(db.reply_code_free.c.number).where(db.reply_code_free.c.phone == PHONE)
        )
        assert list(free) == []  # every retired number was taken again


async def test_retiring_the_highest_numbers_gives_them_again_in_order(
    app: App, clock: FakeClock
) -> None:
    calls = [await open_call(app, n) for n in range(1, 6)]
    async with app.sessions.begin() as s:
        for c in calls:
            await replycodes.assign(s, PHONE, c, clock.now())
    for n in (5, 4, 2):
        await app.operations.resolve(calls[n - 1], "demo-operator", "api", Outcome.FALSE_ALARM, "")
    later = [await open_call(app, n, "b") for n in (2, 4, 5, 6)]
    async with app.sessions.begin() as s:
        assert [await replycodes.assign(s, PHONE, c, clock.now()) for c in later] == [2, 4, 5, 6]


async def test_the_migration_fills_in_the_free_numbers(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    engine = db.make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(
                lambda c: command.upgrade(alembic_config(c), "0009_escalation_clock")
            )
        raw = sqlite3.connect(tmp_path / "eldercall.db")  # no foreign keys: no calls needed
        rows = [("p1", 1, 1), ("p1", 2, 0), ("p1", 3, 1), ("p1", 5, 1), ("p2", 1, 0), ("p2", 2, 1)]
        raw.executemany(
            "INSERT INTO reply_codes (phone, number, call_id, created_at, active) "
            "VALUES (?, ?, ?, '2026-11-24 02:00:00.000000', ?)",
            [(phone, n, f"C-{i}", active) for i, (phone, n, active) in enumerate(rows)],
        )
        raw.commit()
        raw.close()
        async with engine.begin() as conn:
            await conn.run_sync(
                lambda c: command.upgrade(alembic_config(c), "0011_escalation_speed")
            )
            free = db.reply_code_free.c
            found = (
                await conn.execute(
                    select(free.phone, free.number).order_by(free.phone, free.number)
                )
            ).all()
        assert [tuple(r) for r in found] == [("p1", 2), ("p1", 4), ("p2", 1)]
    finally:
        await engine.dispose()
