"""Import and export of the registry's records as the exchange files' rows
(``eldercall import FILE`` / ``eldercall export FILE``, ``/api/v1/registry/import``).

An import is all or nothing: its rows are planned against the records in force
(``dispatcher.core.registry.importing``); a plan with any error changes nothing;
otherwise the whole plan is written in ONE transaction, each record's change with its
audit row (action ``import``), and the directory is rebuilt and swapped once at the
end, in force at once. It holds the registry's lock throughout, so no other change
comes between the plan and its writing. The plan is made in a worker thread: ten
thousand rows of validation must not hold up the event loop (the MQTT intake).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from dispatcher.core.directory import Directory, Level, Staff
from dispatcher.core.registry import rules
from dispatcher.core.registry.audit import audit_json
from dispatcher.core.registry.importing import InForce, Plan, SourceRow, Write, plan_import
from dispatcher.core.registry.records import AreaFields, Device, area_fields, resident_fields
from dispatcher.core.registry.rows import (
    area_row,
    contact_row,
    device_row,
    provider_row,
    resident_row,
    staff_row,
)
from dispatcher.services.registry import Registry, RegistryStore

log = structlog.get_logger(__name__)

IMPORT_ACTION = "import"


@dataclass(frozen=True)
class Imported:
    plan: Plan
    applied: bool  # False: a dry run, a refused plan, or nothing to change
    seconds: dict[str, float] = field(default_factory=dict)  # plan, write, swap


class _CallsOpened(Exception):
    """A device to move got a call while the import was being written."""


async def import_records(
    registry: Registry,
    actor: Staff,
    sheets: Mapping[str, Sequence[SourceRow]],
    *,
    dry_run: bool = False,
    channel: str = "api",
) -> Imported:
    """Plan the import of ``sheets`` (rows by kind) and, unless ``dry_run`` or the plan
    has errors, apply it. Raises :class:`rules.Refused` for a role that may not."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal started
        seconds[name] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()

    async with registry.write_lock:
        d = registry.directory
        in_force = InForce(d, dict(registry.devices_in_force), dict(registry.providers_in_force))
        today = registry.clock.now().astimezone(ZoneInfo(d.timezone)).date()
        plan = await asyncio.to_thread(plan_import, sheets, in_force, actor, today)
        if plan.moved and not plan.errors:
            async with registry.transactions.read() as store:
                await _refuse_open_calls(store, plan)
        lap("plan")
        if plan.errors or dry_run or not plan.changed:
            return Imported(plan, False, seconds)
        now = registry.clock.now()
        try:
            async with registry.transactions.begin() as store:
                await _apply(store, plan, actor, now)
        except _CallsOpened:
            return Imported(plan, False, seconds)
        lap("write")
        await registry.reload()  # one rebuild, one swap
        lap("swap")
    assigned = {
        w.new.id for w in plan.writes if w.kind == "device" and w.new.resident_id is not None
    }
    await _link(registry, actor, assigned, channel)
    log.info(
        "registry_imported",
        by=actor.id,
        channel=channel,
        changes=len(plan.changes),
        seconds=seconds,
        **{f"{k}_{c}": n for k, counts in plan.counts.items() for c, n in counts.items() if n},
    )
    return Imported(plan, True, seconds)


async def _refuse_open_calls(store: RegistryStore, plan: Plan) -> bool:
    found = False
    for device_id, (kind, row) in plan.moved.items():
        calls = await store.open_calls(device_id=device_id)
        if calls:
            found = True
            plan.error(
                kind,
                row,
                None,
                f"device {device_id} has a call not yet resolved ({', '.join(calls)}): "
                "resolve it before the device moves",
            )
    return found


