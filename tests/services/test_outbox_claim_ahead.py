"""An emergency's first SMS leaves at the commit of the escalation step that wrote it:
the step's transaction claims its entries for the outbox loop's free slots (the call
checked under its lock there), and the loop sends them at once, with no claim round
and no second check in between. Only what the loop's own round would send alone and
at once is claimed so; never more than its free slots."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event

from dispatcher.bootstrap import App
from dispatcher.services.outbox_runner import OutboxRunner
from dispatcher.services.wakeup import Wakeup
from dispatcher.testing import FakeClock
from tests.services.outbox_senders import HoldingSender, open_app, press, rows, timeline
from tests.support.app import HOTLINE


@contextmanager
def commits(app: App) -> Iterator[list[int]]:
    seen: list[int] = []

    def count(_conn: Any) -> None:
        seen.append(1)

    event.listen(app.engine.sync_engine, "commit", count)
    try:
        yield seen
    finally:
        event.remove(app.engine.sync_engine, "commit", count)


def attached(app: App) -> OutboxRunner:
    """A daemon's outbox loop, lending its slots, without its polling."""
    runner = OutboxRunner(app.outbox, handoff=app.handoff)
    app.handoff.attach(runner, Wakeup())
    return runner


async def test_an_emergency_sms_leaves_at_the_commit_of_its_step(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    sms = HoldingSender()
    async with open_app(tmp_path, database_url, clock, sms) as app:
        runner = attached(app)
        call_id = await press(app, "dev-0001")
        with commits(app) as written:
            assert await app.escalator.run_due() == 1
            await sms.wait_for_sent(len(HOTLINE))
            while runner.in_flight:  # noqa: ASYNC110  # the lanes record their sends
                await asyncio.sleep(0.01)
        # The step's transaction, then the records of the sends (one for those answered
        # together): no claim transaction, no check transaction per message.
        assert len(written) <= 1 + len(HOTLINE)
        assert {m.to for m in sms.sent} == HOTLINE
        assert {(r.status, r.claimed_by) for r in await rows(app)} == {
            ("sent", app.outbox.instance_id)
        }
        assert app.handoff.reserved == 0
        assert "notify_resent" not in [a for a, _ in await timeline(app, call_id)]


async def test_never_more_are_claimed_ahead_than_the_loop_has_free_slots(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    sms = HoldingSender()
    async with open_app(tmp_path, database_url, clock, sms, max_in_flight=2) as app:
        runner = attached(app)
        sms.hold(lambda m: True)
        await press(app, "dev-0001")
        assert await app.escalator.run_due() == 1
        await sms.wait_until_held(2)
        assert runner.free_slots == 0
        assert sorted(r.status for r in await rows(app)) == ["pending", "sending", "sending"]
        sms.release()
        await sms.wait_for_sent(2)
        assert await app.outbox.send_due() == 1  # the third, by the loop's round
        assert {m.to for m in sms.sent} == HOTLINE


async def test_a_number_with_a_pending_entry_to_carry_along_is_left_to_the_round(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    sms = HoldingSender()
    async with open_app(tmp_path, database_url, clock, sms) as app:
        await press(app, "dev-0002", "service", ref="s1")
        assert await app.escalator.run_due() == 1  # no loop attached: left pending
        attached(app)
        emergency = await press(app, "dev-0001")
        assert await app.escalator.run_due() == 1
        mine = [r for r in await rows(app) if r.call_id == emergency]
        assert {r.status for r in mine} == {"pending"}  # not claimed ahead
        assert await app.outbox.send_due() == len(HOTLINE)
        # One message per number, the emergency's, carrying the service request along.
        assert len(sms.sent) == len(HOTLINE)
        assert {r.status for r in await rows(app)} == {"sent"}


async def test_the_loop_sends_the_first_message_of_each_lane_it_claims_without_a_second_check(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    sms = HoldingSender()
    async with open_app(tmp_path, database_url, clock, sms) as app:
        await press(app, "dev-0001")
        assert await app.escalator.run_due() == 1  # no loop lending slots: all pending
        runner, stop = OutboxRunner(app.outbox), asyncio.Event()
        with commits(app) as written:
            running = asyncio.create_task(runner.run(app.send_now, 0.05, stop))
            try:
                await sms.wait_for_sent(len(HOTLINE))
                while runner.in_flight:  # noqa: ASYNC110  # the lanes record their sends
                    await asyncio.sleep(0.01)
            finally:
                stop.set()
                await asyncio.wait_for(running, 10)
        # The start's recovery, the claim, then the records of the sends (one for those
        # answered together): no check transaction per message.
        assert len(written) <= 2 + len(HOTLINE)
        assert {r.status for r in await rows(app)} == {"sent"}
