"""The fleet: end-to-end tests (a ``test`` event, a press in test mode), the morning
report (service, API, CSV), maintenance routing, per-model heartbeat intervals and
supervision across a restart. Fake clock; SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App, http_app
from dispatcher.config import Settings
from dispatcher.core.fleet import Problem
from dispatcher.testing import FakeChannelSender, FakeClock
from tests.services.fleet_data import TECHNICIAN_PHONE, fleet_data
from tests.support.app import built_app, event, settings_for

TOPIC = "eldercall/v1/dev/x/event"
TOKEN = "demo-operator-token"


@pytest.fixture
def fleet_settings(tmp_path: Path, database_url: str) -> Settings:
    return settings_for(
        tmp_path,
        database={"url": database_url},
        data={"dir": str(fleet_data(tmp_path)), "timezone": "Asia/Shanghai"},
        devices={"models": {"ys-200": {"heartbeat_s": 600}}},
    )


@pytest.fixture
async def fleet_app(
    fleet_settings: Settings, clock: FakeClock, fake_sms: FakeChannelSender
) -> AsyncIterator[App]:
    app = await built_app(fleet_settings, clock, fake_sms)
    yield app
    await app.aclose()


async def calls_of(app: App, device: str) -> list[tuple[str, str]]:
    return [
        (c.kind, c.state) for c in await app.operations.list_calls("all") if c.device_id == device
    ]


async def report_rows(app: App) -> dict[str, list[Problem]]:
    assert app.fleet is not None
    return {r.device_id: r.problems for r in (await app.fleet.report()).rows}


async def test_a_test_event_proves_the_device_and_opens_no_call(
    fleet_app: App, clock: FakeClock
) -> None:
    await fleet_app.intake.on_event("dev-0002", TOPIC, event("h1", "heartbeat"))
    assert Problem.NEVER_TESTED in (await report_rows(fleet_app))["dev-0002"]
    ack = await fleet_app.intake.on_event("dev-0002", TOPIC, event("t1", "test"))
    assert ack is not None and ack.result == "ok" and ack.call_id is None
    assert await calls_of(fleet_app, "dev-0002") == []
    await fleet_app.intake.heartbeats.flush()
    assert "dev-0002" not in await report_rows(fleet_app)
    clock.advance(31 * 24 * 3600)  # a month later: not tested (and silent)
    problems = (await report_rows(fleet_app))["dev-0002"]
    assert Problem.NOT_TESTED in problems and Problem.SILENT in problems


async def test_a_press_in_test_mode_is_the_test_and_the_next_press_is_real(
    fleet_app: App, fleet_settings: Settings, clock: FakeClock
) -> None:
    assert fleet_app.fleet is not None
    until = await fleet_app.fleet.start_test_mode("dev-0003", minutes=15)
    assert until == clock.now().replace(microsecond=0) + (until - clock.now())
    # The daemon restarts: test mode is still in force (read back from the links).
    await fleet_app.aclose()
    app = await built_app(fleet_settings, clock)
    try:
        clock.advance(60)
        ack = await app.intake.on_event("dev-0003", TOPIC, event("e1", "emergency"))
        assert ack is not None and ack.result == "ok" and ack.call_id is None
        assert await calls_of(app, "dev-0003") == []
        assert "dev-0003" not in await report_rows(app)
        ack = await app.intake.on_event("dev-0003", TOPIC, event("e2", "emergency"))
        assert ack is not None and ack.call_id is not None  # a real call now
        assert await calls_of(app, "dev-0003") == [("emergency", "open")]
    finally:
        await app.aclose()


async def test_test_mode_runs_out(fleet_app: App, clock: FakeClock) -> None:
    assert fleet_app.fleet is not None
    await fleet_app.fleet.start_test_mode("dev-0004", minutes=10)
    clock.advance(601)
    ack = await fleet_app.intake.on_event("dev-0004", TOPIC, event("e1", "fall"))
    assert ack is not None and ack.call_id is not None


async def test_technical_alerts_go_to_maintenance_on_duty_else_the_hotline(
    fleet_app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    await fleet_app.intake.on_event("dev-0005", TOPIC, event("b1", "battery_low"))
    await fleet_app.escalator.run_due()
    await fleet_app.outbox.send_due()
    assert {m.to for m in fake_sms.sent} == {TECHNICIAN_PHONE}  # Tuesday 10:00
    clock.advance(12 * 3600)  # 22:00: no maintenance on duty
    await fleet_app.intake.on_event("dev-0006", TOPIC, event("b1", "battery_low"))
    await fleet_app.escalator.run_due()
    await fleet_app.outbox.send_due()
    later = {m.to for m in fake_sms.sent[1:]}
    operators = {s.phone for s in fleet_app.directory.staff.values() if s.role == "operator"}
    assert later and TECHNICIAN_PHONE not in later and later <= operators


async def test_a_devices_model_sets_its_interval_told_and_supervised(
    fleet_app: App, clock: FakeClock
) -> None:
    await fleet_app.intake.on_status("dev-0001", b'{"state": "online"}')  # model ys-200
    await fleet_app.intake.on_status("dev-0003", b'{"state": "online"}')  # no model
    async with fleet_app.sessions() as s:
        rows = (await s.execute(select(db.device_outbox))).all()
    told = {r.device_id: json.loads(r.payload)["heartbeat_s"] for r in rows}
    assert told == {"dev-0001": 600, "dev-0003": 3600}
    clock.advance(3 * 600 + 1)
    assert await fleet_app.supervisor.check() == 1  # dev-0001 alone
    assert await calls_of(fleet_app, "dev-0001") == [("technical", "open")]
    clock.advance(3 * 3600)
    assert await fleet_app.supervisor.check() == 1  # now dev-0003


async def test_a_model_set_in_the_registry_is_the_devices_interval_at_once(
    fleet_app: App, clock: FakeClock
) -> None:
    """The model is a field of the device's record: changed through the registry, the
    device is supervised against its model's interval without a restart."""
    admin = fleet_app.directory.staff["zhao-min"]
    await fleet_app.registry.update_device(admin, "dev-0003", {"model": "ys-200"})
    assert fleet_app.registry.model_of("dev-0003") == "ys-200"
    await fleet_app.intake.on_status("dev-0003", b'{"state": "online"}')
    clock.advance(3 * 600 + 1)
    assert await fleet_app.supervisor.check() == 1
    assert await calls_of(fleet_app, "dev-0003") == [("technical", "open")]


