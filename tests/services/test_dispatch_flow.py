"""The call pipeline in-process: intake → call → escalation → SMS outbox → operator,
on a real database (SQLite and PostgreSQL), with a fake clock and a fake SMS sender."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from devices.protocol import AckResult
from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App
from dispatcher.core.calls import InvalidTransitionError, Outcome
from dispatcher.testing import FakeChannelSender, FakeClock
from tests.support.app import COMMUNITY_LH, HOTLINE, R0001_CONTACTS, SUPERVISOR_HX, event

TOPIC = "eldercall/v1/dev/dev-0001/event"


async def tick(app: App) -> None:
    """One pass of the pollers, as the daemon's loops would run them."""
    await app.escalator.run_due()
    await app.outbox.send_due()


async def device_updates(app: App, device_id: str) -> list[str]:
    async with app.sessions() as s:
        rows = await s.execute(
            select(db.device_outbox.c.payload)
            .where(db.device_outbox.c.device_id == device_id)
            .order_by(db.device_outbox.c.id)
        )
        return [r.payload for r in rows]


async def test_press_opens_call_and_escalates_until_acknowledged(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    ack = await app.intake.on_event("dev-0001", TOPIC, event("a1", "emergency", battery=80))
    assert ack is not None and ack.result is AckResult.OK
    call_id = ack.call_id
    assert call_id is not None and call_id.startswith("C-20261124-")

    await tick(app)
    assert {m.to for m in fake_sms.sent} == HOTLINE
    assert all(call_id in m.body and "张桂兰" in m.body for m in fake_sms.sent)
    assert all("硝苯地平" not in m.body for m in fake_sms.sent)  # no medical notes by SMS

    clock.advance(59)
    await tick(app)
    assert len(fake_sms.sent) == 3  # nothing new before 60 s

    clock.advance(1)
    await tick(app)
    step2 = {m.to for m in fake_sms.sent[3:]}
    assert step2 == HOTLINE | COMMUNITY_LH

    clock.advance(120)
    await tick(app)
    step3 = {m.to for m in fake_sms.sent[3 + len(step2) :]}
    assert step3 == HOTLINE | COMMUNITY_LH | SUPERVISOR_HX | R0001_CONTACTS

    view = await app.operations.acknowledge(call_id, "demo-operator", "api", "calling her")
    assert view.state == "acknowledged" and view.acknowledged_by == "demo-operator"
    sent_before = len(fake_sms.sent)
    # Issue 3: 45 min after the acknowledgement the acknowledgement timeout would
    # escalate again (tests/test_policy_flow.py); until then nothing more is sent.
    clock.advance(45 * 60 - 1)
    await tick(app)
    assert len(fake_sms.sent) == sent_before  # acknowledged: no more SMS

    updates = await device_updates(app, "dev-0001")
    assert ['"received"' in u for u in updates][:1] == [True]
    assert '"acknowledged"' in updates[-1]

    resolved = await app.operations.resolve(
        call_id, "demo-operator", "api", Outcome.HELPED_BY_PHONE, "she is fine"
    )
    assert resolved.state == "resolved"
    assert '"resolved"' in (await device_updates(app, "dev-0001"))[-1]
    actions = [e.action for e in (await app.operations.get_call(call_id)).timeline]
    assert actions[0] == "opened" and actions.count("escalated") == 3
    assert actions[-2:] == ["acknowledged", "resolved"]


async def test_ack_commits_cancel_queued_sms(app: App, fake_sms: FakeChannelSender) -> None:
    ack = await app.intake.on_event("dev-0001", TOPIC, event("b1", "fall"))
    assert ack is not None and ack.call_id
    await app.escalator.run_due()  # SMS queued, not yet sent
    await app.operations.acknowledge(ack.call_id, "wang-fang", "api")
    await app.outbox.send_due()
    assert fake_sms.sent == []
    view = await app.operations.get_call(ack.call_id)
    assert {n.status for n in view.notifications} == {"cancelled"}


async def test_resend_is_duplicate_and_second_press_joins(app: App) -> None:
    first = await app.intake.on_event("dev-0001", TOPIC, event("r1", "service"))
    again = await app.intake.on_event("dev-0001", TOPIC, event("r1", "service"))
    assert first is not None and again is not None
    assert again.result is AckResult.DUPLICATE and again.call_id == first.call_id
    upgraded = await app.intake.on_event("dev-0001", TOPIC, event("r2", "emergency"))
    assert upgraded is not None and upgraded.call_id == first.call_id
    view = await app.operations.get_call(first.call_id or "")
    assert view.press_count == 2 and view.priority == "critical" and view.kind == "emergency"
    assert len(await app.operations.list_calls()) == 1


async def test_unknown_device_still_opens_a_call_for_the_hotline(
    app: App, fake_sms: FakeChannelSender
) -> None:
    ack = await app.intake.on_event("stranger", "x", event("u1", "emergency"))
    assert ack is not None and ack.call_id
    await tick(app)
    view = await app.operations.get_call(ack.call_id)
    assert view.unknown_device and view.resident is None
    assert {m.to for m in fake_sms.sent} == HOTLINE
    assert "stranger" in fake_sms.sent[0].body


async def test_cancel_stops_escalation_but_keeps_the_call(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    ack = await app.intake.on_event("dev-0001", TOPIC, event("c1", "emergency"))
    assert ack is not None and ack.call_id
    await tick(app)
    cancel = await app.intake.on_event("dev-0001", TOPIC, event("c2", "cancel"))
    assert cancel is not None and cancel.call_id == ack.call_id
    sent = len(fake_sms.sent)
    clock.advance(600)
    await tick(app)
    assert len(fake_sms.sent) == sent
    assert [c.call_id for c in await app.operations.list_calls()] == [ack.call_id]
    assert (await app.operations.get_call(ack.call_id)).state == "cancelled"
    assert '"cancelled"' in (await device_updates(app, "dev-0001"))[-1]
    resolved = await app.operations.resolve(
        ack.call_id, "demo-operator", "cli", Outcome.CANCELLED_BY_RESIDENT
    )
    assert resolved.state == "resolved"


async def test_cancel_and_presence_without_a_call_are_ok_without_call_id(app: App) -> None:
    for ref, kind in (("n1", "cancel"), ("n2", "presence")):
        ack = await app.intake.on_event("dev-0002", TOPIC, event(ref, kind))
        assert ack is not None and ack.result is AckResult.OK and ack.call_id is None
    assert await app.operations.list_calls("all") == []


async def test_presence_stops_escalation(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    ack = await app.intake.on_event("dev-0003", TOPIC, event("p1", "emergency"))
    assert ack is not None and ack.call_id
    await app.intake.on_event("dev-0003", TOPIC, event("p2", "presence"))
    clock.advance(600)
    await tick(app)
    assert (await app.operations.get_call(ack.call_id)).state == "responder_on_site"
    assert fake_sms.sent == []


async def test_bad_events_are_answered_or_recorded_and_change_nothing(app: App) -> None:
    # Each from another device: five from one device would (rightly) raise an alert.
    assert await app.intake.on_event("dev-0001", TOPIC, b"{not json") is None
    assert await app.intake.on_event("dev-0002", TOPIC, b'{"type": "emergency"}') is None
    long_ref = event("x" * 65, "emergency")
    assert await app.intake.on_event("dev-0003", TOPIC, long_ref) is None
    unknown = await app.intake.on_event("dev-0004", TOPIC, event("k1", "explode"))
    assert unknown is not None and unknown.result is AckResult.INVALID
    assert unknown.error and "type" in unknown.error
    huge = await app.intake.on_event("dev-0005", TOPIC, event("h1", "fall", pad="x" * 100_000))
    assert huge is not None and huge.result is AckResult.INVALID
    assert await app.operations.list_calls("all") == []
    async with app.sessions() as s:
        rejected = (await s.execute(select(db.rejected_messages))).all()
    assert len(rejected) == 5
    assert {r.answered for r in rejected} == {True, False}
    assert any(r.raw == b"{not json" for r in rejected)
    # A good event afterwards is handled as usual.
    good = await app.intake.on_event("dev-0001", TOPIC, event("g1", "emergency"))
    assert good is not None and good.result is AckResult.OK and good.call_id


async def test_device_sending_garbage_raises_a_technical_alert(app: App) -> None:
    for _ in range(5):
        await app.intake.on_event("dev-0004", TOPIC, b"garbage")
    alerts = await app.operations.list_calls()
    assert [(c.kind, c.device_id) for c in alerts] == [("technical", "dev-0004")]


async def test_battery_low_opens_alert_and_battery_ok_clears_it(app: App) -> None:
    low = await app.intake.on_event("dev-0005", TOPIC, event("b1", "battery_low", battery=9))
    assert low is not None and low.call_id
    assert (await app.operations.get_call(low.call_id)).kind == "technical"
    # A technical alert is not the resident's call: an emergency opens its own.
    sos = await app.intake.on_event("dev-0005", TOPIC, event("b2", "emergency"))
    assert sos is not None and sos.call_id != low.call_id
    ok = await app.intake.on_event("dev-0005", TOPIC, event("b3", "battery_ok"))
    assert ok is not None and ok.call_id == low.call_id
    assert (await app.operations.get_call(low.call_id)).state == "resolved"


async def test_resolving_twice_is_refused(app: App) -> None:
    ack = await app.intake.on_event("dev-0001", TOPIC, event("t1", "service"))
    assert ack is not None and ack.call_id
    await app.operations.resolve(ack.call_id, "demo-operator", "api", Outcome.SERVICE_DONE)
    try:
        await app.operations.resolve(ack.call_id, "demo-operator", "api", Outcome.OTHER)
    except InvalidTransitionError as exc:
        assert "already resolved" in str(exc)
    else:
        raise AssertionError("a resolved call was resolved again")


async def test_temporary_sms_failure_is_retried_permanent_is_on_timeline(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender, fake_voice: FakeChannelSender
) -> None:
    fake_sms.fail_number("+8613916200101", permanent=True)
    fake_sms.fail_next(1)  # the first send fails temporarily
    ack = await app.intake.on_event("dev-0001", TOPIC, event("s1", "emergency"))
    assert ack is not None and ack.call_id
    await tick(app)
    clock.advance(5)
    # As the daemon's outbox loop does, round after round: the numbers go out at once,
    # so which send the temporary failure hits varies, and when the landline's SMS is
    # refused only in this round, its voice call is due in the next. A fixed count, not
    # "until a round sends nothing": when the temporary failure hits the landline, the
    # round that refuses it for good sends nothing, yet queues its voice call.
    for _ in range(5):  # three at most are needed; the rest find nothing due
        await app.outbox.send_due()
    view = await app.operations.get_call(ack.call_id)
    statuses = {n.to_number: n.status for n in view.notifications if n.channel == "sms"}
    assert statuses["+8613916200101"] == "failed"
    assert statuses["+8613800138000"] == "sent" and statuses["+8613916200104"] == "sent"
    assert any(e.action == "sms_failed" for e in view.timeline)
    # Issue 3: a landline moves that person on to their next contact method (voice).
    voice = [n for n in view.notifications if n.channel == "voice"]
    assert [(n.to_number, n.status) for n in voice] == [("+8613916200101", "sent")]
    assert [c.to for c in fake_voice.sent] == ["+8613916200101"]


async def test_call_ids_are_numbered_per_local_day(app: App, clock: FakeClock) -> None:
    ids = []
    for n, device in enumerate(("dev-0001", "dev-0002")):
        ack = await app.intake.on_event(device, TOPIC, event(f"d{n}", "service"))
        assert ack is not None
        ids.append(ack.call_id)
    # 16:00 UTC is midnight in Shanghai: a new day, a new count.
    clock.set(datetime(2026, 11, 24, 16, 0, tzinfo=UTC))
    ack = await app.intake.on_event("dev-0003", TOPIC, event("d3", "service"))
    assert ack is not None
    assert [*ids, ack.call_id] == ["C-20261124-0001", "C-20261124-0002", "C-20261125-0001"]


async def test_escalate_now_gives_an_acknowledged_call_back_and_fires_the_next_step(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    ack = await app.intake.on_event("dev-0001", TOPIC, event("x1", "emergency"))
    assert ack is not None and ack.call_id is not None
    await tick(app)
    await app.operations.acknowledge(ack.call_id, "demo-operator", "api")
    clock.advance(5)
    view = await app.operations.escalate_now(ack.call_id, "demo-operator", "sms")
    assert view.state == "open"
    before = len(fake_sms.sent)
    await tick(app)  # no waiting out the step's 60 s delay
    assert {m.to for m in fake_sms.sent[before:]} == HOTLINE | COMMUNITY_LH
    assert (await device_updates(app, "dev-0001"))[-1].count('"received"') == 1
