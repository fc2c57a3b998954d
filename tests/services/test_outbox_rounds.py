"""The outbox's writing transactions are few (on SQLite each queues behind, and holds
up, the next emergency's intake): a claim round first reads, without the write lock,
whether anything is due, to cancel or stale, and only then opens its transaction; sends
answered at the same time are recorded in one transaction."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event

from dispatcher.testing import FakeClock
from tests.services.outbox_senders import HoldingSender, open_app, press, rows
from tests.support.app import HOTLINE


async def test_a_round_with_nothing_to_do_takes_no_write_transaction(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    sms = HoldingSender()
    async with open_app(tmp_path, database_url, clock, sms) as app:
        await press(app, "dev-0001")
        await app.escalator.run_due()
        assert await app.outbox.send_due() == len(HOTLINE)
        written: list[int] = []

        def count(_conn: Any) -> None:
            written.append(1)

        event.listen(app.engine.sync_engine, "commit", count)
        try:
            # Nothing due, nothing to cancel, no claim held: SQLite's write lock stays
            # free for the intake.
            assert await app.outbox.claim(10) == []
        finally:
            event.remove(app.engine.sync_engine, "commit", count)
        assert written == []


async def test_sends_answered_together_are_recorded_together(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    sms = HoldingSender()
    async with open_app(tmp_path, database_url, clock, sms) as app:
        await press(app, "dev-0001")
        await app.escalator.run_due()
        sms.hold(lambda m: True)
        sending = asyncio.create_task(app.outbox.send_due())
        await sms.wait_until_held(len(HOTLINE))
        written: list[int] = []

        def count(_conn: Any) -> None:
            written.append(1)

        event.listen(app.engine.sync_engine, "commit", count)
        try:
            sms.release()  # every answer at once
            assert await sending == len(HOTLINE)
        finally:
            event.remove(app.engine.sync_engine, "commit", count)
        # Fewer record transactions than sends (the first may leave alone).
        assert len(written) < len(HOTLINE)
        assert {r.status for r in await rows(app)} == {"sent"}
        assert len({r.provider_sid for r in await rows(app)}) == len(HOTLINE)
