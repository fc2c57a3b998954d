"""Every answerable input is answered, on SQLite and on PostgreSQL.

The hostile corpus (tests/support/fuzz.py) through the intake onto a real database:
each payload ends as a stored event answered ``ok``, or as a stored (capped)
rejection with the protocol's answer; never as an exception. And the limits the
validator keeps are those of the schema's columns, fuzzed at and just over them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import String, func, select

from devices.protocol import AckResult
from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db.intake_store import RAW_KEPT_BYTES
from dispatcher.bootstrap import App
from tests.support.app import event
from tests.support.fuzz import CORPUS, OFFSET_SECONDS_TS, Case


def topic(device_id: str) -> str:
    return f"eldercall/v1/dev/{device_id}/event"


def length(column: Any) -> int:
    """The declared size of a String column (what PostgreSQL enforces)."""
    assert isinstance(column.type, String) and column.type.length, column
    return int(column.type.length)


async def counts(app: App) -> tuple[int, int]:
    async with app.sessions() as s:
        events = await s.scalar(select(func.count()).select_from(db.events))
        rejected = await s.scalar(select(func.count()).select_from(db.rejected_messages))
    return events or 0, rejected or 0


async def last_rejected(app: App) -> Any:
    async with app.sessions() as s:
        query = select(db.rejected_messages).order_by(db.rejected_messages.c.id.desc())
        return (await s.execute(query.limit(1))).one()


async def stored_event(app: App, device_id: str, ref: str) -> Any:
    async with app.sessions() as s:
        query = select(db.events).where(db.events.c.device_id == device_id, db.events.c.ref == ref)
        return (await s.execute(query)).one()


async def dropped_notes(app: App) -> list[str]:
    """Every ``fields_dropped`` line on every call's timeline, oldest first."""
    async with app.sessions() as s:
        query = (
            select(db.timeline.c.detail)
            .where(db.timeline.c.action == "fields_dropped")
            .order_by(db.timeline.c.id)
        )
        return list((await s.scalars(query)).all())


async def check_case(app: App, device_id: str, case: Case) -> None:
    before = await counts(app)
    notes_before = await dropped_notes(app)
    ack = await app.intake.on_event(device_id, topic(device_id), case.payload)
    events, rejected = await counts(app)
    notes = await dropped_notes(app)
    # Only an alarm with bad optional fields has them noted on its call, each named.
    if case.dropped:
        assert len(notes) == len(notes_before) + 1, case.name
        named = [part.split(" ", 1)[0] for part in notes[-1].split("; ")]
        assert sorted(named) == sorted(case.dropped), (case.name, notes[-1])
    else:
        assert notes == notes_before, case.name
    if case.outcome == "ok":
        assert ack is not None and ack.result is AckResult.OK, (case.name, ack)
        assert ack.ref == case.ref and ack.call_id, case.name
        assert (events, rejected) == (before[0] + 1, before[1]), case.name
        row = await stored_event(app, device_id, ack.ref)
        assert row.call_id == ack.call_id
        if row.device_ts is not None:
            assert len(row.device_ts) <= length(db.events.c.device_ts), case.name
        return
    assert (events, rejected) == (before[0], before[1] + 1), case.name
    row = await last_rejected(app)
    assert row.raw == case.payload[:RAW_KEPT_BYTES], case.name
    assert row.raw_length == len(case.payload), case.name
    assert row.raw_sha256 == hashlib.sha256(case.payload).hexdigest(), case.name
    assert row.reason and row.device_id == device_id, case.name
    if case.outcome == "invalid":
        assert ack is not None and ack.result is AckResult.INVALID, (case.name, ack)
        assert ack.ref == case.ref and ack.error and ack.call_id is None, case.name
        assert row.ref == case.ref and row.answered, case.name
    else:
        assert ack is None, (case.name, ack)
        assert row.ref is None and not row.answered, case.name


async def test_every_input_of_the_corpus_is_stored_and_answered_as_the_protocol_says(
    app: App,
) -> None:
    # One device per case: five rejections from one device would (rightly) open an alert.
    for n, case in enumerate(CORPUS):
        await check_case(app, f"fuzz-{n:03d}", case)
    # Bad input changed nothing else: the only calls are those the good events opened.
    calls = await app.operations.list_calls("all")
    assert len(calls) == sum(c.outcome == "ok" for c in CORPUS)
    assert {c.kind for c in calls} == {"emergency", "fall"}


