"""An alarm is never refused for a detail (issue #10): an ``emergency`` or ``fall`` with
a usable ``ref`` and a bad optional field opens (or joins) its call, answered ``ok``,
the bad field named on the call's timeline; a non-alarm with the same field is
answered ``invalid`` and opens nothing. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from devices.protocol import AckResult
from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App
from tests.support.app import event


def topic(device_id: str) -> str:
    return f"eldercall/v1/dev/{device_id}/event"


async def rejected_count(app: App) -> int:
    async with app.sessions() as s:
        return await s.scalar(select(func.count()).select_from(db.rejected_messages)) or 0


async def stored(app: App, device_id: str, ref: str) -> Any:
    async with app.sessions() as s:
        query = select(db.events).where(db.events.c.device_id == device_id, db.events.c.ref == ref)
        return (await s.execute(query)).one()


def dropped_lines(timeline: list[Any]) -> list[str]:
    return [e.detail for e in timeline if e.action == "fields_dropped"]


async def test_an_emergency_with_a_bad_battery_and_clock_opens_its_call(app: App) -> None:
    payload = event("e1", "emergency", battery=150, ts="yesterday", rssi=-70)
    ack = await app.intake.on_event("dev-0001", topic("dev-0001"), payload)
    assert ack is not None and ack.result is AckResult.OK and ack.call_id and ack.error is None

    call = await app.operations.get_call(ack.call_id)
    assert call.kind == "emergency" and call.state == "open" and call.device_id == "dev-0001"
    [line] = dropped_lines(call.timeline)
    assert "battery 150: " in line and 'ts "yesterday": ' in line and "rssi" not in line
    # Stored without the bad fields, the good one kept, the raw payload as sent.
    row = await stored(app, "dev-0001", "e1")
    assert row.battery is None and row.device_ts is None and row.rssi == -70
    assert row.payload == payload.decode()
    assert await rejected_count(app) == 0
    # A resend is the same call, as for any alarm.
    again = await app.intake.on_event("dev-0001", topic("dev-0001"), payload)
    assert again is not None and again.result is AckResult.DUPLICATE
    assert again.call_id == ack.call_id


async def test_a_fall_that_joins_an_open_call_notes_its_bad_field_there(app: App) -> None:
    first = await app.intake.on_event("dev-0002", topic("dev-0002"), event("s1", "service"))
    assert first is not None and first.result is AckResult.OK and first.call_id
    fall = event("f1", "fall", fw=["not", "a", "string"])
    ack = await app.intake.on_event("dev-0002", topic("dev-0002"), fall)
    assert ack is not None and ack.result is AckResult.OK and ack.call_id == first.call_id
    call = await app.operations.get_call(ack.call_id)
    assert call.kind == "fall"  # raised from the service request, as any fall would
    [line] = dropped_lines(call.timeline)
    assert line.startswith('fw ["not", "a", "string"]: ')


async def test_a_non_alarm_with_a_bad_optional_field_is_still_invalid(app: App) -> None:
    # Four: a fifth within the hour would (rightly) raise a technical alert.
    for n, kind in enumerate(("service", "cancel", "presence", "power_lost")):
        ack = await app.intake.on_event(
            "dev-0003", topic("dev-0003"), event(f"n{n}", kind, battery=150)
        )
        assert ack is not None and ack.result is AckResult.INVALID, kind
        assert ack.call_id is None and "battery" in (ack.error or "")
    assert await app.operations.list_calls("all") == []
    assert await rejected_count(app) == 4


async def test_an_alarm_without_a_usable_ref_or_type_is_refused_as_before(app: App) -> None:
    no_ref = b'{"type": "emergency", "battery": 150}'
    assert await app.intake.on_event("dev-0004", topic("dev-0004"), no_ref) is None
    typo = event("t1", "emergncy", battery=150)
    ack = await app.intake.on_event("dev-0004", topic("dev-0004"), typo)
    assert ack is not None and ack.result is AckResult.INVALID and "type" in (ack.error or "")
    assert await app.operations.list_calls("all") == []
    assert await rejected_count(app) == 2
