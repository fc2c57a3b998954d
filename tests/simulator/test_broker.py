"""The broker runner: a real mosquitto started, stopped, restarted; amqtt as a fallback."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from devices.client import DeviceClient
from simulator.broker import (
    MAX_QUEUED_MESSAGES,
    BrokerError,
    EmbeddedBroker,
    MosquittoProcess,
    start_broker,
)
from tests.support.broker import fake_centre, mqtt_client, next_message, payload_json

pytestmark = pytest.mark.integration


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_config_keeps_queued_messages_and_persists(tmp_path: Path) -> None:
    text = MosquittoProcess(tmp_path, port=18830).config_text()
    assert "listener 18830 127.0.0.1" in text
    assert "persistence true" in text
    assert f"persistence_location {tmp_path}/" in text
    assert f"max_queued_messages {MAX_QUEUED_MESSAGES}" in text
    assert "allow_anonymous true" in text
    assert "set_tcp_nodelay true" in text  # no 40 ms of Nagle on every answer


def test_start_stop_restart_on_the_same_port(own_mosquitto: MosquittoProcess) -> None:
    port = own_mosquitto.port
    assert own_mosquitto.url == f"mqtt://127.0.0.1:{port}"
    assert _accepts(port)
    own_mosquitto.stop()
    assert not own_mosquitto.running
    assert not _accepts(port)
    own_mosquitto.restart()
    assert own_mosquitto.running
    assert own_mosquitto.port == port
    assert _accepts(port)
    own_mosquitto.kill()
    assert not _accepts(port)


def test_a_failing_start_says_why(tmp_path: Path) -> None:
    broker = MosquittoProcess(tmp_path / "a", extra_config="no_such_option 1")
    with pytest.raises(BrokerError, match=r"no_such_option|exited"):
        broker.start()
    assert not broker.running


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    broker = MosquittoProcess(tmp_path, binary=None)
    broker._binary = None  # as on a machine without mosquitto
    with pytest.raises(BrokerError, match="apt-get install mosquitto"):
        broker.start()


async def test_queued_qos1_message_survives_a_broker_restart(
    own_mosquitto: MosquittoProcess, topic_root: str
) -> None:
    """A message for an offline persistent subscriber is kept, on disk, across a restart."""
    sub_id = f"sub-{uuid.uuid4().hex[:8]}"
    topic = f"{topic_root}/dev/d1/ack"
    async with mqtt_client(own_mosquitto.url, identifier=sub_id, persistent=True) as sub:
        await sub.subscribe(topic, qos=1)
    async with mqtt_client(own_mosquitto.url) as pub:
        await pub.publish(topic, b'{"ref":"r1","result":"ok"}', qos=1)

    own_mosquitto.restart()  # SIGTERM: mosquitto saves its queue to the persistence file

    async with mqtt_client(own_mosquitto.url, identifier=sub_id, persistent=True) as sub:
        message = await next_message(sub)
        assert message.topic.value == topic
        assert message.payload == b'{"ref":"r1","result":"ok"}'
        assert message.qos == 1


async def test_queued_messages_beyond_the_default_limit_are_all_kept(
    mosquitto: MosquittoProcess, topic_root: str
) -> None:
    """Mosquitto's default would drop everything past 1000 queued messages."""
    sub_id = f"sub-{uuid.uuid4().hex[:8]}"
    topic = f"{topic_root}/bulk"
    count = 1500
    async with mqtt_client(mosquitto.url, identifier=sub_id, persistent=True) as sub:
        await sub.subscribe(topic, qos=1)
    async with mqtt_client(mosquitto.url, max_inflight_messages=200) as pub:
        for i in range(count):
            await pub.publish(topic, str(i).encode(), qos=1)
    received: list[int] = []
    async with mqtt_client(mosquitto.url, identifier=sub_id, persistent=True) as sub:
        while len(received) < count:
            received.append(int(payload_json(await next_message(sub))))
        # End the session so the broker does not keep it for the rest of the run.
        await sub.unsubscribe(topic)
    assert sorted(received) == list(range(count))


async def test_embedded_broker_keeps_sessions_of_clients_without_username(
    tmp_path: Path,
) -> None:
    broker = await start_broker(tmp_path, prefer="amqtt")
    try:
        assert broker.kind == "amqtt"
        assert broker.protocol == 4
        sub_id = f"sub-{uuid.uuid4().hex[:8]}"
        async with mqtt_client(broker.url, identifier=sub_id, protocol=4, persistent=True) as s:
            await s.subscribe("t/ack", qos=1)
        async with mqtt_client(broker.url, protocol=4) as pub:
            await pub.publish("t/ack", b"queued", qos=1)
        async with mqtt_client(broker.url, identifier=sub_id, protocol=4, persistent=True) as s:
            assert (await next_message(s)).payload == b"queued"
    finally:
        await broker.stop()
    assert isinstance(broker, EmbeddedBroker)
    assert not _accepts(broker.port)


async def test_start_broker_prefers_mosquitto(tmp_path: Path) -> None:
    broker = await start_broker(tmp_path)
    try:
        assert broker.kind == "mosquitto"
        assert broker.protocol == 5
        async with mqtt_client(broker.url) as client:
            await client.subscribe("x", qos=1)
    finally:
        await broker.stop()
    assert (tmp_path / "mosquitto.conf").exists()


async def test_embedded_broker_serves_the_reference_device(tmp_path: Path) -> None:
    broker = await start_broker(tmp_path, prefer="amqtt")
    try:
        async with (
            fake_centre(broker.url, "demo", protocol=broker.protocol) as centre,
            DeviceClient(
                f"d-{uuid.uuid4().hex[:8]}",
                url=broker.url,
                topic_root="demo",
                protocol=broker.protocol,
                resend_after_s=0.3,
            ) as device,
        ):
            ack = await device.press("emergency")
            assert ack.call_id == "C-0001"
            assert len(centre.of_type("emergency")) == 1
    finally:
        await broker.stop()
