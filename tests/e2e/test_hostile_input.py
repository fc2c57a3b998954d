"""A device sends the whole hostile corpus (tests/support/fuzz.py) through real
Mosquitto, then a valid emergency: every answerable payload got the protocol's answer,
nothing was lost or crashed the daemon, and the emergency is answered ``ok`` with a
call opened. Real parts: Mosquitto, SQLite, the twilio library against the local sink."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from dispatcher.adapters.db import schema as db
from simulator.broker import MosquittoProcess
from simulator.phone_network.server import SmsSinkServer
from tests.e2e.test_end_to_end import device, press, running_dispatcher, until
from tests.support.fuzz import CORPUS, answered

pytestmark = pytest.mark.integration
DEVICE = "dev-0002"  # a registered device: its emergency is a resident's call


async def test_the_hostile_corpus_then_an_emergency_over_mosquitto(
    tmp_path: Path, mosquitto: MosquittoProcess, sms_sink: SmsSinkServer, topic_root: str
) -> None:
    async with (
        running_dispatcher(tmp_path, mosquitto, sms_sink, topic_root) as d,
        device(mosquitto.url, topic_root, DEVICE) as dev,
    ):
        for case in CORPUS:
            await dev.publish(f"{topic_root}/dev/{DEVICE}/event", case.payload, qos=1)
        await press(dev, topic_root, DEVICE, {"ref": "after", "type": "emergency"})

        # Every answerable message is answered, the others get none. (Not in the order
        # sent: the intake takes alarms first and what it cannot read last.)
        expected = [(c.ref, c.outcome) for c in CORPUS if answered(c)] + [("after", "ok")]
        acks: list[dict[str, Any]] = [await until(dev, "ack", within=20) for _ in expected]
        assert sorted((a["ref"], a["result"]) for a in acks) == sorted(expected)
        assert all(a.get("error") for a in acks if a["result"] == "invalid")

        [after] = [a for a in acks if a["ref"] == "after"]
        assert after["call_id"]
        call = await d.app.operations.get_call(after["call_id"])
        assert call.kind == "emergency" and call.state == "open"
        assert call.device_id == DEVICE

        # Nothing lost: every message is a stored event or a stored (capped) rejection.
        async with d.app.sessions() as s:
            events = await s.scalar(
                select(func.count()).select_from(db.events).where(db.events.c.device_id == DEVICE)
            )
            rejected = list(
                await s.execute(
                    select(db.rejected_messages).where(db.rejected_messages.c.device_id == DEVICE)
                )
            )
        oks = sum(c.outcome == "ok" for c in CORPUS) + 1
        assert events == oks
        assert len(rejected) == len(CORPUS) + 1 - oks
        assert max(len(r.raw) for r in rejected) <= 4096
        assert max(r.raw_length for r in rejected) >= 1_000_000
