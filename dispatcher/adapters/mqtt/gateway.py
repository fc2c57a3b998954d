"""The MQTT side of the dispatcher: device messages in, answers and updates out.

- A persistent session (stable client id, no clean start; on MQTT 5 a session
  expiry) so events published while the dispatcher is away are delivered when it
  returns.
- Messages are acknowledged to the broker (PUBACK) only after they have been
  handled and committed: a crash in between makes the broker deliver them again.
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
from collections.abc import Coroutine
from datetime import datetime
from typing import Any, TypeVar

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from devices.protocol import DeviceStatus, Topics
from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db.intake_store import SqlIntakeStore
from dispatcher.config import MqttSettings
from dispatcher.services.clock import Clock
from dispatcher.services.intake import Intake
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


class MqttGateway:
    def __init__(
        self,
        settings: MqttSettings,
        intake: Intake,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        outbox_wake: Wakeup,
        metrics: Metrics = NULL_METRICS,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._intake = intake
        self._sessions = sessions
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
            client = self._client()
            up_since: float | None = None
            try:
                async with client:
                    up_since = loop.time()
                    attempt = 0
                    await self._serve(client, stop)
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
                    await asyncio.wait_for(stop.wait(), delay)
        self.connected.clear()

    async def _alert_session_taken(self, first: bool) -> str | None:
        """Raise the technical alert once (not at every takeover of a fight), on the
        dispatcher's client id since no device is at fault; None if not raised now."""
        if not first:
            return None
        try:
            async with self._sessions.begin() as session:
                store = SqlIntakeStore(session)
                key, device = SESSION_ALERT, self._settings.client_id
                if await store.active_alert(device, key) is not None:
                    return None
                call = await self._intake.open_alert(store, device, key, self._clock.now())
        except (OperationalError, InterfaceError, OSError):
            log.exception("mqtt_session_alert_failed")
            return None
        return call.id  # the escalator's next poll takes it

    def _client(self) -> aiomqtt.Client:
        s = self._settings
        offline = DeviceStatus(state="offline").to_payload()
        will = aiomqtt.Will(self._topics.centre_status, offline, qos=1, retain=True)
        kwargs: dict[str, object] = {}
        if s.protocol == 5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = s.session_expiry_s
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
            tls_context=ssl.create_default_context() if s.tls else None,
            keepalive=30,
            **kwargs,  # type: ignore[arg-type]
        )
        # PUBACK after commit, not on receipt (aiomqtt does not expose this itself).
        client._client.manual_ack_set(True)
        return client

    async def _serve(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
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
            asyncio.create_task(self._read(client)),
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

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            # Today's queue: the message in hand and those delivered behind it.
            self._metrics.queue_depth(ALL_PRIORITIES, len(client.messages) + 1)
            await self._unstoppable(self.handle(client, message))
            self._metrics.queue_depth(ALL_PRIORITIES, len(client.messages))

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

    async def handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        payload = message.payload if isinstance(message.payload, bytes) else b""
        where = self._topics.device_of(topic)
        try:
            if where is None:
                await self._intake.on_unhandled(None, topic, payload, "topic names no valid device")
            elif where[1] == "event":
                ack = await self._intake.on_event(where[0], topic, payload)
                if ack is not None:
                    await client.publish(self._topics.ack(where[0]), ack.to_payload(), qos=1)
            elif where[1] == "status":
                await self._intake.on_status(where[0], payload, retained=message.retain)
        except (aiomqtt.MqttError, OperationalError, InterfaceError, OSError):
            # The broker or the database is unreachable: no PUBACK, so the broker
            # delivers the message again once we have reconnected. (Any other database
            # error is about this message, and redelivering it would only repeat it.)
            log.exception("mqtt_message_deferred", topic=topic)
            raise aiomqtt.MqttError("message handling failed; reconnecting") from None
        except Exception as exc:
            # A fault of our own on this message. Redelivering it would block every
            # message behind it, so record it (raw bytes and all) and carry on; the
            # device, unanswered, resends, and a device whose messages keep failing
            # raises a technical alert.
            log.exception("mqtt_message_failed", topic=topic)
            device_id = where[0] if where else None
            await self._intake.on_unhandled(device_id, topic, payload, f"internal error: {exc!r}")
        if message.qos > 0:
            client._client.ack(message.mid, message.qos)

    async def _publish_outbox(self, client: aiomqtt.Client) -> None:
        while True:
            self._outbox_wake.clear()
            # Unstoppable like every transaction here: on SQLite even this read holds
            # the write lock (BEGIN IMMEDIATE), and a stop that cut it in half left the
            # lock with a connection nobody owned, so the next writer waited 30 s.
            rows = await self._unstoppable(self._pending_commands())
            for row in rows:
                await client.publish(self._topics.cmd(row.device_id), row.payload.encode(), qos=1)
                await self._unstoppable(self._mark_published(row.id, self._clock.now()))
            if len(rows) < 200:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._outbox_wake.wait(), 1.0)

    async def _pending_commands(self) -> list[Any]:
        async with self._sessions() as session:
            return list(
                (
                    await session.execute(
                        select(db.device_outbox)
                        .where(db.device_outbox.c.published_at.is_(None))
                        .order_by(db.device_outbox.c.id)
                        .limit(200)
                    )
                ).all()
            )

    async def _mark_published(self, row_id: int, now: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(db.device_outbox)
                .where(db.device_outbox.c.id == row_id)
                .values(published_at=now)
            )


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
