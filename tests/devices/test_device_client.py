"""The reference device client against a real mosquitto and a fake centre."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any, Literal

import pytest

from devices.client import DeviceClient, DeviceStopped
from devices.protocol import AckResult, CallUpdate, CallUpdateState
from simulator.broker import MosquittoProcess
from tests.support.broker import fake_centre, mqtt_client, next_message, payload_json

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def new_id() -> str:
    return f"dev-{uuid.uuid4().hex[:10]}"


def device(url: str, root: str, device_id: str | None = None, **kwargs: Any) -> DeviceClient:
    kwargs.setdefault("resend_after_s", 0.3)
    kwargs.setdefault("min_backoff_s", 0.05)
    kwargs.setdefault("max_backoff_s", 0.3)
    return DeviceClient(device_id or new_id(), url=url, topic_root=root, **kwargs)


@pytest.mark.parametrize("protocol", [5, 4])
async def test_press_is_resent_with_the_same_ref_until_acked(
    mosquitto: MosquittoProcess, topic_root: str, protocol: Literal[4, 5]
) -> None:
    async with (
        fake_centre(mosquitto.url, topic_root, drop_first=2) as centre,
        device(mosquitto.url, topic_root, protocol=protocol, battery=87) as dev,
    ):
        async with asyncio.timeout(5):
            ack = await dev.press("emergency", rssi=-70)
    assert ack.result is AckResult.OK
    assert ack.call_id == "C-0001"
    sent = centre.of_type("emergency")
    assert len(sent) == 3  # two unanswered, the third acked
    assert {e["ref"] for e in sent} == {ack.ref}
    assert sent[0]["battery"] == 87 and sent[0]["rssi"] == -70
    assert "ts" in sent[0]


async def test_each_press_has_a_fresh_ref(mosquitto: MosquittoProcess, topic_root: str) -> None:
    async with (
        fake_centre(mosquitto.url, topic_root) as centre,
        device(mosquitto.url, topic_root, resend_after_s=5) as dev,
    ):
        # An answered press returns on the ack, not at the next resend.
        async with asyncio.timeout(3):
            first = await dev.press("service")
            second = await dev.press("cancel")
    assert first.ref != second.ref
    assert [e["type"] for _, e in centre.events] == ["service", "cancel"]
    assert second.call_id == first.call_id


async def test_status_online_is_retained_and_clean_stop_announces_offline(
    mosquitto: MosquittoProcess, topic_root: str
) -> None:
    dev = device(mosquitto.url, topic_root)
    status_topic = f"{topic_root}/dev/{dev.device_id}/status"
    # A subscriber arriving later still learns the state: the message is retained.
    async with dev, mqtt_client(mosquitto.url) as late:
        await late.subscribe(status_topic, qos=1)
        message = await next_message(late)
        assert message.retain
        assert payload_json(message) == {"state": "online"}
    async with mqtt_client(mosquitto.url) as later:
        await later.subscribe(status_topic, qos=1)
        assert payload_json(await next_message(later)) == {"state": "offline"}


async def test_clean_stop_can_leave_status_alone(
    mosquitto: MosquittoProcess, topic_root: str
) -> None:
    dev = device(mosquitto.url, topic_root, announce_offline_on_stop=False)
    async with dev:
        pass
    async with mqtt_client(mosquitto.url) as sub:
        await sub.subscribe(f"{topic_root}/dev/{dev.device_id}/status", qos=1)
        assert payload_json(await next_message(sub)) == {"state": "online"}


async def test_last_will_says_offline_when_the_device_dies(
    mosquitto: MosquittoProcess, topic_root: str
) -> None:
    device_id = new_id()
    async with mqtt_client(mosquitto.url) as watcher:
        await watcher.subscribe(f"{topic_root}/dev/{device_id}/status", qos=1)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "devices.client",
            "--device-id",
            device_id,
            "--broker",
            mosquitto.url,
            "--topic-root",
            topic_root,
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            assert payload_json(await next_message(watcher, within=15)) == {"state": "online"}
            proc.send_signal(signal.SIGKILL)  # a crash: no DISCONNECT, the broker sends the will
            message = await next_message(watcher)
            assert payload_json(message) == {"state": "offline"}
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


async def test_call_updates_are_kept_queued_and_called_back(
    mosquitto: MosquittoProcess, topic_root: str
) -> None:
    seen: list[CallUpdate] = []
    async with (
        fake_centre(mosquitto.url, topic_root) as centre,
        device(mosquitto.url, topic_root, on_update=seen.append) as dev,
    ):
        await centre.send_cmd(
            dev.device_id,
            {"type": "call_update", "call_id": "C-1", "state": "acknowledged", "text": "来了"},
        )
        async with asyncio.timeout(5):
            update = await dev.update_queue.get()
    assert update.call_id == "C-1"
    assert update.state is CallUpdateState.ACKNOWLEDGED
    assert update.text == "来了"
    assert dev.updates == [update]
    assert seen == [update]


async def test_heartbeats_arrive_unanswered(mosquitto: MosquittoProcess, topic_root: str) -> None:
    async with (
        fake_centre(mosquitto.url, topic_root) as centre,
        device(mosquitto.url, topic_root, heartbeat_s=0.15) as dev,
    ):
        await centre.wait_for(lambda: len(centre.of_type("heartbeat")) >= 3)
    beats = centre.of_type("heartbeat", dev.device_id)
    assert len({b["ref"] for b in beats}) == len(beats)  # each beat is a new event
    assert dev.acks == []


async def test_config_command_changes_the_heartbeat_interval(
    mosquitto: MosquittoProcess, topic_root: str
) -> None:
    async with (
        fake_centre(mosquitto.url, topic_root) as centre,
        device(mosquitto.url, topic_root, heartbeat_s=3600) as dev,
    ):
        await centre.send_cmd(dev.device_id, {"type": "config", "heartbeat_s": 1})
        # Without the command the next beat would be an hour away.
        await centre.wait_for(lambda: len(centre.of_type("heartbeat")) >= 1, within=4)
    assert dev.heartbeat_s == 1


async def test_ack_heartbeat_field_changes_the_interval(
    mosquitto: MosquittoProcess, topic_root: str
) -> None:
    async with (
        mqtt_client(mosquitto.url) as centre,
        device(mosquitto.url, topic_root, heartbeat_s=3600) as dev,
    ):
        await centre.subscribe(f"{topic_root}/dev/{dev.device_id}/event", qos=1)
        press = asyncio.create_task(dev.press("service"))
        event = payload_json(await next_message(centre))
        await centre.publish(
            f"{topic_root}/dev/{dev.device_id}/ack",
            f'{{"ref": "{event["ref"]}", "result": "ok", "heartbeat_s": 600}}'.encode(),
            qos=1,
        )
        async with asyncio.timeout(5):
            ack = await press
    assert ack.heartbeat_s == 600
    assert dev.heartbeat_s == 600


async def test_press_keeps_trying_across_a_broker_outage(
    own_mosquitto: MosquittoProcess, topic_root: str
) -> None:
    async with device(own_mosquitto.url, topic_root) as dev:
        await asyncio.to_thread(own_mosquitto.stop)
        press = asyncio.create_task(dev.press("fall"))
        await asyncio.sleep(0.4)  # the device is pressing into the void, reconnecting
        assert not press.done()
        await asyncio.to_thread(own_mosquitto.start)
        async with fake_centre(own_mosquitto.url, topic_root) as centre:
            async with asyncio.timeout(10):
                ack = await press
            assert ack.result is AckResult.OK
            assert centre.of_type("fall")[0]["ref"] == ack.ref
        assert dev.connections == 2
        assert dev.online


@pytest.mark.parametrize("protocol", [5, 4])
async def test_commands_sent_while_away_arrive_on_return(
    mosquitto: MosquittoProcess, topic_root: str, protocol: Literal[4, 5]
) -> None:
    """The persistent session: the broker keeps QoS 1 messages for the absent device."""
    device_id = new_id()
    async with device(mosquitto.url, topic_root, device_id, protocol=protocol):
        pass
    async with fake_centre(mosquitto.url, topic_root) as centre:
        await centre.send_cmd(
            device_id, {"type": "call_update", "call_id": "C-9", "state": "resolved"}
        )
    async with device(mosquitto.url, topic_root, device_id, protocol=protocol) as dev:
        async with asyncio.timeout(5):
            update = await dev.update_queue.get()
    assert update.call_id == "C-9"


async def test_unknown_commands_and_garbage_are_ignored(
    mosquitto: MosquittoProcess, topic_root: str
) -> None:
    async with (
        fake_centre(mosquitto.url, topic_root) as centre,
        device(mosquitto.url, topic_root) as dev,
    ):
        await centre.send_cmd(dev.device_id, {"type": "reboot"})
        await centre.client.publish(f"{topic_root}/dev/{dev.device_id}/cmd", b"not json", qos=1)
        await centre.send_cmd(dev.device_id, {"type": "call_update", "call_id": "C-2"})
        await centre.send_cmd(
            dev.device_id, {"type": "call_update", "call_id": "C-3", "state": "received"}
        )
        async with asyncio.timeout(5):
            update = await dev.update_queue.get()
        assert update.call_id == "C-3"  # the device survived what came before
        assert (await dev.press("cancel")).result is AckResult.OK


async def test_a_device_that_cannot_connect_fails_clearly(topic_root: str) -> None:
    from simulator.broker import free_port

    dev = device(f"mqtt://127.0.0.1:{free_port()}", topic_root, connect_timeout_s=0.5)
    with pytest.raises(TimeoutError):
        async with dev:
            pass
    assert not dev.online


async def test_press_on_a_stopped_device_fails_at_once(
    mosquitto: MosquittoProcess, topic_root: str
) -> None:
    dev = device(mosquitto.url, topic_root)
    with pytest.raises(DeviceStopped):
        await dev.press("emergency")  # never started
    async with dev:
        pass
    with pytest.raises(DeviceStopped):
        await dev.press("emergency")


async def test_stopping_releases_a_press_still_waiting_for_its_ack(
    mosquitto: MosquittoProcess, topic_root: str
) -> None:
    dev = device(mosquitto.url, topic_root)
    async with dev:
        press = asyncio.create_task(dev.press("service"))  # nobody answers
        await asyncio.sleep(0.1)
    with pytest.raises(DeviceStopped):
        async with asyncio.timeout(2):
            await press


async def test_cancelling_a_press_waiting_for_its_puback_cancels_it(
    own_mosquitto: MosquittoProcess, topic_root: str
) -> None:
    """Whoever cancels a press (a simulator stopping its homes) must see it end."""
    pid = own_mosquitto.pid
    assert pid is not None
    async with device(own_mosquitto.url, topic_root) as dev:
        os.kill(pid, signal.SIGSTOP)  # a hung broker: the publish waits for its PUBACK
        try:
            press = asyncio.create_task(dev.press("emergency"))
            await asyncio.sleep(0.1)  # however long: without a PUBACK it stays there
            assert not press.done()
            press.cancel()
            await asyncio.wait({press}, timeout=2)
            assert press.cancelled()
        finally:
            os.kill(pid, signal.SIGCONT)
