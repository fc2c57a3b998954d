"""An alarm's first step fired in the transaction that stores the press
(``[escalation] first_step_in_intake``): its SMS are written, claimed for the outbox
loop's free slots and sent at that commit, with no poll and no transaction of the
escalator's own; if the step fails, the press is stored and answered all the same and
the poll fires the step."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from dispatcher.bootstrap import App
from dispatcher.services.intake import DeviceMessage
from dispatcher.testing import FakeClock
from tests.services.outbox_senders import TOPIC, HoldingSender, press, rows, timeline
from tests.services.test_outbox_claim_ahead import attached, commits
from tests.support.app import HOTLINE, built_app, event, settings_for


@asynccontextmanager
async def inline_app(
    tmp_path: Path, database_url: str, clock: FakeClock, sms: HoldingSender
) -> AsyncIterator[App]:
    settings = settings_for(
        tmp_path, database={"url": database_url}, escalation={"first_step_in_intake": True}
    )
    app = await built_app(settings, clock, sms)
    try:
        yield app
    finally:
        await app.aclose()


async def test_an_emergency_sms_leaves_at_the_commit_of_the_press(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    sms = HoldingSender()
    async with inline_app(tmp_path, database_url, clock, sms) as app:
        runner = attached(app)
        with commits(app) as written:
            call_id = await press(app, "dev-0001")
            await sms.wait_for_sent(len(HOTLINE))
            while runner.in_flight:  # noqa: ASYNC110  # the lanes record their sends
                await asyncio.sleep(0.01)
        # The press's transaction, then the records of the sends: no escalator's.
        assert len(written) <= 1 + len(HOTLINE)
        assert {m.to for m in sms.sent} == HOTLINE
        assert {(r.status, r.claimed_by, r.call_id) for r in await rows(app)} == {
            ("sent", app.outbox.instance_id, call_id)
        }
        assert app.handoff.reserved == 0
        assert "escalated" in [a for a, _ in await timeline(app, call_id)]
        assert await app.escalator.run_due() == 0  # the poll finds it fired


async def test_without_a_loop_the_first_step_is_queued_in_the_press_transaction(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    sms = HoldingSender()
    async with inline_app(tmp_path, database_url, clock, sms) as app:
        messages = [
            DeviceMessage.read(d, TOPIC.format(d), event("e1", "emergency"))
            for d in ("dev-0001", "dev-0002", "dev-0003")
        ]
        acks = await app.intake.on_batch(messages)
        call_ids = {a.call_id for a in acks if a is not None}
        assert len(call_ids) == 3
        queued = await rows(app)
        assert {r.status for r in queued} == {"pending"}
        assert {r.call_id for r in queued} == call_ids
        assert await app.escalator.run_due() == 0
        assert await app.outbox.send_due() > 0
        assert {m.to for m in sms.sent} >= HOTLINE


async def test_a_first_step_that_fails_leaves_the_press_answered_and_the_call_due(
    tmp_path: Path, database_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    sms = HoldingSender()
    async with inline_app(tmp_path, database_url, clock, sms) as app:
        attached(app)
        real_fire = app.escalator._fire

        async def failing(*args: Any) -> Any:
            raise RuntimeError("the step's own fault")

        monkeypatch.setattr(app.escalator, "_fire", failing)
        call_id = await press(app, "dev-0001")  # answered ok, with its call
        assert await rows(app) == []
        assert "escalated" not in [a for a, _ in await timeline(app, call_id)]
        assert app.handoff.reserved == 0  # the slots it had reserved are back
        monkeypatch.setattr(app.escalator, "_fire", real_fire)
        assert await app.escalator.run_due() == 1  # still due: the poll fires it
        assert {r.call_id for r in await rows(app)} == {call_id}
        assert "escalated" in [a for a, _ in await timeline(app, call_id)]
