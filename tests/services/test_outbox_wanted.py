"""Nothing leaves for a call that no longer wants it: each message is checked again
just before its provider request, and an entry that a failure or a report puts back
for a retry is cancelled if its call was acknowledged meanwhile (never left pending
for ever)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import update

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.twilio.delivery_reports import read_delivery_report
from dispatcher.bootstrap import App
from dispatcher.services.channels import Outgoing, Receipt, SendError
from dispatcher.services.outbox import UNWANTED_SWEEP
from dispatcher.testing import FakeClock
from tests.services.outbox_senders import HoldingSender, open_app, press, rows, timeline
from tests.support.app import HOTLINE


@pytest.fixture
def sms() -> HoldingSender:
    return HoldingSender()


@pytest.fixture
async def app(
    tmp_path: Path, database_url: str, clock: FakeClock, sms: HoldingSender
) -> AsyncIterator[App]:
    async with open_app(tmp_path, database_url, clock, sms, request_timeout_s=5.0) as built:
        yield built


async def test_a_message_claimed_before_an_acknowledgement_is_cancelled_not_sent(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    sms = HoldingSender()
    # One request at a time: what is claimed waits for the slot.
    async with open_app(tmp_path, database_url, clock, sms, max_in_flight=1) as app:
        first = await press(app, "dev-0001", ref="a")
        second = await press(app, "dev-0002", ref="b")
        await app.escalator.run_due()
        sms.hold(lambda m: first in m.body)  # the first request hangs a while
        sending = asyncio.create_task(app.outbox.send_due())
        await sms.wait_until_held()
        claimed = [r for r in await rows(app) if r.call_id == second]
        assert {r.status for r in claimed} == {"sending"}
        await app.operations.acknowledge(second, "wang-fang", "api")
        sms.release()
        assert await sending == len(HOTLINE)

        assert not [m for m in sms.sent if second in m.body]
        assert {m.to for m in sms.sent} == HOTLINE
        after = [r for r in await rows(app) if r.call_id == second]
        assert {(r.status, r.error) for r in after} == {("cancelled", "call acknowledged")}
        cancelled = [d for a, d in await timeline(app, second) if a == "sms_cancelled"]
        assert cancelled == ["1 unsent: call acknowledged"] * len(HOTLINE)


async def test_a_failure_after_the_acknowledgement_cancels_the_entry(
    app: App, sms: HoldingSender
) -> None:
    call_id = await press(app, "dev-0001")
    await app.escalator.run_due()
    number = min(HOTLINE)
    acknowledged = asyncio.Event()

    async def fails_after_the_ack(message: Outgoing) -> Receipt:
        if message.to != number:
            return await HoldingSender.send(sms, message)
        await acknowledged.wait()
        raise SendError("provider unavailable", permanent=False, status=503)

    sms.send = fails_after_the_ack  # type: ignore[method-assign]
    sending = asyncio.create_task(app.outbox.send_due())
    await sms.wait_for_sent(len(HOTLINE) - 1)
    await app.operations.acknowledge(call_id, "wang-fang", "api")
    acknowledged.set()
    await sending

    [row] = [r for r in await rows(app) if r.to_number == number]
    assert row.status == "cancelled" and row.error == "call acknowledged"
    assert ("sms_cancelled", "1 unsent: call acknowledged") in await timeline(app, call_id)


async def test_a_report_asking_for_a_retry_after_the_acknowledgement_cancels_the_entry(
    app: App, sms: HoldingSender
) -> None:
    call_id = await press(app, "dev-0001")
    await app.escalator.run_due()
    await app.outbox.send_due()
    await app.operations.acknowledge(call_id, "wang-fang", "api")
    sent = next(r for r in await rows(app) if r.to_number == min(HOTLINE))
    unreachable = {
        "MessageSid": sent.provider_sid,
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",  # a handset switched off: temporary, retried
    }
    assert await app.outbox.record_status(sent.id, read_delivery_report(unreachable))
    [row] = [r for r in await rows(app) if r.id == sent.id]
    assert row.status == "cancelled"
    assert [r.status for r in await rows(app)].count("pending") == 0


async def test_pending_entries_of_a_call_closed_elsewhere_are_cancelled_at_the_next_claim(
    app: App, sms: HoldingSender, clock: FakeClock
) -> None:
    call_id = await press(app, "dev-0001")
    await app.escalator.run_due()
    sms.fail_next(len(HOTLINE))
    await app.outbox.send_due()  # all three back to pending, for a retry
    # A path that changes the call without cancelling its entries (the phone desk,
    # a future one): the claim cancels them.
    async with app.sessions.begin() as s:
        await s.execute(update(db.calls).where(db.calls.c.id == call_id).values(state="resolved"))
    clock.advance(10)
    assert await app.outbox.send_due() == 0
    assert {r.status for r in await rows(app)} == {"cancelled"}
    assert ("sms_cancelled", "3 unsent: call resolved") in await timeline(app, call_id)


async def test_between_sweeps_an_unwanted_entry_waits_unsent_and_is_cancelled_at_the_next(
    app: App, sms: HoldingSender, clock: FakeClock
) -> None:
    # The look for unwanted entries reads every pending one, so a round makes it only
    # every UNWANTED_SWEEP; a round in between never sends such an entry all the same.
    call_id = await press(app, "dev-0001")
    await app.escalator.run_due()
    sms.fail_next(len(HOTLINE))
    await app.outbox.send_due()  # swept now; all three back to pending, due again soon
    async with app.sessions.begin() as s:
        await s.execute(update(db.calls).where(db.calls.c.id == call_id).values(state="resolved"))
    clock.advance(UNWANTED_SWEEP.total_seconds() / 2)  # past the retry, before the sweep
    assert all(r.next_attempt_at <= clock.now() for r in await rows(app))  # all due
    sent = len(sms.sent)
    assert await app.outbox.send_due() == 0
    assert len(sms.sent) == sent
    assert {r.status for r in await rows(app)} == {"pending"}
    clock.advance(UNWANTED_SWEEP.total_seconds())
    assert await app.outbox.send_due() == 0
    assert {r.status for r in await rows(app)} == {"cancelled"}
    assert len(sms.sent) == sent
