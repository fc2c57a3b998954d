"""The devices' side of the benchmark, in worker processes of their own.

One Python MQTT client tops out near 5,500 publishes a second (field notes), and the
bench process also orchestrates: so publishers and listeners each run in a process
(spawned, not forked, so no broker connection or thread is inherited). Every worker
stamps with ``time.time()``, comparable across processes and with the daemon's and
the sink's records. The simulator's virtual homes (one DeviceClient each, resending
after 10 s) do not fit here: 10,000 of them would measure the simulator, not the centre.

- :func:`publish_worker` sends events at QoS 1 as the protocol says, paced or flat out;
- :func:`listen_worker` records the first answer to every (device, ref);
- :func:`bare_subscriber_worker` (aiomqtt) and :func:`bare_responder_worker` (paho)
  are the baselines: clients doing the least a centre could (count; answer at once);
- :func:`floor_responder_worker` answers at once too, but on the daemon's own stack
  (aiomqtt, MQTT 5, the daemon's Receive Maximum): what a centre that stores nothing
  achieves under the same burst or flood, the floor under the daemon's figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event as EventType
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

CTX = multiprocessing.get_context("spawn")
INFLIGHT = 1000  # paho's default of 20 caps a publisher far below the broker


@dataclass(frozen=True)
class Press:
    """One event a device sends: its device id, ref and type."""

    device_id: str
    ref: str
    type: str

    @property
    def key(self) -> str:
        return f"{self.device_id}/{self.ref}"


def _host_port(url: str) -> tuple[str, int]:
    host, _, port = url.split("://", 1)[-1].partition(":")
    return host, int(port or 1883)


def _no_delay(_client: Any, _userdata: Any, sock: Any) -> None:
    """TCP_NODELAY: a device's small writes go out at once (see bare_responder_worker)."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _connected_paho(url: str, prefix: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-{uuid.uuid4().hex[:10]}")
    client.max_inflight_messages_set(INFLIGHT)
    client.on_socket_open = _no_delay
    client.max_queued_messages_set(0)
    up: list[bool] = []
    client.on_connect = lambda *_args: up.append(True)
    host, port = _host_port(url)
    client.connect(host, port, keepalive=60)
    client.loop_start()
    deadline = time.time() + 10
    while not up and time.time() < deadline:
        time.sleep(0.005)
    return client


def publish_worker(
    url: str,
    root: str,
    presses: Sequence[Press],
    rate: float,
    start_at: float,
    deadline: float,
    out: Any,
) -> None:
    """Publish ``presses`` from ``start_at``, ``rate`` a second (0: flat out); put
    ``(sent {key: time}, pubacks)`` on ``out``. Stops at ``deadline`` whatever is left."""
    client = _connected_paho(url, "bench-pub")
    acked = [0]
    client.on_publish = lambda *_args: acked.__setitem__(0, acked[0] + 1)
    sent: dict[str, float] = {}
    while time.time() < start_at:
        time.sleep(0.001)
    for i, press in enumerate(presses):
        now = time.time()
        if now > deadline:
            break
        if rate > 0:
            due = start_at + i / rate
            if due > now:
                time.sleep(due - now)
        body = json.dumps({"ref": press.ref, "type": press.type}).encode()
        sent[press.key] = time.time()
        client.publish(f"{root}/dev/{press.device_id}/event", body, qos=1)
    while acked[0] < len(sent) and time.time() < deadline:
        time.sleep(0.01)
    out.put((sent, acked[0]))
    client.disconnect()
    client.loop_stop()


def listen_worker(
    url: str,
    topics: Sequence[str],
    expect: int,
    deadline: float,
    ready: EventType,
    stop: EventType,
    out: Any,
) -> None:
    """Record the first answer to every (device, ref) on ``topics`` until ``expect``
    arrived, ``stop`` is set or ``deadline``; put ``{key: (time, result, call_id)}``."""
    got: dict[str, tuple[float, str, str | None]] = {}

    def on_message(_client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        at = time.time()
        with contextlib.suppress(ValueError, KeyError, TypeError):
            ack = json.loads(message.payload)
            device = message.topic.split("/")[-2]
            got.setdefault(f"{device}/{ack['ref']}", (at, ack["result"], ack.get("call_id")))

    subscribed: list[bool] = []
    client = _connected_paho(url, "bench-listen")
    client.on_message = on_message
    client.on_subscribe = lambda *_args: subscribed.append(True)
    batch = 500  # one SUBSCRIBE per batch of topics
    for i in range(0, len(topics), batch):
        client.subscribe([(t, 1) for t in topics[i : i + batch]])
    while len(subscribed) < (len(topics) + batch - 1) // batch and time.time() < deadline:
        time.sleep(0.005)
    ready.set()
    while len(got) < expect and not stop.is_set() and time.time() < deadline:
        time.sleep(0.02)
    out.put(dict(got))
    client.disconnect()
    client.loop_stop()


def bare_subscriber_worker(
    url: str,
    root: str,
    expect: int,
    deadline: float,
    ready: EventType,
    out: Any,
    protocol: int = 5,
) -> None:
    """Baseline (a): an aiomqtt client that only counts QoS 1 events; puts
    ``(count, first arrival, last arrival, CPU seconds from the first to the last)``.
    MQTT 5 by default, as the daemon speaks
    it: paho decodes an MQTT 5 PUBLISH's properties, a cost of the protocol that a
    3.1.1 client does not pay."""
    version = aiomqtt.ProtocolVersion.V5 if protocol == 5 else aiomqtt.ProtocolVersion.V311

    async def run() -> tuple[int, float, float, float]:
        count, first, last = 0, 0.0, 0.0
        cpu_first = cpu_last = 0.0
        host, port = _host_port(url)
        ident = f"bench-bare-{uuid.uuid4().hex[:8]}"
        async with aiomqtt.Client(host, port, identifier=ident, protocol=version) as c:
            await c.subscribe(f"{root}/dev/+/event", qos=1)
            ready.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.1, deadline - time.time())):
                    async for _message in c.messages:
                        last, cpu_last = time.time(), time.process_time()
                        if not first:
                            first, cpu_first = last, cpu_last
                        count += 1
                        if count >= expect:
                            break
        return count, first, last, cpu_last - cpu_first

    out.put(asyncio.run(run()))