async def test_a_device_silent_across_a_restart_is_still_found(
    fleet_settings: Settings, clock: FakeClock
) -> None:
    app = await built_app(fleet_settings, clock)
    await app.intake.on_event("dev-0007", TOPIC, event("h1", "heartbeat"))  # in memory
    await app.intake.heartbeats.flush()  # the daemon's shutdown flush
    await app.aclose()
    clock.advance(2 * 3600)  # down for two hours
    app = await built_app(fleet_settings, clock)
    try:
        assert await app.supervisor.check() == 0
        clock.advance(3600 + 1)
        assert await app.supervisor.check() == 1
        assert await calls_of(app, "dev-0007") == [("technical", "open")]
    finally:
        await app.aclose()


async def test_the_report_over_the_api_as_json_and_as_csv(fleet_app: App, clock: FakeClock) -> None:
    await fleet_app.intake.on_event("dev-0008", TOPIC, event("b1", "battery_low", battery=9))
    transport = httpx.ASGITransport(app=http_app(fleet_app))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        r = await client.get("/api/v1/fleet/report", headers=headers)
        assert r.status_code == 200, r.text
        rows = {row["device_id"]: row["problems"] for row in r.json()["rows"]}
        assert rows["dev-0008"] == ["low_battery", "never_tested"]
        assert rows["dev-0009"] == ["never_seen", "never_tested"]
        r = await client.get("/api/v1/fleet/report", params={"format": "csv"}, headers=headers)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert r.content.startswith(b"\xef\xbb\xbf")
        table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
        assert table[0][0] == "设备编号 Device"
        assert any(row[0] == "dev-0008" and "电量低" in row[1] for row in table[1:])
        r = await client.post("/api/v1/fleet/devices/nobody-9/test-mode", headers=headers)
        assert r.status_code == 404
        r = await client.post(
            "/api/v1/fleet/devices/dev-0009/test-mode", json={"minutes": 5}, headers=headers
        )
        assert r.status_code == 200 and r.json()["until"]
        assert fleet_app.fleet is not None and fleet_app.fleet.test_modes.active(
            "dev-0009", clock.now()
        )
        r = await client.get("/api/v1/fleet/report")
        assert r.status_code == 401
