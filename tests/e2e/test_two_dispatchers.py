"""Two ``eldercall run`` daemons on one database: the second refuses to start, naming
the first, and exits non-zero; after the first is killed (SIGKILL, its lease left
behind), a new one started at once takes over, saying whose it was.

Real processes, real clock, real Mosquitto and SQLite; the lease is shortened to
seconds through the configuration file."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from simulator.broker import MosquittoProcess, free_port
from tests.support.broker import mqtt_client, next_message, payload_json
from tests.support.daemon import start_daemon, stop_daemon
from tests.support.daemon import write_config as daemon_config
from tests.support.ports import unique_client_id

pytestmark = pytest.mark.integration
LEASE_S = 3.0


def write_config(tmp: Path, broker: MosquittoProcess, root: str, client_id: str) -> Path:
    """One more configuration on the same database, with its own HTTP port."""
    return daemon_config(
        tmp / f"eldercall-{free_port()}.toml",
        broker_url=broker.url,
        root=root,
        client_id=client_id,
        db=tmp / "eldercall.db",
        extra=f"[instance]\nlease_s = {LEASE_S}\nrenew_every_s = 0.5\n",
    )


def log_events(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


async def until_logged(log: Path, event: str, within: float = 30.0) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            for entry in log_events(log):
                if entry.get("event") == event:
                    return entry
            await asyncio.sleep(0.1)


async def answers_a_press(url: str, root: str, ref: str) -> dict[str, Any]:
    async with mqtt_client(url) as dev:
        await dev.subscribe(f"{root}/dev/dev-0001/ack", qos=1)
        body = json.dumps({"ref": ref, "type": "service"}).encode()
        await dev.publish(f"{root}/dev/dev-0001/event", body, qos=1)
        async with asyncio.timeout(20):
            while True:  # a killed daemon's last answers may come again (at least once)
                ack = payload_json(await next_message(dev, 20))
                assert isinstance(ack, dict)
                if ack.get("ref") == ref:
                    return ack


async def test_a_second_daemon_on_one_database_refuses_and_a_crashed_ones_lease_is_taken(
    tmp_path: Path, mosquitto: MosquittoProcess, topic_root: str
) -> None:
    client_id = unique_client_id()
    first_log, second_log, third_log = (tmp_path / f"{n}.log" for n in ("a", "b", "c"))
    first = await start_daemon(write_config(tmp_path, mosquitto, topic_root, client_id), first_log)
    daemons = [first]
    try:
        started = await until_logged(first_log, "dispatcher_started")
        await until_logged(first_log, "mqtt_connected")  # its session exists from now on
        assert (await answers_a_press(mosquitto.url, topic_root, "one"))["result"] == "ok"

        # The same configuration (same client id, same database), another HTTP port.
        second = await start_daemon(
            write_config(tmp_path, mosquitto, topic_root, client_id), second_log
        )
        daemons.append(second)
        assert await asyncio.wait_for(second.wait(), 60) != 0
        [refused] = [
            e for e in log_events(second_log) if e["event"] == "dispatcher_already_running"
        ]
        assert f"pid {first.pid}" in refused["error"] and started["owner"] in refused["error"]
        # The first never noticed a fight: still running, still answering.
        assert first.returncode is None
        assert (await answers_a_press(mosquitto.url, topic_root, "two"))["result"] == "ok"

        first.send_signal(signal.SIGKILL)  # a crash: the lease stays behind
        await first.wait()
        # Restarted at once (as systemd would): its pid is gone from this host, so
        # its lease, still live, is taken over without waiting it out.
        third = await start_daemon(
            write_config(tmp_path, mosquitto, topic_root, client_id), third_log
        )
        daemons.append(third)
        taken = await until_logged(third_log, "dispatcher_lock_taken_over")
        assert f"pid {first.pid}" in taken["previous_owner"] and taken["level"] == "warning"
        await until_logged(third_log, "mqtt_connected")
        assert (await answers_a_press(mosquitto.url, topic_root, "three"))["result"] == "ok"
        assert await stop_daemon(third, within=30) == 0
    finally:
        for daemon in daemons:
            if daemon.returncode is None:
                daemon.send_signal(signal.SIGKILL)
                await daemon.wait()
