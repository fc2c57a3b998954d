"""The database side of :class:`dispatcher.services.registry.RegistryStore`: the
registry's records, the devices' history, the audit, and the calls a change must
look at, in one transaction."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, bindparam, delete, func, insert, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from dispatcher.adapters.db import schema as db
from dispatcher.core.calls import CallState
from dispatcher.core.directory import KeyResident
from dispatcher.core.registry.audit import AuditEntry
from dispatcher.core.registry.build import Records
from dispatcher.core.registry.records import (
    AreaFields,
    Assignment,
    ContactFields,
    Device,
    DeviceFields,
    ProviderFields,
    ResidentFields,
    StaffFields,
)
from dispatcher.services.registry import AuditQuery

_TABLES: dict[str, Table] = {
    "area": db.areas,
    "staff": db.staff,
    "resident": db.residents,
    "device": db.devices,
    "provider": db.providers,
}


def _columns(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in values.items() if k in table.c}
    if "contact_methods" in table.c:
        out["contact_methods"] = json.dumps(values.get("contact_methods", []))
    return out


def _row(row: Row[Any], table: Table) -> dict[str, Any]:
    values = dict(row._mapping)
    if "contact_methods" in table.c:
        values["contact_methods"] = json.loads(values["contact_methods"])
    return values


class SqlRegistryStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def is_empty(self) -> bool:
        return not await self._session.scalar(select(func.count()).select_from(db.areas))

    async def records(self) -> Records:
        s = self._session
        areas = [AreaFields(**_row(r, db.areas)) for r in await s.execute(select(db.areas))]
        staff = [
            StaffFields(**_row(r, db.staff))
            for r in await s.execute(select(db.staff).order_by(db.staff.c.id))
        ]
        contacts: dict[str, list[ContactFields]] = {}
        query = select(db.resident_contacts).order_by(
            db.resident_contacts.c.resident_id, db.resident_contacts.c.position
        )
        for r in await s.execute(query):
            values = _row(r, db.resident_contacts)
            rid = values.pop("resident_id")
            values.pop("position")
            contacts.setdefault(rid, []).append(ContactFields(**values))
        residents = [
            _resident(r, contacts.get(r.id, []))
            for r in await s.execute(select(db.residents).order_by(db.residents.c.id))
        ]
        devices = [
            _device(r) for r in await s.execute(select(db.devices).order_by(db.devices.c.id))
        ]
        providers = [
            ProviderFields(**dict(r._mapping))
            for r in await s.execute(select(db.providers).order_by(db.providers.c.id))
        ]
        return Records(areas, staff, residents, devices, providers)

    async def save(self, kind: str, fields: Any, *, new: bool) -> None:
        """Insert (``new``) or update the record ``fields`` of ``kind``."""
        table = _TABLES[kind]
        values = _columns(table, fields.model_dump())
        if new:
            await self._session.execute(insert(table).values(**values))
        else:
            await self._session.execute(
                update(table).where(table.c.id == fields.id).values(**values)
            )
        if kind == "resident":
            await self._save_contacts(fields)

    async def save_device(self, device: Device, *, new: bool) -> None:
        values = _columns(db.devices, device.fields.model_dump())
        values["retired_at"] = device.retired_at
        if new:
            await self._session.execute(insert(db.devices).values(**values))
        else:
            await self._session.execute(
                update(db.devices).where(db.devices.c.id == device.id).values(**values)
            )

    async def _save_contacts(self, resident: ResidentFields) -> None:
        table = db.resident_contacts
        await self._session.execute(delete(table).where(table.c.resident_id == resident.id))
        if resident.contacts:
            await self._session.execute(
                insert(table),
                [
                    {"resident_id": resident.id, "position": n, **_columns(table, c.model_dump())}
                    for n, c in enumerate(resident.contacts, start=1)
                ],
            )

    async def remove(self, kind: str, record_id: str) -> None:
        table = _TABLES[kind]
        await self._session.execute(delete(table).where(table.c.id == record_id))
        if kind == "resident":
            contacts = db.resident_contacts
            await self._session.execute(delete(contacts).where(contacts.c.resident_id == record_id))

    # --- the devices' history ----------------------------------------------------------

    async def assign(self, device_id: str, resident_id: str, at: datetime, by: str) -> None:
        await self._session.execute(
            insert(db.device_assignments).values(
                device_id=device_id, resident_id=resident_id, start_at=at, end_at=None, by=by
            )
        )

    async def unassign(self, device_id: str, at: datetime) -> None:
        t = db.device_assignments
        await self._session.execute(
            update(t).where(t.c.device_id == device_id, t.c.end_at.is_(None)).values(end_at=at)
        )

    async def history(self, device_id: str) -> list[Assignment]:
        t = db.device_assignments
        rows = await self._session.execute(
            select(t).where(t.c.device_id == device_id).order_by(t.c.start_at, t.c.id)
        )
        return [Assignment(r.device_id, r.resident_id, r.start_at, r.end_at, r.by) for r in rows]

    # --- calls -------------------------------------------------------------------------

    async def open_calls(
        self, *, device_id: str | None = None, resident_id: str | None = None
    ) -> list[str]:
        """The ids of the calls not yet resolved of the device or the resident."""
        c = db.calls
        query = select(c.c.id).where(c.c.state != CallState.RESOLVED.value)
        if device_id is not None:
            query = query.where(c.c.device_id == device_id)
        if resident_id is not None:
            query = query.where(c.c.resident_id == resident_id)
        return list(await self._session.scalars(query.order_by(c.c.opened_at)))

    async def link_calls(
        self,
        device_id: str,
        resident_id: str,
        community_id: str,
        at: datetime,
        actor: str,
        channel: str,
    ) -> list[str]:
        """The device's open calls that came in with nobody registered for it are now
        the resident's, each with a line on its timeline."""
        c = db.calls
        found = list(
            await self._session.scalars(
                select(c.c.id)
                .where(
                    c.c.device_id == device_id,
                    c.c.resident_id.is_(None),
                    c.c.state != CallState.RESOLVED.value,
                )
                .with_for_update()
            )
        )
        if not found:
            return []
        await self._session.execute(
            update(c)
            .where(c.c.id.in_(found))
            .values(
                resident_id=resident_id,
                community_id=community_id,
                unknown_device=False,
                updated_at=at,
            )
        )
        await self._session.execute(
            insert(db.timeline),
            [
                {
                    "call_id": call_id,
                    "at": at,
                    "actor": actor,
                    "action": "resident_linked",
                    "channel": channel,
                    "detail": f"device {device_id} registered for {resident_id}",
                }
                for call_id in found
            ],
        )
        return found

    # --- the audit ---------------------------------------------------------------------

    async def audit(
        self,
        *,
        at: datetime,
        actor: str,
        kind: str,
        record_id: str,
        action: str,
        area_id: str | None,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        await self._session.execute(
            insert(db.registry_audit).values(
                at=at,
                actor=actor,
                kind=kind,
                record_id=record_id,
                action=action,
                area_id=area_id,
                before=_json(before),
                after=_json(after),
            )
        )

    async def audit_entries(self, q: AuditQuery) -> tuple[list[AuditEntry], int]:
        t = db.registry_audit
        where = []
        if q.kind is not None:
            where.append(t.c.kind == q.kind)
        if q.record_id is not None:
            where.append(t.c.record_id == q.record_id)
        if q.actor is not None:
            where.append(t.c.actor == q.actor)
        if q.since is not None:
            where.append(t.c.at >= q.since)
        if q.areas is not None:
            where.append(t.c.area_id.in_(sorted(q.areas)))
        total = await self._session.scalar(select(func.count()).select_from(t).where(*where))
        rows = await self._session.execute(
            select(t).where(*where).order_by(t.c.id.desc()).limit(q.limit).offset(q.offset)
        )
        entries = [
            AuditEntry(
                id=r.id,
                at=r.at,
                actor=r.actor,
                kind=r.kind,
                record_id=r.record_id,
                action=r.action,
                area_id=r.area_id,
                before=None if r.before is None else json.loads(r.before),
                after=None if r.after is None else json.loads(r.after),
            )
            for r in rows
        ]
        return entries, int(total or 0)

    # --- many at once (an import) ---------------------------------------------------------

    async def save_all(self, kind: str, records: list[Any], *, new: bool) -> None:
        """Insert (``new``) or update many records of one kind, a statement per batch."""
        if not records:
            return
        table = _TABLES[kind]
        rows = [_columns(table, r.model_dump()) for r in records]
        await self._many(table, rows, new=new)
        if kind == "resident":
            contacts = db.resident_contacts
            ids = [r.id for r in records]
            for start in range(0, len(ids), _CHUNK):
                await self._session.execute(
                    delete(contacts).where(contacts.c.resident_id.in_(ids[start : start + _CHUNK]))
                )
            rows = [
                {"resident_id": r.id, "position": n, **_columns(contacts, c.model_dump())}
                for r in records
                for n, c in enumerate(r.contacts, start=1)
            ]
            if rows:
                await self._session.execute(insert(contacts), rows)

    async def save_devices(self, devices: list[Device], *, new: bool) -> None:
        rows = [
            _columns(db.devices, d.fields.model_dump()) | {"retired_at": d.retired_at}
            for d in devices
        ]
        if rows:
            await self._many(db.devices, rows, new=new)

    async def _many(self, table: Table, rows: list[dict[str, Any]], *, new: bool) -> None:
        if new:
            await self._session.execute(insert(table), rows)
            return
        # An UPDATE run once per row (executemany), its values and key as parameters.
        columns = list(rows[0])
        stmt = (
            update(table)
            .where(table.c.id == bindparam("key_id"))
            .values({c: bindparam(f"v_{c}") for c in columns})
        )
        params = [{"key_id": r["id"], **{f"v_{c}": r[c] for c in columns}} for r in rows]
        connection = await self._session.connection()
        await connection.execute(stmt, params)

    async def assign_all(self, pairs: list[tuple[str, str]], at: datetime, by: str) -> None:
        if pairs:
            await self._session.execute(
                insert(db.device_assignments),
                [
                    {"device_id": d, "resident_id": r, "start_at": at, "end_at": None, "by": by}
                    for d, r in pairs
                ],
            )

    async def audit_all(self, entries: list[dict[str, Any]]) -> None:
        if entries:
            await self._session.execute(
                insert(db.registry_audit),
                [
                    e
                    | {
                        "before": _json(e["before"]),
                        "after": _json(e["after"]),
                    }
                    for e in entries
                ],
            )

    async def unlinked_devices(self) -> set[str]:
        """The devices with a call not yet resolved that nobody was registered for."""
        c = db.calls
        found = await self._session.scalars(
            select(c.c.device_id)
            .where(c.c.resident_id.is_(None), c.c.state != CallState.RESOLVED.value)
            .distinct()
        )
        return set(found)


_CHUNK = 500  # ids in one IN (...): well under SQLite's and asyncpg's parameter limits


def _json(values: dict[str, Any] | None) -> str | None:
    return None if values is None else json.dumps(values, ensure_ascii=False)


# Shared, never changed: a copy (model_copy) copies it before adding to it.
_DEVICE_FIELDS = set(DeviceFields.model_fields)


_RESIDENT_FIELDS = set(ResidentFields.model_fields)


def _resident(r: Row[Any], contacts: list[ContactFields]) -> ResidentFields:
    # Validated when written (every path in checks the whole record); read back without
    # validating again: 100,000 residents at each start. The one field whose type the
    # row does not carry is the key-resident reason, an enum.
    values = dict(r._mapping)
    values["key_resident"] = KeyResident(values["key_resident"] or "")
    return ResidentFields.model_construct(_RESIDENT_FIELDS, **values, contacts=contacts)


def _device(r: Row[Any]) -> Device:
    values = dict(r._mapping)
    retired_at = values.pop("retired_at")
    # Validated when written; read back without validating again, all of them sharing
    # one set of the fields given (100,000 devices are held in memory).
    return Device(DeviceFields.model_construct(_DEVICE_FIELDS, **values), retired_at)


async def registry_filled(engine: AsyncEngine) -> bool:
    """Whether the database holds a registry already, asked without creating or
    migrating anything (a SQLite file that is not there is not made), so that a bad
    data folder can stop the daemon before it touches the database."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and (
        url.database in (None, "", ":memory:") or not os.path.exists(url.database)  # noqa: ASYNC240
    ):
        return False
    async with engine.connect() as conn:
        if not await conn.run_sync(lambda c: inspect(c).has_table(db.areas.name)):
            return False
        return bool(await conn.scalar(select(func.count()).select_from(db.areas)))
