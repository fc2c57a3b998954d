"""What the benchmark reads back from the daemon's database (simulator.bench.records)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import insert, select, update

from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App
from dispatcher.testing import FakeClock
from simulator.bench import records
from tests.support.app import event


async def test_a_steps_sms_are_its_own_not_the_watchdogs_pages(
    app: App, clock: FakeClock, database_url: str
) -> None:
    """The watchdog's pages number their own steps (page 1 is step 0): an SMS of the
    call's step 0 it is not, and counting it made that step's SMS look two minutes late."""
    ack = await app.intake.on_event(
        "dev-0001", "eldercall/v1/dev/dev-0001/event", event("a", "emergency")
    )
    assert ack is not None and ack.call_id is not None
    call_id = ack.call_id
    await app.escalator.run_due()
    o = db.sms_outbox
    async with app.sessions.begin() as s:
        rows = (await s.execute(select(o).where(o.c.call_id == call_id))).mappings().all()
        assert rows and {(r["timer"], r["step"], r["channel"]) for r in rows} == {
            ("escalation", 0, "sms")
        }
        for n, row in enumerate(rows):
            await s.execute(update(o).where(o.c.id == row["id"]).values(provider_sid=f"SM{n}"))
        page = {k: v for k, v in rows[0].items() if k != "id"}
        await s.execute(insert(o).values({**page, "timer": "watchdog", "provider_sid": "SMpage"}))
        fallback = {**page, "timer": None, "channel": "voice", "provider_sid": "CAvoice"}
        await s.execute(insert(o).values(fallback))

    found = await asyncio.to_thread(
        records.escalations, database_url, clock.now() + timedelta(seconds=1)
    )

    assert [(f.call_id, f.index) for f in found.fired] == [(call_id, 0)]
    assert found.sms_sids == {(call_id, 0): [f"SM{n}" for n in range(len(rows))]}
    assert found.sms_unsent == {}
