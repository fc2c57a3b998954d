"""Another client taking the dispatcher's MQTT session: the gateway says so loudly,
raises one technical alert, and backs off rather than take the session back and fight.

Mosquitto 2.0.11 (this machine's) closes the older connection without sending MQTT 5's
DISCONNECT 0x8E, so with the real broker the takeover shows as connections lost again
and again right after they were made; the 0x8E reason itself is checked on paho's own
ReasonCode. Real Mosquitto, real SQLite, fake clock."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from structlog.testing import capture_logs

from dispatcher.adapters.mqtt.gateway import _session_taken_over
from dispatcher.bootstrap import run
from dispatcher.testing import FakeClock
from simulator.broker import MosquittoProcess
from tests.support.app import TUESDAY_10AM, built_app, settings_for
from tests.support.broker import mqtt_client

pytestmark = pytest.mark.integration
HELD_S = 2.0  # an ordinary reconnect comes within 1 s: a fight would show in this time


async def fighting_dispatcher(url: str, client_id: str, held: asyncio.Event) -> None:
    """A second dispatcher with the same client id that reconnects whenever it is
    kicked off; sets ``held`` once it has kept the session for HELD_S."""
    while True:
        try:
            async with mqtt_client(url, identifier=client_id) as other:
                for _ in range(int(HELD_S / 0.1)):
                    await other.publish("fight/ping", b"", qos=1)
                    await asyncio.sleep(0.1)
                held.set()
                await asyncio.sleep(3600)
        except aiomqtt.MqttError:
            await asyncio.sleep(0.1)


async def test_a_taken_session_is_alerted_once_and_not_fought_for(
    tmp_path: Path, mosquitto: MosquittoProcess, topic_root: str
) -> None:
    settings = settings_for(tmp_path, mqtt={"url": mosquitto.url, "topic_root": topic_root})
    app = await built_app(settings, FakeClock(TUESDAY_10AM))
    stop = asyncio.Event()
    held = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(run(app, stop, serve_http=False))
        await asyncio.wait_for(app.mqtt.connected.wait(), 10)
        other = asyncio.create_task(
            fighting_dispatcher(mosquitto.url, settings.mqtt.client_id, held)
        )
        try:
            # The dispatcher gives up the fight: the other keeps the id undisturbed.
            await asyncio.wait_for(held.wait(), 30)
            assert not app.mqtt.connected.is_set()
        finally:
            other.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await other
            stop.set()
            await asyncio.wait_for(task, 15)
    taken = [e for e in logs if e["event"] == "mqtt_session_taken_over"]
    assert len(taken) == 1 and taken[0]["log_level"] == "error"
    assert taken[0]["client_id"] == settings.mqtt.client_id and taken[0]["call_id"]
    calls = await app.operations.list_calls("all")
    [alert] = [c for c in calls if c.kind == "technical"]
    assert alert.device_id == settings.mqtt.client_id and alert.call_id == taken[0]["call_id"]
    await app.aclose()


def test_reason_0x8e_is_a_takeover_and_other_reasons_are_not() -> None:
    taken = ReasonCode(PacketTypes.DISCONNECT, identifier=0x8E)  # type: ignore[no-untyped-call]
    other = ReasonCode(PacketTypes.DISCONNECT, identifier=0x80)  # type: ignore[no-untyped-call]
    assert _session_taken_over(aiomqtt.MqttCodeError(taken, "x"))
    assert not _session_taken_over(aiomqtt.MqttCodeError(other, "x"))
    assert not _session_taken_over(aiomqtt.MqttError("connection lost"))
