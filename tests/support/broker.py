"""Fixtures: a real Mosquitto broker per test session, a unique topic root per test.

- ``mosquitto``: one broker for the whole session. Never stop it from a test; use
  ``own_mosquitto`` for a broker the test may stop, kill and restart.
- ``topic_root``: ``test/<hex>``, unique per test, so tests sharing the session broker
  never see each other's messages. Use unique device/client ids too: persistent
  sessions are keyed by client id, not by topic.
- ``mqtt_client(url, ...)``: an async context manager for a connected aiomqtt client.
- ``next_message(client, timeout)``: the next message, or a clear failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from simulator.broker import MosquittoProcess, find_mosquitto


def _require_mosquitto() -> None:
    if find_mosquitto() is None:
        pytest.fail(
            "mosquitto is not installed; the tests need a real broker: "
            "apt-get install mosquitto mosquitto-clients (or `make system-deps`)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoProcess]:
    _require_mosquitto()
    broker = MosquittoProcess(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def own_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoProcess]:
    """A broker of this test's own, which it may stop, kill and restart."""
    _require_mosquitto()
    broker = MosquittoProcess(tmp_path_factory.mktemp("own-mosquitto"))
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture
def topic_root() -> str:
    return f"test/{uuid.uuid4().hex}"


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 1883


@asynccontextmanager
async def mqtt_client(
    url: str,
    *,
    identifier: str | None = None,
    protocol: int = 5,
    persistent: bool = False,
    **kwargs: Any,
) -> AsyncIterator[aiomqtt.Client]:
    """A connected aiomqtt client. ``persistent=True`` keeps its session (needs an id)."""
    host, port = host_port(url)
    version = aiomqtt.ProtocolVersion.V5 if protocol == 5 else aiomqtt.ProtocolVersion.V311
    if persistent:
        if identifier is None:
            raise ValueError("a persistent session needs a stable identifier")
        if protocol == 5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 3600
            kwargs.setdefault("properties", props)
            kwargs.setdefault("clean_start", False)
        else:
            kwargs.setdefault("clean_session", False)
    async with aiomqtt.Client(
        host, port, identifier=identifier, protocol=version, **kwargs
    ) as client:
        yield client


async def next_message(client: aiomqtt.Client, within: float = 5.0) -> aiomqtt.Message:
    try:
        async with asyncio.timeout(within):
            return await anext(aiter(client.messages))
    except TimeoutError:
        pytest.fail(f"no MQTT message within {within} s")


def payload_json(message: aiomqtt.Message) -> Any:
    assert isinstance(message.payload, bytes | bytearray)
    return json.loads(message.payload)


class FakeCentre:
    """A stand-in for the dispatcher on the MQTT side: records events and acks them.

    ``drop_first`` leaves the first sends of every ref unanswered, to make devices
    resend. Heartbeats are recorded but, as the spec says, never answered.
    """

    def __init__(self, client: aiomqtt.Client, topic_root: str, *, drop_first: int = 0) -> None:
        self.client = client
        self.root = topic_root
        self.drop_first = drop_first
        self.answering = True
        self.events: list[tuple[str, dict[str, Any]]] = []  # (device_id, event)
        self.arrived = asyncio.Condition()
        self._seen: dict[tuple[str, str], int] = {}
        self._calls: dict[str, str] = {}  # device_id -> call_id

    def of_type(self, event_type: str, device_id: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for d, e in self.events
            if e.get("type") == event_type and (device_id is None or d == device_id)
        ]

    async def wait_for(self, predicate: Any, within: float = 5.0) -> None:
        """Until ``predicate()`` is true (checked at every event)."""
        try:
            async with asyncio.timeout(within), self.arrived:
                await self.arrived.wait_for(predicate)
        except TimeoutError:
            pytest.fail(f"the fake centre did not see what it waited for within {within} s")

    async def send_cmd(self, device_id: str, body: dict[str, Any]) -> None:
        topic = f"{self.root}/dev/{device_id}/cmd"
        await self.client.publish(topic, json.dumps(body).encode(), qos=1)

    async def run(self) -> None:
        async for message in self.client.messages:
            device_id = message.topic.value.split("/")[-2]
            event = payload_json(message)
            async with self.arrived:
                self.events.append((device_id, event))
                self.arrived.notify_all()
            if event.get("type") == "heartbeat" or not self.answering:
                continue
            key = (device_id, event["ref"])
            self._seen[key] = self._seen.get(key, 0) + 1
            if self._seen[key] <= self.drop_first:
                continue
            ack: dict[str, Any] = {"ref": event["ref"], "result": "ok"}
            if event["type"] in ("emergency", "fall", "service"):
                call_id = self._calls.setdefault(device_id, f"C-{len(self._calls) + 1:04d}")
                ack["call_id"] = call_id
            elif event["type"] in ("cancel", "presence") and device_id in self._calls:
                ack["call_id"] = self._calls[device_id]
            await self.client.publish(
                f"{self.root}/dev/{device_id}/ack", json.dumps(ack).encode(), qos=1
            )


@asynccontextmanager
async def fake_centre(
    url: str, topic_root: str, *, drop_first: int = 0, protocol: int = 5
) -> AsyncIterator[FakeCentre]:
    async with mqtt_client(url, protocol=protocol) as client:
        await client.subscribe(f"{topic_root}/dev/+/event", qos=1)
        centre = FakeCentre(client, topic_root, drop_first=drop_first)
        task = asyncio.create_task(centre.run())
        try:
            yield centre
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task
