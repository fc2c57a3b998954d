"""The dispatcher's MQTT connection sends each packet at once (TCP_NODELAY): an answer
written right after a PUBACK must not wait for the broker's delayed ACK (about 40 ms
on every answer, measured before this was set)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiomqtt
import pytest

from dispatcher.adapters.mqtt import gateway
from dispatcher.bootstrap import run
from dispatcher.testing import FakeClock
from simulator.broker import MosquittoProcess
from tests.support.app import TUESDAY_10AM, built_app, settings_for
from tests.support.broker import mqtt_client

pytestmark = pytest.mark.integration


def no_delay(client: aiomqtt.Client) -> int:
    sock = client._client.socket()
    assert isinstance(sock, socket.socket)
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


async def test_no_delay_is_set_on_a_connected_client(mosquitto: MosquittoProcess) -> None:
    async with mqtt_client(mosquitto.url) as client:
        assert no_delay(client) == 0  # paho leaves Nagle's algorithm on
        gateway._no_delay(client)
        assert no_delay(client) != 0


async def test_the_gateway_connects_with_no_delay(
    tmp_path: Path, mosquitto: MosquittoProcess, topic_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real = gateway._no_delay

    def recording(client: aiomqtt.Client) -> None:
        real(client)
        seen.append(no_delay(client))

    monkeypatch.setattr(gateway, "_no_delay", recording)
    settings = settings_for(tmp_path, mqtt={"url": mosquitto.url, "topic_root": topic_root})
    app = await built_app(settings, FakeClock(TUESDAY_10AM))
    stop = asyncio.Event()
    task = asyncio.create_task(run(app, stop, serve_http=False))
    try:
        await asyncio.wait_for(app.mqtt.connected.wait(), 10)
        assert len(seen) == 1 and seen[0] != 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await app.aclose()
