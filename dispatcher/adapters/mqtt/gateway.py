"""The MQTT side of the dispatcher: device messages in, answers and updates out.

- A persistent session (stable client id, no clean start; on MQTT 5 a session
  expiry) so events published while the dispatcher is away are delivered when it
  returns.
- Messages are taken from the broker as fast as it sends them (MQTT 5: a large
  Receive Maximum) into lanes, alarms first (``dispatcher.core.intake_priority``),
  and handled in batches, one transaction each. Every message is acknowledged to
  the broker (PUBACK) only after its batch has committed and its answer has been
  published: a crash in between makes the broker deliver it again.
- A device flooding us with anything but alarms is limited on its own (a token
  bucket): what is over the limit is acknowledged, dropped and counted.
- The retained ``centre/status`` says online; the Last Will says offline.
- Reconnects with jittered exponential backoff (aiomqtt 2 has no reconnect).
- Device updates leave through the database outbox, so an update produced while
  the broker is down is published once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import ssl
import struct
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import aiomqtt
import structlog
from paho.mqtt.client import MQTTMessage
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy.exc import InterfaceError, OperationalError

from devices.protocol import DeviceStatus, Topics
from dispatcher.adapters.db.device_outbox_store import DeviceCommand, SqlDeviceOutboxStore
from dispatcher.adapters.db.intake_store import SqlIntakeStore
from dispatcher.adapters.db.transactions import Transactions
from dispatcher.adapters.mqtt import paho_tables
from dispatcher.adapters.mqtt.confirmed import publish_confirmed
from dispatcher.config import IntakeQueueSettings, MqttSettings
from dispatcher.core.intake_priority import FloodLimiter, Lane, LaneQueue, lane_of
from dispatcher.services.clock import Clock
from dispatcher.services.intake import (
    DeviceMessage,
    Incoming,
    Intake,
    StatusMessage,
    Unavailable,
    Unhandled,
)
from dispatcher.services.metrics import NULL_METRICS, Metrics
from dispatcher.services.wakeup import Wakeup

T = TypeVar("T")

log = structlog.get_logger(__name__)

MAX_BACKOFF_S = 30.0
# MQTT 5 "Session taken over": another client connected with our client id.
SESSION_TAKEN_OVER = 0x8E
# Reconnecting at once would take the session back, and the other client would do the
# same: two dispatchers fighting, each answering devices into its own database. Wait
# long (doubling each time, up to TAKEN_OVER_MAX_BACKOFF_S) so that people can look.
TAKEN_OVER_BACKOFF_S = 30.0
TAKEN_OVER_MAX_BACKOFF_S = 600.0
SESSION_ALERT = "mqtt_session_taken_over"
# Mosquitto 2.0.11 closes the older connection without sending its DISCONNECT 0x8E
# (measured here), so a fight also shows as connections lost again and again soon
# after they were made, while the broker accepts every reconnect.
SHORT_LIVED_S = 10.0
FIGHT_AFTER = 3
# The queue depth's label while the intake has one queue for every priority.
ALL_PRIORITIES = "all"
# How long a stop waits for a message in hand to be committed and answered.
IN_HAND_GRACE_S = 10.0
# Device commands published per round of the device outbox.
OUTBOX_ROWS = 200
# How often the worker looks for flood summaries (busy or not: the look is over every
# device heard from lately, far too much to do at every batch of a storm).
IDLE_TICK_S = 1.0
# A PUBACK without reason code or properties: "success", in MQTT 5 as in 3.1.1.
PUBACK = 0x40
_PUBACK_PACKET = struct.Struct("!BBH")  # type, remaining length (2), packet id
# Errors that mean the broker or the database is unreachable: no PUBACK, reconnect,
# and the broker delivers the messages again.
_UNREACHABLE = (aiomqtt.MqttError, OperationalError, InterfaceError, OSError)


@dataclass(frozen=True)
class _Taken:
    """A message taken from the broker (``message`` None: one of our own making, a
    flood summary, with nothing to acknowledge)."""

    incoming: Incoming
    message: MQTTMessage | None


class _Inbox:
    """The lanes of one connection, and an event set while they hold something."""

    def __init__(self) -> None:
        self.lanes: LaneQueue[_Taken] = LaneQueue()
        self.filled = asyncio.Event()

    def put(self, taken: _Taken, lane: Lane, device_id: str | None) -> None:
        self.lanes.put(taken, lane, device_id)
        self.filled.set()

    def take(self, limit: int, others: int) -> list[_Taken]:
        batch = self.lanes.take(limit, others)
        if not self.lanes:
            self.filled.clear()
        return batch


class MqttGateway:
    def __init__(
        self,
        settings: MqttSettings,
        intake: Intake,
        intake_tx: Transactions[SqlIntakeStore],
        device_outbox: Transactions[SqlDeviceOutboxStore],
        clock: Clock,
        outbox_wake: Wakeup,
        queue: IntakeQueueSettings | None = None,
        metrics: Metrics = NULL_METRICS,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._queue = queue or IntakeQueueSettings()
        self._limiter = FloodLimiter(
            rate=self._queue.flood_rate,
            burst=self._queue.flood_burst,
            summary_every_s=self._queue.flood_summary_s,
        )
        self._intake = intake
        self._intake_tx = intake_tx  # the centre's own alert (a session taken over)
        self._device_outbox = device_outbox
        self._clock = clock
        self._topics = Topics(settings.topic_root)
        # Set when device messages were queued: publish them now, not at the next poll.
        self._outbox_wake = outbox_wake.event
        self.connected = asyncio.Event()
        self._in_hand: set[asyncio.Future[Any]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        taken_over = 0
        short_lived = 0  # connections in a row lost soon after they were made
        while not stop.is_set():
            inbox = _Inbox()
            client = self._client(inbox)
            up_since: float | None = None
            try:
                async with client:
                    up_since = loop.time()
                    attempt = 0
                    await self._serve(client, inbox, stop)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                attempt += 1
                delay = min(MAX_BACKOFF_S, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)
                if up_since is not None:
                    quick = loop.time() - up_since < SHORT_LIVED_S
                    short_lived = short_lived + 1 if quick else 0
                evidence = _takeover_evidence(exc, client, short_lived)
                if evidence is not None:
                    short_lived = 0
                    taken_over += 1
                    delay = min(
                        TAKEN_OVER_MAX_BACKOFF_S, TAKEN_OVER_BACKOFF_S * 2 ** (taken_over - 1)
                    )
                    call_id = await self._alert_session_taken(taken_over == 1)
                    log.error(
                        "mqtt_session_taken_over",
                        call_id=call_id,
                        client_id=self._settings.client_id,
                        evidence=evidence,
                        times=taken_over,
                        retry_in_s=delay,
                        hint="another client connected with this dispatcher's client id "
                        "(a second dispatcher?); not reconnecting at once, to not fight it",
                    )
                else:
                    log.warning("mqtt_disconnected", error=str(exc), retry_in_s=round(delay, 2))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await stop.wait()
        self.connected.clear()

    async def _alert_session_taken(self, first: bool) -> str | None:
        """Raise the technical alert once (not at every takeover of a fight), on the
        dispatcher's client id since no device is at fault; None if not raised now."""
        if not first:
            return None
        try:
            async with self._intake_tx.begin() as store:
                key, device = SESSION_ALERT, self._settings.client_id
                if await store.active_alert(device, key) is not None:
                    return None
                call = await self._intake.open_alert(store, device, key, self._clock.now())
        except (OperationalError, InterfaceError, OSError):
            log.exception("mqtt_session_alert_failed")
            return None
        return call.id  # the escalator's next poll takes it

    def _client(self, inbox: _Inbox) -> aiomqtt.Client:
        s = self._settings
        paho_tables.install()  # two Properties objects a press, their tables built once
        offline = DeviceStatus(state="offline").to_payload()
        will = aiomqtt.Will(self._topics.centre_status, offline, qos=1, retain=True)
        kwargs: dict[str, object] = {}
        if s.protocol == 5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = s.session_expiry_s
            props.ReceiveMaximum = s.receive_maximum
            kwargs.update(
                protocol=aiomqtt.ProtocolVersion.V5,
                clean_start=False,
                properties=props,
            )
        else:
            kwargs.update(protocol=aiomqtt.ProtocolVersion.V311, clean_session=False)
        client = aiomqtt.Client(
            s.host,
            s.port,
            identifier=s.client_id,
            username=s.username,
            password=s.password,
            will=will,
            tls_context=ssl.create_default_context(cafile=s.ca_file) if s.tls else None,
            keepalive=30,
            # A batch's answers are published at once, not one round trip each.
            max_inflight_messages=max(20, self._queue.batch_max),
            **kwargs,  # type: ignore[arg-type]
        )
        client.pending_calls_threshold = 2 * self._queue.batch_max + 100
        # PUBACK after commit, not on receipt (aiomqtt does not expose this itself).
        client._client.manual_ack_set(True)

        # Each message straight into its lane, from paho's own dispatch. aiomqtt's way
        # (a Message and a Topic made, an asyncio.Queue, then a task and a wait per
        # message in its iterator) cost more than handling a heartbeat does; and paho's
        # dispatch looks each topic up in its trie of per-topic callbacks (there are
        # none here) under two locks before calling on_message: 8 % of the daemon's
        # time at 2,500 heartbeats a second. Its callers are paho's PUBLISH (QoS 0 and
        # 1) and PUBREL (QoS 2) handlers, one message each; an exception propagates
        # out of the read as one from on_message would.
        def dispatched(message: MQTTMessage) -> None:
            self._take(client, message, inbox)

        client._client._handle_on_message = dispatched  # type: ignore[method-assign]
        return client

    async def _serve(self, client: aiomqtt.Client, inbox: _Inbox, stop: asyncio.Event) -> None:
        _no_delay(client)
        t = self._topics
        await client.subscribe(t.all_events, qos=1)
        await client.subscribe(t.all_statuses, qos=1)
        online = DeviceStatus(state="online").to_payload()
        await client.publish(t.centre_status, online, qos=1, retain=True)
        self.connected.set()
        log.info("mqtt_connected", url=self._settings.url, topic_root=t.root)
        tasks = {
            asyncio.create_task(self._publish_outbox(client)),
            asyncio.create_task(self._read(client, inbox)),
        }
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait(tasks | {stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks | {stopper}:
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)
            await self._finish_in_hand()
        for task in done & tasks:
            task.result()  # re-raises what ended the reader or the publisher
        if stopper in done:
            # A clean stop says offline itself: the Last Will is for crashes.
            offline = DeviceStatus(state="offline").to_payload()
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(t.centre_status, offline, qos=1, retain=True)

    async def _read(self, client: aiomqtt.Client, inbox: _Inbox) -> None:
        """Handle the messages taken into ``inbox`` (by paho's callback, as they come)
        in batches, until the connection is lost or the worker fails (which ends the
        connection: what was taken and not yet acknowledged is delivered again on the
        next)."""
        gone = client._disconnected  # aiomqtt's; its message iterator waits for it too
        work = asyncio.create_task(self._work(client, inbox))
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
        if not gone.done():
            work.result()  # re-raises what ended the worker
        # As aiomqtt's message iterator says it (the reason stays in the future).
        cause = None if gone.cancelled() else gone.exception()
        raise aiomqtt.MqttError("Disconnected during message iteration") from cause

    def _take(self, client: aiomqtt.Client, message: MQTTMessage, inbox: _Inbox) -> None:
        """Into its lane, or (a flooding device, not an alarm) acknowledged and dropped."""
        payload = message.payload if isinstance(message.payload, bytes) else b""
        try:
            topic = message.topic
        except UnicodeDecodeError:  # the broker should not let one through: recorded
            topic = repr(message._topic)
        where = self._topics.device_of(topic)
        incoming: Incoming
        if where is None:
            incoming = Unhandled(None, topic, payload, "topic names no valid device")
            lane, device_id = Lane.ROUTINE, None
        elif where[1] == "event":
            incoming = DeviceMessage.read(where[0], topic, payload)
            lane, device_id = lane_of(incoming.event_type), where[0]
        elif where[1] == "status":
            incoming = StatusMessage(where[0], payload, retained=message.retain)
            lane, device_id = lane_of(None, status=True), where[0]
        else:
            self._puback(client, message)
            return
        if lane is not Lane.ALARM and not self._limiter.allow(device_id or "", time.monotonic()):
            self._puback(client, message)
            if self._limiter.dropped(device_id or "") == 1:
                log.warning("device_flooding", device_id=device_id, topic=topic)
            return
        inbox.put(_Taken(incoming, message), lane, device_id)

    async def _work(self, client: aiomqtt.Client, inbox: _Inbox) -> None:
        """Batches, alarms first: whatever is queued (after at most ``batch_wait_s``
        for more), up to ``batch_max`` of which at most ``batch_max_others`` are not
        alarms; one batch at a time, so each device's messages are applied in the
        order they were taken."""
        q = self._queue
        floods_due = 0.0
        while True:
            if not inbox.filled.is_set():
                # asyncio.timeout, not wait_for: on Python 3.11 a cancellation arriving
                # as wait_for times out is swallowed, and this loop (cancelled by a
                # stop) ran on; the stop then waited for it for ever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(IDLE_TICK_S):
                        await inbox.filled.wait()
            now = time.monotonic()
            if now >= floods_due:
                self._summarise_floods(inbox, now)
                floods_due = now + IDLE_TICK_S
            if not inbox.lanes:
                continue
            # Waiting a moment for company makes fuller batches of routine traffic; an
            # alarm never waits for it (a batch under way gathers the rest anyway).
            waits = q.batch_wait_s > 0 and not inbox.lanes.has_alarm
            if waits and len(inbox.lanes) < q.batch_max:
                await asyncio.sleep(q.batch_wait_s)
            batch = inbox.take(q.batch_max, q.batch_max_others)
            self._metrics.queue_depth(ALL_PRIORITIES, len(inbox.lanes) + len(batch))
            await self._unstoppable(self._handle(client, batch))
            self._metrics.queue_depth(ALL_PRIORITIES, len(inbox.lanes))

    def _summarise_floods(self, inbox: _Inbox, now: float) -> None:
        """One rejected_messages row per flooding device per minute, saying how many
        of its messages were dropped."""
        for summary in self._limiter.summaries(now):
            device_id = summary.device_id or None
            reason = (
                f"flooding: {summary.dropped} messages over the limit of "
                f"{self._queue.flood_rate:g}/s dropped in {now - summary.since:.0f} s"
            )
            log.warning("device_flood_dropped", device_id=device_id, dropped=summary.dropped)
            topic = self._topics.event(device_id) if device_id else self._topics.root
            inbox.put(_Taken(Unhandled(device_id, topic, b"", reason), None), Lane.ROUTINE, None)
        self._limiter.sweep(now)

    async def _handle(self, client: aiomqtt.Client, batch: list[_Taken]) -> None:
        """Store the batch, publish its answers, then acknowledge it to the broker."""
        try:
            answers = await self._intake.on_batch([t.incoming for t in batch])
        except _UNREACHABLE as exc:
            self._defer(batch, exc)
        except Exception as exc:
            if isinstance(exc, Unavailable):
                self._defer(batch, exc)
            if len(batch) == 1:
                # Not even recorded as rejected. Delivering it again would block every
                # message behind it for ever: said in the log, raw bytes and all.
                log.exception("mqtt_message_failed", topic=_topic(batch[0]), raw=_raw(batch[0]))
                self._puback(client, batch[0].message)
                return
            # A fault outside any one message's savepoint: find the message alone.
            log.exception("mqtt_batch_failed", messages=len(batch))
            for taken in batch:
                await self._handle(client, [taken])
            return
        await self._answer(client, batch, answers)

    async def _answer(
        self, client: aiomqtt.Client, batch: list[_Taken], answers: list[Any]
    ) -> None:
        sends = [
            (self._topics.ack(t.incoming.device_id), ack.to_payload())
            for t, ack in zip(batch, answers, strict=True)
            if ack is not None and t.incoming.device_id is not None
        ]
        if sends:
            await publish_confirmed(client, sends)  # an MqttError: no PUBACK, delivered again
        _pubacks(client, [t.message for t in batch])

    def _defer(self, batch: list[_Taken], exc: BaseException) -> NoReturn:
        # The broker or the database is unreachable: no PUBACK, so the broker delivers
        # the messages again once we have reconnected. (Any other database error is
        # about one message, and its savepoint has already dealt with it.)
        log.error("mqtt_batch_deferred", messages=len(batch), error=repr(exc))
        raise aiomqtt.MqttError("message handling failed; reconnecting") from exc

    @staticmethod
    def _puback(client: aiomqtt.Client, message: MQTTMessage | None) -> None:
        if message is not None and message.qos > 0:
            client._client.ack(message.mid, message.qos)

    async def _unstoppable(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` so that a stop waits for it: a stop must not cut a
        transaction in half (a cancelled transaction can leave SQLite's write lock
        held by a connection nobody owns any more)."""
        task = asyncio.ensure_future(work)
        self._in_hand.add(task)
        task.add_done_callback(self._in_hand.discard)
        return await asyncio.shield(task)

    async def _finish_in_hand(self) -> None:
        if self._in_hand:
            _, late = await asyncio.wait(set(self._in_hand), timeout=IN_HAND_GRACE_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*self._in_hand, return_exceptions=True)

    async def _publish_outbox(self, client: aiomqtt.Client) -> None:
        while True:
            self._outbox_wake.clear()
            # Unstoppable like every transaction here: a stop that cut a transaction in
            # half left SQLite's lock with a connection nobody owned, so the next writer
            # waited 30 s. (This read begins deferred and takes no write lock.)
            rows = await self._unstoppable(self._pending_commands())
            if rows:
                # Handed to paho in order (each device's commands stay in order), their
                # PUBACKs awaited together, then marked in one transaction: a crash in
                # between publishes them again, never loses one.
                await publish_confirmed(
                    client, [(self._topics.cmd(r.device_id), r.payload.encode()) for r in rows]
                )
                await self._unstoppable(self._mark_published([r.id for r in rows]))
            if len(rows) < OUTBOX_ROWS:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._outbox_wake.wait()

    async def _pending_commands(self) -> list[DeviceCommand]:
        async with self._device_outbox.read() as outbox:
            return await outbox.pending(OUTBOX_ROWS)

    async def _mark_published(self, ids: list[int]) -> None:
        async with self._device_outbox.begin() as outbox:
            await outbox.mark_published(ids, self._clock.now())


def _pubacks(client: aiomqtt.Client, messages: Sequence[MQTTMessage | None]) -> None:
    """Acknowledge a batch's QoS 1 messages in one write to the socket, not one each
    (paho writes every packet it queues with a send of its own)."""
    paho = client._client
    packets = [_PUBACK_PACKET.pack(PUBACK, 2, m.mid) for m in messages if m and m.qos == 1]
    if packets:
        paho._packet_queue(PUBACK, b"".join(packets), 0, 0)
    for message in messages:
        if message is not None and message.qos > 1:  # we subscribe at QoS 1: not expected
            paho.ack(message.mid, message.qos)


def _topic(taken: _Taken) -> str:
    incoming = taken.incoming
    return incoming.topic if isinstance(incoming, DeviceMessage | Unhandled) else "status"


def _raw(taken: _Taken) -> bytes:
    return taken.incoming.raw[:500]


def _session_taken_over(exc: BaseException | None) -> bool:
    rc = getattr(exc, "rc", None)
    return getattr(rc, "value", rc) == SESSION_TAKEN_OVER


def _takeover_evidence(
    exc: aiomqtt.MqttError, client: aiomqtt.Client, short_lived: int
) -> str | None:
    """Why we think another client took our session, or None if we do not."""
    if _session_taken_over(exc) or _session_taken_over(_why_disconnected(client)):
        return "reason code 0x8E (session taken over)"
    if short_lived >= FIGHT_AFTER:
        return f"{short_lived} connections in a row lost within {SHORT_LIVED_S:g} s"
    return None


def _why_disconnected(client: aiomqtt.Client) -> BaseException | None:
    """The broker's reason for the disconnection: aiomqtt's message iterator raises a
    plain "Disconnected during message iteration" and keeps the reason code here."""
    gone = client._disconnected
    if not gone.done() or gone.cancelled():
        return None
    return gone.exception()


def _no_delay(client: aiomqtt.Client) -> None:
    """Send each packet at once (TCP_NODELAY), as the shipped broker does
    (``set_tcp_nodelay true``). Without it an answer written right after a PUBACK waits
    for the broker's delayed ACK (Nagle's algorithm): about 40 ms on every answer."""
    sock = client._client.socket()  # an ssl.SSLSocket under TLS, a socket.socket too
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
