"""``/health/live``, ``/health/ready`` and ``/health/engine`` as bootstrap wires them,
without a token: against a real SQLite database (made unreachable by taking its folder
away), a real Mosquitto, and the real poll loop of ``bootstrap.run`` on the fake clock."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devices.protocol import Topics
from dispatcher.adapters.metrics.scrape import CACHE_S
from dispatcher.bootstrap import ESCALATOR, OUTBOX, App, run
from dispatcher.testing import FakeClock
from simulator.broker import MosquittoProcess
from tests.support.app import built_app, event, settings_for
from tests.support.broker import mqtt_client, next_message
from tests.support.scrape import http_client, scrape


@pytest.fixture
async def lone_app(tmp_path: Path, clock: FakeClock) -> AsyncIterator[App]:
    """The daemon on SQLite in a folder of its own (which a test may take away), its
    broker a loopback port nobody listens on."""
    settings = settings_for(
        tmp_path, database={"url": f"sqlite+aiosqlite:///{tmp_path / 'db' / 'eldercall.db'}"}
    )
    app = await built_app(settings, clock)
    yield app
    await app.aclose()


async def test_live_answers(lone_app: App) -> None:
    async with http_client(lone_app) as client:
        r = await client.get("/health/live")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_not_ready_before_the_gateway_is_connected(lone_app: App) -> None:
    async with http_client(lone_app) as client:
        r = await client.get("/health/ready")
    assert r.status_code == 503
    body = r.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["mqtt"] != "ok"
    assert "mqtt" in body["error"] and "database" not in body["error"]


async def test_ready_with_the_broker_and_not_once_the_database_is_gone(
    tmp_path: Path, clock: FakeClock, mosquitto: MosquittoProcess, topic_root: str
) -> None:
    folder = tmp_path / "db"
    settings = settings_for(
        tmp_path,
        mqtt={"url": mosquitto.url, "topic_root": topic_root},
        database={"url": f"sqlite+aiosqlite:///{folder / 'eldercall.db'}"},
    )
    app = await built_app(settings, clock)
    stop = asyncio.Event()
    gateway = asyncio.create_task(app.mqtt.run(stop))
    try:
        await asyncio.wait_for(app.mqtt.connected.wait(), 10)
        topics = Topics(topic_root)
        async with mqtt_client(mosquitto.url) as device:
            await device.subscribe(topics.ack("dev-0001"), qos=1)
            await device.publish(topics.event("dev-0001"), event("r1", "emergency"), qos=1)
            ack = await next_message(device, 10)
        async with http_client(app) as client:
            answered = await scrape(client)
            ready = await client.get("/health/ready")
            await app.engine.dispose()  # no pooled connection left to the old file
            shutil.rmtree(folder)  # SQLite cannot open (or create) it any more
            gone = await client.get("/health/ready")
            clock.advance(CACHE_S)  # past the figures cached by the scrape above
            seen = await scrape(client)
    finally:
        stop.set()
        await gateway
        await app.aclose()
    assert json.loads(bytes(ack.payload))["result"] == "ok"  # type: ignore[arg-type]
    # Through the gateway: the event answered, and nothing left waiting behind it.
    labels = {"priority": "critical", "kind": "emergency"}
    assert answered.count("eldercall_answer_latency_seconds_count", **labels) == 1
    assert answered.value("eldercall_intake_queue_depth", priority="all") == 0
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "mqtt": "ok"}
    assert gone.status_code == 503
    assert gone.json()["checks"]["mqtt"] == "ok"
    assert gone.json()["checks"]["database"].startswith("not reachable")
    assert "database" in gone.json()["error"]
    # /metrics still answers, says the database is down and leaves its figures out.
    assert seen.value("eldercall_metrics_database_up") == 0
    assert seen.value("eldercall_outbox_oldest_pending_age_seconds") is None


async def test_the_engine_is_stale_until_each_poller_cycles_and_again_when_it_stops(
    lone_app: App, clock: FakeClock
) -> None:
    async with http_client(lone_app) as client:
        before = await client.get("/health/engine")
        stop = asyncio.Event()
        daemon = asyncio.create_task(run(lone_app, stop, serve_http=False))
        try:
            async with asyncio.timeout(10):
                # The pollers signal nothing but their record: poll it, with a deadline.
                while None in (lone_app.cycles.last(ESCALATOR), lone_app.cycles.last(OUTBOX)):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            cycling = await client.get("/health/engine")
        finally:
            stop.set()
            await daemon
        clock.advance(lone_app.engine_max_age_s + 1)
        stopped = await client.get("/health/engine")
    assert before.status_code == 503
    assert set(before.json()["checks"]) == {ESCALATOR, OUTBOX}
    assert all(said != "ok" for said in before.json()["checks"].values())
    assert cycling.status_code == 200, cycling.text
    assert cycling.json()["checks"] == {ESCALATOR: "ok", OUTBOX: "ok"}
    assert stopped.status_code == 503
    for part in (ESCALATOR, OUTBOX):
        assert "ago" in stopped.json()["checks"][part]
        assert part in stopped.json()["error"]


async def test_the_health_routes_are_outside_the_api_token(lone_app: App) -> None:
    async with http_client(lone_app) as client:
        refused = await client.get("/api/v1/calls")
        answers = [await client.get(path) for path in ("/health/live", "/metrics")]
    assert refused.status_code == 401
    assert [r.status_code for r in answers] == [200, 200]
