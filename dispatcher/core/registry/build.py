"""The directory from the registry's records, and the records of a directory read from
the data folder (the seed of an empty registry). Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from dispatcher.core.contact_methods import ContactMethod
from dispatcher.core.directory import Directory, Resident
from dispatcher.core.registry.records import (
    AreaFields,
    Assignment,
    Device,
    DeviceFields,
    ProviderFields,
    ResidentFields,
    StaffFields,
    area_fields,
    contact_key,
    methods_of,
    resident_fields,
    staff_fields,
    to_area,
    to_resident,
    to_staff,
)


@dataclass(frozen=True)
class Records:
    """Every record of the registry, as the database holds them."""

    areas: list[AreaFields]
    staff: list[StaffFields]
    residents: list[ResidentFields]
    devices: list[Device]
    providers: list[ProviderFields]


def directory_from(records: Records, base: Directory) -> Directory:
    """``base`` (its rota, overrides and time zone) with the registry's areas, staff,
    residents and contact methods. The override book is ``base``'s own object, shared,
    so overrides made through the API stay in force across a rebuild."""
    device_of = {
        d.resident_id: d.id for d in records.devices if d.active and d.resident_id is not None
    }
    methods: dict[str, tuple[ContactMethod, ...]] = {
        s.id: methods_of(s.contact_methods) for s in records.staff if s.contact_methods
    }
    for r in records.residents:
        for n, c in enumerate(r.contacts, start=1):
            if c.contact_methods:
                methods[contact_key(r.id, n)] = methods_of(c.contact_methods)
    return replace(
        base,
        areas={a.id: to_area(a) for a in records.areas},
        staff={s.id: to_staff(s) for s in records.staff},
        residents={r.id: to_resident(r, device_of.get(r.id, "")) for r in records.residents},
        contact_methods=methods,
    )


def resident_records(d: Directory, residents: list[Resident]) -> list[ResidentFields]:
    """The records of these residents of ``d`` (their contacts' methods included)."""
    return [resident_fields(r, d.contact_methods) for r in residents]


def records_of(
    d: Directory,
    now: datetime,
    models: Mapping[str, str] | None = None,
    *,
    residents: bool = True,
) -> tuple[Records, list[Assignment]]:
    """The records of a directory read from the data folder, with each resident's device
    as a device record serving her since ``now`` (of its model in ``models``). Without
    ``residents`` their records are left out (the seed makes them a chunk at a time:
    :func:`resident_records`); their devices are not."""
    models = models or {}
    devices = [
        Device(DeviceFields(id=r.device_id, resident_id=r.id, model=models.get(r.device_id, "")))
        for r in d.residents.values()
        if r.device_id
    ]
    records = Records(
        areas=[area_fields(a) for a in d.areas.values()],
        staff=[staff_fields(s, d.contact_methods.get(s.id, ())) for s in d.staff.values()],
        residents=resident_records(d, list(d.residents.values())) if residents else [],
        devices=devices,
        providers=[],
    )
    history = [Assignment(x.id, x.fields.resident_id or "", now, None, "seed") for x in devices]
    return records, history
