"""The reference device client: a home call button that speaks device protocol v1.

It behaves as ``shared/spec/device-protocol.md`` asks of a device, so the simulator,
the tests and device makers share one worked example:

- a stable client id and a persistent session, so acks and commands sent while the
  device is away are delivered when it comes back (MQTT 5 needs ``clean_start=False``
  *and* a ``SessionExpiryInterval``, or the session dies at disconnect);
- subscriptions to its own ``ack`` and ``cmd`` at QoS 1; retained ``status`` online
  after connecting, and a retained offline Last Will for crashes;
- reconnection with jittered exponential backoff (aiomqtt 2.x has none of its own);
- :meth:`DeviceClient.press` publishes an event at QoS 1 and resends it with the same
  ``ref``, backing off, until the centre's ack for that ref arrives, across outages;
- heartbeats every ``heartbeat_s``, changed by a ``config`` command or an ack's
  ``heartbeat_s``; call updates kept in :attr:`DeviceClient.updates`, a queue and an
  optional callback.

Stopping: :meth:`DeviceClient.stop` (and leaving ``async with``) is a clean shutdown.
A clean MQTT DISCONNECT suppresses the Last Will, so by default the device publishes
its retained ``offline`` status itself first (``announce_offline_on_stop``): a device
that was switched off is offline, and the centre should know. Cancelling the task of
:meth:`DeviceClient.run` disconnects without announcing anything.

Run one by hand: ``python -m devices.client --device-id D1 --broker mqtt://127.0.0.1:1883``
and type event types (``emergency``, ``cancel``...) on stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import secrets
import ssl
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from devices.protocol import (
    DEFAULT_TOPIC_ROOT,
    DEVICE_ID_RE,
    DEVICE_RESEND_AFTER_S,
    Ack,
    CallUpdate,
    ConfigCommand,
    DeviceStatus,
    Event,
    EventType,
    Topics,
)

log = structlog.get_logger(__name__)

ONLINE = DeviceStatus(state="online").to_payload()
OFFLINE = DeviceStatus(state="offline").to_payload()

UpdateCallback = Callable[[CallUpdate], object]


class DeviceStopped(Exception):
    """The device was stopped while :meth:`DeviceClient.press` waited for an ack."""


class DeviceClient:
    """One home call device. Use ``async with DeviceClient(...) as dev`` or run :meth:`run`.

    ``url`` (``mqtt://host:port`` or ``mqtts://``) wins over ``host``/``port``.
    ``protocol`` is 5 (MQTT 5) or 4 (MQTT 3.1.1). ``client_id`` defaults to
    ``eldercall-<device_id>``: it must be stable across restarts for the session to
    persist, and unique per broker.
    """

    def __init__(
        self,
        device_id: str,
        *,
        url: str | None = None,
        host: str = "127.0.0.1",
        port: int = 1883,
        topic_root: str = DEFAULT_TOPIC_ROOT,
        username: str | None = None,
        password: str | None = None,
        protocol: Literal[4, 5] = 5,
        client_id: str | None = None,
        heartbeat_s: float = 3600.0,
        resend_after_s: float = DEVICE_RESEND_AFTER_S,
        resend_max_s: float = 120.0,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        keepalive_s: int = 30,
        session_expiry_s: int = 7 * 24 * 3600,
        connect_timeout_s: float = 10.0,
        announce_offline_on_stop: bool = True,
        battery: int | None = None,
        fw: str | None = None,
        on_update: UpdateCallback | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not DEVICE_ID_RE.fullmatch(device_id):
            raise ValueError(f"device id {device_id!r} does not match {DEVICE_ID_RE.pattern}")
        self.device_id = device_id
        self.tls = False
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
                raise ValueError(f"broker url {url!r} is not mqtt://host:port")
            self.tls = parts.scheme == "mqtts"
            host = parts.hostname
            port = parts.port or (8883 if self.tls else 1883)
        self.host = host
        self.port = port
        self.topics = Topics(topic_root)
        self.username = username
        self.password = password
        self.protocol: Literal[4, 5] = protocol
        self.client_id = client_id or f"eldercall-{device_id}"
        self.heartbeat_s = heartbeat_s
        self.resend_after_s = resend_after_s
        self.resend_max_s = max(resend_max_s, resend_after_s)
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max(max_backoff_s, min_backoff_s)
        self.keepalive_s = keepalive_s
        self.session_expiry_s = session_expiry_s
        self.connect_timeout_s = connect_timeout_s
        self.announce_offline_on_stop = announce_offline_on_stop
        self.battery = battery
        self.fw = fw
        self.on_update = on_update
        self._rng = rng or random.Random()
        self._log = log.bind(device_id=device_id)

        # What the device has received, for displays, simulators and tests.
        self.updates: list[CallUpdate] = []
        self.update_queue: asyncio.Queue[CallUpdate] = asyncio.Queue()
        self.acks: list[Ack] = []
        self.connections = 0  # successful connects so far

        self._pending: dict[str, asyncio.Future[Ack]] = {}
        self._client: aiomqtt.Client | None = None
        self._online = asyncio.Event()
        # Replaced at every connect and set at every disconnect, so that a waiting
        # press() learns that the link it published on is gone.
        self._link_lost: asyncio.Event = asyncio.Event()
        self._stop = asyncio.Event()
        self._heartbeat_changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await self.wait_online()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Run the device in a background task (it keeps reconnecting until stopped)."""
        if self._task is None or self._task.done():
            self._stop.clear()
            self._task = asyncio.create_task(self.run(), name=f"device-{self.device_id}")

    async def stop(self) -> None:
        """Clean shutdown: announce offline (unless told not to), disconnect, end tasks."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout=5.0)
            except TimeoutError:
                self._log.warning("device_stop_timeout")
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(DeviceStopped(self.device_id))

    @property
    def online(self) -> bool:
        return self._online.is_set()

    async def wait_online(self) -> None:
        """Until the device is connected (wrap in ``asyncio.timeout`` to bound it)."""
        await self._online.wait()

    async def run(self) -> None:
        """Connect, keep reconnecting, and send heartbeats until :meth:`stop`."""
        heartbeat = asyncio.create_task(self._heartbeat_loop())
        try:
            await self._connection_loop()
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    # -- connection ------------------------------------------------------------

    def _make_client(self) -> aiomqtt.Client:
        will = aiomqtt.Will(self.topics.status(self.device_id), OFFLINE, qos=1, retain=True)
        kwargs: dict[str, Any] = {
            "identifier": self.client_id,
            "username": self.username,
            "password": self.password,
            "will": will,
            "keepalive": self.keepalive_s,
            "timeout": 10,
        }
        if self.tls:
            kwargs["tls_context"] = ssl.create_default_context()
        if self.protocol == 5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.session_expiry_s
            kwargs.update(protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props)
        else:
            kwargs.update(protocol=aiomqtt.ProtocolVersion.V311, clean_session=False)
        return aiomqtt.Client(self.host, self.port, **kwargs)

    def _backoff(self, attempt: int) -> float:
        # Full exponential growth, then jitter in [50 %, 100 %] so that many devices
        # coming back after a broker restart do not all knock at the same instant.
        ceiling = min(self.max_backoff_s, self.min_backoff_s * 2.0**attempt)
        return ceiling * self._rng.uniform(0.5, 1.0)

    async def _connection_loop(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            client = self._make_client()
            try:
                async with client:
                    attempt = 0
                    await self._on_connected(client)
                    try:
                        await self._serve(client)
                    finally:
                        self._set_offline()
            except aiomqtt.MqttError as exc:
                self._log.warning("device_link_down", error=str(exc), attempt=attempt)
            except Exception:
                # A device must not die of a bug or a surprise: log it, reconnect.
                self._log.exception("device_loop_failed", attempt=attempt)
            if self._stop.is_set():
                break
            delay = self._backoff(attempt)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
        self._log.info("device_stopped")

    async def _on_connected(self, client: aiomqtt.Client) -> None:
        await client.subscribe(
            [(self.topics.ack(self.device_id), 1), (self.topics.cmd(self.device_id), 1)]
        )
        await client.publish(self.topics.status(self.device_id), ONLINE, qos=1, retain=True)
        self.connections += 1
        self._client = client
        self._link_lost = asyncio.Event()
        self._online.set()
        self._log.info("device_online", broker=f"{self.host}:{self.port}", n=self.connections)

    def _set_offline(self) -> None:
        self._online.clear()
        self._client = None
        self._link_lost.set()

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Handle incoming messages until the link drops (raises) or stop() is called."""
        reader = asyncio.create_task(self._read(client))
        stopper = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not reader.done():
                reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader  # re-raises MqttError when the link dropped
        if self._stop.is_set() and self.announce_offline_on_stop:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(
                    self.topics.status(self.device_id), OFFLINE, qos=1, retain=True, timeout=2
                )
        # Leaving `async with client` sends a clean DISCONNECT: no Last Will.

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self._handle(message)

    # -- incoming --------------------------------------------------------------

    def _handle(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        raw = message.payload if isinstance(message.payload, bytes | bytearray) else b""
        try:
            data = json.loads(raw)
        except ValueError:
            self._log.warning("device_bad_payload", topic=topic)
            return
        if not isinstance(data, dict):
            self._log.warning("device_bad_payload", topic=topic)
            return
        try:
            if topic == self.topics.ack(self.device_id):
                self._on_ack(Ack.model_validate(data))
            elif topic == self.topics.cmd(self.device_id):
                self._on_cmd(data)
        except ValidationError as exc:
            self._log.warning("device_bad_message", topic=topic, error=str(exc.errors()[0]))

    def _on_ack(self, ack: Ack) -> None:
        self.acks.append(ack)
        fut = self._pending.get(ack.ref)
        if fut is not None and not fut.done():
            fut.set_result(ack)
        else:
            # A second ack for a resent event: normal, the first one already counted.
            self._log.debug("device_ack_unexpected", ref=ack.ref)
        if ack.heartbeat_s is not None:
            self.set_heartbeat(ack.heartbeat_s)

    def _on_cmd(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "call_update":
            update = CallUpdate.model_validate(data)
            self.updates.append(update)
            self.update_queue.put_nowait(update)
            self._log.info(
                "device_call_update",
                call_id=update.call_id,
                state=update.state.value,
                text=update.text,
            )
            if self.on_update is not None:
                try:
                    self.on_update(update)
                except Exception:
                    self._log.exception("device_update_callback_failed", call_id=update.call_id)
        elif kind == "config":
            self.set_heartbeat(ConfigCommand.model_validate(data).heartbeat_s)
        else:
            self._log.info("device_cmd_ignored", type=kind)  # forward compatibility

    def set_heartbeat(self, seconds: float) -> None:
        if seconds != self.heartbeat_s:
            self._log.info("device_heartbeat_interval", heartbeat_s=seconds)
            self.heartbeat_s = seconds
            self._heartbeat_changed.set()

    # -- outgoing --------------------------------------------------------------

    def new_ref(self) -> str:
        return secrets.token_hex(8)

    def _event_payload(self, ref: str, event_type: EventType, fields: dict[str, Any]) -> bytes:
        body: dict[str, Any] = {"ref": ref, "type": event_type.value}
        body["ts"] = datetime.now(UTC).astimezone().isoformat(timespec="seconds")
        if self.battery is not None:
            body["battery"] = self.battery
        if self.fw is not None:
            body["fw"] = self.fw
        body.update({k: v for k, v in fields.items() if v is not None})
        Event.model_validate(body)  # refuse to send what the centre would answer `invalid`
        return json.dumps(body, separators=(",", ":")).encode()

    async def press(
        self, event_type: EventType | str, *, ref: str | None = None, **fields: Any
    ) -> Ack:
        """Send an event and return the centre's ack, resending with the same ref until then.

        ``fields`` are the optional event fields (``battery``, ``rssi``, ``fw``, ``ts``);
        ``ref`` may be given to replay an earlier event. Waits through broker outages;
        cancel the call (or use ``asyncio.timeout``) to give up.
        """
        if self._stop.is_set() or self._task is None:
            raise DeviceStopped(f"device {self.device_id} is not running")
        kind = EventType(event_type)
        ref = ref or self.new_ref()
        payload = self._event_payload(ref, kind, fields)
        topic = self.topics.event(self.device_id)
        fut: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._pending[ref] = fut
        plog = self._log.bind(ref=ref, type=kind.value)
        delay = self.resend_after_s
        sends = 0
        try:
            while True:
                await self._wait_online_or(fut)
                if fut.done():
                    break
                client, link_lost = self._client, self._link_lost
                if client is None:
                    continue
                sends += 1
                try:
                    await _publish_unless_lost(client, link_lost, topic, payload)
                    plog.info("device_event_sent", attempt=sends)
                except aiomqtt.MqttError as exc:
                    plog.warning("device_event_send_failed", attempt=sends, error=str(exc))
                # Wait for the ack, the resend delay, or the link dropping; after a
                # reconnect we resend at once (the broker may never have had it).
                lost: asyncio.Future[Any] = asyncio.ensure_future(link_lost.wait())
                try:
                    await asyncio.wait(
                        {fut, lost}, timeout=delay, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    lost.cancel()
                if fut.done():
                    break
                if not link_lost.is_set():
                    delay = min(delay * 2, self.resend_max_s)
            ack = fut.result()
        finally:
            self._pending.pop(ref, None)
        plog.info("device_event_acked", result=ack.result.value, call_id=ack.call_id)
        return ack

    async def _wait_online_or(self, fut: asyncio.Future[Ack]) -> None:
        if self._online.is_set() or fut.done():
            return
        online: asyncio.Future[Any] = asyncio.ensure_future(self._online.wait())
        try:
            await asyncio.wait({fut, online}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            online.cancel()

    async def _heartbeat_loop(self) -> None:
        while True:
            self._heartbeat_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._heartbeat_changed.wait(), timeout=self.heartbeat_s)
                continue  # the interval changed: start a new one from now
            client = self._client
            if client is None:
                continue  # no link: the centre's heartbeat supervision will notice
            payload = self._event_payload(self.new_ref(), EventType.HEARTBEAT, {})
            try:
                await client.publish(self.topics.event(self.device_id), payload, qos=1)
                self._log.debug("device_heartbeat_sent")
            except aiomqtt.MqttError as exc:
                self._log.warning("device_heartbeat_failed", error=str(exc))


async def _publish_unless_lost(
    client: aiomqtt.Client, link_lost: asyncio.Event, topic: str, payload: bytes
) -> None:
    """Publish at QoS 1; give up as soon as the link drops.

    aiomqtt waits for the PUBACK until its timeout even when the socket is already
    gone; the caller resends after reconnecting anyway.
    """
    publish = asyncio.ensure_future(client.publish(topic, payload, qos=1))
    lost = asyncio.ensure_future(link_lost.wait())
    try:
        done, _ = await asyncio.wait({publish, lost}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        # Our caller was cancelled (a simulator stopping its homes, a timeout): stop the
        # publish and let the cancellation through. Raising MqttError here instead would
        # swallow it, and press() would go on resending as if nobody had asked it to stop.
        publish.cancel()
        raise
    finally:
        lost.cancel()
    if publish not in done:
        publish.cancel()
        # asyncio.wait lets the publish wind down without raising its outcome here, and
        # without suppressing a cancellation of our own that may arrive meanwhile.
        await asyncio.wait({publish})
        if publish.cancelled() or publish.exception() is not None:
            raise aiomqtt.MqttError("link lost before PUBACK")
    publish.result()


# -- a device on the command line ----------------------------------------------


async def _main(args: argparse.Namespace) -> int:
    def show(update: CallUpdate) -> None:
        print(f"call {update.call_id}: {update.state.value} {update.text or ''}", flush=True)

    device = DeviceClient(
        args.device_id,
        url=args.broker,
        topic_root=args.topic_root,
        username=args.username,
        password=args.password,
        protocol=args.protocol,
        heartbeat_s=args.heartbeat,
        resend_after_s=args.resend_after,
        on_update=show,
    )
    loop = asyncio.get_running_loop()
    async with device:
        print("online", flush=True)
        pending: set[asyncio.Task[Ack]] = set()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            word = line.strip()
            if not word:
                continue
            try:
                kind = EventType(word)
            except ValueError:
                print(f"unknown event type {word!r}", flush=True)
                continue
            task = asyncio.create_task(device.press(kind))
            pending.add(task)
            task.add_done_callback(pending.discard)
            task.add_done_callback(_print_ack)
        if pending:
            await asyncio.wait(pending, timeout=args.resend_after * 4)
    return 0


def _print_ack(task: asyncio.Task[Ack]) -> None:
    if task.cancelled() or task.exception() is not None:
        return
    ack = task.result()
    print(f"ack {ack.ref}: {ack.result.value} {ack.call_id or ''}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A home call device on the command line.")
    parser.add_argument("--device-id", required=True)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--topic-root", default=DEFAULT_TOPIC_ROOT)
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument("--protocol", type=int, choices=(4, 5), default=5)
    parser.add_argument("--heartbeat", type=float, default=3600.0)
    parser.add_argument("--resend-after", type=float, default=DEVICE_RESEND_AFTER_S)
    args = parser.parse_args(argv)
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
