"""Device messages in: validate, store durably, apply to calls, and say what to answer.

Messages come in batches (:meth:`Intake.on_batch`): the event rows of a whole batch
and everything they cause (calls opened or joined, their timelines, the devices'
"received" updates) are committed in ONE transaction before any answer is returned,
so an answered event is never lost and a resent one is recognised as a duplicate of
the call it already opened. Each message runs in a savepoint of its own: one that
fails is rolled back alone and recorded as rejected, and the rest of its batch goes
on. Messages are applied in the order given (the caller keeps each device's order).

Heartbeats touch memory only (:class:`~dispatcher.services.heartbeats.HeartbeatTracker`),
unless the device has an open ``heartbeat_missed`` alert that the heartbeat closes.
"""

from __future__ import annotations

import asyncio
import functools
from abc import ABC
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from devices.protocol import (
    CALL_TYPES,
    Ack,
    AckResult,
    ConfigCommand,
    DeviceStatus,
    DroppedField,
    Event,
    EventType,
    Invalid,
    Rejected,
    parse_event,
)
from dispatcher.core import calls as lifecycle
from dispatcher.core.calls import Call, CallKind, Priority, Transition
from dispatcher.core.directory import Directory
from dispatcher.core.directory_holder import DirectoryHolder, ReadsDirectory, hold
from dispatcher.core.escalation import Policy
from dispatcher.core.policy_book import PolicyBook, book
from dispatcher.core.texts import LANGUAGES, text
from dispatcher.services.clock import Clock
from dispatcher.services.device_tests import DeviceTestStore, TestModes
from dispatcher.services.dispatches import DispatchStore, presence_arrival
from dispatcher.services.escalator import EscalationStore, Escalator, FirstSteps
from dispatcher.services.heartbeats import HEARTBEAT_MISSED, ContactStore, HeartbeatTracker
from dispatcher.services.metrics import INVALID, NULL_METRICS, Metrics, event_priority
from dispatcher.services.ports import Transactions
from dispatcher.services.power_cuts import PowerCuts, PowerStore

log = structlog.get_logger(__name__)

# Technical events: which alert each opens, and which alert each clears.
_ALERT_OPENED_BY = {EventType.BATTERY_LOW: "battery_low", EventType.POWER_LOST: "power_lost"}
_ALERT_CLEARED_BY = {EventType.BATTERY_OK: "battery_low", EventType.POWER_RESTORED: "power_lost"}
# A technical alert's detail, for readers of any language: every catalogue's text.
ALERT_TEXT = {
    key: " ".join(text(lang, f"alert.{key}") for lang in LANGUAGES)
    for key in (
        "battery_low",
        "power_lost",
        "heartbeat_missed",
        "offline",
        "rejected_messages",
        # The centre's own faults (dispatcher.services.instance_lock, the MQTT gateway):
        # raised on the dispatcher's MQTT client id, since no device is at fault.
        "dispatcher_taken_over",
        "mqtt_session_taken_over",
    )
}


# Opened by supervision, not by the intake.
_SUPERVISION_ALERTS = frozenset({HEARTBEAT_MISSED, "offline"})
# Looked up whatever the prefetch found: opened by another transaction (supervision),
# or for a device id that stands for a place (a grouped power cut).
_ALWAYS_LOOKED_UP = _SUPERVISION_ALERTS | {"power_cut"}


@dataclass(frozen=True)
class StoredEvent:
    """An event already stored under its device and ref, and the call it opened or
    joined (None when it had none)."""

    call_id: str | None


class Conflict(ABC):  # noqa: B024 (a marker: adapters register their error class)
    """A write that breaks a uniqueness rule (the same ref stored twice at once).

    The store's adapter registers its own error class as a Conflict, so that the intake
    recognises it without importing the adapter and re-raises it unchanged."""


class Unavailable(ABC):  # noqa: B024 (a marker, as Conflict)
    """The database cannot be reached or used at all (not a fault of one message): the
    whole batch is abandoned, unanswered and unacknowledged, to be delivered again."""


@dataclass(frozen=True)
class DeviceMessage:
    """One message from ``{root}/dev/{device_id}/event``, parsed at the edge."""

    device_id: str
    topic: str
    raw: bytes
    parsed: Event | Invalid | Rejected

    @classmethod
    def read(cls, device_id: str, topic: str, raw: bytes) -> DeviceMessage:
        return cls(device_id, topic, raw, parse_event(raw))

    @property
    def event_type(self) -> EventType | None:
        return self.parsed.type if isinstance(self.parsed, Event) else None


