"""Idle HTTP connections can never starve MQTT intake of file descriptors: the daemon's
HTTP server holds at most ``[http] max_connections`` (one beyond is closed at once),
closes a connection that sends nothing after ``keep_alive_s``, and the daemon lifts
its soft limit of open files to the hard one at start. Real Mosquitto, real SQLite."""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from dispatcher.bootstrap import run
from dispatcher.testing import FakeClock
from simulator.broker import MosquittoProcess
from tests.support.app import TUESDAY_10AM, built_app, settings_for
from tests.support.broker import mqtt_client, next_message, payload_json

pytestmark = pytest.mark.integration
LIMIT = 5
IDLE = 4 * LIMIT  # far more idle connections than the limit
KEEP_ALIVE_S = 1.0


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


async def test_idle_connections_beyond_the_limit_are_refused_and_mqtt_still_answers(
    tmp_path: Path, mosquitto: MosquittoProcess, topic_root: str
) -> None:
    settings = settings_for(
        tmp_path,
        mqtt={"url": mosquitto.url, "topic_root": topic_root},
        http={"max_connections": LIMIT, "keep_alive_s": KEEP_ALIVE_S},
    )
    app = await built_app(settings, FakeClock(TUESDAY_10AM))
    stop = asyncio.Event()
    task = asyncio.create_task(run(app, stop))
    idle: list[socket.socket] = []
    try:
        await asyncio.wait_for(app.mqtt.connected.wait(), 10)
        health = f"{settings.http.base_url}/api/v1/health"
        async with httpx.AsyncClient() as http:
            assert (await http.get(health)).status_code == 200  # listening
        for _ in range(IDLE):
            idle.append(socket.create_connection((settings.http.host, settings.http.port)))
        # Those beyond the limit are closed at once: their descriptors are freed.
        await asyncio.sleep(0.3)
        refused = [s for s in idle if await asyncio.to_thread(closed_by_server, s, 0.05)]
        assert len(refused) >= IDLE - LIMIT

        # MQTT intake goes on while they are held.
        async with mqtt_client(mosquitto.url) as dev:
            await dev.subscribe(f"{topic_root}/dev/dev-0001/ack", qos=1)
            body = json.dumps({"ref": "held", "type": "emergency"}).encode()
            await dev.publish(f"{topic_root}/dev/dev-0001/event", body, qos=1)
            ack = payload_json(await next_message(dev, 10))
            assert ack["ref"] == "held" and ack["result"] == "ok"

        # The idle ones that were let in are closed after keep_alive_s of silence...
        held = [s for s in idle if s not in refused]
        for sock in held:
            assert await asyncio.to_thread(closed_by_server, sock, KEEP_ALIVE_S + 3)
        # ...and a new request then succeeds.
        async with httpx.AsyncClient() as http:
            assert (await http.get(health)).status_code == 200
    finally:
        for sock in idle:
            sock.close()
        stop.set()
        await asyncio.wait_for(task, 15)
        await app.aclose()


def test_the_soft_open_files_limit_is_raised_to_the_hard_one() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 256 if hard == resource.RLIM_INFINITY else min(256, hard)
    script = (
        "import resource\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({low}, {hard}))\n"
        "from dispatcher.bootstrap import raise_open_files_limit\n"
        "raise_open_files_limit()\n"
        "print(*resource.getrlimit(resource.RLIMIT_NOFILE))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    new_soft, new_hard = (int(n) for n in out.stdout.split()[-2:])
    assert new_hard == hard
    expected = hard if hard != resource.RLIM_INFINITY else new_soft
    assert new_soft == expected and new_soft > low
