"""Device messages in: validate, store durably, apply to calls, and say what to answer.

The event row and everything it causes (a call opened or joined, its timeline,
the device's "received" update) are committed in ONE transaction before the
answer is returned, so an answered event is never lost and a resent one is
recognised as a duplicate of the call it already opened.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db import stores as store
from dispatcher.core import calls as lifecycle
from dispatcher.core.calls import Call, CallKind
from dispatcher.core.directory import Directory
from dispatcher.core.escalation import Policy
from dispatcher.core.policy_book import PolicyBook, book
from dispatcher.services.clock import Clock

log = structlog.get_logger(__name__)

# Technical events: which alert each opens, and which alert each clears.
_ALERT_OPENED_BY = {EventType.BATTERY_LOW: "battery_low", EventType.POWER_LOST: "power_lost"}
_ALERT_CLEARED_BY = {EventType.BATTERY_OK: "battery_low", EventType.POWER_RESTORED: "power_lost"}
ALERT_TEXT = {
    "battery_low": "电量低 battery low",
    "power_lost": "主机断电 mains power lost",
    "heartbeat_missed": "心跳中断 heartbeats missed",
    "offline": "设备离线 device offline",
    "rejected_messages": "设备发送的消息无法识别 device keeps sending unreadable messages",
}


@dataclass(frozen=True)
class IntakeSettings:
    timezone: str
    rejected_alert_threshold: int = 5  # unreadable messages from one device per hour
    heartbeat_s: int = 3600  # the interval devices are told to use


class Intake:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        directory: Directory,
        clock: Clock,
        policies: Mapping[str, Policy] | PolicyBook,
        settings: IntakeSettings,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._directory = directory
        self._clock = clock
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
            return await self._reject(device_id, topic, payload, parsed, now)
        if parsed.type is EventType.HEARTBEAT:
            await self._seen(device_id, now, parsed.battery, heartbeat=True)
            return None
        try:
            ack = await self._accept(device_id, parsed, payload, now)
        except IntegrityError:
            # The same ref raced in twice (a resend while the first was being stored).
            duplicate = await self._duplicate(device_id, parsed.ref)
            if duplicate is None:
                raise
            ack = duplicate
        self._on_change()
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
        async with self._sessions.begin() as session:
            known = await session.scalar(
                select(db.device_links.c.device_id).where(db.device_links.c.device_id == device_id)
            )
            if retained and known:
                return
            await _upsert_link(session, device_id, now, status=status.state)
            if status.state == "online":
                await self._clear_alert(session, device_id, "offline", now, "device back online")
                # The centre sets the heartbeat interval that supervision expects.
                config = ConfigCommand(heartbeat_s=self._settings.heartbeat_s)
                await store.queue_device_message(session, device_id, config.model_dump_json(), now)
        log.info("device_status", device_id=device_id, state=status.state)
        self._on_change()

    async def _accept(self, device_id: str, event: Event, raw: bytes, now: datetime) -> Ack:
        async with self._sessions.begin() as session:
            seen = await _first_answer(session, device_id, event.ref)
            if seen is not None:
                log.info("event_duplicate", device_id=device_id, ref=event.ref, call_id=seen[0])
                return Ack(ref=event.ref, result=AckResult.DUPLICATE, call_id=seen[0])
            call = await self._apply(session, device_id, event, now)
            await session.execute(
                insert(db.events).values(
                    device_id=device_id,
                    ref=event.ref,
                    type=event.type.value,
                    received_at=now,
                    device_ts=event.ts.isoformat() if event.ts else None,
                    battery=event.battery,
                    rssi=event.rssi,
                    fw=event.fw,
                    payload=raw.decode("utf-8"),
                    call_id=call.id if call else None,
                )
            )
            await _upsert_link(session, device_id, now, battery=event.battery)
            await self._clear_alert(session, device_id, "heartbeat_missed", now, "device heard")
        log.info(
            "event_stored",
            device_id=device_id,
            ref=event.ref,
            type=event.type.value,
            call_id=call.id if call else None,
        )
        return Ack(ref=event.ref, result=AckResult.OK, call_id=call.id if call else None)

    async def _apply(
        self, session: AsyncSession, device_id: str, event: Event, now: datetime
    ) -> Call | None:
        """What the event does to the device's calls; returns the call it opened or joined."""
        if event.type in CALL_TYPES:
            kind = CallKind(event.type.value)
            call = await store.active_resident_call(session, device_id)
            if call is None:
                return await self._open(session, device_id, kind, now)
            await store.record(
                session,
                call,
                lifecycle.join(call, kind, now, self._policies.for_call(kind, call.community_id)),
                now,
            )
            return call
        if event.type in (EventType.CANCEL, EventType.PRESENCE):
            call = await store.active_resident_call(session, device_id)
            if call is None:
                return None  # recorded and answered ok, without a call id
            change = lifecycle.cancel if event.type is EventType.CANCEL else lifecycle.presence
            await store.record(session, call, change(call, now), now)
            if not call.is_escalating:
                await store.cancel_pending_sms(session, call.id, f"{event.type.value} pressed")
            return call
        if event.type in _ALERT_OPENED_BY:
            key = _ALERT_OPENED_BY[event.type]
            existing = await store.active_alert(session, device_id, key)
            return existing or await self.open_alert(session, device_id, key, now)
        if event.type in _ALERT_CLEARED_BY:
            key = _ALERT_CLEARED_BY[event.type]
            return await self._clear_alert(session, device_id, key, now, event.type.value)
        raise AssertionError(f"unhandled event type {event.type}")

    async def _open(
        self,
        session: AsyncSession,
        device_id: str,
        kind: CallKind,
        now: datetime,
        *,
        detail: str = "",
        alert_key: str | None = None,
    ) -> Call:
        resident = self._directory.residents_by_device.get(device_id)
        call, transition = lifecycle.open_call(
            call_id=await store.next_call_id(session, now, self._settings.timezone),
            device_id=device_id,
            kind=kind,
            policy=self._policies.for_call(kind.value, resident.community_id if resident else None),
            now=now,
            resident_id=resident.id if resident else None,
            community_id=resident.community_id if resident else None,
            detail=detail,
            alert_key=alert_key,
        )
        session.add(call)
        await store.record(session, call, transition, now)
        log.info("call_opened", call_id=call.id, device_id=device_id, kind=kind.value)
        return call

    async def open_alert(
        self, session: AsyncSession, device_id: str, key: str, now: datetime
    ) -> Call:
        """A technical alert: someone must look at a device that may not call for help."""
        return await self._open(
            session, device_id, CallKind.TECHNICAL, now, detail=ALERT_TEXT[key], alert_key=key
        )

    async def _clear_alert(
        self, session: AsyncSession, device_id: str, key: str, now: datetime, why: str
    ) -> Call | None:
        alert = await store.active_alert(session, device_id, key)
        if alert is None:
            return None
        await store.record(session, alert, lifecycle.clear_technical(alert, now, why), now)
        await store.cancel_pending_sms(session, alert.id, "fault cleared")
        log.info("alert_cleared", call_id=alert.id, device_id=device_id, alert=key)
        return alert

    async def _duplicate(self, device_id: str, ref: str) -> Ack | None:
        async with self._sessions.begin() as session:
            seen = await _first_answer(session, device_id, ref)
        if seen is None:
            return None
        return Ack(ref=ref, result=AckResult.DUPLICATE, call_id=seen[0])

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
        async with self._sessions.begin() as session:
            await session.execute(
                insert(db.rejected_messages).values(
                    received_at=now,
                    topic=topic[:300],
                    device_id=device_id,
                    ref=ref,
                    raw=raw,
                    reason=reason,
                    answered=ref is not None,
                )
            )
            if device_id is not None:
                await self._alert_if_unreadable(session, device_id, now)
        log.warning("event_rejected", device_id=device_id, ref=ref, reason=reason)
        if ref is None:
            return None
        return Ack(ref=ref, result=AckResult.INVALID, error=reason)

    async def _alert_if_unreadable(
        self, session: AsyncSession, device_id: str, now: datetime
    ) -> None:
        """A device that keeps sending what we cannot read may not be able to call for help."""
        recent = await session.scalar(
            select(func.count())
            .select_from(db.rejected_messages)
            .where(
                db.rejected_messages.c.device_id == device_id,
                db.rejected_messages.c.received_at > now - timedelta(hours=1),
            )
        )
        if (recent or 0) < self._settings.rejected_alert_threshold:
            return
        if await store.active_alert(session, device_id, "rejected_messages") is None:
            await self.open_alert(session, device_id, "rejected_messages", now)
            self._on_change()

    async def _seen(
        self, device_id: str, now: datetime, battery: int | None, *, heartbeat: bool
    ) -> None:
        async with self._sessions.begin() as session:
            await _upsert_link(session, device_id, now, battery=battery)
            if heartbeat:
                await self._clear_alert(session, device_id, "heartbeat_missed", now, "heartbeat")


async def _first_answer(
    session: AsyncSession, device_id: str, ref: str
) -> tuple[str | None] | None:
    """``(call_id,)`` of the stored event with this ref, or None when it is new."""
    row = (
        await session.execute(
            select(db.events.c.call_id).where(
                db.events.c.device_id == device_id, db.events.c.ref == ref
            )
        )
    ).first()
    return None if row is None else (row.call_id,)


async def _upsert_link(
    session: AsyncSession,
    device_id: str,
    now: datetime,
    *,
    status: str | None = None,
    battery: int | None = None,
) -> None:
    # Any message from the device means it is connected, whatever its retained
    # status said last; only the status topic itself can say offline.
    values: dict[str, object] = {"last_seen_at": now, "status": status or "online"}
    if status is not None:
        values["status_at"] = now
    if battery is not None:
        values["battery"] = battery
    changed = await session.execute(
        update(db.device_links).where(db.device_links.c.device_id == device_id).values(**values)
    )
    if not getattr(changed, "rowcount", 0):
        values.setdefault("status_at", now)
        await session.execute(insert(db.device_links).values(device_id=device_id, **values))
