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


async def test_an_alarm_with_bad_optional_fields_opens_its_call_over_mosquitto(
    tmp_path: Path, mosquitto: MosquittoProcess, sms_sink: SmsSinkServer, topic_root: str
) -> None:
    """Issue #10: ``battery: 150`` and ``ts: "yesterday"`` on an emergency are noted on
    its call, never a reason to refuse it; the same fields on a service request are."""
    async with (
        running_dispatcher(tmp_path, mosquitto, sms_sink, topic_root) as d,
        device(mosquitto.url, topic_root, DEVICE) as dev,
    ):
        body = {"ref": "bad-1", "type": "emergency", "battery": 150, "ts": "yesterday"}
        await press(dev, topic_root, DEVICE, body)
        ack = await until(dev, "ack", within=10)
        assert ack["ref"] == "bad-1" and ack["result"] == "ok" and ack["call_id"]
        assert "error" not in ack
        received = await until(dev, "cmd", within=10)
        assert received["call_id"] == ack["call_id"] and received["state"] == "received"
        call = await d.app.operations.get_call(ack["call_id"])
        assert call.kind == "emergency" and call.state == "open"
        [note] = [e.detail for e in call.timeline if e.action == "fields_dropped"]
        assert note.startswith("ts ") or note.startswith("battery ")
        assert "battery 150" in note and '"yesterday"' in note

        await press(dev, topic_root, DEVICE, {**body, "ref": "bad-2", "type": "service"})
        refused = await until(dev, "ack", within=10)
        assert refused["ref"] == "bad-2" and refused["result"] == "invalid"
        assert refused["error"].startswith("ts: ") and "call_id" not in refused
