"""A crash hands its claims back at once: the next instance releases every claim that
is not its own at start-up and sends those entries again without waiting for the
stale-claim timeout; one whose request had left is marked on the call's timeline as a
possible duplicate. Within a running daemon the stale-claim timeout stays the backstop."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from dispatcher.bootstrap import App
from dispatcher.services.outbox import STALE_CLAIM
from dispatcher.services.outbox_runner import OutboxRunner
from dispatcher.testing import FakeClock
from tests.services.outbox_senders import HoldingSender, open_app, press, rows, timeline
from tests.support.app import HOTLINE

RESENT = "possible duplicate: sent again after a restart"


async def crash_mid_send(app: App, sms: HoldingSender) -> str:
    """Claim one emergency's SMS, hand one to the provider, and die before the answer."""
    call_id = await press(app, "dev-0001")
    await app.escalator.run_due()
    lanes = await app.outbox.claim(10)
    assert len(lanes) == len(HOTLINE)
    sms.hold(lambda m: True)  # the provider never answers before the crash
    in_flight = asyncio.create_task(app.outbox.send_lane(lanes[0]))
    await sms.wait_until_held()
    in_flight.cancel()  # SIGKILL: the task, its answer and the other lanes are gone
    with contextlib.suppress(asyncio.CancelledError):
        await in_flight
    return call_id


async def test_a_restart_sends_what_a_crash_left_claimed_at_once(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    crashed_sms = HoldingSender()
    async with open_app(tmp_path, database_url, clock, crashed_sms) as crashed:
        call_id = await crash_mid_send(crashed, crashed_sms)
    sms = HoldingSender()
    async with open_app(tmp_path, database_url, clock, sms) as restarted:
        left = await rows(restarted)
        assert [r.status for r in left] == ["sending"] * len(HOTLINE)
        [requested] = [r for r in left if r.requested_at is not None]
        assert await restarted.outbox.recover_claims() == len(HOTLINE)
        # The clock has not moved: no stale-claim timeout is waited for.
        assert await restarted.outbox.send_due() == len(HOTLINE)
        assert {m.to for m in sms.sent} == HOTLINE
        resent = [d for a, d in await timeline(restarted, call_id) if a == "notify_resent"]
        assert resent == [f"{RESENT} (sms to {requested.to_number})"]
        assert {r.status for r in await rows(restarted)} == {"sent"}
        assert await restarted.outbox.recover_claims() == 0  # its own claims are its own


async def test_recovery_leaves_its_own_claims_alone(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    sms = HoldingSender()
    async with open_app(tmp_path, database_url, clock, sms) as app:
        await press(app, "dev-0001")
        await app.escalator.run_due()
        assert len(await app.outbox.claim(10)) == len(HOTLINE)
        assert await app.outbox.recover_claims() == 0
        assert {r.status for r in await rows(app)} == {"sending"}


async def test_a_claim_hung_within_a_running_daemon_is_handed_back_after_the_timeout(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    sms = HoldingSender()
    async with open_app(tmp_path, database_url, clock, sms) as app:
        call_id = await crash_mid_send(app, sms)
        [requested] = [r for r in await rows(app) if r.requested_at is not None]
        sms.release()
        clock.advance(STALE_CLAIM.total_seconds() - 1)
        assert await app.outbox.send_due() == 0  # not yet: it might still be answered
        clock.advance(2)
        assert await app.outbox.send_due() == len(HOTLINE)
        resent = [d for a, d in await timeline(app, call_id) if a == "notify_resent"]
        stale = "possible duplicate: sent again after its claim went stale"
        assert resent == [f"{stale} (sms to {requested.to_number})"]


async def test_a_stop_that_cannot_wait_for_an_answer_hands_the_claims_back(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    sms = HoldingSender()
    async with open_app(tmp_path, database_url, clock, sms) as app:
        call_id = await press(app, "dev-0001")
        await app.escalator.run_due()
        sms.hold(lambda m: True)  # the provider never answers
        runner, stop = OutboxRunner(app.outbox, stop_grace_s=0.1), asyncio.Event()
        running = asyncio.create_task(runner.run(app.send_now, 0.05, stop))
        await sms.wait_until_held(len(HOTLINE))
        stop.set()
        await asyncio.wait_for(running, 10)
        assert runner.in_flight == 0
        assert {r.status for r in await rows(app)} == {"pending"}
        resent = [d for a, d in await timeline(app, call_id) if a == "notify_resent"]
        assert len(resent) == len(HOTLINE)
        assert all(d.startswith("possible duplicate: sent again after a stop") for d in resent)
        sms.release()
        assert await app.outbox.send_due() == len(HOTLINE)
