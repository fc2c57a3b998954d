"""The shipped Mosquitto ACL (config/mosquitto.acl) ties each device to its own topics:
a device cannot publish events for another, nor read another's commands."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from simulator.broker import MosquittoProcess
from tests.support.broker import mqtt_client

REPO = Path(__file__).resolve().parents[2]
ROOT = "eldercall/v1"
USERS = {"eldercall-dispatcher": "d-secret", "dev-0001": "p1", "dev-0002": "p2"}

pytestmark = pytest.mark.integration


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user, password in USERS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
    broker = MosquittoProcess(
        tmp_path / "broker",
        extra_config=(
            "allow_anonymous false\n"
            f"password_file {passwd}\n"
            f"acl_file {REPO / 'config' / 'mosquitto.acl'}\n"
        ),
    )
    broker.start()
    yield broker
    broker.kill()


async def drain(client: aiomqtt.Client, within: float) -> list[str]:
    seen: list[str] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            async for message in client.messages:
                seen.append(message.topic.value)
    return seen


async def test_devices_reach_only_their_own_topics(acl_broker: MosquittoProcess) -> None:
    url = acl_broker.url
    async with (
        mqtt_client(url, username="eldercall-dispatcher", password="d-secret") as centre,
        mqtt_client(url, username="dev-0001", password="p1") as dev1,
        mqtt_client(url, username="dev-0002", password="p2") as dev2,
    ):
        await centre.subscribe(f"{ROOT}/dev/+/event", qos=1)
        await dev2.subscribe(f"{ROOT}/dev/dev-0001/cmd", qos=1)  # not its own: refused
        await dev1.publish(f"{ROOT}/dev/dev-0002/event", b'{"ref":"x","type":"emergency"}', qos=1)
        await dev1.publish(f"{ROOT}/dev/dev-0001/event", b'{"ref":"y","type":"emergency"}', qos=1)
        await centre.publish(f"{ROOT}/dev/dev-0001/cmd", b"{}", qos=1)
        assert await drain(centre, 1.0) == [f"{ROOT}/dev/dev-0001/event"]
        assert await drain(dev2, 0.3) == []


async def test_a_wrong_password_is_refused(acl_broker: MosquittoProcess) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with mqtt_client(acl_broker.url, username="dev-0001", password="wrong"):
            pass
