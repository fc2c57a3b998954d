"""The intake in batches: one transaction for many events, answers only after it has
committed, one failing event undoing only itself, each device's events in order, and
heartbeats held in memory until flushed. Real database (SQLite and PostgreSQL), fake
clock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from devices.protocol import AckResult, Event
from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db.intake_store import SqlIntakeStore
from dispatcher.bootstrap import App
from dispatcher.services.intake import DeviceMessage, Incoming, StatusMessage
from dispatcher.testing import FakeClock
from tests.support.app import event

HOUR = 3600


def msg(device_id: str, ref: str, type_: str, **fields: Any) -> DeviceMessage:
    topic = f"eldercall/v1/dev/{device_id}/event"
    return DeviceMessage.read(device_id, topic, event(ref, type_, **fields))


@contextmanager
def commits(app: App) -> Iterator[list[str]]:
    """Every COMMIT the engine makes while the block runs ("commit" per transaction)."""
    seen: list[str] = []

    def on_commit(_conn: Any) -> None:
        seen.append("commit")

    sa_event.listen(app.engine.sync_engine, "commit", on_commit)
    try:
        yield seen
    finally:
        sa_event.remove(app.engine.sync_engine, "commit", on_commit)


async def count(app: App, table: Any, *where: Any) -> int:
    async with app.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(table).where(*where)) or 0)


async def test_a_batch_from_many_devices_is_one_transaction(app: App) -> None:
    batch: list[Incoming] = [msg(f"dev-{n:04d}", f"e{n}", "emergency") for n in range(1, 41)]
    batch += [msg(f"base-{n}", f"p{n}", "power_restored") for n in range(40)]
    with commits(app) as seen:
        answers = await app.intake.on_batch(batch)
    assert seen == ["commit"]
    assert [a.result if a else None for a in answers] == [AckResult.OK] * 80
    call_ids = {a.call_id for a in answers[:40] if a}
    assert len(call_ids) == 40 and None not in call_ids
    assert await count(app, db.events) == 80
    assert await count(app, db.calls) == 40


async def test_no_answer_before_the_commit_and_none_when_it_fails(app: App) -> None:
    """The answers come back only from a committed transaction: when the commit fails,
    the batch raises (nothing answered, nothing acknowledged) and nothing is stored."""

    def failing_commit(_conn: Any) -> None:
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    sa_event.listen(app.engine.sync_engine, "commit", failing_commit)
    try:
        with pytest.raises(OperationalError):
            await app.intake.on_batch([msg("dev-0001", "x1", "emergency"), msg("b", "y", "fall")])
    finally:
        sa_event.remove(app.engine.sync_engine, "commit", failing_commit)
    assert await count(app, db.events) == 0
    assert await count(app, db.calls) == 0
    # Delivered again, the same events are new, not duplicates.
    answers = await app.intake.on_batch([msg("dev-0001", "x1", "emergency")])
    assert [a.result for a in answers if a] == [AckResult.OK]


async def test_one_failing_event_does_not_stop_the_others(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    insert_event = SqlIntakeStore.insert_event

    async def fails_on_bad(store: SqlIntakeStore, device_id: str, ev: Event, *a: Any) -> None:
        if ev.ref == "bad":
            raise RuntimeError("a bug of ours")
        await insert_event(store, device_id, ev, *a)

    monkeypatch.setattr(SqlIntakeStore, "insert_event", fails_on_bad)
    batch: list[Incoming] = [
        msg("dev-0001", "good1", "emergency"),
        msg("dev-0002", "bad", "emergency"),
        msg("dev-0003", "good2", "service"),
    ]
    with commits(app) as seen:
        first, failed, last = await app.intake.on_batch(batch)
    assert seen == ["commit"]
    assert first is not None and first.result is AckResult.OK and first.call_id
    assert last is not None and last.result is AckResult.OK and last.call_id
    assert failed is None  # unanswered: the device sends it again
    # The failing event's call was rolled back with it; it is recorded as rejected.
    calls = await app.operations.list_calls("all")
    assert sorted(c.device_id for c in calls) == ["dev-0001", "dev-0003"]
    async with app.sessions() as s:
        [rejected] = (await s.execute(select(db.rejected_messages))).all()
    assert rejected.device_id == "dev-0002" and "a bug of ours" in rejected.reason
    assert b'"bad"' in rejected.raw


async def test_each_devices_events_are_applied_in_the_order_given(app: App) -> None:
    """Press, cancel, press again within one batch: the second press reopens the call the
    cancel stopped (in any other order the call would end cancelled)."""
    batch: list[Incoming] = [
        msg("dev-0001", "a1", "emergency"),
        msg("dev-0002", "b1", "service"),
        msg("dev-0001", "a2", "cancel"),
        msg("dev-0001", "a1", "emergency"),  # a resend of the first press
        msg("dev-0002", "b2", "emergency"),  # joins b1's call and raises it
        msg("dev-0001", "a3", "emergency"),
    ]
    a1, b1, a2, resend, b2, a3 = await app.intake.on_batch(batch)
    assert a1 and a2 and resend and b1 and b2 and a3
    assert a2.call_id == a1.call_id and a2.result is AckResult.OK
    assert resend.result is AckResult.DUPLICATE and resend.call_id == a1.call_id
    assert a3.result is AckResult.OK and a3.call_id == a1.call_id
    assert b2.call_id == b1.call_id
    assert a1.call_id is not None and b1.call_id is not None
    call = await app.operations.get_call(a1.call_id)
    assert call.state == "open" and call.press_count == 2
    actions = [e.action for e in call.timeline if e.actor == "device"]
    assert actions.index("cancel_pressed") < len(actions) - 1  # a press came after it
    assert (await app.operations.get_call(b1.call_id)).priority == "critical"


async def test_heartbeats_are_held_in_memory_until_flushed(app: App, clock: FakeClock) -> None:
    batch: list[Incoming] = [
        msg(f"dev-{n:04d}", f"h{n}", "heartbeat", battery=50 + n) for n in range(1, 11)
    ]
    with commits(app) as seen:
        assert await app.intake.on_batch(batch) == [None] * 10
    assert seen == []  # no transaction at all
    assert await count(app, db.device_links) == 0
    with commits(app) as seen:
        assert await app.intake.heartbeats.flush() == 10
    assert seen == ["commit"]
    async with app.sessions() as s:
        rows = (
            await s.execute(select(db.device_links).order_by(db.device_links.c.device_id))
        ).all()
    assert [(r.device_id, r.battery, r.status) for r in rows] == [
        (f"dev-{n:04d}", 50 + n, "online") for n in range(1, 11)
    ]
    assert {r.last_seen_at for r in rows} == {clock.now()}
    assert await app.intake.heartbeats.flush() == 0  # nothing new


async def test_supervision_sees_heartbeats_still_in_memory(app: App, clock: FakeClock) -> None:
    await app.intake.on_batch(
        [msg("dev-0001", "h1", "heartbeat"), msg("dev-0002", "h1", "heartbeat")]
    )
    clock.advance(3 * HOUR - 1)
    await app.intake.on_batch([msg("dev-0001", "h2", "heartbeat")])  # not flushed yet
    clock.advance(2)
    assert await app.supervisor.check() == 1
    [alert] = await app.operations.list_calls()
    assert alert.device_id == "dev-0002" and alert.kind == "technical"
    # Its next heartbeat closes the alert at once, without waiting for a flush.
    with commits(app) as seen:
        await app.intake.on_batch([msg("dev-0002", "h2", "heartbeat")])
    assert seen == ["commit"]
    assert (await app.operations.get_call(alert.call_id)).state == "resolved"
    # ... and the one after it is memory only again.
    with commits(app) as seen:
        await app.intake.on_batch([msg("dev-0002", "h3", "heartbeat")])
    assert seen == []


async def test_a_status_after_a_heartbeat_is_not_undone_by_the_flush(
    app: App, clock: FakeClock
) -> None:
    """The Last Will's offline, written in order, stays offline when the older heartbeat
    held in memory is flushed after it."""
    await app.intake.on_batch([msg("dev-0009", "h1", "heartbeat", battery=77)])
    clock.advance(1)
    await app.intake.on_batch([StatusMessage("dev-0009", b'{"state": "offline"}')])
    await app.intake.heartbeats.flush()
    async with app.sessions() as s:
        link = (await s.execute(select(db.device_links))).one()
    assert (link.status, link.battery, link.last_seen_at) == ("offline", 77, clock.now())
    clock.advance(301)
    assert await app.supervisor.check() == 1  # the offline alert


@contextmanager
def statements(app: App) -> Iterator[list[str]]:
    """The first word and table of every statement the engine runs (BEGIN left out)."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        words = sql.split()
        if words[0] == "SELECT":
            seen.append("SELECT")
        elif words[0] in ("INSERT", "UPDATE"):
            seen.append(f"{words[0]} {words[2] if words[0] == 'INSERT' else words[1]}")

    sa_event.listen(app.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        sa_event.remove(app.engine.sync_engine, "before_cursor_execute", before)


@pytest.mark.parametrize("devices", [1, 100])
async def test_new_calls_cost_one_statement_per_table_whatever_the_batch(
    app: App, devices: int
) -> None:
    """The batch's stored events and open calls are one query; its new calls, their
    timelines, device messages and events one insert each (not one per message)."""
    await app.intake.on_batch([msg("dev-0001", "warm", "service")])  # the day's sequence
    batch: list[Incoming] = [msg(f"new-{n:04d}", f"e{n}", "emergency") for n in range(devices)]
    with statements(app) as seen:
        answers = await app.intake.on_batch(batch)
    assert all(a is not None and a.result is AckResult.OK for a in answers)
    assert seen == [
        "SELECT",
        "INSERT call_sequences",
        "INSERT calls",
        "INSERT timeline",
        "INSERT device_outbox",
        "INSERT events",
    ]
    assert await count(app, db.calls) == devices + 1