@dataclass(frozen=True)
class StatusMessage:
    """The device's retained ``status`` (online, or offline from its Last Will)."""

    device_id: str
    raw: bytes
    retained: bool = False


@dataclass(frozen=True)
class Unhandled:
    """A message that cannot be handled at all (a topic that names no valid device,
    messages dropped from a flooding device): recorded with its raw bytes."""

    device_id: str | None
    topic: str
    raw: bytes
    reason: str


Incoming = DeviceMessage | StatusMessage | Unhandled


class IntakeStore(ContactStore, DispatchStore, PowerStore, DeviceTestStore, Protocol):
    """What the intake reads and writes, inside one transaction (the responders
    dispatched to a call too, which a presence press marks arrived)."""

    def savepoint(self) -> AbstractAsyncContextManager[object]:
        """A nested transaction: rolled back alone when its block raises."""
        ...

    def deferred(self) -> AbstractAsyncContextManager[object]:
        """Writes held back and made together when the block ends (a statement or two
        for the whole batch rather than several per message); meanwhile queries do
        not see them, so the intake remembers what it opened itself."""
        ...

    async def find_event(self, device_id: str, ref: str) -> StoredEvent | None: ...

    async def find_events(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], StoredEvent]:
        """Those of these (device, ref) already stored: a whole batch in one query."""
        ...

    async def prefetch(
        self, keys: set[tuple[str, str]], device_ids: set[str]
    ) -> tuple[dict[tuple[str, str], StoredEvent], set[tuple[str, str | None]]]:
        """:meth:`find_events` and :meth:`open_calls_of` at once (one statement)."""
        ...

    async def open_calls_of(self, device_ids: set[str]) -> set[tuple[str, str | None]]:
        """(device, alert key) of these devices' unresolved calls; None is the key of
        a resident's call."""
        ...

    async def insert_event(
        self, device_id: str, event: Event, raw: bytes, now: datetime, call_id: str | None
    ) -> None: ...

    async def insert_rejected(
        self,
        now: datetime,
        topic: str,
        device_id: str | None,
        ref: str | None,
        raw: bytes,
        reason: str,
        *,
        answered: bool,
    ) -> None: ...

    async def count_rejected_since(self, device_id: str, since: datetime) -> int: ...

    async def is_known_device(self, device_id: str) -> bool: ...

    async def update_link(
        self,
        device_id: str,
        now: datetime,
        *,
        status: str | None = None,
        battery: int | None = None,
    ) -> None:
        """Record contact with the device (inserting its link row the first time)."""

    async def queue_device_message(self, device_id: str, payload: str, now: datetime) -> None: ...

    async def next_call_id(self, now: datetime, timezone: str) -> str: ...

    async def next_call_ids(self, now: datetime, timezone: str, count: int) -> list[str]:
        """``count`` consecutive call ids in one statement."""
        ...

    async def open_call(self, call: Call, transition: Transition, now: datetime) -> None:
        """Store a new call and record its opening transition."""

    async def active_resident_call(self, device_id: str) -> Call | None: ...

    async def active_alert(self, device_id: str, alert_key: str) -> Call | None: ...

    async def record(self, call: Call, transition: Transition, now: datetime) -> None: ...

    async def cancel_pending_sms(self, call_id: str, why: str) -> int: ...

    def escalation(self) -> EscalationStore:
        """The escalator's store in this same transaction (an alarm's first step)."""
        ...


# At most this many alarms of one batch have their first step fired in the batch's own
# transaction; the rest are left to the escalator's poll, woken at the commit.
FIRST_STEPS_IN_BATCH = 50


@dataclass(frozen=True)
class IntakeSettings:
    timezone: str
    rejected_alert_threshold: int = 5  # unreadable messages from one device per hour
    heartbeat_s: int = 3600  # the interval devices are told to use
    # The interval per device (its model's), when known: else heartbeat_s.
    heartbeat_of: Callable[[str], int] | None = None