async def _apply(store: RegistryStore, plan: Plan, actor: Staff, now: datetime) -> None:
    if plan.moved and await _refuse_open_calls(store, plan):
        raise _CallsOpened  # rolls the transaction back
    by_kind: dict[tuple[str, bool], list[Any]] = {}
    for w in plan.writes:
        by_kind.setdefault((w.kind, w.old is None), []).append(w.new)
    for kind in ("area", "provider", "staff", "resident"):
        for new in (True, False):
            await store.save_all(kind, by_kind.get((kind, new), []), new=new)
    devices = [w for w in plan.writes if w.kind == "device"]
    for w in devices:
        if w.old is not None and w.old.resident_id not in (None, w.new.resident_id):
            await store.unassign(w.new.id, now)
    await store.save_devices(by_kind.get(("device", True), []), new=True)
    await store.save_devices(by_kind.get(("device", False), []), new=False)
    await store.assign_all(
        [
            (w.new.id, w.new.resident_id)
            for w in devices
            if w.new.resident_id is not None
            and (w.old is None or w.old.resident_id != w.new.resident_id)
        ],
        now,
        actor.id,
    )
    await store.audit_all([_audit_row(w, actor, now) for w in plan.writes])


def _audit_row(w: Write, actor: Staff, now: datetime) -> dict[str, Any]:
    def fields(record: Any) -> Any:
        return record.fields if isinstance(record, Device) else record

    return {
        "at": now,
        "actor": actor.id,
        "kind": w.kind,
        "record_id": w.new.id,
        "action": IMPORT_ACTION,
        "area_id": w.area_id,
        "before": audit_json(fields(w.old)) if w.old is not None else None,
        "after": audit_json(fields(w.new)),
    }


async def _link(registry: Registry, actor: Staff, assigned: set[str], channel: str) -> None:
    """The open calls of nobody from a device the import gave a resident become hers
    (after the swap, as for one device registered through the API)."""
    if not assigned:
        return
    linked: list[str] = []
    async with registry.transactions.begin() as store:
        for device_id in sorted(assigned & await store.unlinked_devices()):
            r = registry.directory.residents_by_device.get(device_id)
            if r is not None:
                linked += await store.link_calls(
                    device_id, r.id, r.community_id, registry.clock.now(), actor.id, channel
                )
    if linked:
        log.info("calls_linked", call_ids=linked, by=actor.id)
        registry.on_change()


def export_records(registry: Registry, viewer: Staff) -> dict[str, list[dict[str, str]]]:
    """The records in force in ``viewer``'s area as the exchange's rows by kind: what
    an import of them reads back with no change. Supervisors and admins only: an
    export carries the whole ID-card number and the medical and access details."""
    d = registry.directory
    rules.require_manager(d, viewer, [], "registry")

    def mine(area_id: str | None) -> bool:
        return rules.may_read(d, viewer, area_id)

    residents = [
        resident_fields(r, d.contact_methods)
        for r in sorted(d.residents.values(), key=lambda r: r.id)
        if mine(r.community_id)
    ]
    shown = {r.id for r in residents}
    devices = [
        x
        for x in sorted(registry.devices_in_force.values(), key=lambda x: x.id)
        if x.active and (x.resident_id in shown or (x.resident_id is None and mine(None)))
    ]
    device_of = {x.resident_id: x.id for x in devices if x.resident_id is not None}
    return {
        "areas": [area_row(a) for a in _areas(d, viewer)],
        "providers": [
            provider_row(p)
            for p in sorted(registry.providers_in_force.values(), key=lambda p: p.id)
            if mine(p.area_id)
        ],
        "staff": [
            staff_row(registry.staff_member(viewer, s.id))
            for s in sorted(d.staff.values(), key=lambda s: s.id)
            if mine(s.area_id)
        ],
        "residents": [resident_row(r, device_of.get(r.id)) for r in residents],
        "devices": [device_row(x) for x in devices],
        "contacts": [
            contact_row(r.id, n, c) for r in residents for n, c in enumerate(r.contacts, start=1)
        ],
    }


def _areas(d: Directory, viewer: Staff) -> list[AreaFields]:
    rank = {Level.DISTRICT: 0, Level.STREET: 1, Level.COMMUNITY: 2}
    return [
        area_fields(a)
        for a in sorted(d.areas.values(), key=lambda a: (rank[a.level], a.id))
        if rules.may_read(d, viewer, a.id)
    ]
