"""publish_confirmed: a batch handed to paho in order at QoS 1, returned once the real
broker acknowledged every message; a broker that does not answer is a clear MqttError
within the client's timeout; no pending entry is left behind either way."""

from __future__ import annotations

import os
import signal

import aiomqtt
import pytest

from dispatcher.adapters.mqtt.confirmed import publish_confirmed
from simulator.broker import MosquittoProcess
from tests.support.broker import mqtt_client, next_message

pytestmark = pytest.mark.integration


async def test_a_batch_arrives_in_order_and_leaves_nothing_pending(
    mosquitto: MosquittoProcess, topic_root: str
) -> None:
    topic = f"{topic_root}/batch"
    async with (
        mqtt_client(mosquitto.url) as listener,
        mqtt_client(mosquitto.url) as sender,
    ):
        await listener.subscribe(topic, qos=1)
        await publish_confirmed(sender, [(topic, f"m{n}".encode()) for n in range(300)])
        assert sender._pending_publishes == {}
        got = [(await next_message(listener)).payload for _ in range(300)]
    assert got == [f"m{n}".encode() for n in range(300)]


async def test_a_broker_that_does_not_acknowledge_is_an_error_in_time(
    own_mosquitto: MosquittoProcess, topic_root: str
) -> None:
    pid = own_mosquitto.pid
    assert pid is not None
    async with mqtt_client(own_mosquitto.url, timeout=0.5) as sender:
        os.kill(pid, signal.SIGSTOP)  # a hung broker: no PUBACK comes
        try:
            with pytest.raises(aiomqtt.MqttError, match="timed out"):
                two = [(f"{topic_root}/x", b"1"), (f"{topic_root}/y", b"2")]
                await publish_confirmed(sender, two)
            assert sender._pending_publishes == {}
        finally:
            os.kill(pid, signal.SIGCONT)
