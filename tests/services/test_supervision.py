"""Link supervision: silent or offline devices raise technical alerts; their return
clears them. Fake clock, real SQLite."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App
from dispatcher.testing import FakeClock
from tests.support.app import event

TOPIC = "eldercall/v1/dev/x/event"
HOUR = 3600  # the configured heartbeat interval (default)


async def alerts(app: App) -> list[tuple[str, str, str]]:
    return [(c.device_id, c.detail, c.state) for c in await app.operations.list_calls("all")]


async def test_missed_heartbeats_raise_an_alert_and_a_heartbeat_clears_it(
    app: App, clock: FakeClock
) -> None:
    await app.intake.on_event("dev-0007", TOPIC, event("h1", "heartbeat"))
    clock.advance(3 * HOUR - 1)
    assert await app.supervisor.check() == 0
    clock.advance(2)
    assert await app.supervisor.check() == 1
    assert await app.supervisor.check() == 0  # one alert, not one per check
    [(device, detail, state)] = await alerts(app)
    assert device == "dev-0007" and "heartbeat" in detail and state == "open"

    await app.intake.on_event("dev-0007", TOPIC, event("h2", "heartbeat"))
    [(_, _, state)] = await alerts(app)
    assert state == "resolved"


async def test_offline_beyond_the_grace_period_raises_an_alert_online_clears_it(
    app: App, clock: FakeClock
) -> None:
    await app.intake.on_status("dev-0008", b'{"state": "online"}')
    await app.intake.on_status("dev-0008", b'{"state": "offline"}')
    clock.advance(299)
    assert await app.supervisor.check() == 0
    clock.advance(2)
    assert await app.supervisor.check() == 1
    [(device, detail, state)] = await alerts(app)
    assert device == "dev-0008" and "offline" in detail and state == "open"
    await app.intake.on_status("dev-0008", b'{"state": "online"}')
    assert [a[2] for a in await alerts(app)] == ["resolved"]


async def test_back_within_the_grace_period_raises_nothing(app: App, clock: FakeClock) -> None:
    await app.intake.on_status("dev-0009", b'{"state": "offline"}')
    clock.advance(120)
    await app.intake.on_status("dev-0009", b'{"state": "online"}')
    clock.advance(600)
    assert await app.supervisor.check() == 0
    assert await alerts(app) == []


async def test_unreadable_status_changes_nothing(app: App, clock: FakeClock) -> None:
    await app.intake.on_status("dev-0010", b"offline!!")
    clock.advance(10 * HOUR)
    assert await app.supervisor.check() == 0


async def test_a_retained_status_seen_again_on_resubscribe_is_not_contact(
    app: App, clock: FakeClock
) -> None:
    await app.intake.on_status("dev-0011", b'{"state": "online"}')
    clock.advance(3 * HOUR + 1)
    # The dispatcher restarted and the broker hands it the old retained status again.
    await app.intake.on_status("dev-0011", b'{"state": "online"}', retained=True)
    assert await app.supervisor.check() == 1


async def test_a_device_coming_online_is_told_the_heartbeat_interval(app: App) -> None:
    await app.intake.on_status("dev-0012", b'{"state": "online"}')
    async with app.sessions() as session:
        rows = (await session.execute(select(db.device_outbox))).all()
    assert [(r.device_id, json.loads(r.payload)) for r in rows] == [
        ("dev-0012", {"type": "config", "heartbeat_s": HOUR})
    ]
    await app.intake.on_status("dev-0012", b'{"state": "online"}', retained=True)
    async with app.sessions() as session:
        assert len((await session.execute(select(db.device_outbox))).all()) == 1


async def test_a_heartbeat_arriving_during_the_check_raises_no_alert(
    app: App, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await app.intake.on_event("dev-0013", TOPIC, event("h1", "heartbeat"))
    clock.advance(3 * HOUR + 1)
    raise_alert = app.supervisor._raise

    async def heartbeat_first(device_id: str, key: str, still: Any) -> int:
        # The device is heard between the check's read and its transaction.
        await app.intake.on_event(device_id, TOPIC, event("h2", "heartbeat"))
        return await raise_alert(device_id, key, still)

    monkeypatch.setattr(app.supervisor, "_raise", heartbeat_first)
    assert await app.supervisor.check() == 0
    assert await alerts(app) == []
