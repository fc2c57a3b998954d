"""The centre's own MQTT session is safe: a device that connects with the dispatcher's
client id neither kicks the dispatcher off nor wipes its queued session.

Real Mosquitto, started from the SHIPPED config/mosquitto.conf adapted only in paths
and ports; a password file and the shipped ACL generated in tmp following the setup
config/mosquitto.conf documents (devices log in with their device id as username, the
dispatcher with its own). The dispatcher runs in-process on a real SQLite database."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from structlog.testing import capture_logs

from dispatcher.bootstrap import App
from dispatcher.config import Settings
from dispatcher.testing import FakeClock
from simulator.broker import MosquittoProcess
from tests.support.app import TUESDAY_10AM, built_app, settings_for
from tests.support.broker import mqtt_client, payload_json
from tests.support.daemon import serving
from tests.support.ports import unique_client_id

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONF = REPO / "config" / "mosquitto.conf"
SHIPPED_ACL = REPO / "config" / "mosquitto.acl"
ROOT = "eldercall/v1"  # the shipped ACL's topic root
DEVICES = {"dev-0001": "p1-secret", "dev-0002": "p2-secret"}


class ShippedMosquitto(MosquittoProcess):
    """Mosquitto with config/mosquitto.conf: only its port and paths changed (and
    `user root` when we are root, as for every broker the tests run)."""

    def __init__(self, data_dir: Path, passwd: Path, acl: Path) -> None:
        super().__init__(data_dir)
        self._passwd, self._acl = passwd, acl

    def config_text(self) -> str:
        text = SHIPPED_CONF.read_text(encoding="utf-8")
        # The devices' TLS listener is tests/e2e/test_broker_security.py's: left out here.
        text, tls = re.subn(r"(?ms)^listener 8883$.*?^tls_version .*?$", "", text)
        text, listeners = re.subn(
            r"(?m)^listener 1883 127.0.0.1$", f"listener {self.port} {self.host}", text
        )
        text, files = re.subn(r"(?m)^password_file .*$", f"password_file {self._passwd}", text)
        text, acls = re.subn(r"(?m)^acl_file .*$", f"acl_file {self._acl}", text)
        text, stores = re.subn(
            r"(?m)^persistence_location .*$", f"persistence_location {self.data_dir}/", text
        )
        found = (tls, listeners, files, acls, stores)
        assert found == (1, 1, 1, 1, 1), "config/mosquitto.conf changed"
        text += f"\nlog_dest file {self.log_path}\nlog_type all\n"
        if os.geteuid() == 0:
            text += "user root\n"
        return text


@pytest.fixture
def dispatcher_user() -> tuple[str, str]:
    # Its own username (the shipped ACL's `user eldercall-dispatcher`, renamed), so no
    # test ever uses the daemon's default id; under use_username_as_clientid the
    # username is also its client id at the broker.
    return unique_client_id(), "dispatcher-secret"


@pytest.fixture
def broker(tmp_path: Path, dispatcher_user: tuple[str, str]) -> Iterator[MosquittoProcess]:
    name, password = dispatcher_user
    passwd = tmp_path / "eldercall.passwd"
    passwd.touch()
    for user, secret in {name: password, **DEVICES}.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, secret], check=True)
    passwd.chmod(0o600)
    acl = tmp_path / "eldercall.acl"
    shipped = SHIPPED_ACL.read_text(encoding="utf-8")
    assert "user eldercall-dispatcher" in shipped
    acl.write_text(shipped.replace("user eldercall-dispatcher", f"user {name}"), encoding="utf-8")
    mosquitto = ShippedMosquitto(tmp_path / "broker", passwd, acl)
    mosquitto.start()
    yield mosquitto
    mosquitto.kill()


def dispatcher_settings(
    tmp_path: Path, broker: MosquittoProcess, user: tuple[str, str]
) -> Settings:
    name, password = user
    return settings_for(
        tmp_path,
        mqtt={"url": broker.url, "username": name, "password": password, "client_id": name},
    )


@asynccontextmanager
async def dispatcher(settings: Settings) -> AsyncIterator[App]:
    app = await built_app(settings, FakeClock(TUESDAY_10AM))
    async with serving(app, serve_http=False):
        yield app


@asynccontextmanager
async def device(url: str, device_id: str) -> AsyncIterator[aiomqtt.Client]:
    async with mqtt_client(url, username=device_id, password=DEVICES[device_id]) as client:
        await client.subscribe(f"{ROOT}/dev/{device_id}/ack", qos=1)
        yield client


async def press(client: aiomqtt.Client, device_id: str, ref: str) -> None:
    body = json.dumps({"ref": ref, "type": "emergency"}).encode()
    await client.publish(f"{ROOT}/dev/{device_id}/event", body, qos=1)


async def ack_for(client: aiomqtt.Client, ref: str, within: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(within):
        async for message in client.messages:
            ack = payload_json(message)
            if ack.get("ref") == ref:
                assert isinstance(ack, dict)
                return ack
    raise AssertionError("unreachable")


async def impostor(url: str, client_id: str) -> None:
    """A device that asks for the dispatcher's client id with a clean start (which,
    if it got it, would close the dispatcher's connection and wipe its session)."""
    async with mqtt_client(
        url, identifier=client_id, username="dev-0002", password=DEVICES["dev-0002"]
    ) as client:
        await client.publish(f"{ROOT}/dev/dev-0002/status", b'{"state": "online"}', qos=1)
        await asyncio.sleep(0.3)  # hold the connection a moment, as a real one would


def test_the_shipped_broker_config_ties_client_ids_to_usernames() -> None:
    settings = {
        line.split()[0]: line.split()[1:]
        for line in SHIPPED_CONF.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert settings["use_username_as_clientid"] == ["true"]
    assert settings["set_tcp_nodelay"] == ["true"]  # no 40 ms of Nagle on every answer


async def test_a_device_using_the_dispatchers_client_id_takes_nothing(
    tmp_path: Path, broker: MosquittoProcess, dispatcher_user: tuple[str, str]
) -> None:
    settings = dispatcher_settings(tmp_path, broker, dispatcher_user)
    with capture_logs() as logs:
        async with device(broker.url, "dev-0001") as dev, dispatcher(settings) as app:
            await press(dev, "dev-0001", "before")
            first = await ack_for(dev, "before")
            assert first["result"] == "ok" and first["call_id"]

            await impostor(broker.url, settings.mqtt.client_id)
            # Still connected, on the same connection, and still answering.
            assert app.mqtt.connected.is_set()
            await press(dev, "dev-0001", "after")
            after = await ack_for(dev, "after")
            assert after["result"] == "ok" and after["call_id"] == first["call_id"]
    dropped = [e for e in logs if e["event"] in ("mqtt_disconnected", "mqtt_session_taken_over")]
    assert dropped == []
    assert len([e for e in logs if e["event"] == "mqtt_connected"]) == 1


async def test_events_queued_while_the_dispatcher_is_away_survive_an_impostor(
    tmp_path: Path, broker: MosquittoProcess, dispatcher_user: tuple[str, str]
) -> None:
    settings = dispatcher_settings(tmp_path, broker, dispatcher_user)
    async with dispatcher(settings):
        pass  # a first run leaves the dispatcher's persistent session at the broker
    async with device(broker.url, "dev-0001") as dev:
        await press(dev, "dev-0001", "while-away")  # queued for the dispatcher
        await impostor(broker.url, settings.mqtt.client_id)
        await impostor(broker.url, dispatcher_user[0])
        async with dispatcher(settings):
            ack = await ack_for(dev, "while-away")
            assert ack["result"] == "ok" and ack["call_id"]