@dataclass
class _Batch:
    """What one batch found out up front (one query each, not one per message), and
    what it did, told only once its transaction has committed."""

    alerted: set[str]  # devices with a heartbeat_missed alert (the tracker's)
    stored: dict[tuple[str, str], StoredEvent] = field(default_factory=dict)
    # (device, alert key or None) that may have an unresolved call: one absent has none.
    open_calls: set[tuple[str, str | None]] = field(default_factory=set)
    # The calls this batch has found or opened, by (device, alert key or None); None:
    # it has none. Asked first: a query would not see what is not yet written.
    calls: dict[tuple[str, str | None], Call | None] = field(default_factory=dict)
    # Call ids reserved in one statement for the calls the batch is expected to open.
    expected_calls: int = 0
    call_ids: list[str] = field(default_factory=list)
    logs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    # Alarms opened by the batch, their first step due now: fired in its transaction.
    alarms: list[Call] = field(default_factory=list)
    first_steps: FirstSteps | None = None

    async def prefetch(self, store: IntakeStore, batch: Sequence[Incoming]) -> None:
        events = {
            (m.device_id, m.parsed.ref)
            for m in batch
            if isinstance(m, DeviceMessage) and isinstance(m.parsed, Event)
        }
        devices = {m.device_id for m in batch if m.device_id is not None}
        if devices:  # every event has its device
            self.stored, self.open_calls = await store.prefetch(events, devices)
        # At most one new call per device and kind of call (a resident's, an alert of
        # each fault), none for a resend of what is stored.
        opening = {
            (m.device_id, _ALERT_OPENED_BY.get(m.parsed.type))
            for m in batch
            if isinstance(m, DeviceMessage)
            and isinstance(m.parsed, Event)
            and (m.parsed.type in CALL_TYPES or m.parsed.type in _ALERT_OPENED_BY)
            and (m.device_id, m.parsed.ref) not in self.stored
        }
        self.expected_calls = len(opening - self.open_calls)

    async def call_id(self, store: IntakeStore, now: datetime, timezone: str) -> str:
        if not self.call_ids and self.expected_calls > 1:
            self.call_ids = await store.next_call_ids(now, timezone, self.expected_calls)
            self.expected_calls = 0
        if self.call_ids:
            return self.call_ids.pop(0)
        return await store.next_call_id(now, timezone)

    def may_have(self, device_id: str, alert_key: str | None) -> bool:
        # Supervision's alerts may be opened by another transaction after the
        # prefetch (PostgreSQL): always looked up.
        if alert_key in _ALWAYS_LOOKED_UP:
            return True
        return (device_id, alert_key) in self.open_calls

    def mark(self) -> tuple[int, int, int]:
        return len(self.logs), len(self.after_commit), len(self.alarms)

    def undo_to(self, mark: tuple[int, int, int]) -> None:
        del self.logs[mark[0] :]
        del self.after_commit[mark[1] :]
        del self.alarms[mark[2] :]


