"""The database side of :class:`dispatcher.services.intake.IntakeStore`: every query
the intake makes, bound to one SQLAlchemy session (one transaction)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from devices.protocol import Event
from devices.text import clean_text
from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db import stores as store
from dispatcher.core.calls import Call, Transition
from dispatcher.services.intake import Conflict, StoredEvent

# A unique key broken (the same ref stored twice at once) is what the intake retries as
# a duplicate; it recognises the error as a Conflict and re-raises it unchanged.
Conflict.register(IntegrityError)

# What is kept of a rejected message: its first bytes (enough to see what a device
# sent), with its length and digest; a flood of 16 MB payloads must not fill the disk.
RAW_KEPT_BYTES = 4096
REASON_KEPT_CHARS = 1000


def _fit(text: str, column: object) -> str:
    """``text`` made storable in a String column: no control characters (PostgreSQL
    refuses NUL in text), no lone surrogates, at most the column's length."""
    length = getattr(getattr(column, "type", None), "length", None)
    cleaned = clean_text(text)
    return cleaned[:length] if length else cleaned


def device_ts(ts: datetime | None) -> str | None:
    """The device's clock as stored: UTC, microseconds, one fixed form of 32 characters
    (the events.device_ts column holds 40)."""
    return None if ts is None else ts.astimezone(UTC).isoformat(timespec="microseconds")


class SqlIntakeStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def find_event(self, device_id: str, ref: str) -> StoredEvent | None:
        row = (
            await self._session.execute(
                select(db.events.c.call_id).where(
                    db.events.c.device_id == device_id, db.events.c.ref == ref
                )
            )
        ).first()
        return None if row is None else StoredEvent(call_id=row.call_id)

    async def insert_event(
        self, device_id: str, event: Event, raw: bytes, now: datetime, call_id: str | None
    ) -> None:
        await self._session.execute(
            insert(db.events).values(
                device_id=device_id,
                ref=event.ref,
                type=event.type.value,
                received_at=now,
                device_ts=device_ts(event.ts),
                battery=event.battery,
                rssi=event.rssi,
                fw=None if event.fw is None else _fit(event.fw, db.events.c.fw),
                # Parsed as UTF-8 already; "replace" guards the column all the same.
                payload=raw.decode("utf-8", errors="replace"),
                call_id=call_id,
            )
        )

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
    ) -> None:
        await self._session.execute(
            insert(db.rejected_messages).values(
                received_at=now,
                topic=_fit(topic, db.rejected_messages.c.topic),
                device_id=None
                if device_id is None
                else _fit(device_id, db.rejected_messages.c.device_id),
                ref=None if ref is None else _fit(ref, db.rejected_messages.c.ref),
                raw=raw[:RAW_KEPT_BYTES],
                raw_length=len(raw),
                raw_sha256=hashlib.sha256(raw).hexdigest(),
                reason=clean_text(reason)[:REASON_KEPT_CHARS],
                answered=answered,
            )
        )

    async def count_rejected_since(self, device_id: str, since: datetime) -> int:
        recent = await self._session.scalar(
            select(func.count())
            .select_from(db.rejected_messages)
            .where(
                db.rejected_messages.c.device_id == device_id,
                db.rejected_messages.c.received_at > since,
            )
        )
        return recent or 0

    async def is_known_device(self, device_id: str) -> bool:
        known = await self._session.scalar(
            select(db.device_links.c.device_id).where(db.device_links.c.device_id == device_id)
        )
        return bool(known)

    async def update_link(
        self,
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
        changed = await self._session.execute(
            update(db.device_links).where(db.device_links.c.device_id == device_id).values(**values)
        )
        if not getattr(changed, "rowcount", 0):
            values.setdefault("status_at", now)
            await self._session.execute(
                insert(db.device_links).values(device_id=device_id, **values)
            )

    async def queue_device_message(self, device_id: str, payload: str, now: datetime) -> None:
        await store.queue_device_message(self._session, device_id, payload, now)

    async def next_call_id(self, now: datetime, timezone: str) -> str:
        return await store.next_call_id(self._session, now, timezone)

    async def open_call(self, call: Call, transition: Transition, now: datetime) -> None:
        self._session.add(call)
        await store.record(self._session, call, transition, now)

    async def active_resident_call(self, device_id: str) -> Call | None:
        return await store.active_resident_call(self._session, device_id)

    async def active_alert(self, device_id: str, alert_key: str) -> Call | None:
        return await store.active_alert(self._session, device_id, alert_key)

    async def record(self, call: Call, transition: Transition, now: datetime) -> None:
        await store.record(self._session, call, transition, now)

    async def cancel_pending_sms(self, call_id: str, why: str) -> int:
        return await store.cancel_pending_sms(self._session, call_id, why)
