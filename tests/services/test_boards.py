"""The board on the real database (SQLite and PostgreSQL) at the fake clock's times:
answer times of today and of this week in the district's time zone, per operator and
as a distribution; devices offline, silent or low on battery; the waiting calls; all
within the viewer's area."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dispatcher.bootstrap import App, board_service
from dispatcher.core.calls import Outcome
from dispatcher.services.boards import BoardView
from dispatcher.testing import FakeClock
from tests.support.app import TUESDAY_10AM, event

TOPIC = "eldercall/v1/dev/x/event"
HOUR = 3600


async def press(app: App, device_id: str, ref: str, kind: str = "emergency") -> str:
    ack = await app.intake.on_event(device_id, TOPIC, event(ref, kind))
    assert ack is not None and ack.call_id is not None
    return ack.call_id


async def board_for(app: App, staff_id: str) -> BoardView:
    return await board_service(app).board(app.directory.staff[staff_id])


async def answered_after(
    app: App, clock: FakeClock, device_id: str, ref: str, seconds: float, by: str
) -> str:
    call_id = await press(app, device_id, ref)
    clock.advance(seconds)
    await app.operations.acknowledge(call_id, by, "api")
    await app.operations.resolve(call_id, by, "api", Outcome.HELPED_BY_PHONE)
    return call_id


async def test_today_and_this_week_are_cut_at_local_midnight_and_monday(
    app: App, clock: FakeClock
) -> None:
    # Sunday 22 Nov 23:30 in Shanghai: last week, in neither period.
    clock.set(datetime(2026, 11, 22, 15, 30, tzinfo=UTC))
    await answered_after(app, clock, "dev-0001", "sun", 500, "demo-operator")
    # Monday 23 Nov 09:00: this week, not today.
    clock.set(datetime(2026, 11, 23, 1, 0, tzinfo=UTC))
    await answered_after(app, clock, "dev-0002", "mon", 100, "wang-fang")
    # Tuesday 24 Nov 00:10 local (still Monday in UTC): today.
    clock.set(datetime(2026, 11, 23, 16, 10, tzinfo=UTC))
    await answered_after(app, clock, "dev-0003", "tue1", 20, "demo-operator")
    clock.set(TUESDAY_10AM)
    await answered_after(app, clock, "dev-0004", "tue2", 60, "demo-operator")
    waiting = await press(app, "dev-0005", "tue3")  # opened at 10:01, still waiting
    clock.advance(200)

    board = await board_for(app, "demo-operator")
    today, week = board.today, board.week
    assert today.since == datetime(2026, 11, 24, tzinfo=UTC) - timedelta(hours=8)
    assert week.since == datetime(2026, 11, 23, tzinfo=UTC) - timedelta(hours=8)
    assert today.figures.overall.calls == 3 and week.figures.overall.calls == 4
    within_60, within_180 = today.figures.overall.targets
    # 20 s and exactly 60 s within; the waiting call missed 60 s and 180 s by now (200 s).
    assert (within_60.within, within_60.missed, within_60.pending) == (2, 1, 0)
    assert (within_180.within, within_180.missed) == (2, 1)
    assert week.figures.overall.targets[0].within == 2  # the 100 s answer missed 60 s
    assert week.figures.overall.targets[1].within == 3
    by_operator = {o.key: o.answered for o in week.figures.by_operator}
    assert by_operator == {"demo-operator": 2, "wang-fang": 1}
    counts = {(b.low_s, b.high_s, b.unanswered): b.count for b in today.histogram}
    assert counts[(15, 30, False)] == 1 and counts[(45, 60, False)] == 1
    assert counts[(0, None, True)] == 1
    assert sum(b.count for b in week.histogram) == 4
    assert board.waiting.calls == 1 and board.waiting.alarms == 1
    assert board.waiting.oldest_opened_at == TUESDAY_10AM + timedelta(seconds=60)
    assert waiting  # the one still in the queue


async def test_devices_offline_silent_or_low_are_listed_with_their_alert(
    app: App, clock: FakeClock
) -> None:
    await app.intake.on_event("dev-0001", TOPIC, event("h1", "heartbeat", battery=80))
    await app.intake.on_event("dev-0002", TOPIC, event("h1", "heartbeat", battery=20))
    await app.intake.on_event("dev-0003", TOPIC, event("h1", "heartbeat", battery=21))
    await app.intake.on_status("dev-0004", b'{"state": "offline"}')
    await app.intake.heartbeats.flush()
    clock.advance(2 * HOUR)
    await app.intake.on_event("dev-0001", TOPIC, event("h2", "heartbeat", battery=79))
    await app.intake.on_event("dev-0002", TOPIC, event("h2", "heartbeat", battery=20))
    await app.intake.on_event("dev-0004", TOPIC, event("h2", "heartbeat"))
    await app.intake.on_status("dev-0004", b'{"state": "offline"}')
    await app.intake.heartbeats.flush()
    clock.advance(HOUR + 1)  # dev-0003 last heard 3 h 1 s ago: three heartbeats missed
    assert await app.supervisor.check() == 2  # dev-0003 silent, dev-0004 offline past 5 min

    board = await board_for(app, "demo-operator")
    found = {d.device_id: d for d in board.devices}
    assert set(found) == {"dev-0002", "dev-0003", "dev-0004"}
    assert found["dev-0002"].problems == ["battery_low"] and found["dev-0002"].battery == 20
    assert found["dev-0003"].problems == ["silent"]
    assert found["dev-0004"].problems == ["offline"]
    silent = found["dev-0003"]
    assert (silent.community_id, silent.community_name) == ("c-lh", "柳湖社区")
    alerts = {a.device_id: a.call_id for a in board.alerts}
    assert set(alerts) == {"dev-0003", "dev-0004"}
    assert found["dev-0004"].alert_call_id == alerts["dev-0004"]
    assert board.device_rules.silent_after_s == 3 * HOUR
    assert board.device_rules.low_battery_pct == 20


async def test_community_staff_see_their_own_community_only(app: App, clock: FakeClock) -> None:
    await answered_after(app, clock, "dev-0001", "lh", 30, "demo-operator")  # 柳湖 c-lh
    await answered_after(app, clock, "dev-0011", "qs", 40, "demo-operator")  # 青石 c-qs
    await app.intake.on_status("dev-0001", b'{"state": "offline"}')
    await app.intake.on_status("dev-0012", b'{"state": "offline"}')
    await press(app, "dev-0002", "waiting")
    clock.advance(1)

    mine = await board_for(app, "wu-hong")  # 青石 community staff
    assert [a.area_id for a in mine.duty] == ["c-qs"]
    assert mine.duty[0].on_duty[0].id == "wu-hong"
    assert {d.device_id for d in mine.devices} == {"dev-0012"}
    assert mine.today.figures.overall.calls == 1
    assert mine.waiting.calls == 0  # the waiting call is 柳湖's
    assert all(g.area_id == "c-qs" for g in mine.gaps)

    everything = await board_for(app, "demo-operator")
    assert everything.duty[0].area_id == "d-jb"
    assert {a.area_id for a in everything.duty} == set(app.directory.areas)
    assert {d.device_id for d in everything.devices} == {"dev-0001", "dev-0012"}
    assert everything.today.figures.overall.calls == 3
    assert everything.waiting.calls == 1


async def test_on_duty_says_until_when_and_the_gaps_ahead(app: App, clock: FakeClock) -> None:
    board = await board_for(app, "sun-li")  # 河西 street: s-hx, c-lh, c-qs
    duty = {a.area_id: a for a in board.duty}
    assert list(duty) == ["s-hx", "c-lh", "c-qs"]
    # Tuesday 10:00: 柳湖's day rotation until 18:00.
    [street] = duty["s-hx"].on_duty
    assert street.id == "sun-li" and street.phone == "+8613817300201"
    # 孙丽 goes on into the streets' evening turn (hers this week): until 21:00.
    assert street.until == datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
    assert {p.until for p in duty["c-lh"].on_duty} == {datetime(2026, 11, 24, 10, tzinfo=UTC)}
    assert {p.shift_role for p in duty["c-lh"].on_duty} == {"primary", "backup"}
    # From 16:30 青石 has nobody of its own; the street answers until 21:00, then the district.
    qs = [(g.start, g.end, g.answered_by_area_id) for g in board.gaps if g.area_id == "c-qs"]
    assert qs[0] == (
        datetime(2026, 11, 24, 8, 30, tzinfo=UTC),
        datetime(2026, 11, 24, 13, 0, tzinfo=UTC),
        "s-hx",
    )
    assert ("d-jb" in {by for _, _, by in qs}) and all(by is not None for _, _, by in qs)

    clock.set(datetime(2026, 11, 24, 15, 0, tzinfo=UTC))  # 23:00: nobody of the street's own
    night = {a.area_id: a for a in (await board_for(app, "sun-li")).duty}
    assert night["c-qs"].on_duty == [] and night["c-qs"].answered_by_area_id == "d-jb"
    assert "demo-operator" in {p.id for p in night["c-qs"].answered_by}
