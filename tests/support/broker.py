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

from dispatcher.broker import MosquittoProcess, find_mosquitto


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
