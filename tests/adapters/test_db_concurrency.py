"""Two dispatchers on one database, racing. On SQLite their transactions serialise
(BEGIN IMMEDIATE); on PostgreSQL they really overlap, and only the row locks
(``FOR UPDATE``, ``SKIP LOCKED``) keep an SMS from leaving twice, a step from firing
twice, or a step from firing after the acknowledgement."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Row, select, text

from devices.protocol import AckResult
from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db import stores as store
from dispatcher.adapters.db.outbox_store import SqlOutboxStore
from dispatcher.adapters.db.transactions import Transactions
from dispatcher.adapters.twilio.delivery_reports import TWILIO_STATUS_ORDER
from dispatcher.bootstrap import App
from dispatcher.core import calls as lifecycle
from dispatcher.core.calls import Outcome
from dispatcher.services.channels import Channels
from dispatcher.services.outbox import SmsOutbox
from dispatcher.testing import FakeChannelSender, FakeClock
from tests.support.app import HOTLINE, built_app, event, settings_for

TOPIC = "eldercall/v1/dev/x/event"
# Step times of the default emergency policy: 0, 60, 180 s, then every 180 s.
STEP_TIMES = [0, 60, 180, 360]


@pytest.fixture
async def twin(app: App, tmp_path: Path, database_url: str, clock: FakeClock) -> AsyncIterator[App]:
    """A second dispatcher on the same database: its own engine, its own SMS sender."""
    built = await built_app(
        settings_for(tmp_path, database={"url": database_url}), clock, FakeChannelSender()
    )
    yield built
    await built.aclose()


async def open_calls(app: App, count: int) -> list[str]:
    ids = []
    for n in range(1, count + 1):
        ack = await app.intake.on_event(f"dev-{n:04d}", TOPIC, event(f"e{n}", "emergency"))
        assert ack is not None and ack.call_id
        ids.append(ack.call_id)
    return ids


async def outbox_rows(app: App) -> list[Row[Any]]:
    async with app.sessions() as s:
        return list(await s.execute(select(db.sms_outbox).order_by(db.sms_outbox.c.id)))


async def someone_waits_for_a_lock(app: App, database_url: str) -> None:
    """Until another transaction is waiting for a row lock (PostgreSQL says so), or a
    moment (SQLite cannot say; there the whole database is the lock)."""
    if not database_url.startswith("postgresql"):
        await asyncio.sleep(0.1)
        return
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(1000):
        async with app.engine.connect() as conn:  # a fresh snapshot of the activity
            if await conn.scalar(waiting):
                return
        await asyncio.sleep(0.01)
    raise AssertionError("nobody waited for the lock")


async def test_two_outboxes_never_send_one_row_twice(
    app: App, twin: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    await open_calls(app, 8)
    assert await app.escalator.run_due() == 8
    queued = await outbox_rows(app)
    assert len(queued) >= 24
    # (to, body) names one row: the body carries the call id, one SMS per person per call.
    assert len({(r.to_number, r.body) for r in queued}) == len(queued)

    other_sms = FakeChannelSender()
    # Small batches: many rounds, each with both claims in flight at once.
    outboxes = [
        SmsOutbox(
            Transactions(sessions, SqlOutboxStore),
            Channels([sms, FakeChannelSender("voice")]),
            clock,
            batch=3,
            status_order=TWILIO_STATUS_ORDER,
        )
        for sessions, sms in ((app.sessions, fake_sms), (twin.sessions, other_sms))
    ]
    rounds = 0
    while sum(await asyncio.gather(*(o.send_due() for o in outboxes))):
        rounds += 1
        assert rounds < 50, "the outboxes never ran dry"

    sent = Counter((m.to, m.body) for m in fake_sms.sent + other_sms.sent)
    assert max(sent.values()) == 1, [k for k, n in sent.items() if n > 1]
    assert sent == Counter((r.to_number, r.body) for r in queued)
    assert fake_sms.sent and other_sms.sent  # both took their share
    after = await outbox_rows(app)
    assert {(r.status, r.attempts) for r in after} == {("sent", 1)}


async def test_a_claim_in_flight_elsewhere_is_skipped_not_waited_for(
    app: App, database_url: str, fake_sms: FakeChannelSender
) -> None:
    first, second = await open_calls(app, 2)
    await app.escalator.run_due()
    rows = await outbox_rows(app)
    firsts = [r.id for r in rows if r.call_id == first]
    seconds = sorted(r.to_number for r in rows if r.call_id == second)

    # Another dispatcher is in the middle of claiming the first call's rows.
    async with app.sessions.begin() as other:
        await other.execute(
            select(db.sms_outbox.c.id)
            .where(db.sms_outbox.c.id.in_(firsts))
            .with_for_update(skip_locked=True)
        )
        sending = asyncio.create_task(app.outbox.send_due())
        if database_url.startswith("postgresql"):
            # SKIP LOCKED: the rows it holds are passed over, not waited for.
            assert await asyncio.wait_for(sending, 10) == len(seconds)
            assert sorted(m.to for m in fake_sms.sent) == seconds
        else:
            # SQLite: one writer at a time; the outbox waits for the other to finish.
            await asyncio.sleep(0.2)
            assert not sending.done() and fake_sms.sent == []
        await other.rollback()  # the other dispatcher gave up its claim
    if not sending.done():
        assert await asyncio.wait_for(sending, 10) == len(rows)
    else:
        assert await app.outbox.send_due() == len(firsts)
    assert sorted(m.to for m in fake_sms.sent) == sorted(r.to_number for r in rows)


async def test_acknowledgements_racing_two_escalators_lose_no_step_and_leave_no_sms(
    app: App, twin: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    calls = await open_calls(app, 6)
    # Which calls two operators acknowledge (both at once) in each round of steps; the
    # last call is never acknowledged and must escalate through every round.
    acked_in_round = [calls[0:2], calls[2:4], calls[4:5], []]
    twin_sms = twin.channels.sender("sms")
    assert isinstance(twin_sms, FakeChannelSender)
    start = clock.now()
    acked: set[str] = set()
    for at, to_ack in zip(STEP_TIMES, acked_in_round, strict=True):
        clock.set(start + timedelta(seconds=at))
        await asyncio.gather(
            app.escalator.run_due(),
            twin.escalator.run_due(),
            *(app.operations.acknowledge(c, "wang-fang", "api") for c in to_ack),
            *(twin.operations.acknowledge(c, "demo-operator", "app") for c in to_ack),
        )
        acked.update(to_ack)
        before = len(fake_sms.sent), len(twin_sms.sent)
        await asyncio.gather(app.outbox.send_due(), twin.outbox.send_due())
        new = fake_sms.sent[before[0] :] + twin_sms.sent[before[1] :]
        late = [m.body for m in new if any(c in m.body for c in acked)]
        assert late == [], "an SMS left for an acknowledged call"

    for index, call_id in enumerate(calls):
        view = await app.operations.get_call(call_id)
        actions = [e.action for e in view.timeline]
        fired = [a for a in actions if a in ("escalated", "step_skipped")]
        # Every step fired once: the count matches the call's own step counter.
        assert len(fired) == view.escalation_step, (call_id, actions)
        steps = Counter((n.step, n.to_number) for n in view.notifications)
        assert all(n == 1 for n in steps.values()), (call_id, steps)  # none queued twice
        if call_id in acked:
            assert actions.count("acknowledged") == 1, actions  # the first ack stands
            # Nothing fired after the acknowledgement, nothing of it is left to send.
            assert "escalated" not in actions[actions.index("acknowledged") :], actions
            assert {n.status for n in view.notifications} <= {"sent", "cancelled"}
            # Acknowledged in round r: the steps of earlier rounds all fired.
            round_ = next(r for r, group in enumerate(acked_in_round) if call_id in group)
            assert round_ <= view.escalation_step <= round_ + 1, (call_id, actions)
        else:
            assert view.state == "open" and view.escalation_step == len(STEP_TIMES), index
            assert {n.status for n in view.notifications} == {"sent"}


async def test_a_press_racing_the_resolution_of_its_call_opens_a_new_call(
    app: App, database_url: str, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    [first] = await open_calls(app, 1)
    now = clock.now()
    async with app.sessions.begin() as operator:
        # An operator resolving the call (as CallOperations does), caught before its commit.
        call = await store.lock_call(operator, first)
        assert call is not None
        resolving = lifecycle.resolve(call, "wang-fang", "api", Outcome.HELPED_BY_PHONE, now)
        await store.record(operator, call, resolving, now)
        await operator.flush()
        # Meanwhile the resident presses again.
        again = event("again", "emergency")
        pressing = asyncio.create_task(app.intake.on_event("dev-0001", TOPIC, again))
        await someone_waits_for_a_lock(app, database_url)
        assert not pressing.done()
    ack = await asyncio.wait_for(pressing, 10)
    # Not joined to the call just resolved (where nobody would ever see it): a new call.
    assert ack is not None and ack.result is AckResult.OK
    assert ack.call_id is not None and ack.call_id != first
    assert (await app.operations.get_call(first)).press_count == 1
    assert (await app.operations.get_call(ack.call_id)).state == "open"
    await app.escalator.run_due()
    await app.outbox.send_due()
    assert {m.to for m in fake_sms.sent} == HOTLINE
    assert all(ack.call_id in m.body for m in fake_sms.sent)
