"""Crash safety: the dispatcher process is killed with SIGKILL while a call is
escalating and while devices are publishing. After a restart every answered event
is in the database, every unanswered one is delivered again and answered, and the
escalation goes on at its due times, neither lost nor repeated.

Runs ``eldercall run`` as a real process with the real clock; the policy's delays
are shortened to seconds through the configuration file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import httpx
import pytest

from dispatcher.adapters.files.directory_files import load_directory
from dispatcher.core.rota import on_duty as rota
from simulator.broker import MosquittoProcess
from simulator.phone_network.server import SmsSinkServer
from tests.support.app import DATA
from tests.support.broker import mqtt_client, payload_json
from tests.support.daemon import http_base, start_daemon, stop_daemon
from tests.support.daemon import write_config as daemon_config

pytestmark = pytest.mark.integration
STEP2_AFTER_S = 4


def write_config(tmp: Path, broker: MosquittoProcess, sink: SmsSinkServer, root: str) -> Path:
    """SMS through the sink; the emergency policy's second step after STEP2_AFTER_S."""
    return daemon_config(
        tmp / "eldercall.toml",
        broker_url=broker.url,
        root=root,
        client_id="dispatcher-restart-test",
        db=tmp / "eldercall.db",
        extra=f"""[sms]
provider = "twilio"
account_sid = "{sink.account_sid}"
auth_token = "{sink.auth_token}"
from_number = "+8610000000000"
api_base = "{sink.url}"
[escalation.policies.emergency]
repeat_every_s = 600
steps = [
  {{ delay_s = 0, targets = ["hotline"] }},
  {{ delay_s = {STEP2_AFTER_S}, targets = ["street_supervisor"] }},
]
""",
    )


async def press_until_answered(url: str, root: str, device_id: str, ref: str) -> str:
    """Press until the daemon (which may still be starting) answers; the call id."""
    async with mqtt_client(url) as resident:
        await resident.subscribe(f"{root}/dev/{device_id}/ack", qos=1)
        body = json.dumps({"ref": ref, "type": "emergency"}).encode()
        async with asyncio.timeout(20):
            while True:
                await resident.publish(f"{root}/dev/{device_id}/event", body, qos=1)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1):
                        return str(payload_json(await anext(aiter(resident.messages)))["call_id"])


class Devices:
    """Ten devices publishing events without resending (a plain MQTT client), and a
    listener that records every answer."""

    def __init__(self, url: str, root: str) -> None:
        self.url, self.root = url, root
        self.published: set[tuple[str, str]] = set()  # (device_id, ref), PUBACKed by broker
        self.answered: dict[tuple[str, str], dict[str, object]] = {}

    async def listen(self) -> None:
        async with mqtt_client(self.url) as client:
            await client.subscribe(f"{self.root}/dev/+/ack", qos=1)
            async for message in client.messages:
                device_id = message.topic.value.split("/")[-2]
                ack = payload_json(message)
                self.answered[(device_id, ack["ref"])] = ack

    async def publish(self, stop: asyncio.Event) -> None:
        n = 0
        async with mqtt_client(self.url) as client:
            # Bounded: enough traffic to span the kill and the restart, not so much that
            # draining the backlog races the test's own timeouts on a loaded machine.
            while not stop.is_set() and n < MAX_LOAD_EVENTS:
                device_id = f"dev-{10 + n % 10:04d}"
                ref = f"load-{n}"
                # "cancel" with no open call: stored and answered, opens nothing.
                body = json.dumps({"ref": ref, "type": "cancel"}).encode()
                await client.publish(f"{self.root}/dev/{device_id}/event", body, qos=1)
                self.published.add((device_id, ref))
                n += 1
                await asyncio.sleep(0.02)


MAX_LOAD_EVENTS = 200


