"""Device messages in: validate, store durably, apply to calls, and say what to answer.

The event row and everything it causes (a call opened or joined, its timeline,
the device's "received" update) are committed in ONE transaction before the
answer is returned, so an answered event is never lost and a resent one is
recognised as a duplicate of the call it already opened.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from devices.protocol import (
    CALL_TYPES,
    Ack,
    AckResult,
    ConfigCommand,
    DeviceStatus,
    Event,
    EventType,
    Invalid,
    Rejected,
    parse_event,
)
from dispatcher.core import calls as lifecycle
from dispatcher.core.calls import Call, CallKind, Transition
from dispatcher.core.directory import Directory
from dispatcher.core.escalation import Policy
from dispatcher.core.policy_book import PolicyBook, book
from dispatcher.core.texts import LANGUAGES, text
from dispatcher.services.clock import Clock
from dispatcher.services.metrics import INVALID, NULL_METRICS, Metrics, event_priority
from dispatcher.services.ports import Transactions

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


@dataclass(frozen=True)
class StoredEvent:
    """An event already stored under its device and ref, and the call it opened or
    joined (None when it had none)."""

    call_id: str | None


class Conflict(ABC):  # noqa: B024 (a marker: adapters register their error class)
    """A write that breaks a uniqueness rule (the same ref stored twice at once).

    The store's adapter registers its own error class as a Conflict, so that the intake
    recognises it without importing the adapter and re-raises it unchanged."""


class IntakeStore(Protocol):
    """What the intake reads and writes, inside one transaction."""

    async def find_event(self, device_id: str, ref: str) -> StoredEvent | None: ...

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

    async def open_call(self, call: Call, transition: Transition, now: datetime) -> None:
        """Store a new call and record its opening transition."""

    async def active_resident_call(self, device_id: str) -> Call | None: ...

    async def active_alert(self, device_id: str, alert_key: str) -> Call | None: ...

    async def record(self, call: Call, transition: Transition, now: datetime) -> None: ...

    async def cancel_pending_sms(self, call_id: str, why: str) -> int: ...


@dataclass(frozen=True)
class IntakeSettings:
    timezone: str
    rejected_alert_threshold: int = 5  # unreadable messages from one device per hour
    heartbeat_s: int = 3600  # the interval devices are told to use


class Intake:
    def __init__(
        self,
        tx: Transactions[IntakeStore],
        directory: Directory,
        clock: Clock,
        policies: Mapping[str, Policy] | PolicyBook,
        settings: IntakeSettings,
        on_change: Callable[[], None] = lambda: None,
        metrics: Metrics = NULL_METRICS,
    ) -> None:
        self._tx = tx
        self._directory = directory
        self._clock = clock
        self._metrics = metrics
        self._policies = book(policies)
        self._settings = settings
        self._on_change = on_change  # wakes the escalator and the device outbox

    async def on_event(self, device_id: str, topic: str, payload: bytes) -> Ack | None:
        """Handle one message from ``{root}/dev/{device_id}/event``.

        Returns the answer to publish on the device's ``ack`` topic, or None when the
        message gets no answer (a heartbeat, or one without a usable ``ref``).
        """
        now = self._clock.now()
        parsed = parse_event(payload)
        if isinstance(parsed, Rejected | Invalid):
            return self._answered(
                INVALID, now, await self._reject(device_id, topic, payload, parsed, now)
            )
        if parsed.type is EventType.HEARTBEAT:
            await self._seen(device_id, now, parsed.battery, heartbeat=True)
            return self._answered(parsed.type.value, now, None)
        try:
            ack = await self._accept(device_id, parsed, payload, now)
        except Exception as exc:
            if not isinstance(exc, Conflict):
                raise
            # The same ref raced in twice (a resend while the first was being stored).
            duplicate = await self._duplicate(device_id, parsed.ref)
            if duplicate is None:
                raise
            ack = duplicate
        self._on_change()
        return self._answered(parsed.type.value, now, ack)

    def _answered(self, kind: str, received: datetime, ack: Ack | None) -> Ack | None:
        """Count the message's transaction (one per message until batching) and the
        answer's latency; returns ``ack``."""
        self._metrics.batch_committed(1)
        if ack is not None:
            seconds = (self._clock.now() - received).total_seconds()
            self._metrics.answered(event_priority(kind), kind, seconds)
        return ack

    async def on_status(self, device_id: str, payload: bytes, *, retained: bool = False) -> None:
        """The device's retained ``status`` (online, or offline from its Last Will).

        A retained copy (delivered again when we subscribe) is old news: it only
        introduces a device we have never heard of, and never counts as contact.
        """
        try:
            status = DeviceStatus.model_validate_json(payload)
        except ValueError:
            log.warning("status_unreadable", device_id=device_id, payload=payload[:200])
            return
        now = self._clock.now()
        async with self._tx.begin() as store:
            known = await store.is_known_device(device_id)
            if retained and known:
                return
            await store.update_link(device_id, now, status=status.state)
            if status.state == "online":
                await self._clear_alert(store, device_id, "offline", now, "device back online")
                # The centre sets the heartbeat interval that supervision expects.
                config = ConfigCommand(heartbeat_s=self._settings.heartbeat_s)
                await store.queue_device_message(device_id, config.model_dump_json(), now)
        log.info("device_status", device_id=device_id, state=status.state)
        self._on_change()

    async def _accept(self, device_id: str, event: Event, raw: bytes, now: datetime) -> Ack:
        async with self._tx.begin() as store:
            seen = await store.find_event(device_id, event.ref)
            if seen is not None:
                log.info(
                    "event_duplicate", device_id=device_id, ref=event.ref, call_id=seen.call_id
                )
                return Ack(ref=event.ref, result=AckResult.DUPLICATE, call_id=seen.call_id)
            call = await self._apply(store, device_id, event, now)
            await store.insert_event(device_id, event, raw, now, call.id if call else None)
            await store.update_link(device_id, now, battery=event.battery)
            await self._clear_alert(store, device_id, "heartbeat_missed", now, "device heard")
        log.info(
            "event_stored",
            device_id=device_id,
            ref=event.ref,
            type=event.type.value,
            call_id=call.id if call else None,
        )
        return Ack(ref=event.ref, result=AckResult.OK, call_id=call.id if call else None)

    async def _apply(
        self, store: IntakeStore, device_id: str, event: Event, now: datetime
    ) -> Call | None:
        """What the event does to the device's calls; returns the call it opened or joined."""
        if event.type in CALL_TYPES:
            kind = CallKind(event.type.value)
            call = await store.active_resident_call(device_id)
            if call is None:
                return await self._open(store, device_id, kind, now)
            await store.record(
                call,
                lifecycle.join(call, kind, now, self._policies.for_call(kind, call.community_id)),
                now,
            )
            return call
        if event.type in (EventType.CANCEL, EventType.PRESENCE):
            call = await store.active_resident_call(device_id)
            if call is None:
                return None  # recorded and answered ok, without a call id
            change = lifecycle.cancel if event.type is EventType.CANCEL else lifecycle.presence
            await store.record(call, change(call, now), now)
            if not call.is_escalating:
                await store.cancel_pending_sms(call.id, f"{event.type.value} pressed")
            return call
        if event.type in _ALERT_OPENED_BY:
            key = _ALERT_OPENED_BY[event.type]
            existing = await store.active_alert(device_id, key)
            return existing or await self.open_alert(store, device_id, key, now)
        if event.type in _ALERT_CLEARED_BY:
            key = _ALERT_CLEARED_BY[event.type]
            return await self._clear_alert(store, device_id, key, now, event.type.value)
        raise AssertionError(f"unhandled event type {event.type}")

    async def _open(
        self,
        store: IntakeStore,
        device_id: str,
        kind: CallKind,
        now: datetime,
        *,
        detail: str = "",
        alert_key: str | None = None,
    ) -> Call:
        resident = self._directory.residents_by_device.get(device_id)
        call, transition = lifecycle.open_call(
            call_id=await store.next_call_id(now, self._settings.timezone),
            device_id=device_id,
            kind=kind,
            policy=self._policies.for_call(kind.value, resident.community_id if resident else None),
            now=now,
            resident_id=resident.id if resident else None,
            community_id=resident.community_id if resident else None,
            detail=detail,
            alert_key=alert_key,
        )
        await store.open_call(call, transition, now)
        log.info("call_opened", call_id=call.id, device_id=device_id, kind=kind.value)
        return call

    async def open_alert(self, store: IntakeStore, device_id: str, key: str, now: datetime) -> Call:
        """A technical alert: someone must look at a device that may not call for help."""
        return await self._open(
            store, device_id, CallKind.TECHNICAL, now, detail=ALERT_TEXT[key], alert_key=key
        )

    async def _clear_alert(
        self, store: IntakeStore, device_id: str, key: str, now: datetime, why: str
    ) -> Call | None:
        alert = await store.active_alert(device_id, key)
        if alert is None:
            return None
        await store.record(alert, lifecycle.clear_technical(alert, now, why), now)
        await store.cancel_pending_sms(alert.id, "fault cleared")
        log.info("alert_cleared", call_id=alert.id, device_id=device_id, alert=key)
        return alert

    async def _duplicate(self, device_id: str, ref: str) -> Ack | None:
        async with self._tx.begin() as store:
            seen = await store.find_event(device_id, ref)
        if seen is None:
            return None
        return Ack(ref=ref, result=AckResult.DUPLICATE, call_id=seen.call_id)

    async def on_unhandled(
        self, device_id: str | None, topic: str, payload: bytes, reason: str
    ) -> None:
        """A message that cannot be handled at all (a topic that names no valid device,
        or a failure of our own): recorded with its raw bytes, never silently dropped."""
        await self._reject(device_id, topic, payload, Rejected(reason=reason), self._clock.now())

    async def _reject(
        self,
        device_id: str | None,
        topic: str,
        raw: bytes,
        why: Rejected | Invalid,
        now: datetime,
    ) -> Ack | None:
        ref = why.ref if isinstance(why, Invalid) else None
        reason = why.error if isinstance(why, Invalid) else why.reason
        async with self._tx.begin() as store:
            await store.insert_rejected(
                now, topic, device_id, ref, raw, reason, answered=ref is not None
            )
            if device_id is not None:
                await self._alert_if_unreadable(store, device_id, now)
        log.warning("event_rejected", device_id=device_id, ref=ref, reason=reason)
        if ref is None:
            return None
        return Ack(ref=ref, result=AckResult.INVALID, error=reason)

    async def _alert_if_unreadable(self, store: IntakeStore, device_id: str, now: datetime) -> None:
        """A device that keeps sending what we cannot read may not be able to call for help."""
        recent = await store.count_rejected_since(device_id, now - timedelta(hours=1))
        if recent < self._settings.rejected_alert_threshold:
            return
        if await store.active_alert(device_id, "rejected_messages") is None:
            await self.open_alert(store, device_id, "rejected_messages", now)
            self._on_change()

    async def _seen(
        self, device_id: str, now: datetime, battery: int | None, *, heartbeat: bool
    ) -> None:
        async with self._tx.begin() as store:
            await store.update_link(device_id, now, battery=battery)
            if heartbeat:
                await self._clear_alert(store, device_id, "heartbeat_missed", now, "heartbeat")
