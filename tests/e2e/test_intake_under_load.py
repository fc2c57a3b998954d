"""A district's worst hour on real parts (Mosquitto, SQLite, the daemon as it runs):
alarms are handled ahead of any flood, a device that floods is limited on its own,
and a thousand presses of one device make one call.

Order and counts, never milliseconds: the daemon's first batch is held until the
emergency is in its hands, so that what comes next is the daemon's choice alone."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from sqlalchemy import select

from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App, build
from dispatcher.services.intake import Incoming
from dispatcher.testing import FakeClock
from simulator.broker import MosquittoProcess
from tests.support.app import TUESDAY_10AM, settings_for
from tests.support.broker import mqtt_client, payload_json
from tests.support.daemon import serving

pytestmark = pytest.mark.integration
WITHIN_S = 90.0  # a deadline for a loaded machine, not a measurement


@dataclass
class Watched:
    """The daemon, and what its intake was handed, batch by batch, in order."""

    app: App
    root: str
    handled: list[tuple[str | None, bytes]] = field(default_factory=list)
    taken: asyncio.Event = field(default_factory=asyncio.Event)


@contextlib.asynccontextmanager
async def daemon(
    tmp_path: Path, broker: MosquittoProcess, hold_until: bytes, **intake: Any
) -> AsyncIterator[Watched]:
    """The daemon on ``broker``; its first batch waits until a message containing
    ``hold_until`` has been taken from the broker."""
    root = f"test/{uuid.uuid4().hex}"
    settings = settings_for(
        tmp_path,
        mqtt={"url": broker.url, "topic_root": root, "client_id": f"d-{uuid.uuid4().hex[:8]}"},
        intake=intake,
    )
    app = await build(settings, clock=FakeClock(TUESDAY_10AM))
    watched = Watched(app, root)
    take, on_batch = app.mqtt._take, app.intake.on_batch

    def taking(client: aiomqtt.Client, message: aiomqtt.Message, inbox: Any) -> None:
        take(client, message, inbox)
        if isinstance(message.payload, bytes) and hold_until in message.payload:
            watched.taken.set()

    async def handling(batch: Sequence[Incoming]) -> Any:
        await watched.taken.wait()
        watched.handled.extend((m.device_id, m.raw) for m in batch)
        return await on_batch(batch)

    app.mqtt._take = taking  # type: ignore[method-assign]
    app.intake.on_batch = handling  # type: ignore[method-assign]
    async with serving(app, serve_http=False, stop_within=30):
        yield watched


@contextlib.asynccontextmanager
async def acks(url: str, root: str) -> AsyncIterator[list[tuple[str, dict[str, Any]]]]:
    """Every answer the daemon publishes, (device, answer) in the order they come."""
    seen: list[tuple[str, dict[str, Any]]] = []
    async with mqtt_client(url) as client:
        await client.subscribe(f"{root}/dev/+/ack", qos=1)

        async def listen() -> None:
            async for message in client.messages:
                seen.append((message.topic.value.split("/")[-2], payload_json(message)))

        task = asyncio.create_task(listen())
        try:
            yield seen
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def publish_all(url: str, messages: list[tuple[str, bytes]]) -> None:
    """QoS 1, in this order, from one connection (the broker keeps the order)."""
    async with mqtt_client(url, max_inflight_messages=1000) as pub:
        pub.pending_calls_threshold = len(messages) + 10
        await asyncio.gather(*(pub.publish(topic, body, qos=1) for topic, body in messages))


async def until(predicate: Any, what: str) -> None:
    try:
        async with asyncio.timeout(WITHIN_S):
            while not predicate():  # noqa: ASYNC110 (state of several tasks, polled)
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"never saw {what}")


def body(ref: str, type_: str) -> bytes:
    return json.dumps({"ref": ref, "type": type_}).encode()


async def test_an_emergency_inside_a_flood_is_answered_before_the_flood_is_drained(
    tmp_path: Path, mosquitto: MosquittoProcess
) -> None:
    before, after = 600, 200
    async with daemon(tmp_path, mosquitto, b'"sos-1"') as d, acks(mosquitto.url, d.root) as seen:
        ev = f"{d.root}/dev/{{}}/event"
        flood = [
            (ev.format(f"base-{n}"), body(f"t{n}", "power_restored" if n % 2 else "battery_ok"))
            for n in range(before + after)
        ]
        beats = [(ev.format(f"beat-{n}"), body(f"h{n}", "heartbeat")) for n in range(before)]
        # Technical events and heartbeats of other devices, interleaved; the red button
        # is pressed after `before` of them.
        messages = [m for pair in zip(flood[:before], beats, strict=True) for m in pair]
        messages += [(ev.format("dev-0001"), body("sos-1", "emergency")), *flood[before:]]
        await publish_all(mosquitto.url, messages)
        await until(lambda: len(seen) == before + after + 1, "every event answered")

    position = next(i for i, (device, _) in enumerate(seen) if device == "dev-0001")
    sos = seen[position][1]
    assert sos["result"] == "ok" and sos["call_id"]
    # Published after `before` technical events, answered ahead of most of them.
    assert position < before
    handled = [device for device, _ in d.handled]
    assert handled.index("dev-0001") < before
    # ... and its call was opened in that early batch, before the flood's last events.
    async with d.app.sessions() as s:
        calls = (await s.execute(select(db.calls.c.id, db.calls.c.device_id))).all()
        events = (await s.execute(select(db.events.c.device_id).order_by(db.events.c.id))).all()
    assert [(c.id, c.device_id) for c in calls] == [(sos["call_id"], "dev-0001")]
    stored = [e.device_id for e in events]
    assert stored.index("dev-0001") < before and len(stored) == before + after + 1


async def test_one_device_flooding_garbage_does_not_delay_another_devices_emergency(
    tmp_path: Path, mosquitto: MosquittoProcess
) -> None:
    garbage = 2000
    async with (
        daemon(
            tmp_path,
            mosquitto,
            b'"sos-2"',
            flood_rate=1.0,
            flood_burst=20,
            flood_summary_s=0.5,
        ) as d,
        acks(mosquitto.url, d.root) as seen,
    ):
        ev = f"{d.root}/dev/{{}}/event"
        messages = [(ev.format("mad-1"), b"garbage %d" % n) for n in range(garbage)]
        messages.append((ev.format("dev-0002"), body("sos-2", "emergency")))
        await publish_all(mosquitto.url, messages)
        await until(lambda: any(device == "dev-0002" for device, _ in seen), "the answer")
        [(_, sos)] = [(dev, a) for dev, a in seen if dev == "dev-0002"]
        assert sos["result"] == "ok" and sos["call_id"]

        def garbage_handled() -> int:
            return sum(1 for _, raw in d.handled if raw.startswith(b"garbage"))

        handled = [device for device, _ in d.handled]
        assert handled.index("dev-0002") < max(1, garbage_handled())

        async def accounted() -> tuple[int, int]:
            async with d.app.sessions() as s:
                rows = (
                    await s.execute(
                        select(db.rejected_messages).where(
                            db.rejected_messages.c.device_id == "mad-1"
                        )
                    )
                ).all()
            summaries = [r for r in rows if r.reason.startswith("flooding:")]
            dropped = sum(int(re.findall(r"\d+", r.reason)[0]) for r in summaries)
            return len(rows) - len(summaries), dropped

        counts: tuple[int, int] = (0, 0)

        async def all_accounted() -> None:
            nonlocal counts
            async with asyncio.timeout(WITHIN_S):
                while sum(counts := await accounted()) < garbage:  # noqa: ASYNC110 (the database)
                    await asyncio.sleep(0.1)

        await all_accounted()
    stored, dropped = counts
    # Every garbage message is either stored as rejected or counted in a summary, and
    # the flooding device was limited: most of its messages never reached the database.
    assert stored + dropped == garbage
    assert dropped > stored and stored == garbage_handled()


async def test_a_thousand_presses_of_one_device_make_one_call(
    tmp_path: Path, mosquitto: MosquittoProcess
) -> None:
    refs = 500
    async with daemon(tmp_path, mosquitto, b'"p0"') as d, acks(mosquitto.url, d.root) as seen:
        topic = f"{d.root}/dev/dev-0003/event"
        # Every press sent twice, as a device that got no answer in time resends.
        presses = [(topic, body(f"p{n}", "emergency")) for n in range(refs)]
        await publish_all(mosquitto.url, presses + presses)
        await until(lambda: len(seen) == 2 * refs, "every press answered")
    results = [a["result"] for _, a in seen]
    assert results.count("ok") == refs and results.count("duplicate") == refs
    assert len({a["call_id"] for _, a in seen}) == 1
    async with d.app.sessions() as s:
        [call] = (await s.execute(select(db.calls))).all()
    assert call.press_count == refs and call.device_id == "dev-0003"
    assert len(d.handled) == 2 * refs  # alarms are never dropped by the flood limit
