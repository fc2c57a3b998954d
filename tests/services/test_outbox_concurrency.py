"""The outbox sends concurrently: a provider request that hangs holds only its own
number, never longer than ``[sms] request_timeout_s``, and no more than
``[sms] max_in_flight`` requests are out at once; an emergency that failed is tried
again within seconds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from dispatcher.bootstrap import App
from dispatcher.services.outbox_runner import OutboxRunner
from dispatcher.testing import FakeClock
from tests.services.outbox_senders import HoldingSender, open_app, press, rows
from tests.support.app import HOTLINE


@pytest.fixture
def sms() -> HoldingSender:
    return HoldingSender()


@pytest.fixture
async def app(
    tmp_path: Path, database_url: str, clock: FakeClock, sms: HoldingSender
) -> AsyncIterator[App]:
    async with open_app(
        tmp_path, database_url, clock, sms, request_timeout_s=0.5, max_in_flight=2
    ) as built:
        yield built


async def test_a_hanging_request_holds_only_its_own_number(app: App, sms: HoldingSender) -> None:
    await press(app, "dev-0001")
    await app.escalator.run_due()
    first = (await rows(app))[0].to_number  # sent one at a time, it would hold them all
    sms.hold(lambda m: m.to == first)
    sending = asyncio.create_task(app.outbox.send_due())
    await sms.wait_until_held()
    others = await sms.wait_for_sent(len(HOTLINE) - 1)
    assert {m.to for m in others} == HOTLINE - {first}
    assert not sending.done()
    sms.release()
    assert await sending == len(HOTLINE)
    assert {m.to for m in sms.sent} == HOTLINE


async def test_a_request_without_an_answer_times_out_and_is_retried_within_seconds(
    app: App, sms: HoldingSender, clock: FakeClock
) -> None:
    await press(app, "dev-0001")
    await app.escalator.run_due()
    first = (await rows(app))[0].to_number
    sms.hold(lambda m: m.to == first)  # for ever: only the timeout ends it
    assert await asyncio.wait_for(app.outbox.send_due(), 10) == len(HOTLINE) - 1
    [hung] = [r for r in await rows(app) if r.to_number == first]
    assert hung.status == "pending" and hung.attempts == 1
    assert "no answer from the sms provider in 0.5 s" in hung.error
    assert clock.now() < hung.next_attempt_at <= clock.now() + timedelta(seconds=1)
    sms.release()
    clock.advance(1)
    assert await app.outbox.send_due() == 1
    assert sorted(m.to for m in sms.sent) == sorted(HOTLINE)


async def test_no_more_than_max_in_flight_requests_at_once(app: App, sms: HoldingSender) -> None:
    await press(app, "dev-0001")
    await app.escalator.run_due()
    sms.hold(lambda m: True)
    sending = asyncio.create_task(app.outbox.send_due())
    await sms.wait_until_held(2)
    await asyncio.sleep(0.05)  # room for a third, if the bound did not hold
    assert len(sms.held) == 2
    sms.release()
    assert await sending == len(HOTLINE)
    assert sms.most_in_flight == 2


async def test_the_daemon_loop_claims_only_what_it_has_slots_for(
    app: App, sms: HoldingSender
) -> None:
    await press(app, "dev-0001")
    await app.escalator.run_due()
    sms.hold(lambda m: True)
    runner, stop = OutboxRunner(app.outbox), asyncio.Event()
    running = asyncio.create_task(runner.run(app.send_now, 0.05, stop))
    try:
        await sms.wait_until_held(2)
        await asyncio.sleep(0.05)
        statuses = sorted(r.status for r in await rows(app))
        assert statuses == ["pending", "sending", "sending"]  # the third waits, unclaimed
        sms.release()
        await sms.wait_for_sent(len(HOTLINE))
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    assert {r.status for r in await rows(app)} == {"sent"}
    assert sms.most_in_flight == 2


async def test_a_failed_emergency_is_tried_again_within_five_seconds(
    app: App, sms: HoldingSender, clock: FakeClock
) -> None:
    await press(app, "dev-0001")
    await app.escalator.run_due()
    waits = []
    for _ in range(8):
        sms.fail_next(len(HOTLINE))
        assert await app.outbox.send_due() == 0
        due = max(r.next_attempt_at for r in await rows(app))
        waits.append((due - clock.now()).total_seconds())
        clock.set(due)  # every one of them due again
    assert all(0 < wait <= 5.0 for wait in waits), waits
    assert min(waits[3:]) >= 2.5, waits  # capped at 5 s (jittered), not shrinking
    assert {r.attempts for r in await rows(app)} == {8}
    assert await app.outbox.send_due() == len(HOTLINE)
    assert {m.to for m in sms.sent} == HOTLINE


async def test_a_failed_service_request_still_backs_off_for_minutes(
    app: App, sms: HoldingSender, clock: FakeClock
) -> None:
    await press(app, "dev-0001", "service")
    await app.escalator.run_due()
    for _ in range(9):
        sms.fail_next(10)
        await app.outbox.send_due()
        clock.set(max(r.next_attempt_at for r in await rows(app)))
    sms.fail_next(10)
    await app.outbox.send_due()
    wait = (min(r.next_attempt_at for r in await rows(app)) - clock.now()).total_seconds()
    assert wait >= 150.0  # 300 s scaled by a jitter of at least one half


async def test_an_emergency_leaves_beside_its_numbers_message_in_flight(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    sms = HoldingSender()
    async with open_app(tmp_path, database_url, clock, sms, request_timeout_s=10) as app:
        service = await press(app, "dev-0002", "service", "s1")
        await app.escalator.run_due()
        number = (await rows(app))[0].to_number
        sms.hold(lambda m: m.to == number and service in m.body)
        held = asyncio.create_task(app.outbox.send_due())
        await sms.wait_until_held()

        emergency = await press(app, "dev-0001", "emergency", "e1")
        await app.escalator.run_due()
        assert any(r.to_number == number for r in await rows(app) if r.call_id == emergency)
        another = await press(app, "dev-0003", "service", "s2")
        await app.escalator.run_due()
        await app.outbox.send_due()
        # The emergency did not wait; the other service request for that number does.
        assert [emergency in m.body for m in sms.to(number)] == [True]
        waiting = [r for r in await rows(app) if r.call_id == another and r.to_number == number]
        assert [r.status for r in waiting] == ["pending"]
        sms.release()
        await held
        assert [service in m.body for m in sms.to(number)] == [False, True]
