"""The registry's records as rows of the exchange files (``eldercall export`` writes
them, ``eldercall import`` reads them back): one row per record, every value text,
under the data folder's column names (``dispatcher.adapters.files.exchange`` reads
and writes the files themselves). Pure: no I/O.

A row of a kind holds the columns of :data:`COLUMNS`; a resident's contacts are rows
of their own (``resident``, ``order``), and so are the devices (``id``, ``resident``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from dispatcher.core.directory import Contact, Resident
from dispatcher.core.registry.records import (
    AreaFields,
    ContactFields,
    Device,
    ProviderFields,
    ResidentFields,
    StaffFields,
)

# The exchange's kinds, in the order an import applies them.
KINDS = ("areas", "providers", "staff", "residents", "devices", "contacts")

# Each kind's columns (required first). tests/adapters/test_exchange.py checks they are
# the exchange files' (exchange.REQUIRED and OPTIONAL).
COLUMNS: dict[str, tuple[str, ...]] = {
    "areas": ("id", "level", "name", "parent"),
    "providers": ("id", "name", "service", "phone", "area", "notes"),
    "staff": ("id", "name", "phone", "area", "role", "language", "api_token"),
    "residents": (
        "id", "name", "birth_date", "address", "community", "device_id", "phone", "notes",
        "sex", "id_card", "building", "unit", "room", "mobile", "language", "conditions",
        "medication", "mobility", "key_safe", "access_notes", "key_resident",
    ),
    "devices": ("id", "resident", "model", "firmware", "installed_on", "installed_by"),
    "contacts": ("resident", "order", "name", "relation", "phone", "language", "key_holder"),
}  # fmt: skip

# A record's field under another name in the files.
FIELD_COLUMN = {
    "parent_id": "parent",
    "area_id": "area",
    "community_id": "community",
    "resident_id": "resident",
}
_COLUMN_FIELD = {c: f for f, c in FIELD_COLUMN.items()}

# A record's kind in the registry (its audit, its table) by the exchange's kind.
RECORD_KIND = {
    "areas": "area",
    "providers": "provider",
    "staff": "staff",
    "residents": "resident",
    "devices": "device",
    "contacts": "resident",  # a contact is part of her resident's record
}


def column_of(field: str) -> str:
    """The file's column for a record's field (``community_id`` -> ``community``);
    a nested field (``contacts.1.phone``) by its last part."""
    name = field.rsplit(".", 1)[-1]
    return FIELD_COLUMN.get(name, name)


def _text(value: Any) -> str:
    if type(value) is str:  # most are: the quick way first (an import compares 10^5)
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value.value if hasattr(value, "value") else value)


def _row(kind: str, values: dict[str, Any]) -> dict[str, str]:
    return {c: _text(values.get(_COLUMN_FIELD.get(c, c))) for c in COLUMNS[kind]}


def fields_of(kind: str, row: dict[str, str]) -> dict[str, Any]:
    """A row's columns as a record's fields (``community`` -> ``community_id``)."""
    return {_COLUMN_FIELD.get(c, c): v for c, v in row.items()}


def area_row(a: AreaFields) -> dict[str, str]:
    return _row("areas", a.model_dump())


def provider_row(p: ProviderFields) -> dict[str, str]:
    return _row("providers", p.model_dump())


def staff_row(s: StaffFields) -> dict[str, str]:
    return _row("staff", s.model_dump()) | {"api_token": ""}  # a secret: never exported


def resident_row(r: ResidentFields, device_id: str | None) -> dict[str, str]:
    return _row("residents", r.model_dump(exclude={"contacts"})) | {"device_id": device_id or ""}


def device_row(d: Device) -> dict[str, str]:
    return _row("devices", d.fields.model_dump())


def contact_row(resident_id: str, order: int, c: ContactFields) -> dict[str, str]:
    return _row("contacts", c.model_dump()) | {"resident": resident_id, "order": str(order)}


# The same rows from the directory's dataclasses, with no validation: an import
# compares a file's row with the record in force this way first, and validates only
# the rows that differ.


def resident_row_of(r: Resident) -> dict[str, str]:
    values = {name: getattr(r, name) for name in _RESIDENT_FIELDS}
    return _row("residents", values)


def contact_row_of(resident_id: str, order: int, c: Contact) -> dict[str, str]:
    values = {name: getattr(c, name) for name in _CONTACT_FIELDS}
    return _row("contacts", values) | {"resident": resident_id, "order": str(order)}


_RESIDENT_FIELDS = tuple(_COLUMN_FIELD.get(c, c) for c in COLUMNS["residents"])
_CONTACT_FIELDS = ("name", "relation", "phone", "language", "key_holder")