async def test_the_whole_corpus_from_one_device_then_an_emergency_opens_its_call(
    app: App,
) -> None:
    for case in CORPUS:
        await check_case(app, "fuzz-one", case)
    ack = await app.intake.on_event("fuzz-one", topic("fuzz-one"), event("after", "emergency"))
    assert ack is not None and ack.result is AckResult.OK and ack.call_id
    # The device that kept sending garbage is looked at, and its emergency is a call.
    kinds = {c.kind for c in await app.operations.list_calls("all")}
    assert kinds == {"emergency", "technical"}


async def test_stored_fields_fit_their_columns_at_and_over_the_limits(app: App) -> None:
    ref_max = length(db.events.c.ref)
    fw_max = length(db.events.c.fw)
    device_max = length(db.events.c.device_id)
    assert length(db.rejected_messages.c.ref) >= ref_max
    at_the_limit = [
        event("r" * ref_max, "emergency"),
        event("fw-at", "emergency", fw="f" * fw_max),
        event("fw-ctl", "emergency", fw="f" * fw_max + "\x1b\x00"),  # cleaned, then fits
        event("ts-at", "emergency", ts=OFFSET_SECONDS_TS),
    ]
    device_id = "d" * device_max
    for n, payload in enumerate(at_the_limit):
        ack = await app.intake.on_event(device_id, topic(device_id), payload)
        assert ack is not None and ack.result is AckResult.OK, (n, ack)
        row = await stored_event(app, device_id, ack.ref)
        assert row.fw is None or len(row.fw) <= fw_max
        assert row.device_ts is None or len(row.device_ts) <= length(db.events.c.device_ts)
    stored = await stored_event(app, device_id, "ts-at")
    assert stored.device_ts == "2026-11-24T01:59:30.000000+00:00"

    over = await app.intake.on_event("d-over", topic("d-over"), event("r" * (ref_max + 1), "fall"))
    assert over is None
    # A firmware string one over: a fall is taken without it, a service request refused.
    fw_over = event("fw-over", "fall", fw="f" * (fw_max + 1))
    answer = await app.intake.on_event("d-over", topic("d-over"), fw_over)
    assert answer is not None and answer.result is AckResult.OK and answer.call_id
    assert (await stored_event(app, "d-over", "fw-over")).fw is None
    fw_over = event("fw-over-s", "service", fw="f" * (fw_max + 1))
    answer = await app.intake.on_event("d-over-s", topic("d-over-s"), fw_over)
    assert (
        answer is not None and answer.result is AckResult.INVALID and "fw" in (answer.error or "")
    )

    # What no device topic can carry still reaches the table, cut to its columns.
    long_topic = "x" * (length(db.rejected_messages.c.topic) + 50)
    long_device = "\x1b" + "y" * (length(db.rejected_messages.c.device_id) + 50)
    await app.intake.on_unhandled(long_device, long_topic, b"\x00" * 10, "reason\x00\x1b[2J")
    row = await last_rejected(app)
    assert len(row.topic) == length(db.rejected_messages.c.topic)
    assert row.device_id == "y" * length(db.rejected_messages.c.device_id)
    assert row.reason == "reason[2J" and row.raw == b"\x00" * 10


async def test_a_16_mb_rejection_keeps_its_first_4_kib_with_length_and_digest(app: App) -> None:
    payload = json.dumps({"ref": "big", "type": "emergency", "pad": "z" * (16 << 20)}).encode()
    ack = await app.intake.on_event("d-big", topic("d-big"), payload)
    assert (
        ack is not None
        and ack.result is AckResult.INVALID
        and "more than 4096" in (ack.error or "")
    )
    row = await last_rejected(app)
    assert row.raw == payload[:RAW_KEPT_BYTES] and len(row.raw) == 4096
    assert row.raw_length == len(payload)
    assert row.raw_sha256 == hashlib.sha256(payload).hexdigest()


async def test_the_corpus_on_the_status_topic_changes_nothing(app: App) -> None:
    """No corpus payload is a status: each is logged and dropped, and the device's
    link is not touched (an unreadable status says nothing about the device)."""
    for case in CORPUS:
        await app.intake.on_status("fuzz-status", case.payload)
    async with app.sessions() as s:
        links = await s.scalar(
            select(func.count())
            .select_from(db.device_links)
            .where(db.device_links.c.device_id == "fuzz-status")
        )
    assert links == 0
