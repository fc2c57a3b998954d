"""A replayed SMS reply (same MessageSid) gets the same answer and acts no more, even
after a restart: the handled sids are in the database. Fake clock, real database."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App
from dispatcher.testing import FakeClock
from tests.support.app import built_app, event, snapshot

DEMO_OPERATOR = "+8613800138000"  # zh, on the hotline around the clock


async def open_call(app: App) -> str:
    ack = await app.intake.on_event(
        "dev-0001", "eldercall/v1/dev/dev-0001/event", event("e1", "emergency")
    )
    assert ack is not None and ack.call_id is not None
    await app.escalator.run_due()  # the hotline gets the call, with reply codes
    return ack.call_id


async def test_a_reply_replayed_after_a_restart_acts_no_more(app: App, clock: FakeClock) -> None:
    call_id = await open_call(app)
    sid = "SM" + uuid.uuid4().hex
    first = await app.phone.on_sms(DEMO_OPERATOR, "1E", sid)  # pass it on: acts once
    await app.escalator.run_due()
    before = await snapshot(app)

    restarted = await built_app(app.settings, clock)
    try:
        clock.advance(60)
        again = await restarted.phone.on_sms(DEMO_OPERATOR, "1E", sid)
        await restarted.escalator.run_due()
        assert again == first
        assert await snapshot(restarted) == before
        view = await restarted.operations.get_call(call_id)
        assert [e.action for e in view.timeline].count("escalation_requested") == 1
        # A new message (another sid) with the same text still acts.
        await restarted.phone.on_sms(DEMO_OPERATOR, "1A", "SM" + uuid.uuid4().hex)
        assert (await restarted.operations.get_call(call_id)).state == "acknowledged"
    finally:
        await restarted.aclose()


async def test_a_reply_without_a_sid_is_not_remembered(app: App) -> None:
    await open_call(app)
    await app.phone.on_sms(DEMO_OPERATOR, "hello", "")
    async with app.sessions() as s:
        assert list(await s.execute(select(db.handled_webhooks))) == []


async def test_a_voice_key_replayed_after_the_call_was_handed_back_acts_no_more(
    app: App, clock: FakeClock
) -> None:
    call_id = await open_call(app)
    async with app.sessions() as s:
        row = await s.scalar(
            select(db.sms_outbox.c.id)
            .where(db.sms_outbox.c.call_id == call_id, db.sms_outbox.c.to_number == DEMO_OPERATOR)
            .limit(1)
        )
    assert row is not None
    call_sid = "CA" + uuid.uuid4().hex
    first = await app.phone.voice_key(row, "1", call_sid)
    assert (await app.operations.get_call(call_id)).state == "acknowledged"
    # Handed back by SMS: the call is open again and escalating.
    await app.phone.on_sms(DEMO_OPERATOR, "1E", "SM" + uuid.uuid4().hex)
    assert (await app.operations.get_call(call_id)).state == "open"

    restarted = await built_app(app.settings, clock)
    try:
        again = await restarted.phone.voice_key(row, "1", call_sid)  # Twilio's retry
        assert again == first
        view = await restarted.operations.get_call(call_id)
        assert view.state == "open"
        assert [e.action for e in view.timeline].count("acknowledged") == 1
    finally:
        await restarted.aclose()
