"""The whole pipeline on real parts: Mosquitto, SQLite, the twilio library talking
HTTP to the local sink, the REST API over HTTP. Time is a fake clock that the test
moves; the daemon's pollers run for real (every 50 ms) and read it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from sqlalchemy import select

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db.intake_store import SqlIntakeStore
from dispatcher.bootstrap import App, build, run
from dispatcher.testing import FakeClock
from simulator.broker import MosquittoProcess, free_port
from simulator.phone_network.server import SmsSinkServer
from tests.support.app import COMMUNITY_LH, HOTLINE, TUESDAY_10AM, settings_for
from tests.support.broker import mqtt_client, next_message, payload_json
from tests.support.daemon import serving
from tests.support.sms import sms_settings_for

pytestmark = pytest.mark.integration
TOKEN = {"Authorization": "Bearer demo-operator-token"}


@dataclass
class Running:
    app: App
    clock: FakeClock
    api: str
    root: str
    broker: MosquittoProcess


@contextlib.asynccontextmanager
async def running_dispatcher(
    tmp_path: Path,
    broker: MosquittoProcess,
    sink: SmsSinkServer,
    root: str,
    protocol: int = 5,
    **overrides: Any,
) -> AsyncIterator[Running]:
    """The daemon built in process on ``broker``, serving its API; ``overrides`` are
    settings sections, as ``settings_for`` takes them."""
    port = free_port()
    settings = settings_for(
        tmp_path,
        **overrides,
        mqtt={
            "url": broker.url,
            "topic_root": root,
            "client_id": f"dispatcher-{uuid.uuid4().hex[:8]}",
            "protocol": protocol,
        },
        sms=sms_settings_for(sink).model_dump(),
        http={"listen": f"127.0.0.1:{port}"},
    )
    clock = FakeClock(TUESDAY_10AM)
    app = await build(settings, clock=clock)
    async with serving(app, stop_within=10):
        async with asyncio.timeout(10), httpx.AsyncClient() as http:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"http://127.0.0.1:{port}/api/v1/health")).is_success:
                        break
                await asyncio.sleep(0.02)
        yield Running(app, clock, f"http://127.0.0.1:{port}/api/v1", root, broker)


@contextlib.asynccontextmanager
async def device(url: str, root: str, device_id: str) -> AsyncIterator[aiomqtt.Client]:
    """A bare MQTT client standing in for a device: listens on its ack and cmd topics."""
    async with mqtt_client(url) as client:
        await client.subscribe(f"{root}/dev/{device_id}/ack", qos=1)
        await client.subscribe(f"{root}/dev/{device_id}/cmd", qos=1)
        yield client


async def press(client: aiomqtt.Client, root: str, device_id: str, body: dict[str, Any]) -> None:
    await client.publish(f"{root}/dev/{device_id}/event", json.dumps(body).encode(), qos=1)


async def until(client: aiomqtt.Client, leaf: str, within: float = 5.0) -> dict[str, Any]:
    """The next message on the device's ``leaf`` topic (others are skipped)."""
    async with asyncio.timeout(within):
        while True:
            msg = await next_message(client, within)
            if msg.topic.value.endswith("/" + leaf):
                body: dict[str, Any] = payload_json(msg)
                return body


async def nothing_for(client: aiomqtt.Client, seconds: float) -> None:
    """No message reaches ``client`` for ``seconds`` (one timeout only: two nested ones
    with the same deadline race each other on a loaded machine)."""
    try:
        async with asyncio.timeout(seconds):
            message = await anext(aiter(client.messages))
    except TimeoutError:
        return
    pytest.fail(f"unexpected message on {message.topic.value}: {message.payload!r}")


