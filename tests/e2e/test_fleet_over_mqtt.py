"""The optional ``test`` event over real Mosquitto: a version-1 device's events still
work beside it, the test is answered ``ok`` without a call, and the device counts as
tested. (The test mode and the rest of the fleet: tests/services/test_fleet.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from dispatcher.adapters.db import schema as db
from simulator.broker import MosquittoProcess
from simulator.phone_network.server import SmsSinkServer
from tests.e2e.test_end_to_end import device, running_dispatcher
from tests.support.broker import next_message

pytestmark = pytest.mark.integration


async def test_a_test_event_is_answered_and_proves_the_device(
    tmp_path: Path, mosquitto: MosquittoProcess, sms_sink: SmsSinkServer, topic_root: str
) -> None:
    async with (
        running_dispatcher(tmp_path, mosquitto, sms_sink, topic_root, 4) as d,
        device(mosquitto.url, topic_root, "dev-0002") as dev,
    ):
        topic = f"{topic_root}/dev/dev-0002/event"
        await dev.publish(topic, json.dumps({"ref": "t-1", "type": "test"}), qos=1)
        ack = json.loads((await next_message(dev)).payload)  # type: ignore[arg-type]
        assert ack == {"ref": "t-1", "result": "ok"}
        # A version-1 event beside it, unchanged.
        await dev.publish(topic, json.dumps({"ref": "b-1", "type": "battery_low"}), qos=1)
        ack = json.loads((await next_message(dev)).payload)  # type: ignore[arg-type]
        assert ack["result"] == "ok" and ack["call_id"]
        async with d.app.sessions() as s:
            tested = await s.scalar(
                select(db.device_links.c.last_test_at).where(
                    db.device_links.c.device_id == "dev-0002"
                )
            )
        assert tested == d.clock.now()
        assert [c.kind for c in await d.app.operations.list_calls("all")] == ["technical"]
