"""The device outbox (commands to devices: call updates, config): its queries, and the
gateway's round over real Mosquitto, which publishes a round's commands in order and
marks them published in one transaction that takes its turn at the write gate."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db.device_outbox_store import SqlDeviceOutboxStore
from dispatcher.bootstrap import App, build
from dispatcher.testing import FakeClock
from simulator.broker import MosquittoProcess
from tests.support.app import TUESDAY_10AM, settings_for
from tests.support.broker import mqtt_client, next_message
from tests.support.daemon import serving


async def _queue(app: App, device_id: str, payloads: list[str]) -> None:
    """Rows written straight to the table (not through the gate)."""
    rows = [
        {"device_id": device_id, "payload": p, "created_at": TUESDAY_10AM + timedelta(seconds=n)}
        for n, p in enumerate(payloads)
    ]
    async with app.engine.begin() as conn:
        await conn.execute(insert(db.device_outbox), rows)


async def _published_at(app: App) -> list[object]:
    async with app.engine.connect() as conn:
        o = db.device_outbox.c
        return list((await conn.execute(select(o.published_at).order_by(o.id))).scalars())


async def test_pending_is_the_oldest_unpublished_and_marking_takes_only_those(app: App) -> None:
    await _queue(app, "dev-a", ["one", "two", "three"])
    async with app.sessions.begin() as session:
        outbox = SqlDeviceOutboxStore(session)
        first = await outbox.pending(2)
        assert [(c.device_id, c.payload) for c in first] == [("dev-a", "one"), ("dev-a", "two")]
        await outbox.mark_published([c.id for c in first], TUESDAY_10AM)
        await outbox.mark_published([], TUESDAY_10AM)  # nothing: no statement, no error
    async with app.sessions.begin() as session:
        rest = await SqlDeviceOutboxStore(session).pending(10)
    assert [c.payload for c in rest] == ["three"]
    assert await _published_at(app) == [TUESDAY_10AM, TUESDAY_10AM, None]


@pytest.mark.integration
async def test_a_round_is_published_in_order_and_marked_at_its_turn_of_the_gate(
    tmp_path: Path, mosquitto: MosquittoProcess, topic_root: str
) -> None:
    settings = settings_for(
        tmp_path,
        mqtt={
            "url": mosquitto.url,
            "topic_root": topic_root,
            "client_id": f"dispatcher-{uuid.uuid4().hex[:8]}",
        },
    )
    app = await build(settings, clock=FakeClock(TUESDAY_10AM))
    gate = app.write_gate
    assert gate is not None  # SQLite
    payloads = [json.dumps({"n": n}) for n in range(3)]
    async with (
        serving(app, serve_http=False),
        mqtt_client(mosquitto.url) as dev,
    ):
        await dev.subscribe(f"{topic_root}/dev/dev-q/cmd", qos=1)
        async with gate.hold():  # another writer's transaction, as long as this block
            await _queue(app, "dev-q", payloads)
            got = [(await next_message(dev)).payload for _ in payloads]
            assert got == [p.encode() for p in payloads]  # published, in order
            await asyncio.sleep(0.2)  # room for a write that did not wait its turn
            assert await _published_at(app) == [None, None, None]
        async with asyncio.timeout(10):  # its turn: marked, all three together
            while None in await _published_at(app):  # noqa: ASYNC110 (a table, polled)
                await asyncio.sleep(0.02)
        assert len(set(await _published_at(app))) == 1