class Intake(ReadsDirectory):
    def __init__(
        self,
        tx: Transactions[IntakeStore],
        directory: Directory | DirectoryHolder,
        clock: Clock,
        policies: Mapping[str, Policy] | PolicyBook,
        settings: IntakeSettings,
        on_change: Callable[[], None] = lambda: None,
        heartbeats: HeartbeatTracker | None = None,
        metrics: Metrics = NULL_METRICS,
        escalator: Escalator | None = None,
        power_cuts: PowerCuts | None = None,
        test_modes: TestModes | None = None,
    ) -> None:
        self._tx = tx
        # Many power_lost in one place: one grouped alert (None: one alert each).
        self.power_cuts = power_cuts
        # Devices an installer put in test mode: a press is their end-to-end test.
        self.test_modes = test_modes or TestModes()
        # Fires an alarm's first step in the batch's transaction (None: the poll does).
        self._escalator = escalator
        self._starting: set[asyncio.Task[None]] = set()  # first steps' SMS being started
        self._directories = hold(directory)
        self._clock = clock
        self._metrics = metrics
        self._policies = book(policies)
        self._settings = settings
        self._on_change = on_change  # wakes the escalator and the device outbox
        self.heartbeats = heartbeats or HeartbeatTracker(tx)

    @property
    def policies(self) -> PolicyBook:
        return self._policies

    def use_policies(self, policies: PolicyBook) -> None:
        """The policies for calls opened from now on (a reloaded ``policies.toml``); a
        call keeps the copy it opened with."""
        self._policies = policies

    async def on_event(self, device_id: str, topic: str, payload: bytes) -> Ack | None:
        """Handle one message from ``{root}/dev/{device_id}/event`` (a batch of one).

        Returns the answer to publish on the device's ``ack`` topic, or None when the
        message gets no answer (a heartbeat, or one without a usable ``ref``).
        """
        [ack] = await self.on_batch([DeviceMessage.read(device_id, topic, payload)])
        return ack

    async def on_status(self, device_id: str, payload: bytes, *, retained: bool = False) -> None:
        """The device's retained ``status`` (online, or offline from its Last Will).

        A retained copy (delivered again when we subscribe) is old news: it only
        introduces a device we have never heard of, and never counts as contact.
        """
        await self.on_batch([StatusMessage(device_id, payload, retained)])

    async def on_unhandled(
        self, device_id: str | None, topic: str, payload: bytes, reason: str
    ) -> None:
        """A message that cannot be handled at all (a topic that names no valid device,
        or a failure of our own): recorded with its raw bytes, never silently dropped."""
        await self.on_batch([Unhandled(device_id, topic, payload, reason)])

    async def on_batch(self, batch: Sequence[Incoming]) -> list[Ack | None]:
        """Handle ``batch`` in order, in one transaction; returns each message's answer
        (None: none to give), once that transaction has committed.

        Raises when the database is unavailable: then nothing of the batch is stored
        and nothing must be answered or acknowledged."""
        now = self._clock.now()
        alerted = await self.heartbeats.alerted()
        try:
            # First without savepoints and with the writes held back to the end (a
            # message then costs a statement or two, not seven): the usual batch has no
            # failing message.
            answers, done = await self._run(batch, now, alerted, savepoints=False)
        except Exception as exc:
            if isinstance(exc, Unavailable):
                raise
            # Rolled back whole: again, each message in a savepoint and its writes made
            # at once, so that only the failing one is undone (and recorded as rejected).
            log.info("intake_batch_retried", messages=len(batch), error=repr(exc))
            answers, done = await self._run(batch, now, alerted, savepoints=True)
        self._observe(batch, answers, now, committed=done is not None)
        if done is None:
            return answers
        for fn in done.after_commit:
            fn()
        for event_name, fields in done.logs:
            log.info(event_name, **fields)
        if done.first_steps is not None:
            self._start_after_answers(done.first_steps)
        self._on_change()
        return answers

    def _start_after_answers(self, first: FirstSteps) -> None:
        """The first steps' SMS start once the batch's answers are written: building
        the SMS requests is a few ms of CPU, and an answer must not wait for it. The
        caller publishes the answers at once; aiomqtt writes them when the event loop
        next polls the socket, and what is ready before that poll runs before it. A
        timer due at once runs after the poll's callbacks: so two of them, the first
        set before the answers are published, the second after they are."""

        def start() -> None:
            task = asyncio.ensure_future(first.committed())
            self._starting.add(task)
            task.add_done_callback(self._started)

        loop = asyncio.get_running_loop()
        loop.call_later(0, lambda: loop.call_later(0, start))

    def _started(self, task: asyncio.Task[None]) -> None:
        self._starting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("first_steps_start_failed", error=repr(task.exception()))

    def _observe(
        self,
        batch: Sequence[Incoming],
        answers: list[Ack | None],
        now: datetime,
        *,
        committed: bool,
    ) -> None:
        """Count the batch's transaction and each answer's latency (from the batch's start)."""
        if committed:
            self._metrics.batch_committed(len(batch))
        seconds = (self._clock.now() - now).total_seconds()
        for message, ack in zip(batch, answers, strict=True):
            if ack is None or not isinstance(message, DeviceMessage):
                continue
            kind = message.parsed.type.value if isinstance(message.parsed, Event) else INVALID
            self._metrics.answered(event_priority(kind), kind, seconds)

    async def _run(
        self, batch: Sequence[Incoming], now: datetime, alerted: set[str], *, savepoints: bool
    ) -> tuple[list[Ack | None], _Batch | None]:
        """One pass over the batch; the _Batch is None when nothing needed a transaction."""
        answers: list[Ack | None] = [None] * len(batch)
        done = _Batch(alerted)

        async def first_steps(
            store: IntakeStore, failed: type[BaseException] | None, *_: object
        ) -> None:
            # After the batch's rows are written (the calls its steps refer to), before
            # its commit; not when the batch failed.
            if failed is None:
                await self._first_steps(store, now, done)

        try:
            async with AsyncExitStack() as stack:
                store: IntakeStore | None = None
                for i, message in enumerate(batch):
                    if (
                        isinstance(message, DeviceMessage)
                        and isinstance(message.parsed, Event)
                        and message.parsed.type is EventType.HEARTBEAT
                        and message.device_id not in alerted
                    ):
                        self.heartbeats.seen(message.device_id, now, message.parsed.battery)
                        continue
                    if store is None:  # the transaction begins with the first message needing it
                        store = await stack.enter_async_context(self._tx.begin())
                        stack.push_async_exit(functools.partial(first_steps, store))
                        if not savepoints:
                            await stack.enter_async_context(store.deferred())
                        await done.prefetch(store, batch[i:])
                    if savepoints:
                        answers[i] = await self._in_savepoint(store, message, now, done)
                        continue
                    answers[i] = await self._one(store, message, now, done)
                    self._note_stored(message, answers[i], done)
                wrote = store is not None
        except BaseException:
            if done.first_steps is not None:
                done.first_steps.abandoned()
            raise
        return answers, (done if wrote else None)

    async def _first_steps(self, store: IntakeStore, now: datetime, done: _Batch) -> None:
        """The first step of the alarms the batch opened, in its transaction (so their
        SMS leave at its commit). In a savepoint: if it fails, the batch commits all
        the same and the calls stay due, for the escalator's next poll."""
        alarms = done.alarms[:FIRST_STEPS_IN_BATCH]
        if self._escalator is None or not alarms:
            return
        try:
            async with store.savepoint():
                done.first_steps = await self._escalator.fire_opened(
                    store.escalation(), alarms, now
                )
        except Exception as exc:
            if done.first_steps is not None:  # the savepoint's release failed
                done.first_steps.abandoned()
                done.first_steps = None
            if isinstance(exc, Unavailable):
                raise
            log.exception("first_steps_failed", call_ids=[c.id for c in alarms])

    @staticmethod
    def _note_stored(message: Incoming, ack: Ack | None, done: _Batch) -> None:
        """A later resend in the same batch is a duplicate of this one."""
        if ack is not None and ack.result is AckResult.OK:
            assert isinstance(message, DeviceMessage)  # only events are answered ok
            done.stored[(message.device_id, ack.ref)] = StoredEvent(call_id=ack.call_id)

    async def _in_savepoint(
        self,
        store: IntakeStore,
        message: Incoming,
        now: datetime,
        done: _Batch,
    ) -> Ack | None:
        mark = done.mark()
        try:
            async with store.savepoint():
                ack = await self._one(store, message, now, done)
            self._note_stored(message, ack, done)
            return ack
        except Exception as exc:
            done.undo_to(mark)
            done.calls.clear()  # what the savepoint opened or changed is gone with it
            done.call_ids.clear()  # a reservation it made is undone too
            if isinstance(exc, Unavailable):
                raise
            if (
                isinstance(exc, Conflict)
                and isinstance(message, DeviceMessage)
                and isinstance(message.parsed, Event)
            ):
                # The same ref raced in twice (a resend while the first was being stored).
                duplicate = await self._duplicate(store, message.device_id, message.parsed.ref)
                if duplicate is not None:
                    return duplicate
            # A fault of our own on this message. Redelivering it would block every
            # message behind it, so record it (raw bytes and all) and carry on; the
            # device, unanswered, resends, and a device whose messages keep failing
            # raises a technical alert.
            topic = _topic(message)
            log.exception("intake_message_failed", device_id=message.device_id, topic=topic)
            why = Rejected(reason=f"internal error: {exc!r}")
            async with store.savepoint():
                await self._reject(
                    store, message.device_id, topic, message.raw, why, now, done=done
                )
            return None

    async def _one(
        self,
        store: IntakeStore,
        message: Incoming,
        now: datetime,
        done: _Batch,
    ) -> Ack | None:
        if isinstance(message, Unhandled):
            why = Rejected(reason=message.reason)
            return await self._reject(
                store, message.device_id, message.topic, message.raw, why, now, done=done
            )
        if isinstance(message, StatusMessage):
            await self._status(store, message, now, done)
            return None
        parsed = message.parsed
        if isinstance(parsed, Rejected | Invalid):
            return await self._reject(
                store, message.device_id, message.topic, message.raw, parsed, now, done=done
            )
        if parsed.type is EventType.HEARTBEAT:  # from a device with a heartbeat_missed alert
            await self._seen(store, message.device_id, now, parsed.battery, done)
            return None
        return await self._accept(store, message.device_id, parsed, message.raw, now, done)

    async def _status(
        self, store: IntakeStore, message: StatusMessage, now: datetime, done: _Batch
    ) -> None:
        device_id = message.device_id
        try:
            status = DeviceStatus.model_validate_json(message.raw)
        except ValueError:
            log.warning("status_unreadable", device_id=device_id, payload=message.raw[:200])
            return
        known = self.heartbeats.knows(device_id) or await store.is_known_device(device_id)
        if message.retained and known:
            return
        # Written here, in order with the status: a heartbeat noted before it is older.
        pending = self.heartbeats.take(device_id)
        battery = pending.battery if pending else None
        await store.update_link(device_id, now, status=status.state, battery=battery)
        if status.state == "online":
            await self._clear_alert(store, device_id, "offline", now, "device back online", done)
            # The centre sets the heartbeat interval that supervision expects.
            config = ConfigCommand(heartbeat_s=self.heartbeat_s(device_id))
            await store.queue_device_message(device_id, config.model_dump_json(), now)
        done.logs.append(("device_status", {"device_id": device_id, "state": status.state}))

    async def _accept(
        self,
        store: IntakeStore,
        device_id: str,
        event: Event,
        raw: bytes,
        now: datetime,
        done: _Batch,
    ) -> Ack:
        seen = done.stored.get((device_id, event.ref))
        if seen is not None:
            log.info("event_duplicate", device_id=device_id, ref=event.ref, call_id=seen.call_id)
            self.heartbeats.seen(device_id, now, event.battery)
            return Ack(ref=event.ref, result=AckResult.DUPLICATE, call_id=seen.call_id)
        call = await self._apply(store, device_id, event, now, done)
        await store.insert_event(device_id, event, raw, now, call.id if call else None)
        self.heartbeats.seen(device_id, now, event.battery)
        if device_id in done.alerted:
            await self._clear_alert(store, device_id, HEARTBEAT_MISSED, now, "device heard", done)
        done.logs.append(
            (
                "event_stored",
                {
                    "device_id": device_id,
                    "ref": event.ref,
                    "type": event.type.value,
                    "call_id": call.id if call else None,
                },
            )
        )
        return Ack(ref=event.ref, result=AckResult.OK, call_id=call.id if call else None)

    def heartbeat_s(self, device_id: str) -> int:
        """The heartbeat interval the device is asked for (its model's, else the default)."""
        of = self._settings.heartbeat_of
        return of(device_id) if of is not None else self._settings.heartbeat_s

    async def _apply(
        self, store: IntakeStore, device_id: str, event: Event, now: datetime, done: _Batch
    ) -> Call | None:
        """What the event does to the device's calls; returns the call it opened or joined."""
        if event.type is EventType.TEST or (
            event.type in CALL_TYPES and self.test_modes.active(device_id, now)
        ):
            await self._tested(store, device_id, event, now, done)
            return None
        if event.type is EventType.POWER_LOST and self.power_cuts is not None:
            group = await self.power_cuts.lost(self, store, device_id, now, done)
            if group is not None:
                return group
        if event.type is EventType.POWER_RESTORED and self.power_cuts is not None:
            group = await self.power_cuts.restored(store, device_id, now, done)
            own = await self._clear_alert(
                store, device_id, "power_lost", now, "power_restored", done
            )
            return own or group
        if event.type in CALL_TYPES:
            kind = CallKind(event.type.value)
            call = await self._resident_call(store, device_id, done)
            if call is None:
                return await self._open(
                    store, device_id, kind, now, done=done, dropped=event.dropped
                )
            joined = lifecycle.join(
                call, kind, now, self._policies.for_call(kind, call.community_id)
            )
            _note_dropped(joined, now, event.dropped, call, done)
            await store.record(call, joined, now)
            return call
        if event.type in (EventType.CANCEL, EventType.PRESENCE):
            call = await self._resident_call(store, device_id, done)
            if call is None:
                return None  # recorded and answered ok, without a call id
            change = lifecycle.cancel if event.type is EventType.CANCEL else lifecycle.presence
            transition = change(call, now)
            if event.type is EventType.PRESENCE:  # the earliest responder on the way arrived
                await presence_arrival(store, call, transition, now)
            await store.record(call, transition, now)
            if not call.is_escalating:
                await store.cancel_pending_sms(call.id, f"{event.type.value} pressed")
            return call
        if event.type in _ALERT_OPENED_BY:
            key = _ALERT_OPENED_BY[event.type]
            existing = await self._alert(store, device_id, key, done)
            return existing or await self.open_alert(store, device_id, key, now, done=done)
        if event.type in _ALERT_CLEARED_BY:
            key = _ALERT_CLEARED_BY[event.type]
            return await self._clear_alert(store, device_id, key, now, event.type.value, done)
        raise AssertionError(f"unhandled event type {event.type}")

    async def _tested(
        self, store: IntakeStore, device_id: str, event: Event, now: datetime, done: _Batch
    ) -> None:
        """An end-to-end test: a ``test`` event, or a press in test mode (which ends it:
        the next press is a real one). Proven as far as the centre: stored, answered."""
        in_test_mode = event.type is not EventType.TEST
        await store.mark_tested(device_id, now, end_test_mode=in_test_mode)
        if in_test_mode:
            done.after_commit.append(lambda: self.test_modes.ended(device_id))
        done.logs.append(
            ("device_tested", {"device_id": device_id, "type": event.type.value, "ref": event.ref})
        )

    async def open_group_alert(
        self,
        store: IntakeStore,
        group_id: str,
        key: str,
        now: datetime,
        *,
        community_id: str,
        detail: str,
        done: _Batch,
    ) -> Call:
        """A technical alert for a place rather than a device (a grouped power cut):
        ``group_id`` stands for the place; routed by its community."""
        call, transition = lifecycle.open_call(
            call_id=await done.call_id(store, now, self._settings.timezone),
            device_id=group_id,
            kind=CallKind.TECHNICAL,
            policy=self._policies.for_call(CallKind.TECHNICAL.value, community_id),
            now=now,
            resident_id=None,
            community_id=community_id,
            detail=detail,
            alert_key=key,
        )
        call.unknown_device = False  # no device, and none unknown: a place
        transition.timeline[0].detail = f"technical alert for a place: {detail}"
        await store.open_call(call, transition, now)
        done.open_calls.add((group_id, key))
        done.calls[(group_id, key)] = call
        done.logs.append(("call_opened", {"call_id": call.id, "device_id": group_id, "kind": key}))
        return call

    async def _resident_call(self, store: IntakeStore, device_id: str, done: _Batch) -> Call | None:
        key = (device_id, None)
        if key not in done.calls:
            found = None
            if done.may_have(device_id, None):
                found = await store.active_resident_call(device_id)
            done.calls[key] = found
        return done.calls[key]

    async def _alert(
        self, store: IntakeStore, device_id: str, alert_key: str, done: _Batch
    ) -> Call | None:
        key = (device_id, alert_key)
        if key not in done.calls:
            found = None
            if done.may_have(device_id, alert_key):
                found = await store.active_alert(device_id, alert_key)
            done.calls[key] = found
        return done.calls[key]

    async def _open(
        self,
        store: IntakeStore,
        device_id: str,
        kind: CallKind,
        now: datetime,
        *,
        detail: str = "",
        alert_key: str | None = None,
        done: _Batch | None = None,
        dropped: Sequence[DroppedField] = (),
    ) -> Call:
        resident = self._directory.residents_by_device.get(device_id)
        call, transition = lifecycle.open_call(
            call_id=(
                await done.call_id(store, now, self._settings.timezone)
                if done is not None
                else await store.next_call_id(now, self._settings.timezone)
            ),
            device_id=device_id,
            kind=kind,
            policy=self._policies.for_call(kind.value, resident.community_id if resident else None),
            now=now,
            resident_id=resident.id if resident else None,
            community_id=resident.community_id if resident else None,
            detail=detail,
            alert_key=alert_key,
        )
        _note_dropped(transition, now, dropped, call, done)
        await store.open_call(call, transition, now)
        if done is not None:
            done.open_calls.add((device_id, alert_key))
            done.calls[(device_id, alert_key)] = call
            due = call.next_escalation_at
            if call.priority is Priority.CRITICAL and due is not None and due <= now:
                done.alarms.append(call)
        fields = {"call_id": call.id, "device_id": device_id, "kind": kind.value}
        if done is None:
            log.info("call_opened", **fields)
        else:
            done.logs.append(("call_opened", fields))
        return call

    async def open_alert(
        self,
        store: IntakeStore,
        device_id: str,
        key: str,
        now: datetime,
        *,
        done: _Batch | None = None,
    ) -> Call:
        """A technical alert: someone must look at a device that may not call for help."""
        if key == HEARTBEAT_MISSED:
            # At once, before the commit: at worst one heartbeat too many takes the
            # transactional path, never one too few.
            self.heartbeats.alert_opened(device_id)
        return await self._open(
            store,
            device_id,
            CallKind.TECHNICAL,
            now,
            detail=ALERT_TEXT[key],
            alert_key=key,
            done=done,
        )

    async def _clear_alert(
        self,
        store: IntakeStore,
        device_id: str,
        key: str,
        now: datetime,
        why: str,
        done: _Batch,
    ) -> Call | None:
        alert = await self._alert(store, device_id, key, done)
        if key == HEARTBEAT_MISSED:
            done.after_commit.append(lambda: self.heartbeats.alert_closed(device_id))
        if alert is None:
            return None
        await store.record(alert, lifecycle.clear_technical(alert, now, why), now)
        done.calls[(device_id, key)] = None  # resolved
        await store.cancel_pending_sms(alert.id, "fault cleared")
        done.logs.append(
            ("alert_cleared", {"call_id": alert.id, "device_id": device_id, "alert": key})
        )
        return alert

    async def _duplicate(self, store: IntakeStore, device_id: str, ref: str) -> Ack | None:
        seen = await store.find_event(device_id, ref)
        if seen is None:
            return None
        return Ack(ref=ref, result=AckResult.DUPLICATE, call_id=seen.call_id)

    async def _reject(
        self,
        store: IntakeStore,
        device_id: str | None,
        topic: str,
        raw: bytes,
        why: Rejected | Invalid,
        now: datetime,
        *,
        done: _Batch,
    ) -> Ack | None:
        ref = why.ref if isinstance(why, Invalid) else None
        reason = why.error if isinstance(why, Invalid) else why.reason
        await store.insert_rejected(
            now, topic, device_id, ref, raw, reason, answered=ref is not None
        )
        if device_id is not None:
            await self._alert_if_unreadable(store, device_id, now, done)
        log.warning("event_rejected", device_id=device_id, ref=ref, reason=reason)
        if ref is None:
            return None
        return Ack(ref=ref, result=AckResult.INVALID, error=reason)

    async def _alert_if_unreadable(
        self, store: IntakeStore, device_id: str, now: datetime, done: _Batch
    ) -> None:
        """A device that keeps sending what we cannot read may not be able to call for help."""
        recent = await store.count_rejected_since(device_id, now - timedelta(hours=1))
        if recent < self._settings.rejected_alert_threshold:
            return
        if await self._alert(store, device_id, "rejected_messages", done) is None:
            await self.open_alert(store, device_id, "rejected_messages", now, done=done)
            self._on_change()

    async def _seen(
        self, store: IntakeStore, device_id: str, now: datetime, battery: int | None, done: _Batch
    ) -> None:
        """A heartbeat from a device with a ``heartbeat_missed`` alert: closes it now."""
        pending = self.heartbeats.take(device_id)
        if battery is None and pending is not None:
            battery = pending.battery
        await store.update_link(device_id, now, battery=battery)
        await self._clear_alert(store, device_id, HEARTBEAT_MISSED, now, "heartbeat", done)


def _note_dropped(
    transition: Transition,
    now: datetime,
    dropped: Sequence[DroppedField],
    call: Call,
    done: _Batch | None,
) -> None:
    """An alarm accepted without its bad optional fields says which, on its call: the
    device may need looking at (a battery of 150 %, a clock that says "yesterday")."""
    if not dropped:
        return
    detail = "; ".join(f.describe() for f in dropped)
    transition.note(now, "device", "fields_dropped", "mqtt", detail)
    fields = {"call_id": call.id, "device_id": call.device_id, "fields": [f.field for f in dropped]}
    if done is None:
        log.warning("alarm_fields_dropped", **fields)
    else:
        done.logs.append(("alarm_fields_dropped", fields))


def _topic(message: Incoming) -> str:
    if isinstance(message, StatusMessage):
        return f"dev/{message.device_id}/status"
    return message.topic
