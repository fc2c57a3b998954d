"""A claim round costs nothing when there is nothing to do: it first reads, without
SQLite's write lock, whether anything is due, to cancel or stale, and only then opens
its writing transaction (which would queue the next emergency's intake behind it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event

from dispatcher.testing import FakeClock
from tests.services.outbox_senders import HoldingSender, open_app, press
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
