"""Dispatching responders through the service layer, on SQLite and PostgreSQL with the
fake clock: the SMS telling the responder where to go, the presence key marking the
arrival, an overdue responder raising the call once (after a restart too), standing
down, and the area scope."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.bootstrap import App
from dispatcher.core.calls import Outcome
from dispatcher.core.dispatches import DispatchRequest, InvalidDispatchError, ResponderKind
from dispatcher.services.live_queue import LiveQueue
from dispatcher.services.read_models import CallNotFoundError
from dispatcher.testing import FakeChannelSender, FakeClock
from tests.support.app import built_app, event, settings_for

TOPIC = "eldercall/v1/dev/dev-0001/event"
MA_LIN = "+8613761400302"
WANG_FANG = "+8613916200101"  # an operator of the command centre


async def tick(app: App) -> None:
    await app.escalator.run_due()
    await app.outbox.send_due()


async def open_taken(app: App, ref: str = "p1") -> str:
    """A press on 张桂兰's device, taken by 王芳, the escalation's first SMS sent."""
    ack = await app.intake.on_event("dev-0001", TOPIC, event(ref, "emergency"))
    assert ack is not None and ack.call_id
    await tick(app)
    await app.operations.take(ack.call_id, "wang-fang", "console")
    return ack.call_id


def ma_lin(minutes: int = 15) -> DispatchRequest:
    return DispatchRequest(ResponderKind.STAFF, "ma-lin", eta_minutes=minutes)


async def test_a_responder_is_told_where_to_go_and_the_presence_key_marks_the_arrival(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    call_id = await open_taken(app)
    sent_before = len(fake_sms.sent)
    view = await app.operations.dispatch(call_id, "wang-fang", "console", ma_lin(15))
    [d] = view.dispatches
    assert (d.number, d.responder_name, d.state) == (1, "马琳", "on_the_way")
    assert d.notice_status == "pending"
    # A note on the call (which cancels escalation SMS) leaves the responder's SMS be.
    await app.operations.add_note(call_id, "wang-fang", "console", "马琳 is 5 min away")
    await app.outbox.send_due()
    [notice] = fake_sms.sent[sent_before:]
    assert notice.to == MA_LIN and "柳湖路88弄3号502室" in notice.body
    assert "硝苯地平" not in notice.body  # never medical notes by SMS
    assert (await app.operations.get_call(call_id)).dispatches[0].notice_status == "sent"

    clock.advance(9 * 60)
    ack = await app.intake.on_event("dev-0001", TOPIC, event("p2", "presence"))
    assert ack is not None and ack.call_id == call_id
    view = await app.operations.get_call(call_id)
    assert view.state == "responder_on_site"
    assert view.dispatches[0].state == "arrived" and view.dispatches[0].arrived_by == "device"
    actions = [(e.actor, e.action, e.channel) for e in view.timeline]
    assert ("wang-fang", "dispatched", "console") in actions
    assert ("device", "dispatch_arrived", "mqtt") in actions
    clock.advance(60 * 60)
    await tick(app)
    assert (await app.operations.get_call(call_id)).dispatches[0].state == "arrived"
    resolved = await app.operations.resolve(
        call_id, "wang-fang", "console", Outcome.VISIT, "马琳 helped her up"
    )
    assert resolved.state == "resolved"


async def test_a_responder_not_arrived_in_time_raises_the_call_once(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    call_id = await open_taken(app)
    await app.operations.dispatch(call_id, "wang-fang", "console", ma_lin(10))
    await app.outbox.send_due()
    sent_before = len(fake_sms.sent)
    clock.advance(10 * 60 - 1)
    await tick(app)
    assert len(fake_sms.sent) == sent_before
    assert (await app.operations.get_call(call_id)).dispatches[0].state == "on_the_way"

    clock.advance(1)
    await tick(app)
    [alert] = fake_sms.sent[sent_before:]
    assert alert.to == WANG_FANG and "马琳" in alert.body and call_id in alert.body
    view = await app.operations.get_call(call_id)
    assert view.state == "acknowledged" and view.held_by == "wang-fang"  # still hers
    assert view.dispatches[0].state == "overdue" and view.dispatches[0].alert_status == "sent"
    assert [e.action for e in view.timeline].count("responder_overdue") == 1
    for _ in range(3):  # not at every cycle
        clock.advance(30)
        await tick(app)
    assert len(fake_sms.sent) == sent_before + 1
    # In the queue it is back at the top, needing attention, before an older call.
    other = await app.intake.on_event(
        "dev-0002", "eldercall/v1/dev/dev-0002/event", event("o1", "fall")
    )
    assert other is not None and other.call_id
    queue = LiveQueue(app.operations, app.directory, app.clock)
    snapshot = await queue.snapshot(app.directory.staff["wang-fang"])
    assert snapshot.rows[0].call_id == call_id
    assert snapshot.rows[0].responder == "overdue" and snapshot.rows[0].attention


async def test_an_overdue_responder_is_raised_after_a_restart_and_only_once(
    app: App,
    clock: FakeClock,
    fake_sms: FakeChannelSender,
    tmp_path: Path,
    database_url: str,
) -> None:
    call_id = await open_taken(app)
    await app.operations.dispatch(call_id, "wang-fang", "console", ma_lin(5))
    await app.outbox.send_due()
    await app.aclose()  # the daemon stops before the responder is due

    clock.advance(20 * 60)
    again_sms = FakeChannelSender("sms")
    settings = settings_for(tmp_path, database={"url": database_url})
    restarted = await built_app(settings, clock, again_sms)
    try:
        await tick(restarted)
        [alert] = again_sms.sent
        assert alert.to == WANG_FANG and "马琳" in alert.body
        await restarted.aclose()
        third_sms = FakeChannelSender("sms")
        third = await built_app(settings, clock, third_sms)
        restarted = third
        clock.advance(60)
        await tick(third)
        assert third_sms.sent == []  # raised once, restarts or not
        view = await third.operations.get_call(call_id)
        assert [e.action for e in view.timeline].count("responder_overdue") == 1
    finally:
        await restarted.aclose()


async def test_standing_down_cancels_the_unsent_sms_and_raises_nothing(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    call_id = await open_taken(app)
    await app.operations.dispatch(call_id, "wang-fang", "console", ma_lin(10))
    view = await app.operations.stand_down(call_id, 1, "wang-fang", "console", "son is there")
    d = view.dispatches[0]
    assert d.state == "stood_down" and d.ended_by == "wang-fang"
    assert d.notice_status == "cancelled"
    assert ("wang-fang", "stood_down") in [(e.actor, e.action) for e in view.timeline]
    sent_before = len(fake_sms.sent)
    clock.advance(30 * 60)
    await tick(app)
    assert all(m.to not in (MA_LIN,) for m in fake_sms.sent[sent_before:])
    assert "responder_overdue" not in [
        e.action for e in (await app.operations.get_call(call_id)).timeline
    ]
    with pytest.raises(InvalidDispatchError):
        await app.operations.mark_arrived(call_id, 1, "wang-fang", "console")
    with pytest.raises(InvalidDispatchError):
        await app.operations.stand_down(call_id, 7, "wang-fang", "console")


async def test_an_emergency_service_is_recorded_and_not_texted(
    app: App, fake_sms: FakeChannelSender
) -> None:
    ack = await app.intake.on_event("dev-0001", TOPIC, event("s1", "fall"))
    assert ack is not None and ack.call_id
    view = await app.operations.dispatch(
        ack.call_id,
        "wang-fang",
        "console",
        DispatchRequest(ResponderKind.SERVICE, "120", eta_minutes=12),
    )
    # Dispatching takes the untaken call (the device hears acknowledged).
    assert view.state == "acknowledged" and view.held_by == "wang-fang"
    d = view.dispatches[0]
    assert d.responder_kind == "service" and d.responder_ref == "120" and d.notice_status is None
    await app.outbox.send_due()
    assert all(m.to != "120" for m in fake_sms.sent)
    arrived = await app.operations.mark_arrived(ack.call_id, 1, "wang-fang", "console")
    assert arrived.state == "responder_on_site" and arrived.dispatches[0].arrived_by == "wang-fang"


async def test_the_scope_limits_who_dispatches_and_who_is_sent(app: App) -> None:
    call_id = await open_taken(app)
    d = app.directory.staff
    with pytest.raises(CallNotFoundError):  # 青石社区's staff cannot see 柳湖's call
        await app.operations.dispatch(call_id, "wu-hong", "api", ma_lin(), viewer=d["wu-hong"])
    with pytest.raises(CallNotFoundError):
        await app.operations.dispatch_choices(call_id, viewer=d["wu-hong"])
    with pytest.raises(InvalidDispatchError):  # 梅林社区's staff cannot be sent to it
        await app.operations.dispatch(
            call_id,
            "wang-fang",
            "api",
            DispatchRequest(ResponderKind.STAFF, "zheng-hua"),
            viewer=d["wang-fang"],
        )
    # 柳湖's own staff may send a colleague; the list offers 柳湖's and 河西's staff.
    view = await app.operations.dispatch(
        call_id,
        "ma-lin",
        "api",
        DispatchRequest(ResponderKind.STAFF, "huang-lei"),
        viewer=d["ma-lin"],
    )
    assert view.dispatches[0].responder_name == "黄磊"
    with pytest.raises(CallNotFoundError):
        await app.operations.mark_arrived(call_id, 1, "wu-hong", "api", viewer=d["wu-hong"])
    with pytest.raises(CallNotFoundError):
        await app.operations.stand_down(call_id, 1, "wu-hong", "api", viewer=d["wu-hong"])
    choices = await app.operations.dispatch_choices(call_id, viewer=d["ma-lin"])
    staff = [c.ref for c in choices if c.kind == "staff"]
    assert staff[:2] == sorted(["huang-lei", "ma-lin"], key=lambda s: d[s].name)
    assert "sun-li" in staff and "zheng-hua" not in staff and "wu-hong" not in staff
    assert [c.ref for c in choices if c.kind == "contact"] == ["1", "2"]
    assert [c.key_holder for c in choices if c.kind == "contact"] == [False, True]
    assert [c.ref for c in choices if c.kind == "service"] == ["120", "110", "119"]