def _answering(client: mqtt.Client, root: str) -> Callable[[Any, Any, mqtt.MQTTMessage], None]:
    """An on_message that answers each event at once with ``ok``, storing nothing."""

    def on_message(_client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            ref = json.loads(message.payload)["ref"]
            device = message.topic.split("/")[-2]
            body = json.dumps({"ref": ref, "result": "ok"}).encode()
            client.publish(f"{root}/dev/{device}/ack", body, qos=1)

    return on_message


def bare_responder_worker(url: str, root: str, ready: EventType, stop: EventType) -> None:
    """Baseline (b): a client that answers every event at once, as a centre that stores
    nothing would. With TCP_NODELAY like every bench client: its PUBACK and its answer
    are two small writes, and Nagle would hold the second ~40 ms for the first's ACK,
    which is the client's delay, not the broker's."""
    client = _connected_paho(url, "bench-echo")
    subscribed: list[bool] = []
    client.on_message = _answering(client, root)
    client.on_subscribe = lambda *_args: subscribed.append(True)
    client.subscribe(f"{root}/dev/+/event", qos=1)
    deadline = time.time() + 10
    while not subscribed and time.time() < deadline:
        time.sleep(0.005)
    ready.set()
    stop.wait()
    client.disconnect()
    client.loop_stop()


def floor_responder_worker(
    url: str, root: str, receive_maximum: int, ready: EventType, stop: EventType
) -> None:
    """The floor: answers every event at once, storing nothing, on the daemon's stack
    and in its way: aiomqtt on paho, MQTT 5, the daemon's Receive Maximum, TCP_NODELAY,
    each message taken in paho's read callback and answered from there (the daemon's
    gateway does the same, bypassing aiomqtt's iterator, which costs more)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    async def run() -> None:
        host, port = _host_port(url)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.ReceiveMaximum = receive_maximum
        client = aiomqtt.Client(
            host,
            port,
            identifier=f"bench-floor-{uuid.uuid4().hex[:8]}",
            protocol=aiomqtt.ProtocolVersion.V5,
            properties=props,
            max_inflight_messages=1000,
        )
        paho = client._client
        async with client:
            sock = paho.socket()
            if isinstance(sock, socket.socket):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            paho.on_message = _answering(paho, root)
            await client.subscribe(f"{root}/dev/+/event", qos=1)
            ready.set()
            # ``stop`` is a multiprocessing Event: waited for in a thread.
            await asyncio.to_thread(stop.wait)

    with contextlib.suppress(Exception):
        asyncio.run(run())


def spawn(target: Callable[..., None], *args: Any) -> SpawnProcess:
    process = CTX.Process(target=target, args=args, daemon=True)
    process.start()
    return process


@dataclass
class Sent:
    """What the publishers sent: ``{key: time}`` and how many the broker acknowledged."""

    at: dict[str, float]
    pubacks: int


def publish_all(
    url: str,
    root: str,
    presses: Sequence[Press],
    *,
    rate: float,
    workers: int,
    start_in: float = 0.5,
    timeout: float,
) -> Sent:
    """Split ``presses`` over ``workers`` processes (``rate`` is the total); block until
    they are done or ``timeout``."""
    out = CTX.Queue()
    start_at = time.time() + start_in
    deadline = start_at + timeout
    procs = [
        spawn(
            publish_worker, url, root, presses[i::workers], rate / workers, start_at, deadline, out
        )
        for i in range(workers)
    ]
    sent: dict[str, float] = {}
    pubacks = 0
    for _ in procs:
        with contextlib.suppress(Exception):
            part, acked = out.get(timeout=max(1.0, deadline - time.time() + 15))
            sent.update(part)
            pubacks += acked
    for proc in procs:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    return Sent(sent, pubacks)


class Listener:
    """:func:`listen_worker` in a process: ``start()`` returns once it is subscribed."""

    def __init__(self, url: str, topics: Sequence[str], expect: int, timeout: float) -> None:
        self._out = CTX.Queue()
        self._ready = CTX.Event()
        self._stop = CTX.Event()
        self._deadline = time.time() + timeout
        self._proc = spawn(
            listen_worker,
            url,
            list(topics),
            expect,
            self._deadline,
            self._ready,
            self._stop,
            self._out,
        )
        if not self._ready.wait(30):
            raise RuntimeError("the ack listener did not subscribe within 30 s")

    def result(self) -> dict[str, tuple[float, str, str | None]]:
        """Block until it has all it expected or its deadline; its answers."""
        got: dict[str, tuple[float, str, str | None]] = {}
        with contextlib.suppress(Exception):
            got = self._out.get(timeout=max(1.0, self._deadline - time.time() + 15))
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.kill()
        return got

    def stop(self) -> dict[str, tuple[float, str, str | None]]:
        self._stop.set()
        return self.result()
