"""The supervisor watchdog through the whole app, on SQLite and PostgreSQL, with the
fake clock: an emergency nobody takes pages the shift supervisor on duty (河西街道's
孙丽 for 柳湖社区 on Tuesday morning) at 120 s, not at 119 s; again after 180 s; never
after a take; and a restart (a second app on the same database) pages nobody twice."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App
from dispatcher.core.calls import Outcome
from dispatcher.testing import FakeChannelSender, FakeClock
from tests.support.app import SUPERVISOR_HX, TUESDAY_10AM, built_app, event

T0 = TUESDAY_10AM
SUN_LI = next(iter(SUPERVISOR_HX))  # s-hx's supervisor, on shift 08:30-17:30 on weekdays
MARK = "【督导提醒】"  # the page's words in her language (zh)


async def press(app: App, device: str, ref: str) -> str:
    ack = await app.intake.on_event(
        device, f"eldercall/v1/dev/{device}/event", event(ref, "emergency")
    )
    assert ack is not None and ack.call_id is not None
    return ack.call_id


async def cycle_at(app: App, clock: FakeClock, seconds: int) -> int:
    """Move to T0 + ``seconds`` and run what the daemon's escalator poll runs, then
    the outbox; returns how many pages the watchdog sent."""
    clock.set(T0 + timedelta(seconds=seconds))
    await app.escalator.run_due()
    paged = await app.watchdog.run_due()
    await app.outbox.send_due()
    return paged


def pages(sms: FakeChannelSender) -> list[tuple[str, str]]:
    return [(m.to, m.body) for m in sms.sent if MARK in m.body]


async def watchdog_rows(app: App, call_id: str) -> list[tuple[int, str, int | None]]:
    o = db.sms_outbox.c
    async with app.sessions() as s:
        found = await s.execute(
            select(o.step, o.recipient, o.reply_code)
            .where(o.call_id == call_id, o.timer == "watchdog")
            .order_by(o.id)
        )
        return [tuple(r) for r in found]  # type: ignore[misc]


async def test_an_untaken_call_pages_the_supervisor_on_duty_and_a_taken_one_never(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    untaken = await press(app, "dev-0001", "w1")  # 张桂兰, 柳湖社区 (河西街道)
    taken = await press(app, "dev-0011", "w2")  # 徐长林, 青石社区 (河西街道 too)
    await cycle_at(app, clock, 0)
    clock.set(T0 + timedelta(seconds=100))
    await app.operations.take(taken, "wang-fang", "console")

    assert await cycle_at(app, clock, 119) == 0
    assert pages(fake_sms) == []

    assert await cycle_at(app, clock, 120) == 1
    [(to, body)] = pages(fake_sms)
    assert to == SUN_LI
    assert "张桂兰" in body and "柳湖社区" in body and "紧急呼叫" in body and untaken in body
    assert "2分0秒" in body
    [(step, recipient, code)] = await watchdog_rows(app, untaken)
    assert (step, recipient) == (0, "sun-li")
    reply = re.search(r"回复 (\d+)A 确认", body)
    assert reply is not None and int(reply.group(1)) == code  # her number for the call

    view = await app.operations.get_call(untaken)
    assert view.watchdog_paged_at == T0 + timedelta(seconds=120) and view.watchdog_pages == 1
    [entry] = [e for e in view.timeline if e.action == "watchdog_paged"]
    assert entry.actor == "watchdog" and entry.channel == "sms"
    assert "孙丽" in entry.detail and "page 1 of 4" in entry.detail
    assert b'eldercall_watchdog_pages_total{kind="emergency"} 1.0' in app.metrics.exposition()

    # The repeat, 180 s later; the call taken at 100 s never paged anyone.
    assert await cycle_at(app, clock, 299) == 0
    assert await cycle_at(app, clock, 300) == 1
    assert [to for to, _ in pages(fake_sms)] == [SUN_LI, SUN_LI]
    assert await watchdog_rows(app, taken) == []
    assert (await app.operations.get_call(taken)).watchdog_paged_at is None

    # Taken now: no more pages, however long it then stays open.
    clock.set(T0 + timedelta(seconds=310))
    await app.operations.take(untaken, "li-qiang", "console")
    for seconds in range(480, 3600, 60):
        assert await cycle_at(app, clock, seconds) == 0
    assert len(pages(fake_sms)) == 2
    assert (await app.operations.get_call(untaken)).watchdog_pages == 2


async def test_a_restart_loses_no_page_and_repeats_none(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    call_id = await press(app, "dev-0001", "r1")
    assert await cycle_at(app, clock, 120) == 1

    # The daemon restarts: a second app on the same database, at the same instant.
    again_sms = FakeChannelSender()
    restarted = await built_app(app.settings, clock, again_sms)
    try:
        assert await cycle_at(restarted, clock, 120) == 0
        assert await cycle_at(restarted, clock, 299) == 0
        assert pages(again_sms) == []
        # The due time was kept in the database: the repeat comes on time.
        assert await cycle_at(restarted, clock, 300) == 1
        assert [to for to, _ in pages(again_sms)] == [SUN_LI]
        assert [r[0] for r in await watchdog_rows(restarted, call_id)] == [0, 1]
        # Resolved: no page ever again.
        clock.set(T0 + timedelta(seconds=320))
        await restarted.operations.resolve(call_id, "wang-fang", "api", Outcome.FALSE_ALARM)
        for seconds in range(480, 2000, 60):
            assert await cycle_at(restarted, clock, seconds) == 0
        timeline = (await restarted.operations.get_call(call_id)).timeline
        assert [e.action for e in timeline].count("watchdog_paged") == 2
    finally:
        await restarted.aclose()
    assert len(pages(fake_sms)) == 1


async def test_the_daemons_escalation_cycle_runs_the_watchdog(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    await press(app, "dev-0001", "c1")
    clock.set(T0 + timedelta(seconds=120))
    assert await app.escalation_cycle() >= 1
    await app.outbox.send_due()
    assert [to for to, _ in pages(fake_sms)] == [SUN_LI]
