"""A batch's PUBACKs leave in one write (gateway._pubacks): every message so
acknowledged is done with for the broker, and one left out is delivered again on the
persistent session."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from paho.mqtt.client import MQTTMessage

from dispatcher.adapters.mqtt import gateway
from simulator.broker import MosquittoProcess
from tests.support.broker import mqtt_client, next_message

pytestmark = pytest.mark.integration


async def _until(predicate: Any) -> None:
    async with asyncio.timeout(10):
        while not predicate():  # noqa: ASYNC110 (filled by paho's callbacks)
            await asyncio.sleep(0.01)


async def test_a_batch_acknowledged_in_one_write_is_not_delivered_again(
    mosquitto: MosquittoProcess, topic_root: str
) -> None:
    ident = f"t-pubacks-{uuid.uuid4().hex[:8]}"
    topic = f"{topic_root}/x"
    async with mqtt_client(mosquitto.url, identifier=ident, persistent=True) as sub:
        sub._client.manual_ack_set(True)
        got: list[MQTTMessage] = []
        sub._client.on_message = lambda _c, _u, message: got.append(message)
        await sub.subscribe(topic, qos=1)
        async with mqtt_client(mosquitto.url) as pub:
            for n in range(5):
                await pub.publish(topic, b"%d" % n, qos=1)
        await _until(lambda: len(got) == 5)
        sends: list[int] = []
        real_send = sub._client._sock_send

        def counted(data: bytes) -> int:
            sends.append(len(data))
            return real_send(data)

        sub._client._sock_send = counted  # type: ignore[method-assign]
        gateway._pubacks(sub, [*got[:4], None])  # None: a flood summary of our own
        await _until(lambda: sends)
        assert sends == [4 * 4]  # four PUBACKs of four bytes, in one write
    # The fifth, never acknowledged, is delivered again; the four are not.
    async with mqtt_client(mosquitto.url, identifier=ident, persistent=True) as again:
        redelivered = await next_message(again)
        await asyncio.sleep(0.5)  # room for a wrong redelivery of the others
        assert redelivered.payload == b"4" and len(again.messages) == 0
