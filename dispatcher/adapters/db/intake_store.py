"""The database side of :class:`dispatcher.services.intake.IntakeStore`: every query
the intake makes, bound to one SQLAlchemy session (one transaction)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    String,
    bindparam,
    cast,
    func,
    insert,
    literal_column,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from devices.protocol import Event
from devices.text import clean_text
from dispatcher.adapters.db import reply_codes as replycodes
from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db import stores as store
from dispatcher.adapters.db.dispatch_store import SqlDispatches
from dispatcher.adapters.db.escalator_store import SqlEscalationStore
from dispatcher.core.calls import Call, CallState, Transition
from dispatcher.services.heartbeats import Seen
from dispatcher.services.intake import Conflict, StoredEvent, Unavailable

# A unique key broken (the same ref stored twice at once) is what the intake retries as
# a duplicate; it recognises the error as a Conflict and re-raises it unchanged.
Conflict.register(IntegrityError)
# The database gone (locked past its timeout, disk, connection): not one message's
# fault, so the intake abandons the whole batch for the broker to deliver again.
Unavailable.register(OperationalError)
Unavailable.register(InterfaceError)
Unavailable.register(OSError)

# Values per IN (...) list (well below SQLite's limit on bound parameters).
_IN_CHUNK = 500
# Rows per statement when writing contacts (SQLite allows 32766 bound parameters).
_SEEN_CHUNK = 1000


def _seen_upsert(insert_of: Any) -> Any:
    """The device_links upsert of :meth:`SqlIntakeStore.write_seen`, built once and run
    as an executemany: one compiled statement whatever the batch's size (a multi-row
    VALUES is compiled again for every row count, 7 % of the daemon's time in a burst).

    Any message from the device means it is connected (as update_link), but contact
    noted before a newer write (a status, in order) changes nothing."""
    links = db.device_links
    upsert = insert_of(links)
    return upsert.on_conflict_do_update(
        index_elements=[links.c.device_id],
        set_={
            "last_seen_at": upsert.excluded.last_seen_at,
            "status": "online",
            "battery": func.coalesce(upsert.excluded.battery, links.c.battery),
        },
        where=links.c.last_seen_at <= upsert.excluded.last_seen_at,
    )


_SEEN_UPSERT = {"postgresql": _seen_upsert(pg_insert), "sqlite": _seen_upsert(sqlite_insert)}


@dataclass
class _Held:
    """Rows held back by :meth:`SqlIntakeStore.deferred`, in the order they came."""

    calls: list[Call] = field(default_factory=list)  # new calls, written as they end up
    timeline: list[dict[str, object]] = field(default_factory=list)
    outbox: list[dict[str, object]] = field(default_factory=list)
    events: list[dict[str, object]] = field(default_factory=list)


# Statements built once: building one (coercing its columns and values) and computing
# its cache key cost more than SQLite takes to run it; the compiled form is cached.
_e = db.events.c
_c = db.calls.c
# A batch's stored events and its devices' unresolved calls, in one statement (see
# SqlIntakeStore.prefetch): ("e", device, ref, call id) and ("c", device, alert key).
_PREFETCH = union_all(
    select(
        literal_column("'e'").label("what"), _e.device_id, _e.ref.label("key"), _e.call_id
    ).where(
        _e.device_id.in_(bindparam("event_devices", expanding=True)),
        _e.ref.in_(bindparam("refs", expanding=True)),
    ),
    select(literal_column("'c'"), _c.device_id, _c.alert_key, cast(null(), String)).where(
        _c.device_id.in_(bindparam("devices", expanding=True)),
        _c.state != CallState.RESOLVED.value,
    ),
)
_INSERT = {table: insert(table) for table in (db.calls, db.timeline, db.device_outbox, db.events)}
_CALL_COLUMNS = tuple(column.key for column in db.calls.c)


def _call_row(call: Call) -> dict[str, object]:
    """The calls row of a Call (mapped column for attribute, as the ORM writes it)."""
    return {key: getattr(call, key) for key in _CALL_COLUMNS}


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


class SqlIntakeStore(SqlDispatches):
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._held: _Held | None = None

    def savepoint(self) -> AbstractAsyncContextManager[object]:
        return self._session.begin_nested()

    @asynccontextmanager
    async def deferred(self) -> AsyncIterator[None]:
        """The batch's rows in one statement per table at the end: the changes to calls
        it loaded (the ORM's flush, no autoflush meanwhile), the calls it opened (as
        they are by then: joined, cleared...), then timelines, device messages, events.

        New calls are written with Core, not added to the session: the ORM's unit of
        work cost more than the statement (2 ms of an 8 ms batch of one)."""
        held = self._held = _Held()
        try:
            with self._session.sync_session.no_autoflush:
                yield
                await self._session.flush()
                for table, rows in (
                    (db.calls, [_call_row(call) for call in held.calls]),
                    (db.timeline, held.timeline),
                    (db.device_outbox, held.outbox),
                    (db.events, held.events),
                ):
                    if rows:
                        await self._session.execute(_INSERT[table], rows)
        finally:
            self._held = None

    async def write_seen(self, seen: list[Seen]) -> None:
        statement = _SEEN_UPSERT[self._session.get_bind().dialect.name]
        for start in range(0, len(seen), _SEEN_CHUNK):
            rows = [
                {
                    "device_id": s.device_id,
                    "last_seen_at": s.at,
                    "status": "online",
                    "status_at": s.at,
                    "battery": s.battery,
                }
                for s in seen[start : start + _SEEN_CHUNK]
            ]
            await self._session.execute(statement, rows)

    async def devices_with_alert(self, alert_key: str) -> set[str]:
        found = await self._session.scalars(
            select(db.calls.c.device_id).where(
                db.calls.c.alert_key == alert_key, db.calls.c.state != CallState.RESOLVED.value
            )
        )
        return set(found)

    async def find_event(self, device_id: str, ref: str) -> StoredEvent | None:
        row = (
            await self._session.execute(
                select(db.events.c.call_id).where(
                    db.events.c.device_id == device_id, db.events.c.ref == ref
                )
            )
        ).first()
        return None if row is None else StoredEvent(call_id=row.call_id)

    async def prefetch(
        self, keys: set[tuple[str, str]], device_ids: set[str]
    ) -> tuple[dict[tuple[str, str], StoredEvent], set[tuple[str, str | None]]]:
        if len(keys) > _IN_CHUNK or len(device_ids) > _IN_CHUNK:
            return await self.find_events(keys), await self.open_calls_of(device_ids)
        stored: dict[tuple[str, str], StoredEvent] = {}
        open_calls: set[tuple[str, str | None]] = set()
        rows = await self._session.execute(
            _PREFETCH,
            {
                "event_devices": list({d for d, _ in keys}),
                "refs": list({r for _, r in keys}),
                "devices": list(device_ids),
            },
        )
        for what, device_id, key, call_id in rows:
            if what == "c":
                open_calls.add((device_id, key))
            elif (device_id, key) in keys:  # not another device's ref
                stored[(device_id, key)] = StoredEvent(call_id=call_id)
        return stored, open_calls

    async def find_events(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], StoredEvent]:
        found: dict[tuple[str, str], StoredEvent] = {}
        ordered = sorted(keys)
        e = db.events.c
        for start in range(0, len(ordered), _IN_CHUNK):
            chunk = ordered[start : start + _IN_CHUNK]
            rows = await self._session.execute(
                select(e.device_id, e.ref, e.call_id).where(
                    e.device_id.in_({d for d, _ in chunk}), e.ref.in_({r for _, r in chunk})
                )
            )
            for row in rows:
                if (row.device_id, row.ref) in keys:
                    found[(row.device_id, row.ref)] = StoredEvent(call_id=row.call_id)
        return found

    async def open_calls_of(self, device_ids: set[str]) -> set[tuple[str, str | None]]:
        c = db.calls.c
        ordered = sorted(device_ids)
        found: set[tuple[str, str | None]] = set()
        for start in range(0, len(ordered), _IN_CHUNK):
            rows = await self._session.execute(
                select(c.device_id, c.alert_key).where(
                    c.device_id.in_(ordered[start : start + _IN_CHUNK]),
                    c.state != CallState.RESOLVED.value,
                )
            )
            found.update((row.device_id, row.alert_key) for row in rows)
        return found

    async def insert_event(
        self, device_id: str, event: Event, raw: bytes, now: datetime, call_id: str | None
    ) -> None:
        row: dict[str, object] = dict(
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
        if self._held is not None:
            self._held.events.append(row)  # written with the batch's others (deferred)
            return
        await self._session.execute(insert(db.events).values(**row))

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

    async def set_power_lost(self, device_id: str, since: datetime | None, now: datetime) -> None:
        links = db.device_links
        # A device already without power keeps the moment it lost it.
        value = None if since is None else func.coalesce(links.c.power_lost_at, since)
        await self._ensure_link(device_id, now)
        await self._session.execute(
            update(links).where(links.c.device_id == device_id).values(power_lost_at=value)
        )

    async def power_lost_of(self, device_ids: Sequence[str]) -> dict[str, datetime]:
        links = db.device_links.c
        found: dict[str, datetime] = {}
        ordered = sorted(set(device_ids))
        for start in range(0, len(ordered), _IN_CHUNK):
            rows = await self._session.execute(
                select(links.device_id, links.power_lost_at).where(
                    links.device_id.in_(ordered[start : start + _IN_CHUNK]),
                    links.power_lost_at.is_not(None),
                )
            )
            found.update((row.device_id, row.power_lost_at) for row in rows)
        return found

    async def mark_tested(self, device_id: str, now: datetime, *, end_test_mode: bool) -> None:
        links = db.device_links
        await self._ensure_link(device_id, now)
        values: dict[str, object] = {"last_test_at": now}
        if end_test_mode:
            values["test_mode_until"] = None
        await self._session.execute(
            update(links).where(links.c.device_id == device_id).values(**values)
        )

    async def _ensure_link(self, device_id: str, now: datetime) -> None:
        """The device's link row, inserted if it has none yet (its contact is noted in
        memory and written later, never moving last seen backwards)."""
        if not await self.is_known_device(device_id):
            await self._session.execute(
                insert(db.device_links).values(
                    device_id=device_id, last_seen_at=now, status="online", status_at=now
                )
            )

    async def queue_device_message(self, device_id: str, payload: str, now: datetime) -> None:
        if self._held is not None:
            self._held.outbox.append(
                {"device_id": device_id, "payload": payload, "created_at": now}
            )
            return
        await store.queue_device_message(self._session, device_id, payload, now)

    async def next_call_id(self, now: datetime, timezone: str) -> str:
        return await store.next_call_id(self._session, now, timezone)

    async def next_call_ids(self, now: datetime, timezone: str, count: int) -> list[str]:
        return await store.next_call_ids(self._session, now, timezone, count)

    async def open_call(self, call: Call, transition: Transition, now: datetime) -> None:
        if self._held is not None:
            self._held.calls.append(call)  # written at the end (deferred), as it is then
        else:
            self._session.add(call)
        await self.record(call, transition, now)

    async def active_resident_call(self, device_id: str) -> Call | None:
        return await store.active_resident_call(self._session, device_id)

    async def active_alert(self, device_id: str, alert_key: str) -> Call | None:
        return await store.active_alert(self._session, device_id, alert_key)

    async def record(self, call: Call, transition: Transition, now: datetime) -> None:
        if self._held is None:
            await store.record(self._session, call, transition, now)
            return
        # As stores.record, with the rows held for the end of the batch.
        for entry in transition.timeline:
            self._held.timeline.append(
                {
                    "call_id": call.id,
                    "at": entry.at,
                    "actor": entry.actor,
                    "action": entry.action,
                    "channel": entry.channel,
                    "detail": entry.detail,
                }
            )
        update_msg = store.device_update(call, transition)
        if update_msg is not None:
            await self.queue_device_message(call.device_id, update_msg, now)
        if call.state is CallState.RESOLVED:
            await replycodes.retire(self._session, call.id)

    async def cancel_pending_sms(self, call_id: str, why: str) -> int:
        return await store.cancel_pending_sms(self._session, call_id, why)

    def escalation(self) -> SqlEscalationStore:
        return SqlEscalationStore(self._session)
