"""Provisioning and broker security (issue #10) on a real Mosquitto running the shipped
config/mosquitto.conf, with the accounts and ACL that ``eldercall devices`` writes and
its TLS listener on a throwaway CA: a device that publishes to another device's topic
is refused by the broker and no call opens; a revoked device is disconnected at the
reload (SIGHUP, no restart) and cannot connect again; the dispatcher connects over TLS
with its own account. Real parts: Mosquitto, SQLite, openssl."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from dispatcher.bootstrap import App, build
from dispatcher.entrypoints.cli import main as cli
from dispatcher.testing import FakeClock
from tests.support.app import TUESDAY_10AM, settings_for
from tests.support.broker import mqtt_client
from tests.support.daemon import serving
from tests.support.secure_broker import Secured, secured_broker

pytestmark = pytest.mark.integration
ROOT = "eldercall/v1"  # the shipped ACL's root


@dataclass
class Site:
    secured: Secured
    secrets: dict[str, str]  # username: password


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    secured = secured_broker(tmp_path)
    p = secured.provisioning
    secrets = {"eldercall-dispatcher": p.set_dispatcher().secret}
    for device in ("dev-0001", "dev-0002"):
        secrets[device] = p.provision(device).secret
    secured.broker.start()
    yield Site(secured, secrets)
    secured.broker.kill()


def device(site: Site, device_id: str, password: str | None = None) -> aiomqtt.Client:
    """A device over TLS, trusting the test CA."""
    s = site.secured
    return aiomqtt.Client(
        s.broker.host,
        s.broker.tls_port,
        identifier=device_id,
        username=device_id,
        password=password if password is not None else site.secrets[device_id],
        tls_context=s.tls_context(),
        protocol=aiomqtt.ProtocolVersion.V5,
    )


@pytest.fixture
async def dispatcher(site: Site, tmp_path: Path) -> AsyncIterator[App]:
    """The daemon with its own account, over TLS ([mqtt] ca_file: the test CA)."""
    s = site.secured
    settings = settings_for(
        tmp_path,
        mqtt={
            "url": s.broker.tls_url,
            "ca_file": str(s.broker.certs / "ca.crt"),
            "topic_root": ROOT,
            "client_id": f"dispatcher-{uuid.uuid4().hex[:8]}",
            "username": "eldercall-dispatcher",
            "password": site.secrets["eldercall-dispatcher"],
        },
    )
    app = await build(settings, clock=FakeClock(TUESDAY_10AM))
    async with serving(app, serve_http=False, stop_within=10):
        yield app


async def next_ack(client: aiomqtt.Client, within: float = 10.0) -> dict[str, object]:
    async with asyncio.timeout(within):
        async for message in client.messages:
            if message.topic.value.endswith("/ack"):
                body: dict[str, object] = json.loads(bytes(message.payload))  # type: ignore[arg-type]
                return body
    raise AssertionError("the connection ended without an ack")


async def test_a_device_cannot_press_for_another_and_no_call_opens(
    site: Site, dispatcher: App
) -> None:
    forged = json.dumps({"ref": "forged", "type": "emergency"}).encode()
    with contextlib.suppress(aiomqtt.MqttError):  # the client may be told at its PUBACK
        async with device(site, "dev-0001") as dev1:
            await dev1.publish(f"{ROOT}/dev/dev-0002/event", forged, qos=1)
    log = site.secured.broker.log_path.read_text(errors="replace")
    assert re.search(rf"Denied PUBLISH from dev-0001 \(.*'{ROOT}/dev/dev-0002/event'", log)
    # MQTT 5's PUBACK says so: 135, not authorised.
    assert re.search(r"Sending PUBACK to dev-0001 \(m\d+, rc135\)", log)
    async with device(site, "dev-0001") as dev1:
        await dev1.subscribe(f"{ROOT}/dev/dev-0001/ack", qos=1)
        # Its own press goes through, and is the only call: the forged one never
        # reached the dispatcher.
        own = json.dumps({"ref": "own", "type": "emergency"}).encode()
        await dev1.publish(f"{ROOT}/dev/dev-0001/event", own, qos=1)
        ack = await next_ack(dev1)
        assert ack["ref"] == "own" and ack["result"] == "ok" and ack["call_id"]
    calls = await dispatcher.operations.list_calls("all")
    assert [c.device_id for c in calls] == ["dev-0001"]


async def test_a_device_cannot_read_another_devices_answers(site: Site, dispatcher: App) -> None:
    async with device(site, "dev-0001") as dev1, device(site, "dev-0002") as dev2:
        await dev1.subscribe(f"{ROOT}/dev/dev-0002/ack", qos=1)  # not its own
        await dev2.subscribe(f"{ROOT}/dev/dev-0002/ack", qos=1)
        press = json.dumps({"ref": "p2", "type": "service"}).encode()
        await dev2.publish(f"{ROOT}/dev/dev-0002/event", press, qos=1)
        ack = await next_ack(dev2)
        assert ack["ref"] == "p2" and ack["result"] == "ok"
        with pytest.raises(TimeoutError):  # dev-0002's answer never reaches dev-0001
            await next_ack(dev1, within=0.5)


async def test_a_revoked_device_is_cut_off_without_a_restart(site: Site) -> None:
    broker = site.secured.broker
    pid = broker.pid
    async with device(site, "dev-0002") as dev2:
        await dev2.subscribe(f"{ROOT}/dev/dev-0002/cmd", qos=1)
        code = cli.main(["devices", "revoke", "dev-0002", "--config", str(site.secured.config)])
        assert code == 0
        with pytest.raises(aiomqtt.MqttError):  # disconnected at the reload
            async with asyncio.timeout(5):
                async for _ in dev2.messages:
                    pass
    with pytest.raises(aiomqtt.MqttError):
        async with device(site, "dev-0002"):
            pass
    assert broker.pid == pid and broker.running  # reloaded, not restarted
    async with device(site, "dev-0001"):  # the others are untouched
        pass
    assert (site.secured.broker.state_dir / "passwd").read_text().count("dev-0002") == 0


async def test_tls_needs_the_ca_and_a_secret(site: Site) -> None:
    s = site.secured
    async with device(site, "dev-0001") as dev1:  # TLS, trusting the CA: in
        await dev1.publish(f"{ROOT}/dev/dev-0001/status", b'{"state": "online"}', qos=1)
    with pytest.raises(aiomqtt.MqttError):  # a client that does not trust the CA
        async with aiomqtt.Client(
            s.broker.host,
            s.broker.tls_port,
            username="dev-0001",
            password=site.secrets["dev-0001"],
            tls_context=ssl.create_default_context(),
        ):
            pass
    with pytest.raises(aiomqtt.MqttError):  # the wrong secret
        async with device(site, "dev-0001", password="not-the-secret-at-all"):
            pass
    with pytest.raises(aiomqtt.MqttError):  # no account at all (anonymous)
        async with mqtt_client(s.broker.url):
            pass
