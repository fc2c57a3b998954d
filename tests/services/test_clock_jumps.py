"""Escalation keeps time through a step of the system clock, a stop and a suspend,
and a thousand presses of one button raise urgency without a storm.

Real database (SQLite, and PostgreSQL where marked by the ``database_url`` fixture),
the production wiring, a :class:`SteadyClock` over hand-moved time sources: a step of
the clock is made by moving the wall alone, never by sleeping."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App, build
from dispatcher.services.clock import SteadyClock
from dispatcher.testing import FakeTimeSources
from tests.support.app import (
    COMMUNITY_LH,
    HOTLINE,
    R0001_CONTACTS,
    SUPERVISOR_HX,
    TUESDAY_10AM,
    event,
    settings_for,
    sqlite_url,
)

HOUR = 3600
TOPIC = "eldercall/v1/dev/{}/event"


@pytest.fixture
def sources() -> FakeTimeSources:
    return FakeTimeSources(TUESDAY_10AM)


async def steady_app(url: str, tmp_path: Path, sources: FakeTimeSources) -> App:
    settings = settings_for(tmp_path, database={"url": url})
    # The configured sender (the log's): these tests count the outbox's rows.
    return await build(settings, clock=SteadyClock(sources.wall, sources.elapsed))


@pytest.fixture
async def app(tmp_path: Path, database_url: str, sources: FakeTimeSources) -> AsyncIterator[App]:
    built = await steady_app(database_url, tmp_path, sources)
    yield built
    await built.aclose()


async def press(app: App, device: str, ref: str, kind: str = "emergency") -> str:
    ack = await app.intake.on_event(device, TOPIC.format(device), event(ref, kind))
    assert ack is not None and ack.call_id
    return ack.call_id


async def tick(app: App) -> None:
    """One pass of the daemon's pollers, the clock's watch first."""
    assert app.clock_watch is not None
    await app.clock_watch.check()
    await app.escalator.run_due()
    await app.outbox.send_due()


async def outbox(app: App) -> list[Any]:
    async with app.sessions() as s:
        return list(await s.execute(select(db.sms_outbox).order_by(db.sms_outbox.c.id)))


async def actions(app: App, call_id: str) -> list[str]:
    return [e.action for e in (await app.operations.get_call(call_id)).timeline]


def step_numbers(rows: list[Any]) -> list[int]:
    return sorted({r.step for r in rows})


async def test_the_clock_stepped_back_an_hour_holds_no_step(
    app: App, sources: FakeTimeSources
) -> None:
    call_id = await press(app, "dev-0001", "b1")
    await tick(app)
    assert {r.to_number for r in await outbox(app)} == HOTLINE
    sources.advance(30)
    sources.step_wall(-HOUR)
    # The escalator polls before the watch has seen the step: steady time all the same.
    sources.advance(30)
    await app.escalator.run_due()
    assert step_numbers(await outbox(app)) == [0, 1]
    # The watch follows the system clock and moves what is stored with it.
    assert app.clock_watch is not None and await app.clock_watch.check() == 1
    assert app.clock.now() == sources.wall()
    assert await app.clock_watch.check() == 0  # once
    sources.advance(119)
    await tick(app)
    assert step_numbers(await outbox(app)) == [0, 1]
    sources.advance(1)  # 180 s after the press, by elapsed time
    await tick(app)
    assert step_numbers(await outbox(app)) == [0, 1, 2]
    view = await app.operations.get_call(call_id)
    [jumped] = [e.detail for e in view.timeline if e.action == "clock_jumped"]
    assert "stepped -1 h 00 min 00 s" in jumped
    step3 = {r.to_number for r in await outbox(app) if r.step == 2}
    assert step3 == HOTLINE | COMMUNITY_LH | SUPERVISOR_HX | R0001_CONTACTS
    assert "catch_up" not in await actions(app, call_id)


async def test_the_clock_stepped_forward_four_hours_replays_nothing_and_alerts_nobody(
    app: App, sources: FakeTimeSources
) -> None:
    call_id = await press(app, "dev-0001", "f1")
    for device in ("dev-0002", "dev-0003"):
        await app.intake.on_event(device, TOPIC.format(device), event(f"h-{device}", "heartbeat"))
    await tick(app)
    before = len(await outbox(app))
    sources.advance(10)
    sources.step_wall(4 * HOUR)
    for _ in range(5):
        sources.advance(1)
        await tick(app)
        assert await app.supervisor.check() == 0
    assert len(await outbox(app)) == before  # step 2 is due 60 s after the press
    assert app.clock.now() == sources.wall()
    sources.advance(45)
    await tick(app)
    assert step_numbers(await outbox(app)) == [0, 1]
    assert (await actions(app, call_id)).count("escalated") == 2
    # Heartbeats are missed only 3 h after the last one, by elapsed time.
    sources.advance(3 * HOUR - 70)
    assert await app.supervisor.check() == 0
    view = await app.operations.list_calls("all")
    assert [c.call_id for c in view] == [call_id]  # no heartbeat alert among them


async def test_a_stop_longer_than_a_step_fires_one_catch_up_not_every_repeat(
    tmp_path: Path, sources: FakeTimeSources
) -> None:
    url = sqlite_url(tmp_path)
    first = await steady_app(url, tmp_path, sources)
    call_id = await press(first, "dev-0001", "s1")
    await tick(first)
    await first.aclose()
    sources.advance(4 * HOUR)  # the daemon was down (or the clock jumped while it was)
    again = await steady_app(url, tmp_path, sources)
    try:
        for _ in range(5):
            await tick(again)
        rows = await outbox(again)
        assert step_numbers(rows) == [0, 81]  # step 0, then one catch-up for steps 1-81
        per_person = Counter((r.recipient, r.step) for r in rows)
        assert max(per_person.values()) == 1
        caught_up = {r.to_number for r in rows if r.step == 81}
        assert caught_up == HOTLINE | COMMUNITY_LH | SUPERVISOR_HX | R0001_CONTACTS
        view = await again.operations.get_call(call_id)
        [note] = [e.detail for e in view.timeline if e.action == "catch_up"]
        assert note.startswith("catch-up: 80 steps/repeats missed")  # steps 2 to 81
        # The next repeat counts from the catch-up.
        sources.advance(179)
        await tick(again)
        assert step_numbers(await outbox(again)) == [0, 81]
        sources.advance(1)
        await tick(again)
        assert step_numbers(await outbox(again)) == [0, 81, 82]
    finally:
        await again.aclose()


async def test_a_suspend_is_not_a_step_of_the_clock_the_missed_steps_catch_up(
    app: App, sources: FakeTimeSources
) -> None:
    call_id = await press(app, "dev-0001", "z1")
    await tick(app)
    sources.suspend(HOUR)  # wall and boot time both moved on
    assert app.clock_watch is not None and await app.clock_watch.check() == 0
    await tick(app)
    await tick(app)
    assert step_numbers(await outbox(app)) == [0, 21]  # 1 h = 180 s + 19 repeats of 180 s
    assert (await actions(app, call_id)).count("catch_up") == 1


async def test_nobody_is_queued_twice_for_one_step_whatever_fires_it_again(
    app: App, sources: FakeTimeSources
) -> None:
    call_id = await press(app, "dev-0001", "d1")
    await tick(app)
    first = len(await outbox(app))
    # Step 1 made due again (as a bug or a race would): its people are not queued again.
    async with app.sessions.begin() as s:
        await s.execute(
            update(db.calls)
            .where(db.calls.c.id == call_id)
            .values(escalation_step=0, next_escalation_at=app.clock.now())
        )
    await tick(app)
    assert len(await outbox(app)) == first
    view = await app.operations.get_call(call_id)
    assert "already notified of this step" in view.timeline[-1].detail


async def test_a_thousand_presses_fire_each_step_once_and_message_each_person_once(
    tmp_path: Path, sources: FakeTimeSources
) -> None:
    app = await steady_app(sqlite_url(tmp_path), tmp_path, sources)
    try:
        call_id = await press(app, "dev-0001", "p0")
        for n in range(1, 1000):
            sources.advance(0.043)  # the measured 1,000 presses in 43 s
            assert await press(app, "dev-0001", f"p{n}") == call_id
            if n % 10 == 0:
                await tick(app)
        await tick(app)
        rows = await outbox(app)
        # Steps 1 and 2 brought forward once each; no repeat before its 180 s.
        assert step_numbers(rows) == [0, 1, 2]
        per_person = Counter((r.recipient, r.step) for r in rows)
        assert max(per_person.values()) == 1
        family = [r for r in rows if r.to_number in R0001_CONTACTS]
        assert len(family) == 2  # one each (the measured storm: 353 each)
        view = await app.operations.get_call(call_id)
        assert view.press_count == 1000
        acts = [e.action for e in view.timeline]
        assert acts.count("urgency_raised") == 2 and acts.count("escalated") == 3
        assert acts.count("joined") < 40  # every press is an event; not every one listed
        async with app.sessions() as s:
            remembered = await s.scalar(
                select(db.calls.c.brought_forward_step).where(db.calls.c.id == call_id)
            )
        assert remembered == 2  # stored: a restart does not bring step 3 forward again
    finally:
        await app.aclose()
