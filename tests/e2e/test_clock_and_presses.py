"""Issue 8 on real parts (Mosquitto, SQLite, the twilio library talking HTTP to the
local sink), the daemon's pollers running for real: a resident presses a hundred
times, then the system clock steps four hours forward. Time is a steady clock over
hand-moved sources, so the step is made without faketime and without sleeping for
escalations."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App, build, run
from dispatcher.services.clock import SteadyClock
from dispatcher.testing import FakeTimeSources
from simulator.broker import MosquittoProcess
from simulator.phone_network.server import SmsSinkServer
from tests.e2e.test_end_to_end import device, press, until
from tests.support.app import COMMUNITY_LH, HOTLINE, R0001_CONTACTS, TUESDAY_10AM, settings_for
from tests.support.sms import sms_settings_for

pytestmark = pytest.mark.integration


async def one_row_per_person_per_step(app: App, call_id: str) -> bool:
    async with app.sessions() as s:
        rows = await s.execute(
            select(db.sms_outbox.c.recipient, db.sms_outbox.c.step).where(
                db.sms_outbox.c.call_id == call_id
            )
        )
        per_person = Counter(tuple(r) for r in rows)
    return sorted({step for _, step in per_person}) == [0, 1, 2] and set(per_person.values()) == {1}


PRESSES = 100


async def test_presses_and_a_clock_step_over_real_parts_send_no_storm(
    tmp_path: Path, mosquitto: MosquittoProcess, sms_sink: SmsSinkServer, topic_root: str
) -> None:
    settings = settings_for(
        tmp_path,
        mqtt={
            "url": mosquitto.url,
            "topic_root": topic_root,
            "client_id": f"dispatcher-{uuid.uuid4().hex[:8]}",
        },
        sms=sms_settings_for(sms_sink).model_dump(),
        devices={"check_interval_s": 0.05},
    )
    sources = FakeTimeSources(TUESDAY_10AM)
    app = await build(settings, clock=SteadyClock(sources.wall, sources.elapsed))
    stop = asyncio.Event()
    task = asyncio.create_task(run(app, stop, serve_http=False))
    try:
        await asyncio.wait_for(app.mqtt.connected.wait(), 10)
        async with device(mosquitto.url, topic_root, "dev-0001") as dev:
            await press(dev, topic_root, "dev-0001", {"ref": "e0", "type": "emergency"})
            call_id = (await until(dev, "ack"))["call_id"]
            await sms_sink.wait_for_async(lambda m: call_id in m.body, count=len(HOTLINE))
            await press(dev, topic_root, "dev-0002", {"ref": "hb", "type": "heartbeat"})
            for n in range(1, PRESSES):
                await press(dev, topic_root, "dev-0001", {"ref": f"e{n}", "type": "emergency"})
            acks = 0
            while acks < PRESSES - 1:  # every press answered (the cmd updates skipped)
                acks += (await until(dev, "ack", within=10))["call_id"] == call_id
            # Steps 2 and 3 are brought forward once each, and no further.
            everyone = HOTLINE | COMMUNITY_LH | R0001_CONTACTS
            await sms_sink.wait_for_async(
                lambda m: call_id in m.body and m.to in R0001_CONTACTS, count=2
            )
            await asyncio.sleep(0.5)  # the pollers run: a storm would show here
            per_number = Counter(m.to for m in sms_sink.messages if call_id in m.body)
            assert {n for n in per_number if n in everyone} == everyone
            assert all(per_number[n] == 1 for n in R0001_CONTACTS)
            # The hotline is told of steps 1, 2 and 3 (the outbox may bundle two in one SMS).
            assert max(per_number.values()) <= 3
            assert await one_row_per_person_per_step(app, call_id)
            sent = len(sms_sink.messages)

            sources.step_wall(4 * 3600)  # the system clock is set four hours ahead
            await asyncio.sleep(0.5)  # the pollers run, supervision's included
            assert len(sms_sink.messages) == sent  # no replay of 80 repeats
            assert app.clock.now() == sources.wall()  # the daemon followed the clock
            views = await app.operations.list_calls("all")
            assert [v.call_id for v in views] == [call_id]
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await app.aclose()
