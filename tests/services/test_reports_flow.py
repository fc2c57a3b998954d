"""Service levels end to end in-process: calls opened by the intake on a real database
(SQLite and PostgreSQL), answered through the service layer at set times on the fake
clock, and the figures read back through the REST API; and the migration that fills
in the answers of calls stored before it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import select, text, update
from sqlalchemy.engine import Connection

from dispatcher.adapters.db import migrate
from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App, http_app
from dispatcher.core.calls import Outcome
from dispatcher.core.escalation import EMERGENCY
from dispatcher.testing import FakeClock
from tests.support.app import TUESDAY_10AM, event

AUTH = {"Authorization": "Bearer demo-operator-token"}


@pytest.fixture
async def api(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=http_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c


async def press(app: App, device: str, kind: str = "emergency") -> str:
    ack = await app.intake.on_event(
        device, f"eldercall/v1/dev/{device}/event", event(f"{device}-{kind}", kind)
    )
    assert ack is not None and ack.call_id is not None
    return ack.call_id


def at(clock: FakeClock, seconds: int) -> None:
    clock.set(TUESDAY_10AM + timedelta(seconds=seconds))


def summary(figures: dict[str, Any]) -> tuple[Any, ...]:
    sixty, one_eighty = figures["targets"]
    return (
        figures["calls"],
        figures["answered"],
        figures["unanswered"],
        (sixty["within"], sixty["missed"], sixty["pending"], sixty["met"]),
        (one_eighty["within"], one_eighty["missed"], one_eighty["pending"], one_eighty["met"]),
        figures["median_s"],
        figures["p90_s"],
    )


async def test_answer_times_through_the_api(
    app: App, clock: FakeClock, api: httpx.AsyncClient
) -> None:
    ops = app.operations
    a = await press(app, "dev-0001")
    b = await press(app, "dev-0002", "fall")
    c = await press(app, "dev-0003")
    d = await press(app, "dev-0004")
    e = await press(app, "dev-0005", "service")
    await press(app, "dev-0006")  # nobody answers it
    await press(app, "dev-0007", "battery_low")  # a technical alert, nobody answers it

    at(clock, 30)
    await ops.acknowledge(a, "demo-operator", "api")  # district hotline, 30 s
    at(clock, 45)
    # a false alarm closed without an acknowledgement: the resolve is the answer
    await ops.resolve(d, "zhao-min", "api", Outcome.FALSE_ALARM)
    at(clock, 90)
    await ops.acknowledge(b, "huang-lei", "cli")  # c-lh community duty, 90 s
    at(clock, 100)
    await ops.escalate_now(a, "demo-operator", "sms")  # given back ...
    at(clock, 120)
    await ops.acknowledge(a, "wang-fang", "api")  # ... and taken again: A stays at 30 s
    at(clock, 150)
    await ops.acknowledge(e, "contact:r-0005:1", "sms")  # the son, by an SMS reply
    at(clock, 170)
    await press(app, "dev-0008")  # 30 s old at the report: judged for neither target
    at(clock, 200)
    await ops.acknowledge(c, "sun-li", "api")  # s-hx street supervisor, 200 s

    async with app.sessions() as s:
        rows = await s.execute(
            select(
                db.calls.c.id,
                db.calls.c.answered_at,
                db.calls.c.answered_by,
                db.calls.c.answered_channel,
                db.calls.c.answered_level,
            ).where(db.calls.c.id.in_([a, e]))
        )
        recorded = {r.id: tuple(r[1:]) for r in rows}
    assert recorded == {
        a: (TUESDAY_10AM + timedelta(seconds=30), "demo-operator", "api", "district"),
        e: (TUESDAY_10AM + timedelta(seconds=150), "contact:r-0005:1", "sms", "family"),
    }

    r = await api.get("/api/v1/reports/answer-times", params={"since": "2026-11-24"}, headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["since"] == "2026-11-24T00:00:00+08:00"  # naive: the data time zone
    assert body["until"] == body["now"] == "2026-11-24T10:03:20+08:00"
    assert body["timezone"] == "Asia/Shanghai"
    # A 30, D 45, B 90, E 150, C 200; the unanswered one at 200 s missed both targets.
    assert summary(body["overall"]) == (
        7,
        5,
        2,
        (2, 4, 1, False),
        (4, 2, 1, False),
        90,
        200,
    )
    assert body["overall"]["targets"][0]["pct"] == 33.33
    assert body["overall"]["targets"][1]["pct"] == 66.67
    levels = {g["key"]: summary(g) for g in body["by_level"]}
    assert levels == {
        "community": (1, 1, 0, (0, 1, 0, False), (1, 0, 0, True), 90, 90),
        "street": (1, 1, 0, (0, 1, 0, False), (0, 1, 0, False), 200, 200),
        "district": (2, 2, 0, (2, 0, 0, True), (2, 0, 0, True), 37.5, 45),
        "family": (1, 1, 0, (0, 1, 0, False), (1, 0, 0, True), 150, 150),
    }
    operators = [(g["key"], g["name"], g["level"], g["calls"]) for g in body["by_operator"]]
    assert operators == [
        ("huang-lei", "黄磊", "community", 1),
        ("sun-li", "孙丽", "street", 1),
        ("demo-operator", "演示值班员", "district", 1),
        ("zhao-min", "赵敏", "district", 1),
        ("contact:r-0005:1", "陈磊 (儿子 of 陈国强)", "family", 1),
    ]
    kinds = {g["key"]: (g["calls"], g["answered"], g["unanswered"]) for g in body["by_kind"]}
    assert kinds == {"emergency": (5, 3, 2), "fall": (1, 1, 0), "service": (1, 1, 0)}
    channels = {g["key"]: g["calls"] for g in body["by_channel"]}
    assert channels == {"api": 3, "cli": 1, "sms": 1}
    assert summary(body["technical"]) == (
        1,
        0,
        1,
        (0, 1, 0, False),
        (0, 1, 0, False),
        None,
        None,
    )

    # A period that ends before the last calls opened leaves them out.
    r = await api.get(
        "/api/v1/reports/answer-times",
        params={"since": "2026-11-24T10:00:00+08:00", "until": "2026-11-24T10:02:00"},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    assert r.json()["overall"]["calls"] == 6

    # Calls stored before the level and channel were recorded are still reported.
    async with app.sessions.begin() as s:
        await s.execute(
            update(db.calls)
            .where(db.calls.c.id == c)
            .values(answered_level=None, answered_channel=None)
        )
    r = await api.get("/api/v1/reports/answer-times", params={"since": "2026-11-24"}, headers=AUTH)
    body = r.json()
    assert {g["key"]: g["calls"] for g in body["by_level"]}["street"] == 1
    assert {g["key"]: g["calls"] for g in body["by_channel"]} == {
        "api": 2,
        "cli": 1,
        "sms": 1,
        "unknown": 1,
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "query parameter since: Field required"),
        ({"since": "last week"}, "query parameter since: Input should be a valid datetime"),
        ({"since": "2026-11-24", "until": "2026-11-24"}, "since must be before until"),
        ({"since": "0001-01-01"}, "query parameter since: the year must be"),
    ],
)
async def test_a_bad_period_is_422(
    api: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    r = await api.get("/api/v1/reports/answer-times", params=params, headers=AUTH)
    assert r.status_code == 422
    assert message in r.json()["error"]


async def test_the_report_needs_a_token(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/v1/reports/answer-times", params={"since": "2026-11-24"})
    assert r.status_code == 401


async def test_the_migration_fills_in_calls_answered_before_it(
    empty_database_url: str,
) -> None:
    engine = db.make_engine(empty_database_url)
    opened = datetime(2026, 11, 20, 2, 0)  # naive UTC, as the database keeps times

    def upgrade(connection: Connection, to: str) -> None:
        command.upgrade(migrate.alembic_config(connection), to)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0002")
            for call_id, acked_by in (("C-old-1", "huang-lei"), ("C-old-2", None)):
                await conn.execute(
                    text(
                        "INSERT INTO calls (id, device_id, kind, priority, state, opened_at,"
                        " policy, escalation_started_at, escalation_step, unknown_device,"
                        " press_count, detail, acknowledged_at, acknowledged_by)"
                        " VALUES (:id, 'dev-0002', 'emergency', 'critical', :state, :opened,"
                        " :policy, :opened, 1, false, 1, '', :acked_at, :acked_by)"
                    ),
                    {
                        "id": call_id,
                        "state": "acknowledged" if acked_by else "open",
                        "opened": opened,
                        "policy": json.dumps(EMERGENCY.to_json()),
                        "acked_at": opened + timedelta(seconds=75) if acked_by else None,
                        "acked_by": acked_by,
                    },
                )
            await conn.execute(
                text(
                    "INSERT INTO timeline (call_id, at, actor, action, channel, detail) VALUES"
                    " ('C-old-1', :opened, 'device', 'opened', 'mqtt', ''),"
                    " ('C-old-1', :acked, 'huang-lei', 'acknowledged', 'cli', '')"
                ),
                {"opened": opened, "acked": opened + timedelta(seconds=75)},
            )
            await conn.run_sync(upgrade, "head")
            t = db.calls.c
            rows = await conn.execute(
                select(
                    t.id, t.answered_at, t.answered_by, t.answered_channel, t.answered_level
                ).order_by(t.id)
            )
            found = [tuple(r) for r in rows]
    finally:
        await engine.dispose()
    answered_at = (opened + timedelta(seconds=75)).replace(tzinfo=UTC)
    assert found == [
        ("C-old-1", answered_at, "huang-lei", "cli", None),
        ("C-old-2", None, None, None, None),
    ]