async def settled(app: App, timeout_s: float = 10.0) -> None:
    """Until no outbox entry is in flight (claimed and not yet recorded as sent)."""
    async with asyncio.timeout(timeout_s):
        while True:
            async with app.sessions() as s:
                busy = (
                    await s.execute(
                        select(db.sms_outbox.c.id).where(db.sms_outbox.c.status == "sending")
                    )
                ).first()
            if busy is None:
                return
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("protocol", [5, 4], ids=["mqtt5", "mqtt311"])
async def test_press_to_resolve_over_real_parts(
    tmp_path: Path,
    mosquitto: MosquittoProcess,
    sms_sink: SmsSinkServer,
    topic_root: str,
    protocol: int,
) -> None:
    async with (
        running_dispatcher(tmp_path, mosquitto, sms_sink, topic_root, protocol) as d,
        device(mosquitto.url, topic_root, "dev-0001") as dev,
        httpx.AsyncClient(headers=TOKEN) as http,
    ):
        await press(dev, topic_root, "dev-0001", {"ref": "e1", "type": "emergency"})
        ack = await until(dev, "ack")
        assert ack["ref"] == "e1" and ack["result"] == "ok"
        call_id = ack["call_id"]
        received = await until(dev, "cmd")
        assert received == {
            "type": "call_update",
            "call_id": call_id,
            "state": "received",
            "text": received["text"],
        }

        step1 = await sms_sink.wait_for_async(lambda m: call_id in m.body, count=len(HOTLINE))
        assert {m.to for m in step1} == HOTLINE
        await asyncio.sleep(0.3)  # the pollers run; nothing more may be sent before 60 s
        assert len(sms_sink.messages) == len(HOTLINE)

        d.clock.advance(60)
        both = await sms_sink.wait_for_async(
            lambda m: call_id in m.body, count=2 * len(HOTLINE) + len(COMMUNITY_LH)
        )
        assert {m.to for m in both[len(HOTLINE) :]} == HOTLINE | COMMUNITY_LH

        answer = await http.post(f"{d.api}/calls/{call_id}/ack", json={"note": "on my way"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "acknowledged"
        update = await until(dev, "cmd")
        assert update["state"] == "acknowledged" and update["call_id"] == call_id

        sent = len(sms_sink.messages)
        # The sink has them; wait until the daemon has recorded them as sent too: a jump
        # of 600 s with a request still in flight would make its claim look stale.
        await settled(d.app)
        d.clock.advance(600)
        await asyncio.sleep(0.4)
        assert len(sms_sink.messages) == sent  # acknowledged: escalation has stopped

        done = await http.post(
            f"{d.api}/calls/{call_id}/resolve", json={"outcome": "helped_by_phone", "note": "ok"}
        )
        assert done.status_code == 200 and done.json()["state"] == "resolved"
        assert (await until(dev, "cmd"))["state"] == "resolved"

        shown = (await http.get(f"{d.api}/calls/{call_id}")).json()
        assert [n["status"] for n in shown["notifications"]] == ["sent"] * sent
        assert all(n["provider_sid"].startswith("SM") for n in shown["notifications"])
        assert {n["provider_status"] for n in shown["notifications"]} == {"queued"}


async def test_bad_input_over_mqtt_gets_clear_answers_and_the_daemon_keeps_serving(
    tmp_path: Path, mosquitto: MosquittoProcess, sms_sink: SmsSinkServer, topic_root: str
) -> None:
    async with (
        running_dispatcher(tmp_path, mosquitto, sms_sink, topic_root) as d,
        device(mosquitto.url, topic_root, "dev-0002") as dev,
        httpx.AsyncClient() as http,
    ):
        topic = f"{topic_root}/dev/dev-0002/event"
        # Ordinary MQTT tools, as device makers' acceptance tests would use them.
        for raw in ("{not json", '{"type": "emergency"}', json.dumps({"ref": "r" * 65})):
            pub = await asyncio.create_subprocess_exec(
                "mosquitto_pub", "-p", str(mosquitto.port), "-q", "1", "-t", topic, "-m", raw
            )
            assert await asyncio.wait_for(pub.wait(), 10) == 0
        await press(dev, topic_root, "dev-0002", {"ref": "k1", "type": "explode"})
        invalid = await until(dev, "ack")
        assert invalid == {"ref": "k1", "result": "invalid", "error": "type: unknown type"}
        big = {"ref": "k2", "type": "fall", "pad": "x" * 100_000}
        await press(dev, topic_root, "dev-0002", big)
        too_big = await until(dev, "ack")
        assert too_big["result"] == "invalid" and "more than 4096" in too_big["error"]

        # A device nobody registered still opens a call.
        async with device(mosquitto.url, topic_root, "stranger-1") as other:
            await press(other, topic_root, "stranger-1", {"ref": "s1", "type": "emergency"})
            ack = await until(other, "ack")
            assert ack["result"] == "ok" and ack["call_id"]

        # API: wrong token, unknown call.
        wrong = await http.get(f"{d.api}/calls", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        missing = await http.post(f"{d.api}/calls/C-20990101-0001/ack", headers=TOKEN)
        assert missing.status_code == 404

        # And the daemon still serves an ordinary press.
        await press(dev, topic_root, "dev-0002", {"ref": "ok1", "type": "service"})
        good = await until(dev, "ack")
        assert good["result"] == "ok" and good["call_id"]
        calls = (await http.get(f"{d.api}/calls", headers=TOKEN)).json()["calls"]
        assert {c["device_id"] for c in calls} == {"dev-0002", "stranger-1"}


async def test_events_sent_while_the_dispatcher_is_down_are_answered_when_it_returns(
    tmp_path: Path, mosquitto: MosquittoProcess, sms_sink: SmsSinkServer, topic_root: str
) -> None:
    client_id = f"dispatcher-{uuid.uuid4().hex[:8]}"
    settings = settings_for(
        tmp_path,
        mqtt={"url": mosquitto.url, "topic_root": topic_root, "client_id": client_id},
        sms=sms_settings_for(sms_sink).model_dump(),
    )
    # A first run leaves the dispatcher's persistent session at the broker.
    app = await build(settings, clock=FakeClock(TUESDAY_10AM))
    stop = asyncio.Event()
    task = asyncio.create_task(run(app, stop, serve_http=False))
    await asyncio.wait_for(app.mqtt.connected.wait(), 10)
    stop.set()
    await asyncio.wait_for(task, 10)
    await app.aclose()
    async with device(mosquitto.url, topic_root, "dev-0003") as dev:
        # The dispatcher is away: a resident presses, and nobody answers yet.
        await press(dev, topic_root, "dev-0003", {"ref": "away", "type": "fall"})
        await nothing_for(dev, 0.5)
        app = await build(settings, clock=FakeClock(TUESDAY_10AM))
        stop = asyncio.Event()
        task = asyncio.create_task(run(app, stop, serve_http=False))
        try:
            ack = await until(dev, "ack", within=10)
            assert ack["ref"] == "away" and ack["result"] == "ok" and ack["call_id"]
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await app.aclose()


async def test_a_message_that_fails_is_recorded_and_does_not_block_the_rest(
    tmp_path: Path,
    mosquitto: MosquittoProcess,
    sms_sink: SmsSinkServer,
    topic_root: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with (
        running_dispatcher(tmp_path, mosquitto, sms_sink, topic_root) as d,
        device(mosquitto.url, topic_root, "dev-0004") as dev,
    ):
        insert_event = SqlIntakeStore.insert_event

        async def failing_on_boom(store: SqlIntakeStore, device_id: str, ev: Any, *a: Any) -> Any:
            if ev.ref == "boom":
                raise RuntimeError("a bug of ours")
            return await insert_event(store, device_id, ev, *a)

        # Inside the batch's transaction: only that message's savepoint is undone.
        monkeypatch.setattr(SqlIntakeStore, "insert_event", failing_on_boom)
        await press(dev, topic_root, "dev-0004", {"ref": "boom", "type": "emergency"})
        await dev.publish(f"{topic_root}/dev/not a device!/event", b'{"ref":"x"}', qos=1)
        await press(dev, topic_root, "dev-0004", {"ref": "after", "type": "emergency"})
        ack = await until(dev, "ack")
        assert ack["ref"] == "after" and ack["result"] == "ok"  # "boom" got no answer

        async with d.app.sessions() as s:
            rows = (await s.execute(select(db.rejected_messages))).all()
        reasons = {r.topic.rsplit("/", 2)[-2]: r.reason for r in rows}
        assert "a bug of ours" in reasons["dev-0004"]
        assert reasons["not a device!"] == "topic names no valid device"


async def test_a_stop_while_a_message_is_in_hand_finishes_it_first(
    tmp_path: Path,
    mosquitto: MosquittoProcess,
    sms_sink: SmsSinkServer,
    topic_root: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_hand, go_on = asyncio.Event(), asyncio.Event()
    async with device(mosquitto.url, topic_root, "dev-0006") as dev:
        async with running_dispatcher(tmp_path, mosquitto, sms_sink, topic_root) as d:
            handle_batch = d.app.intake.on_batch

            async def slow_on_batch(batch: Any) -> Any:
                in_hand.set()
                await go_on.wait()
                return await handle_batch(batch)

            monkeypatch.setattr(d.app.intake, "on_batch", slow_on_batch)
            await press(dev, topic_root, "dev-0006", {"ref": "last", "type": "emergency"})
            await asyncio.wait_for(in_hand.wait(), 5)
            # SIGTERM arrives now (leaving this block sets stop); the event goes on.
            asyncio.get_running_loop().call_later(0.3, go_on.set)
        # The stop waited: the event was stored and answered.
        ack = await until(dev, "ack")
        assert ack["ref"] == "last" and ack["result"] == "ok"
    # ... and no connection was left holding the database.
    engine = db.make_engine(settings_for(tmp_path).database.url)
    try:
        async with engine.begin() as conn:
            stored = (await conn.execute(select(db.events.c.ref))).scalars().all()
    finally:
        await engine.dispose()
    assert stored == ["last"]


async def test_a_broker_outage_only_delays_the_device_update(
    tmp_path: Path, own_mosquitto: MosquittoProcess, sms_sink: SmsSinkServer, topic_root: str
) -> None:
    async with (
        running_dispatcher(tmp_path, own_mosquitto, sms_sink, topic_root) as d,
        httpx.AsyncClient(headers=TOKEN) as http,
    ):
        # The resident's device keeps a persistent session, as the reference device does.
        async with mqtt_client(own_mosquitto.url, identifier="dev-0005", persistent=True) as dev:
            await dev.subscribe(f"{topic_root}/dev/dev-0005/ack", qos=1)
            await dev.subscribe(f"{topic_root}/dev/dev-0005/cmd", qos=1)
            await press(dev, topic_root, "dev-0005", {"ref": "o1", "type": "emergency"})
            call_id = (await until(dev, "ack"))["call_id"]
            assert (await until(dev, "cmd"))["state"] == "received"

        await asyncio.to_thread(own_mosquitto.stop)  # the broker goes away (saves its state)
        answer = await http.post(f"{d.api}/calls/{call_id}/ack")
        assert answer.status_code == 200  # operators keep working during the outage
        await asyncio.sleep(0.5)
        await asyncio.to_thread(own_mosquitto.start)

        async with mqtt_client(own_mosquitto.url, identifier="dev-0005", persistent=True) as dev:
            # QoS 1 is at-least-once: the earlier `received` may be delivered again first.
            update = await until(dev, "cmd", within=20)  # once the dispatcher is back
            while update["state"] == "received":
                update = await until(dev, "cmd", within=20)
            assert update["state"] == "acknowledged" and update["call_id"] == call_id
            await press(dev, topic_root, "dev-0005", {"ref": "o2", "type": "service"})
            again = await until(dev, "ack", within=10)
            assert again["ref"] == "o2" and again["call_id"] == call_id  # joined the open call
