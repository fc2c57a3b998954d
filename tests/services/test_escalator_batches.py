"""Issue 8: the escalator fires many calls' due steps in one transaction, each call in a
savepoint of its own, alarms first when more are due than one batch; on a real
database (SQLite and PostgreSQL) with a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db.escalator_store import SqlEscalationStore
from dispatcher.adapters.db.transactions import Transactions
from dispatcher.bootstrap import App
from dispatcher.core.calls import Call
from dispatcher.services.escalator import RETRY_FAILED_AFTER, Escalator
from dispatcher.services.notify import OutboxRow
from dispatcher.testing import FakeClock
from tests.support.app import TUESDAY_10AM, built_app, settings_for
from tests.support.app import event as press


def topic(device: str) -> str:
    return f"eldercall/v1/dev/{device}/event"


async def open_calls(app: App, kinds: list[str], first: int = 1) -> list[str]:
    """One call per kind, on devices dev-<first>, dev-<first + 1>..."""
    ids: list[str] = []
    for n, kind in enumerate(kinds, start=first):
        device = f"dev-{n:04d}"
        ack = await app.intake.on_event(device, topic(device), press(f"p{n}", kind))
        assert ack is not None and ack.call_id is not None
        ids.append(ack.call_id)
    return ids


@contextmanager
def commits(app: App) -> Iterator[list[int]]:
    """Counts the database commits made inside the block (the list's length)."""
    seen: list[int] = []

    def count(_conn: Any) -> None:
        seen.append(1)

    event.listen(app.engine.sync_engine, "commit", count)
    try:
        yield seen
    finally:
        event.remove(app.engine.sync_engine, "commit", count)


async def history(app: App, call_ids: list[str]) -> dict[str, Any]:
    """What escalation left of each call: its step, its timeline and its outbox rows."""
    found: dict[str, Any] = {}
    async with app.sessions() as s:
        for call_id in call_ids:
            call = (await s.scalars(select(Call).where(db.calls.c.id == call_id))).one()
            t, o = db.timeline.c, db.sms_outbox.c
            timeline = (
                await s.execute(
                    select(t.at, t.actor, t.action, t.channel, t.detail)
                    .where(t.call_id == call_id)
                    .order_by(t.id)
                )
            ).all()
            outbox = (
                await s.execute(
                    select(o.step, o.timer, o.recipient, o.to_number, o.body, o.reply_code)
                    .where(o.call_id == call_id)
                    .order_by(o.id)
                )
            ).all()
            found[call_id] = (
                call.escalation_step,
                call.next_escalation_at,
                [tuple(r) for r in timeline],
                [tuple(r) for r in outbox],
            )
    return found


def escalator(app: App, clock: FakeClock, **options: Any) -> Escalator:
    """The daemon's escalator; without a time budget unless given one, so that what a
    poll takes depends on the batch size alone, never on the machine's load."""
    options.setdefault("budget_s", None)
    return Escalator(
        Transactions(app.sessions, SqlEscalationStore), app.directory, clock, **options
    )


async def test_a_batch_of_due_calls_fires_in_one_transaction(app: App, clock: FakeClock) -> None:
    calls = await open_calls(app, ["emergency"] * 6)
    batched = escalator(app, clock)
    with commits(app) as done:
        fired = await batched.run_due()
    assert fired == 6 and len(done) == 1
    clock.advance(60)  # step 2 of them all
    with commits(app) as done:
        assert await batched.run_due() == 6
    assert len(done) == 1
    steps = await history(app, calls)
    assert {step for step, *_ in steps.values()} == {2}
    assert all(
        [a for _at, _who, a, *_ in timeline if a == "escalated"] == ["escalated", "escalated"]
        for _s, _n, timeline, _o in steps.values()
    )


@contextmanager
def statements(app: App) -> Iterator[list[str]]:
    """The SQL statements executed inside the block (an executemany counts once)."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement.lstrip())

    event.listen(app.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(app.engine.sync_engine, "before_cursor_execute", count)


@contextmanager
def inserts(app: App) -> Iterator[list[str]]:
    """The tables of the INSERT statements executed inside the block, one per statement."""
    seen: list[str] = []
    with statements(app) as executed:
        yield seen
    seen += [s.split()[2].strip('"') for s in executed if s.upper().startswith("INSERT INTO")]


async def test_a_batch_that_does_not_fail_takes_no_savepoint_per_call(
    app: App, clock: FakeClock
) -> None:
    calls = await open_calls(app, ["emergency"] * 4)
    batched = escalator(app, clock)
    assert await batched.run_due() == 4
    clock.advance(60)
    with statements(app) as executed:
        assert await batched.run_due() == 4
    assert not [s for s in executed if s.upper().startswith("SAVEPOINT")]
    updates = [s for s in executed if s.upper().startswith("UPDATE CALLS")]
    assert len(updates) == 1  # the four calls' new steps, together
    assert {step for step, *_ in (await history(app, calls)).values()} == {2}


async def test_a_batch_writes_its_outbox_rows_and_timeline_in_one_statement_each(
    app: App, clock: FakeClock
) -> None:
    calls = await open_calls(app, ["emergency"] * 4)
    batched = escalator(app, clock)
    assert await batched.run_due() == 4  # step 1: reply numbers given too
    clock.advance(60)
    with inserts(app) as written:
        assert await batched.run_due() == 4
    # (Reply numbers of people new to a call are still given one at a time.)
    assert [t for t in written if t in ("sms_outbox", "timeline")] == ["sms_outbox", "timeline"]
    steps = await history(app, calls)
    assert all({step for step, *_ in outbox} == {0, 1} for *_, outbox in steps.values())
    assert all(
        [a for _at, _who, a, *_ in timeline if a == "escalated"] == ["escalated", "escalated"]
        for _s, _n, timeline, _o in steps.values()
    )


async def test_a_poll_with_nothing_due_takes_no_write_transaction(
    app: App, clock: FakeClock
) -> None:
    await open_calls(app, ["emergency"] * 2)
    batched = escalator(app, clock)
    assert await batched.run_due() == 2
    with commits(app) as done:
        assert await batched.run_due() == 0  # the next step is a minute away
    assert done == []


async def test_batched_steps_are_those_fired_one_call_at_a_time(tmp_path: Path) -> None:
    # The same district, presses and clock twice: one call per transaction (a batch of
    # one, as the escalator fired before issue 8) and all in one; the same calls must
    # come out, step for step: timeline, outbox rows, reply numbers, next due times.
    results = []
    for batch in (1, 200):
        run_clock = FakeClock(TUESDAY_10AM)
        app = await built_app(settings_for(tmp_path / f"batch-{batch}"), run_clock)
        try:
            escalator = Escalator(
                Transactions(app.sessions, SqlEscalationStore),
                app.directory,
                run_clock,
                batch=batch,
            )
            calls = await open_calls(app, ["emergency", "service", "fall", "emergency"])
            for advance in (0, 60, 120, 180, 180):
                run_clock.advance(advance)
                while await escalator.run_due():
                    pass
            results.append(await history(app, calls))
        finally:
            await app.aclose()
    one_at_a_time, batched = results
    assert batched == one_at_a_time
    assert max(step for step, *_ in batched.values()) >= 4  # the steps really ran


class FailingStore(SqlEscalationStore):
    """Inserts a call's outbox rows and then breaks a constraint, for the calls named
    in ``broken``: the database itself refuses, as a real fault would."""

    def __init__(self, session: AsyncSession, broken: set[str]) -> None:
        super().__init__(session)
        self._broken = broken

    async def queue_notifications(self, rows: list[OutboxRow]) -> None:
        await super().queue_notifications(rows)
        if rows and rows[0]["call_id"] in self._broken:
            await self._session.execute(insert(db.sms_outbox).values(call_id=rows[0]["call_id"]))


async def test_a_failing_call_rolls_back_alone_and_is_retried(app: App, clock: FakeClock) -> None:
    calls = await open_calls(app, ["emergency"] * 4)
    broken = {calls[1]}
    escalator = Escalator(
        Transactions(app.sessions, lambda s: FailingStore(s, broken)),
        app.directory,
        clock,
        budget_s=None,
    )
    assert await escalator.run_due() == 3
    steps = await history(app, calls)
    step, due_at, timeline, outbox = steps[calls[1]]
    assert (step, outbox) == (0, [])  # its rows went with its savepoint
    assert due_at is not None and due_at <= clock.now()  # still due
    assert "escalated" not in [action for _at, _who, action, *_ in timeline]
    assert all(steps[c][0] == 1 and steps[c][3] for c in calls if c != calls[1])

    assert await escalator.run_due() == 0  # held back a while, not retried in a loop
    broken.clear()
    clock.advance(RETRY_FAILED_AFTER.total_seconds())
    assert await escalator.run_due() == 1
    step, _due, timeline, outbox = (await history(app, [calls[1]]))[calls[1]]
    assert step == 1 and outbox and "escalated" in [action for _at, _who, action, *_ in timeline]


async def test_alarms_fire_first_when_more_than_a_batch_is_due(app: App, clock: FakeClock) -> None:
    services = await open_calls(app, ["service", "service"])
    clock.advance(30)  # the services are the most overdue; the alarms still go first
    alarms = await open_calls(app, ["fall", "emergency"], first=3)
    polls = escalator(app, clock, batch=2)
    assert await polls.run_due() == 2
    steps = await history(app, services + alarms)
    assert [steps[c][0] for c in services + alarms] == [0, 0, 1, 1]
    assert await polls.run_due() == 2
    steps = await history(app, services + alarms)
    assert [steps[c][0] for c in services + alarms] == [1, 1, 1, 1]


async def test_the_most_overdue_fire_first_among_alike(app: App, clock: FakeClock) -> None:
    first = await open_calls(app, ["emergency"])
    clock.advance(10)
    second = await open_calls(app, ["emergency"], first=2)
    assert await escalator(app, clock, batch=1).run_due() == 1
    steps = await history(app, first + second)
    assert [steps[c][0] for c in first + second] == [1, 0]


async def test_a_poll_stops_taking_calls_when_its_time_is_spent(app: App, clock: FakeClock) -> None:
    # A budget of 0 s is spent after the first call: each poll fires one, in order,
    # and the others stay due for the polls right after (the daemon polls again at once).
    calls = await open_calls(app, ["emergency"] * 3)
    polls = escalator(app, clock, budget_s=0.0)
    fired = []
    while await polls.run_due():
        steps = await history(app, calls)
        fired.append([steps[c][0] for c in calls])
    assert fired == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
