"""The registry: residents, devices, staff, areas and service providers, kept in the
database and changed one record at a time, each change in force at once.

Every change is ONE transaction that writes the record and its audit row (who, when,
the record before and after); once it has committed, the directory is rebuilt from
the database and swapped into the one :class:`DirectoryHolder` every reader goes
through (routing, the intake, the escalator, the outbox, the API and the console), so
no restart is needed. Changes are taken one at a time (an asyncio lock around the
write and the rebuild), so a slower rebuild can never put an older directory back.

On the first start with an empty registry the data folder's records are written as
its seed; from then on the database holds them (the rota and the policies stay files).

A device registered (or moved) to a resident takes the calls it opened while nobody
was registered for it: they become the resident's, with her community, and a line
on their timelines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import structlog
from pydantic import BaseModel

from dispatcher.core import scope
from dispatcher.core.directory import Directory, Level, Staff
from dispatcher.core.directory_holder import DirectoryHolder
from dispatcher.core.registry import rules
from dispatcher.core.registry.audit import AuditEntry, audit_json
from dispatcher.core.registry.build import Records, directory_from, records_of, resident_records
from dispatcher.core.registry.records import (
    AreaFields,
    Assignment,
    Device,
    DeviceFields,
    FieldError,
    ProviderFields,
    ResidentFields,
    StaffFields,
    area_fields,
    changed,
    resident_fields,
    staff_fields,
    validated,
)
from dispatcher.core.registry.rules import Refused, Why
from dispatcher.core.registry.search import device_matches, resident_matches
from dispatcher.services.clock import Clock
from dispatcher.services.ports import Transactions

log = structlog.get_logger(__name__)

SEED_ACTOR = "seed"
MAX_PAGE = 500

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class AuditQuery:
    kind: str | None = None
    record_id: str | None = None
    actor: str | None = None
    since: datetime | None = None
    areas: frozenset[str] | None = None  # None: every entry (the district's view)
    limit: int = 50
    offset: int = 0


class RegistryStore(Protocol):
    """The registry's tables, the devices' history, the audit and the calls a change
    looks at, in one transaction (``dispatcher.adapters.db.registry_store``)."""

    async def is_empty(self) -> bool: ...

    async def records(self) -> Records: ...

    async def save(self, kind: str, fields: Any, *, new: bool) -> None: ...

    async def save_device(self, device: Device, *, new: bool) -> None: ...

    async def remove(self, kind: str, record_id: str) -> None: ...

    async def assign(self, device_id: str, resident_id: str, at: datetime, by: str) -> None: ...

    async def unassign(self, device_id: str, at: datetime) -> None: ...

    async def history(self, device_id: str) -> list[Assignment]: ...

    async def open_calls(
        self, *, device_id: str | None = None, resident_id: str | None = None
    ) -> list[str]: ...

    async def link_calls(
        self,
        device_id: str,
        resident_id: str,
        community_id: str,
        at: datetime,
        actor: str,
        channel: str,
    ) -> list[str]: ...

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
    ) -> None: ...

    async def audit_entries(self, q: AuditQuery) -> tuple[list[AuditEntry], int]: ...

    # Many at once, for an import (``dispatcher.services.registry_import``).

    async def save_all(self, kind: str, records: list[Any], *, new: bool) -> None: ...

    async def save_devices(self, devices: list[Device], *, new: bool) -> None: ...

    async def assign_all(self, pairs: list[tuple[str, str]], at: datetime, by: str) -> None: ...

    async def audit_all(self, entries: list[dict[str, Any]]) -> None: ...

    async def unlinked_devices(self) -> set[str]: ...


def _checked(model: type[M], values: dict[str, Any]) -> M:
    try:
        return validated(model, values)
    except FieldError as exc:
        raise rules.invalid(exc.field, exc.message) from None


def _page(items: list[T], limit: int, offset: int) -> Page[T]:
    limit = max(1, min(limit, MAX_PAGE))
    offset = max(0, offset)
    return Page(items[offset : offset + limit], len(items), limit, offset)


def _no_id_change(record_id: str, changes: dict[str, Any]) -> None:
    if "id" in changes and changes["id"] != record_id:
        raise rules.invalid("id", "a record's id cannot change: make a new record")


SEED_CHUNK = 5_000  # residents' records made and written at a time by the seed


class Registry:
    def __init__(
        self,
        tx: Transactions[RegistryStore],
        directories: DirectoryHolder,
        clock: Clock,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._tx = tx
        self.directories = directories
        self._clock = clock
        self.on_change = on_change  # wakes the live queue when calls were linked
        # Told of each device retired, after its commit ([broker] follow_registry: its
        # MQTT account is revoked). A failure there is logged, the retirement stands.
        self.on_retired: Callable[[str], Awaitable[object]] | None = None
        self._lock = asyncio.Lock()
        self._devices: dict[str, Device] = {}
        self._providers: dict[str, ProviderFields] = {}

    @property
    def directory(self) -> Directory:
        return self.directories.current

    # What an import (``services.registry_import``) works with: the same transactions,
    # lock and clock, the records in force, and one rebuild at its end.

    @property
    def transactions(self) -> Transactions[RegistryStore]:
        return self._tx

    @property
    def write_lock(self) -> asyncio.Lock:
        return self._lock

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def devices_in_force(self) -> dict[str, Device]:
        return self._devices

    @property
    def providers_in_force(self) -> dict[str, ProviderFields]:
        return self._providers

    async def reload(self) -> None:
        await self._reload()

    # --- start-up ----------------------------------------------------------------------

    async def is_empty(self) -> bool:
        async with self._tx.read() as store:
            return await store.is_empty()

    async def seed(self, directory: Directory, models: Mapping[str, str] | None = None) -> None:
        """Write the records of ``directory`` (the data folder's, with the devices'
        ``models``) into the empty registry, one audit row each, in one transaction;
        then load."""
        now = self._clock.now()
        records, history = records_of(directory, now, models, residents=False)

        def seeded(kind: str, record_id: str, area: str | None, after: Any) -> dict[str, Any]:
            return {
                "at": now,
                "actor": SEED_ACTOR,
                "kind": kind,
                "record_id": record_id,
                "action": "seed",
                "area_id": area,
                "before": None,
                "after": audit_json(after),
            }

        residents = list(directory.residents.values())
        # A few statements per table however many records; the residents' records and
        # audit rows made and written a chunk at a time, so that 100,000 of them never
        # stand in memory all at once beside the directory.
        async with self._tx.begin() as store:
            for kind, items in (("area", records.areas), ("staff", records.staff)):
                await store.save_all(kind, items, new=True)
                await store.audit_all([seeded(kind, f.id, _area_of(kind, f), f) for f in items])
            for start in range(0, len(residents), SEED_CHUNK):
                chunk = resident_records(directory, residents[start : start + SEED_CHUNK])
                await store.save_all("resident", chunk, new=True)
                await store.audit_all([seeded("resident", f.id, f.community_id, f) for f in chunk])
            community = {r.id: r.community_id for r in residents}
            await store.save_devices(records.devices, new=True)
            await store.assign_all([(a.device_id, a.resident_id) for a in history], now, "seed")
            await store.audit_all(
                [
                    seeded("device", d.id, community.get(d.resident_id or ""), d.fields)
                    for d in records.devices
                ]
            )
        log.info(
            "registry_seeded",
            areas=len(records.areas),
            staff=len(records.staff),
            residents=len(residents),
            devices=len(records.devices),
        )
        # The records are the directory's own: it is put in force as it is, rather than
        # a copy built from them (100,000 residents twice, one of them freed at once).
        self._devices = {d.id: d for d in records.devices}
        self._providers = {p.id: p for p in records.providers}
        self.directories.swap(directory)

    async def records(self) -> Records:
        async with self._tx.read() as store:
            return await store.records()

    def use(self, records: Records) -> Directory:
        """Put ``records`` in force over the rota of the directory in force."""
        return self._use(records, self.directories.current)

    def _use(self, records: Records, base: Directory) -> Directory:
        directory = directory_from(records, base)
        # One synchronous block: no reader sees the devices of one and the directory
        # of the other.
        self._devices = {d.id: d for d in records.devices}
        self._providers = {p.id: p for p in records.providers}
        self.directories.swap(directory)
        return directory

    async def _reload(self) -> None:
        self.use(await self.records())

    # --- reading -----------------------------------------------------------------------

    def residents(
        self,
        viewer: Staff,
        *,
        community: str | None = None,
        text: str | None = None,
        key_resident: bool | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[ResidentFields]:
        d = self.directory
        found = [
            resident_fields(r, d.contact_methods)
            for r in sorted(d.residents.values(), key=lambda r: r.id)
            if rules.may_read(d, viewer, r.community_id)
            and (community is None or r.community_id in scope.areas_within(d, community))
            and (key_resident is None or bool(r.key_resident) == key_resident)
            and (not text or resident_matches(d, r, text))
        ]
        return _page(found, limit, offset)

    def resident(self, viewer: Staff, resident_id: str) -> ResidentFields:
        d = self.directory
        r = d.residents.get(resident_id)
        if r is None or not rules.may_read(d, viewer, r.community_id):
            raise rules.not_found("resident", resident_id)
        return resident_fields(r, d.contact_methods)

    def in_service(self) -> dict[str, bool]:
        """Every registered device: in service (True) or retired (False)."""
        return {d.id: d.active for d in self._devices.values()}

    def model_of(self, device_id: str) -> str | None:
        """The model of a registered device (its heartbeat interval), None if unknown."""
        found = self._devices.get(device_id)
        return (found.fields.model or None) if found is not None else None

    def device_for(self, resident_id: str) -> Device | None:
        return rules.device_of(self._devices, resident_id)

    def devices(
        self,
        viewer: Staff,
        *,
        resident: str | None = None,
        retired: bool | None = False,
        text: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Device]:
        d = self.directory
        found = [
            x
            for x in sorted(self._devices.values(), key=lambda x: x.id)
            if self._may_read_device(viewer, x)
            and (resident is None or x.resident_id == resident)
            and (retired is None or (not x.active) == retired)
            and (not text or device_matches(d, x, text))
        ]
        return _page(found, limit, offset)

    def device(self, viewer: Staff, device_id: str) -> Device:
        found = self._devices.get(device_id)
        if found is None or not self._may_read_device(viewer, found):
            raise rules.not_found("device", device_id)
        return found

    async def device_history(self, viewer: Staff, device_id: str) -> list[Assignment]:
        self.device(viewer, device_id)
        async with self._tx.read() as store:
            return await store.history(device_id)

    def staff(
        self,
        viewer: Staff,
        *,
        area: str | None = None,
        role: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[StaffFields]:
        d = self.directory
        found = [
            staff_fields(s, d.contact_methods.get(s.id, ()))
            for s in sorted(d.staff.values(), key=lambda s: s.id)
            if rules.may_read(d, viewer, s.area_id)
            and (area is None or s.area_id in scope.areas_within(d, area))
            and (role is None or s.role.value == role)
        ]
        return _page(found, limit, offset)

    def staff_member(self, viewer: Staff, staff_id: str) -> StaffFields:
        d = self.directory
        s = d.staff.get(staff_id)
        if s is None or not rules.may_read(d, viewer, s.area_id):
            raise rules.not_found("staff member", staff_id)
        return staff_fields(s, d.contact_methods.get(s.id, ()))

    def areas(
        self, viewer: Staff, *, level: str | None = None, limit: int = 50, offset: int = 0
    ) -> Page[AreaFields]:
        d = self.directory
        found = [
            area_fields(a)
            for a in sorted(d.areas.values(), key=lambda a: (a.level != Level.DISTRICT, a.id))
            if self._may_read_area(viewer, a.id) and (level is None or a.level.value == level)
        ]
        return _page(found, limit, offset)

    def area(self, viewer: Staff, area_id: str) -> AreaFields:
        a = self.directory.areas.get(area_id)
        if a is None or not self._may_read_area(viewer, area_id):
            raise rules.not_found("area", area_id)
        return area_fields(a)

    def providers(
        self, viewer: Staff, *, area: str | None = None, limit: int = 50, offset: int = 0
    ) -> Page[ProviderFields]:
        d = self.directory
        found = [
            p
            for p in sorted(self._providers.values(), key=lambda p: p.id)
            if self._may_read_area(viewer, p.area_id)
            and (area is None or p.area_id in scope.areas_within(d, area))
        ]
        return _page(found, limit, offset)

    def provider(self, viewer: Staff, provider_id: str) -> ProviderFields:
        p = self._providers.get(provider_id)
        if p is None or not self._may_read_area(viewer, p.area_id):
            raise rules.not_found("provider", provider_id)
        return p

    async def audit(self, viewer: Staff, query: AuditQuery) -> Page[AuditEntry]:
        if viewer.role not in rules.MANAGERS:
            raise Refused(Why.FORBIDDEN, None, "only supervisors and admins may read the audit")
        areas = scope.visible_communities(self.directory, viewer)
        limit = max(1, min(query.limit, MAX_PAGE))
        q = replace(query, areas=areas, limit=limit, offset=max(0, query.offset))
        async with self._tx.read() as store:
            entries, total = await store.audit_entries(q)
        return Page(entries, total, q.limit, q.offset)

    def may_change(self, viewer: Staff, kind: str, record_id: str | None = None) -> bool:
        """Whether ``viewer`` may change the ``kind`` record ``record_id`` (None: make a
        new one in their own area), by the rules a change is held to; the screens offer
        their forms by it, and the change itself is checked again."""
        manage: dict[str, Callable[[Staff, str], object]] = {
            "resident": self._manage_resident,
            "device": self._manage_device,
            "staff": self._manage_staff,
            "area": self._manage_area,
            "provider": self._manage_provider,
        }
        try:
            if record_id is None:
                rules.require_manager(self.directory, viewer, [viewer.area_id], kind)
            else:
                manage[kind](viewer, record_id)
        except Refused:
            return False
        return True

    def _may_read_area(self, viewer: Staff, area_id: str) -> bool:
        # A street's staff see their street's communities, and the street above
        # them, so that a screen can name it.
        d = self.directory
        return rules.may_read(d, viewer, area_id) or area_id in {
            a.id for a in d.chain(viewer.area_id)
        }

    def _may_read_device(self, viewer: Staff, device: Device) -> bool:
        return rules.may_read(self.directory, viewer, self._device_area(device))

    def _device_area(self, device: Device) -> str | None:
        r = self.directory.residents.get(device.resident_id or "")
        return r.community_id if r is not None else None

    # --- residents ---------------------------------------------------------------------

    async def create_resident(self, actor: Staff, values: dict[str, Any]) -> ResidentFields:
        async with self._lock:
            d = self.directory
            new = _checked(ResidentFields, values)
            rules.require_manager(d, actor, [new.community_id], "resident")
            rules.check_resident(d, new, None)
            async with self._tx.begin() as store:
                await store.save("resident", new, new=True)
                await self._audit(store, actor, "resident", new.id, "create", None, new)
            await self._reload()
        log.info("resident_created", resident_id=new.id, by=actor.id)
        return new

    async def update_resident(
        self, actor: Staff, resident_id: str, changes: dict[str, Any]
    ) -> ResidentFields:
        async with self._lock:
            d = self.directory
            old = self._manage_resident(actor, resident_id)
            _no_id_change(resident_id, changes)
            new = _checked(ResidentFields, changed(old, changes))
            rules.require_manager(d, actor, [new.community_id], "resident")
            rules.check_resident(d, new, old)
            async with self._tx.begin() as store:
                await store.save("resident", new, new=False)
                await self._audit(store, actor, "resident", new.id, "update", old, new)
            await self._reload()
        log.info("resident_updated", resident_id=resident_id, by=actor.id, fields=sorted(changes))
        return new

    async def delete_resident(self, actor: Staff, resident_id: str) -> ResidentFields:
        """Refused while the resident has a call not yet resolved; her device, if any,
        stops serving her (its history keeps that it did)."""
        async with self._lock:
            old = self._manage_resident(actor, resident_id)
            device = rules.device_of(self._devices, resident_id)
            now = self._clock.now()
            async with self._tx.begin() as store:
                open_calls = await store.open_calls(resident_id=resident_id)
                if open_calls:
                    raise rules.conflict(
                        None,
                        f"resident {resident_id} has a call not yet resolved "
                        f"({', '.join(open_calls)}): resolve it first",
                    )
                if device is not None:
                    freed = Device(
                        device.fields.model_copy(update={"resident_id": None}), device.retired_at
                    )
                    await store.save_device(freed, new=False)
                    await store.unassign(device.id, now)
                    await self._audit(
                        store,
                        actor,
                        "device",
                        device.id,
                        "unassign",
                        device.fields,
                        freed.fields,
                        area_id=old.community_id,
                    )
                await store.remove("resident", resident_id)
                await self._audit(store, actor, "resident", resident_id, "delete", old, None)
            await self._reload()
        log.info("resident_deleted", resident_id=resident_id, by=actor.id)
        return old

    def _manage_resident(self, actor: Staff, resident_id: str) -> ResidentFields:
        old = self.resident(actor, resident_id)
        rules.require_manager(self.directory, actor, [old.community_id], "resident")
        return old

    # --- devices -----------------------------------------------------------------------

    async def register_device(
        self, actor: Staff, values: dict[str, Any], channel: str = "api"
    ) -> Device:
        """A new device, serving ``resident_id`` (or in stock); the calls it opened
        while unknown become that resident's."""
        async with self._lock:
            d = self.directory
            fields = _checked(DeviceFields, values)
            area = self._resident_area(fields.resident_id)
            rules.require_manager(d, actor, [area], "device")
            rules.check_device(d, self._devices, fields, None)
            device = Device(fields)
            now = self._clock.now()
            async with self._tx.begin() as store:
                await store.save_device(device, new=True)
                await self._audit(
                    store, actor, "device", device.id, "create", None, fields, area_id=area
                )
                if fields.resident_id is not None:
                    await store.assign(device.id, fields.resident_id, now, actor.id)
            await self._reload()
        await self._link(actor, device.id, channel)
        log.info(
            "device_registered", device_id=device.id, resident_id=fields.resident_id, by=actor.id
        )
        return device

    async def update_device(
        self, actor: Staff, device_id: str, changes: dict[str, Any], channel: str = "api"
    ) -> Device:
        """Change a device's details; a new ``resident_id`` moves it (see :meth:`move_device`)."""
        if set(changes) == {"resident_id"}:
            return await self.move_device(actor, device_id, changes["resident_id"], channel)
        async with self._lock:
            d = self.directory
            old = self._manage_device(actor, device_id)
            _no_id_change(device_id, changes)
            if "resident_id" in changes and changes["resident_id"] != old.resident_id:
                raise rules.invalid("resident_id", "move a device on its own (devices move)")
            fields = _checked(DeviceFields, changed(old.fields, changes))
            rules.check_device(d, self._devices, fields, old)
            device = Device(fields, old.retired_at)
            async with self._tx.begin() as store:
                await store.save_device(device, new=False)
                await self._audit(
                    store,
                    actor,
                    "device",
                    device_id,
                    "update",
                    old.fields,
                    fields,
                    area_id=self._device_area(old),
                )
            await self._reload()
        return device

    async def move_device(
        self, actor: Staff, device_id: str, resident_id: str | None, channel: str = "api"
    ) -> Device:
        """The device serves ``resident_id`` from now (None: back in stock). Refused
        while it has a call of its present resident not yet resolved. Its history keeps
        whom it served and when."""
        async with self._lock:
            d = self.directory
            old = self._manage_device(actor, device_id)
            fields = _checked(DeviceFields, changed(old.fields, {"resident_id": resident_id}))
            to_area = self._resident_area(fields.resident_id)
            if fields.resident_id is not None:
                rules.require_manager(d, actor, [to_area], "device")
            rules.check_device(d, self._devices, fields, old)
            if fields.resident_id == old.resident_id:
                raise rules.invalid(
                    "resident_id", f"device {device_id} serves {resident_id} already"
                )
            device = Device(fields, old.retired_at)
            now = self._clock.now()
            async with self._tx.begin() as store:
                if old.resident_id is not None:
                    await self._refuse_open_calls(store, device_id, "moved")
                    await store.unassign(device_id, now)
                if fields.resident_id is not None:
                    await store.assign(device_id, fields.resident_id, now, actor.id)
                await store.save_device(device, new=False)
                await self._audit(
                    store,
                    actor,
                    "device",
                    device_id,
                    "move",
                    old.fields,
                    fields,
                    area_id=to_area or self._device_area(old),
                )
            await self._reload()
        await self._link(actor, device_id, channel)
        log.info(
            "device_moved",
            device_id=device_id,
            resident_from=old.resident_id,
            resident_to=resident_id,
            by=actor.id,
        )
        return device

    async def retire_device(self, actor: Staff, device_id: str) -> Device:
        """The device serves nobody from now on and cannot be given to anyone; its
        record and history stay (a device id is never reused)."""
        async with self._lock:
            old = self._manage_device(actor, device_id)
            if not old.active:
                raise rules.conflict(None, f"device {device_id} is retired already")
            now = self._clock.now()
            device = Device(old.fields.model_copy(update={"resident_id": None}), now)
            async with self._tx.begin() as store:
                if old.resident_id is not None:
                    await self._refuse_open_calls(store, device_id, "retired")
                    await store.unassign(device_id, now)
                await store.save_device(device, new=False)
                await self._audit(
                    store,
                    actor,
                    "device",
                    device_id,
                    "retire",
                    old.fields,
                    device.fields,
                    area_id=self._device_area(old),
                )
            await self._reload()
        log.info("device_retired", device_id=device_id, by=actor.id)
        if self.on_retired is not None:
            try:
                await self.on_retired(device_id)
            except Exception:
                log.exception("device_retired_follow_up_failed", device_id=device_id)
        return device

    def _manage_device(self, actor: Staff, device_id: str) -> Device:
        old = self.device(actor, device_id)
        rules.require_manager(self.directory, actor, [self._device_area(old)], "device")
        return old

    def _resident_area(self, resident_id: str | None) -> str | None:
        if resident_id is None:
            return None
        r = self.directory.residents.get(resident_id)
        if r is None:
            raise rules.invalid("resident_id", f"{resident_id!r} is not a resident")
        return r.community_id

    async def _refuse_open_calls(self, store: RegistryStore, device_id: str, done: str) -> None:
        open_calls = await store.open_calls(device_id=device_id)
        if open_calls:
            raise rules.conflict(
                "resident_id",
                f"device {device_id} has a call not yet resolved ({', '.join(open_calls)}): "
                f"resolve it before it is {done}",
            )

    async def _link(self, actor: Staff, device_id: str, channel: str) -> list[str]:
        """The device's open calls of nobody become its resident's. Run after the new
        directory is in force: a press that came in while the change committed, with
        the directory before it, is linked too."""
        device = self._devices.get(device_id)
        resident = self.directory.residents.get(device.resident_id or "") if device else None
        if resident is None:
            return []
        async with self._tx.begin() as store:
            linked = await store.link_calls(
                device_id, resident.id, resident.community_id, self._clock.now(), actor.id, channel
            )
        if linked:
            log.info("calls_linked", device_id=device_id, resident_id=resident.id, call_ids=linked)
            self.on_change()
        return linked

    # --- staff -------------------------------------------------------------------------

    async def create_staff(self, actor: Staff, values: dict[str, Any]) -> StaffFields:
        async with self._lock:
            d = self.directory
            new = _checked(StaffFields, values)
            rules.require_manager(d, actor, [new.area_id], "staff")
            rules.check_staff(d, actor, new, None)
            async with self._tx.begin() as store:
                await store.save("staff", new, new=True)
                await self._audit(store, actor, "staff", new.id, "create", None, new)
            await self._reload()
        log.info("staff_created", staff_id=new.id, by=actor.id)
        return new

    async def update_staff(
        self, actor: Staff, staff_id: str, changes: dict[str, Any]
    ) -> StaffFields:
        async with self._lock:
            d = self.directory
            old = self._manage_staff(actor, staff_id)
            _no_id_change(staff_id, changes)
            new = _checked(StaffFields, changed(old, changes))
            rules.require_manager(d, actor, [new.area_id], "staff")
            rules.check_staff(d, actor, new, old)
            async with self._tx.begin() as store:
                await store.save("staff", new, new=False)
                await self._audit(store, actor, "staff", staff_id, "update", old, new)
            await self._reload()
        log.info("staff_updated", staff_id=staff_id, by=actor.id, fields=sorted(changes))
        return new

    async def delete_staff(self, actor: Staff, staff_id: str) -> StaffFields:
        async with self._lock:
            old = self._manage_staff(actor, staff_id)
            if staff_id == actor.id:
                raise rules.conflict(None, "you cannot delete yourself")
            rules.check_staff_delete(self.directory, staff_id)
            async with self._tx.begin() as store:
                await store.remove("staff", staff_id)
                await self._audit(store, actor, "staff", staff_id, "delete", old, None)
            await self._reload()
        log.info("staff_deleted", staff_id=staff_id, by=actor.id)
        return old

    def _manage_staff(self, actor: Staff, staff_id: str) -> StaffFields:
        old = self.staff_member(actor, staff_id)
        rules.require_manager(self.directory, actor, [old.area_id], "staff")
        return old

    # --- areas -------------------------------------------------------------------------

    async def create_area(self, actor: Staff, values: dict[str, Any]) -> AreaFields:
        async with self._lock:
            d = self.directory
            new = _checked(AreaFields, values)
            rules.check_area(d, new, None)
            rules.require_manager(d, actor, [new.parent_id], "area")
            async with self._tx.begin() as store:
                await store.save("area", new, new=True)
                await self._audit(store, actor, "area", new.id, "create", None, new)
            await self._reload()
        log.info("area_created", area_id=new.id, by=actor.id)
        return new

    async def update_area(self, actor: Staff, area_id: str, changes: dict[str, Any]) -> AreaFields:
        async with self._lock:
            d = self.directory
            old = self._manage_area(actor, area_id)
            _no_id_change(area_id, changes)
            new = _checked(AreaFields, changed(old, changes))
            rules.check_area(d, new, old)
            if new.parent_id != old.parent_id:
                rules.require_manager(d, actor, [new.parent_id], "area")
            async with self._tx.begin() as store:
                await store.save("area", new, new=False)
                await self._audit(store, actor, "area", area_id, "update", old, new)
            await self._reload()
        return new

    async def delete_area(self, actor: Staff, area_id: str) -> AreaFields:
        async with self._lock:
            old = self._manage_area(actor, area_id)
            rules.check_area_delete(self.directory, area_id, self._providers.values())
            async with self._tx.begin() as store:
                await store.remove("area", area_id)
                await self._audit(store, actor, "area", area_id, "delete", old, None)
            await self._reload()
        return old

    def _manage_area(self, actor: Staff, area_id: str) -> AreaFields:
        old = self.area(actor, area_id)
        rules.require_manager(self.directory, actor, [area_id], "area")
        return old

    # --- providers ---------------------------------------------------------------------

    async def create_provider(self, actor: Staff, values: dict[str, Any]) -> ProviderFields:
        async with self._lock:
            d = self.directory
            new = _checked(ProviderFields, values)
            if new.id in self._providers:
                raise rules.conflict("id", f"a provider {new.id!r} exists already")
            _known_area(d, new.area_id)
            rules.require_manager(d, actor, [new.area_id], "provider")
            async with self._tx.begin() as store:
                await store.save("provider", new, new=True)
                await self._audit(store, actor, "provider", new.id, "create", None, new)
            await self._reload()
        return new

    async def update_provider(
        self, actor: Staff, provider_id: str, changes: dict[str, Any]
    ) -> ProviderFields:
        async with self._lock:
            d = self.directory
            old = self._manage_provider(actor, provider_id)
            _no_id_change(provider_id, changes)
            new = _checked(ProviderFields, changed(old, changes))
            _known_area(d, new.area_id)
            rules.require_manager(d, actor, [new.area_id], "provider")
            async with self._tx.begin() as store:
                await store.save("provider", new, new=False)
                await self._audit(store, actor, "provider", provider_id, "update", old, new)
            await self._reload()
        return new

    async def delete_provider(self, actor: Staff, provider_id: str) -> ProviderFields:
        async with self._lock:
            old = self._manage_provider(actor, provider_id)
            async with self._tx.begin() as store:
                await store.remove("provider", provider_id)
                await self._audit(store, actor, "provider", provider_id, "delete", old, None)
            await self._reload()
        return old

    def _manage_provider(self, actor: Staff, provider_id: str) -> ProviderFields:
        old = self.provider(actor, provider_id)
        rules.require_manager(self.directory, actor, [old.area_id], "provider")
        return old

    # --- the audit ---------------------------------------------------------------------

    async def _audit(
        self,
        store: RegistryStore,
        actor: Staff,
        kind: str,
        record_id: str,
        action: str,
        before: BaseModel | None,
        after: BaseModel | None,
        *,
        area_id: str | None = None,
    ) -> None:
        record = after if after is not None else before
        await store.audit(
            at=self._clock.now(),
            actor=actor.id,
            kind=kind,
            record_id=record_id,
            action=action,
            area_id=area_id if area_id is not None else _area_of(kind, record),
            before=audit_json(before),
            after=audit_json(after),
        )


def _known_area(d: Directory, area_id: str) -> None:
    if area_id not in d.areas:
        raise rules.invalid("area_id", f"{area_id!r} is not an area")


def _area_of(kind: str, record: Any) -> str | None:
    """The area an audit row belongs to, for who may read it."""
    if kind == "area":
        return str(record.id)
    for name in ("community_id", "area_id"):
        value = getattr(record, name, None)
        if value is not None:
            return str(value)
    return None