def stored_events(db: Path) -> set[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return set(conn.execute("SELECT device_id, ref FROM events"))


async def test_sigkill_loses_no_event_and_no_escalation_step(
    tmp_path: Path, own_mosquitto: MosquittoProcess, sms_sink: SmsSinkServer
) -> None:
    root = "restart/v1"
    config = write_config(tmp_path, own_mosquitto, sms_sink, root)
    log = tmp_path / "daemon.log"
    devices = Devices(own_mosquitto.url, root)
    listener = asyncio.create_task(devices.listen())
    daemon = await start_daemon(config, log)
    stop_publishing = asyncio.Event()
    publisher: asyncio.Task[None] | None = None
    try:
        call_id = await press_until_answered(own_mosquitto.url, root, "dev-0001", "sos-1")
        opened = time.monotonic()
        hotline = {d.staff.phone for d in rota.hotline(load_directory(DATA), datetime.now(UTC))}
        step1 = await sms_sink.wait_for_async(
            lambda m: call_id in m.body, count=len(hotline), timeout=10
        )
        assert {m.to for m in step1} == hotline
        publisher = asyncio.create_task(devices.publish(stop_publishing))
        await asyncio.sleep(1.0)

        daemon.send_signal(signal.SIGKILL)  # mid-escalation, mid-traffic
        await daemon.wait()
        answered_before = set(devices.answered)
        await asyncio.sleep(1.0)  # devices keep publishing to a dispatcher that is gone
        daemon = await start_daemon(config, log)

        # Overdue by the time the daemon is back, step 2 must come once it has started:
        # the limit counts from the restart (a start-up takes seconds on a loaded machine),
        # not from the press, whose distance from the restart depends on that load.
        step2 = await sms_sink.wait_for_async(
            lambda m: call_id in m.body and "仍无人确认" in m.body, timeout=20
        )
        late = time.monotonic() - opened
        assert late >= STEP2_AFTER_S - 0.5, "step 2 came early"
        # dev-0001 lives in c-lh (street s-hx): its street's supervisor on duty now, by
        # the rota (sun-li by day; after 17:30 the two streets' evening rotation).
        at = datetime.now(UTC)
        street = [s.phone for s in rota.supervisors(load_directory(DATA), "c-lh", at)]
        assert [m.to for m in step2] == street

        stop_publishing.set()
        await publisher
        async with asyncio.timeout(20):
            while not devices.published <= set(devices.answered):  # noqa: ASYNC110  # filled by the listener task
                await asyncio.sleep(0.1)
        stored = stored_events(tmp_path / "eldercall.db")
        assert answered_before <= stored, "an answered event is missing after the crash"
        assert devices.published <= stored
        assert len(devices.published) > 50
        # Each step fired once: one SMS per hotline operator for step 1, one for step 2.
        await asyncio.sleep(0.5)
        about_call = [m for m in sms_sink.messages if call_id in m.body]
        assert len(about_call) == len(step1) + 1

        async with httpx.AsyncClient() as http:
            shown = await http.get(
                f"{http_base(config)}/api/v1/calls/{call_id}",
                headers={"Authorization": "Bearer demo-operator-token"},
            )
        steps = [e for e in shown.json()["timeline"] if e["action"] == "escalated"]
        assert len(steps) == 2
    finally:
        stop_publishing.set()
        if publisher is not None:
            with contextlib.suppress(Exception):
                await publisher
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await listener
        await stop_daemon(daemon)


async def until_serving(http: httpx.AsyncClient, health: str) -> None:
    """Until the daemon answers over HTTP: a start-up takes seconds on a loaded machine,
    and what is measured after a restart counts from when it is up."""
    async with asyncio.timeout(60):
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(health)).is_success:
                    return
            await asyncio.sleep(0.05)


def outbox_statuses(db: Path, call_id: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        query = "SELECT status FROM sms_outbox WHERE call_id = ? ORDER BY id"
        return [status for (status,) in conn.execute(query, (call_id,))]


async def test_sigkill_with_sms_in_flight_sends_them_soon_after_the_restart(
    tmp_path: Path, own_mosquitto: MosquittoProcess, sms_sink: SmsSinkServer
) -> None:
    root = "restart/v1"
    config = write_config(tmp_path, own_mosquitto, sms_sink, root)
    log = tmp_path / "daemon.log"
    hotline = {d.staff.phone for d in rota.hotline(load_directory(DATA), datetime.now(UTC))}
    sms_sink.hold(*hotline)  # the provider takes the requests and never answers
    daemon = await start_daemon(config, log)
    try:
        call_id = await press_until_answered(own_mosquitto.url, root, "dev-0001", "sos-1")
        await sms_sink.wait_for_held(len(hotline), timeout=10)
        daemon.send_signal(signal.SIGKILL)  # every emergency SMS claimed, in flight
        await daemon.wait()
        assert outbox_statuses(tmp_path / "eldercall.db", call_id) == ["sending"] * len(hotline)
        async with asyncio.timeout(10):
            while sms_sink.held:  # noqa: ASYNC110  # until the sink sees its clients gone
                await asyncio.sleep(0.01)
        assert not [m for m in sms_sink.messages if call_id in m.body]  # none arrived
        sms_sink.release_held()  # and the provider is well again

        daemon = await start_daemon(config, log)
        async with httpx.AsyncClient() as http:
            await until_serving(http, f"{http_base(config)}/api/v1/health")
            # Handed back at start-up, not after the 2-minute stale-claim timeout.
            again = await sms_sink.wait_for_async(
                lambda m: call_id in m.body and m.to in hotline, count=len(hotline), timeout=10
            )
            assert sorted(m.to for m in again) == sorted(hotline)  # each once
            shown = await http.get(
                f"{http_base(config)}/api/v1/calls/{call_id}",
                headers={"Authorization": "Bearer demo-operator-token"},
            )
        resent = [e["detail"] for e in shown.json()["timeline"] if e["action"] == "notify_resent"]
        assert len(resent) == len(hotline)
        assert all(d.startswith("possible duplicate: sent again after a restart") for d in resent)
    finally:
        sms_sink.release_held()
        await stop_daemon(daemon)
