"""Publishing many messages at QoS 1 and waiting for the broker to have them all.

What ``aiomqtt.Client.publish`` does for one message, done for a batch. aiomqtt checks,
on every publish, that the message id is not pending already and counts the pending
calls, each a walk over all of them: with a burst's thousands of answers waiting for
their PUBACKs, answering grew with the square of the answers in flight (about 3 % of
the daemon's CPU in a burst of 10,000 presses). The futures are aiomqtt's own
(``_pending_publishes``, resolved by its ``on_publish``), so a reconnect and a stop
behave as with aiomqtt's publish.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import aiomqtt
import paho.mqtt.client as mqtt


async def publish_confirmed(client: aiomqtt.Client, messages: Sequence[tuple[str, bytes]]) -> None:
    """Hand every ``(topic, payload)`` to paho in order, at QoS 1, then wait until the
    broker has acknowledged each (at most the client's timeout). Raises
    :class:`aiomqtt.MqttError` when one could not be handed over or was not
    acknowledged in time: the caller then must not count any as delivered."""
    pending = client._pending_publishes
    waits: list[tuple[int, asyncio.Event]] = []
    try:
        for topic, payload in messages:
            info = client._client.publish(topic, payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
            if info.is_published():
                continue
            # Registered before the event loop can read the PUBACK: paho's callbacks run
            # on this loop, never within this synchronous stretch.
            done = asyncio.Event()
            pending[info.mid] = done
            waits.append((info.mid, done))
        timeout = None if client.timeout == math.inf else client.timeout
        try:
            async with asyncio.timeout(timeout):
                for _mid, done in waits:
                    await done.wait()
        except TimeoutError:
            raise aiomqtt.MqttError("Operation timed out") from None
    finally:
        for mid, done in waits:
            if pending.get(mid) is done:
                del pending[mid]
