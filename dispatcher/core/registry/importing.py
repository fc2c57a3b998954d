"""The plan of an import: the rows of a file (every kind at once) checked against the
registry's rules, against each other and against the records in force, and what
applying them would create and change. Pure: no I/O.

- A row names a record by its id (a contact by its resident and order). A record the
  registry has is changed to the row; one it has not is created. Records absent from
  the file are left alone, and so are the columns a file does not have: an import is
  not a sync.
- Every bad row is an :class:`Issue` with its kind, sheet and line; a plan with any
  error is applied not at all. A resident under 70 is a warning.
- A resident's ``device_id`` gives her that device (a new one is registered; one of
  another resident's, or in stock, is moved to her); the device she had goes back to
  stock. A row of ``devices`` with no resident puts the device in stock.
- The actor's role and area hold for every row, whether it changes anything or not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, TypeVar

from pydantic import BaseModel

from dispatcher.core.directory import Directory, Level, Staff
from dispatcher.core.registry import rules
from dispatcher.core.registry.records import (
    MAX_CONTACTS,
    AreaFields,
    ContactFields,
    Device,
    DeviceFields,
    FieldError,
    ProviderFields,
    ResidentFields,
    StaffFields,
    area_fields,
    resident_fields,
    staff_fields,
    to_area,
    validated,
)
from dispatcher.core.registry.rows import (
    COLUMNS,
    KINDS,
    area_row,
    column_of,
    contact_row,
    contact_row_of,
    device_row,
    fields_of,
    provider_row,
    resident_row,
    resident_row_of,
    staff_row,
)
from dispatcher.core.registry.rules import Refused

OLDEST_WARNING_AGE = 70  # a resident younger than this is imported, with a warning

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class SourceRow:
    """A row of the file: its line (and sheet, in a workbook) and the values of the
    columns the file has, under the canonical names."""

    line: int
    values: Mapping[str, str]
    sheet: str = ""


@dataclass(frozen=True)
class Issue:
    kind: str
    line: int
    sheet: str
    column: str | None
    message: str


@dataclass(frozen=True)
class Change:
    kind: str  # of the record
    record_id: str
    action: str  # create or update
    line: int
    sheet: str
    fields: dict[str, tuple[str, str]]  # of an update: column -> (before, after)
    source: str  # the kind of the row that makes it (a resident's row gives a device)


@dataclass(frozen=True)
class Write:
    """What applying the plan writes: the record's kind in the registry, the record
    after and before (None: a new one), and the area its audit row belongs to."""

    kind: str
    new: Any
    old: Any
    area_id: str | None


@dataclass(frozen=True)
class InForce:
    directory: Directory
    devices: Mapping[str, Device]
    providers: Mapping[str, ProviderFields]


@dataclass
class Plan:
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {k: {"created": 0, "changed": 0, "unchanged": 0} for k in KINDS}
    )
    changes: list[Change] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    # Devices taken from the resident they serve, by the row that does it: refused
    # while that resident has a call not yet resolved (the database knows).
    moved: dict[str, tuple[str, SourceRow]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.writes)

    def error(self, kind: str, row: SourceRow, column: str | None, message: str) -> None:
        self.errors.append(Issue(kind, row.line, row.sheet, column, message))


def plan_import(
    sheets: Mapping[str, Sequence[SourceRow]], in_force: InForce, actor: Staff, today: date
) -> Plan:
    """What importing ``sheets`` (rows by kind) would do, or every reason it cannot."""
    rules.require_manager(in_force.directory, actor, [], "registry")
    planner = _Planner(in_force, actor, today)
    planner.run({k: sheets.get(k, ()) for k in KINDS})
    plan = planner.plan
    order = {k: n for n, k in enumerate(KINDS)}
    plan.errors.sort(key=lambda i: (order[i.kind], i.sheet, i.line))
    plan.warnings.sort(key=lambda i: (order[i.kind], i.sheet, i.line))
    return plan


def _diff(before: dict[str, str], after: dict[str, str]) -> dict[str, tuple[str, str]]:
    return {c: (before[c], after[c]) for c in after if before.get(c) != after[c]}


def _same(in_force: dict[str, str], given: Mapping[str, str], *ignored: str) -> bool:
    """Whether a row's columns hold what the record in force does (a blank language
    is zh, an ID card's x is X: as the fields' validators read them). Only a shortcut:
    a row that differs here is validated, and may still change nothing."""
    for column, value in given.items():
        if column in ignored:
            continue
        normal = _NORMAL.get(column)
        if in_force.get(column) != (normal(value) if normal else value):
            return False
    return True


_NORMAL: dict[str, Callable[[str], str]] = {
    "language": lambda v: v or "zh",
    "id_card": str.upper,
}


@dataclass
class _Entry:
    """A resident of the file (or whose contacts it gives): where, and her fields after
    and before (``new`` None: her row is the record in force, made when needed)."""

    source: str
    row: SourceRow
    new: ResidentFields | None
    old: ResidentFields | None


def age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


class _Planner:
    def __init__(self, in_force: InForce, actor: Staff, today: date) -> None:
        self.d = in_force.directory
        self.prov = self.d  # the directory with the file's areas, once they are read
        self.devices = in_force.devices
        # Each resident's device in service (rules.device_of, once for all).
        self.device_by_resident = {
            x.resident_id: x for x in self.devices.values() if x.active and x.resident_id
        }
        self.providers = in_force.providers
        self.actor = actor
        self.today = today
        self.plan = Plan()
        # Residents of the file (or whose contacts it changes): row, after, before.
        self.residents: dict[str, _Entry] = {}
        self.named: set[str] = set()  # the ids of the file's resident rows, bad ones too
        self.device_of_row: dict[str, tuple[SourceRow, str]] = {}  # device id -> resident row

    def run(self, sheets: Mapping[str, Sequence[SourceRow]]) -> None:
        self._areas(sheets["areas"])
        self._providers(sheets["providers"])
        self._staff(sheets["staff"])
        self._residents(sheets["residents"])
        self._contacts(sheets["contacts"])
        self._write_residents()
        self._devices(sheets["devices"])

    # --- shared ------------------------------------------------------------------------

    def _rows(self, kind: str, rows: Sequence[SourceRow]) -> Iterator[tuple[SourceRow, str]]:
        """The rows with known columns and an id not given twice, with their id."""
        known = set(COLUMNS[kind])
        lines: dict[str, int] = {}
        for row in rows:
            unknown = sorted(set(row.values) - known)
            if unknown:
                self.plan.error(kind, row, None, f"unknown columns {', '.join(unknown)}")
                continue
            record_id = row.values.get("id", "").strip()
            if record_id and record_id in lines:
                self.plan.error(
                    kind, row, "id", f"{record_id!r} is also on line {lines[record_id]}"
                )
                continue
            lines[record_id] = row.line
            yield row, record_id

    def _checked(
        self, kind: str, row: SourceRow, model: type[M], values: dict[str, Any]
    ) -> M | None:
        try:
            return validated(model, values)
        except FieldError as exc:
            self.plan.error(kind, row, column_of(exc.field), exc.message)
            return None

    def _allowed(self, kind: str, row: SourceRow, d: Directory, areas: list[str | None]) -> bool:
        try:
            rules.require_manager(d, self.actor, areas, kind)
        except Refused as exc:
            self.plan.error(kind, row, None, exc.message)
            return False
        return True

    def _refused(self, kind: str, row: SourceRow, exc: Refused) -> None:
        self.plan.error(kind, row, column_of(exc.field) if exc.field else None, exc.message)

    def _count(
        self,
        kind: str,
        row: SourceRow,
        record_id: str,
        before: dict[str, str] | None,
        after: dict[str, str] | None,
        source: str | None = None,
    ) -> bool:
        """Count the row's record as created (``before`` None: ``after`` not needed),
        changed or unchanged; True if it changes."""
        counts = self.plan.counts[kind]
        diff = {} if before is None or after is None else _diff(before, after)
        if before is not None and not diff:
            counts["unchanged"] += 1
            return False
        counts["created" if before is None else "changed"] += 1
        action = "create" if before is None else "update"
        self.plan.changes.append(
            Change(kind, record_id, action, row.line, row.sheet, diff, source or kind)
        )
        return True

    # --- areas -------------------------------------------------------------------------

    def _areas(self, rows: Sequence[SourceRow]) -> None:
        found: list[tuple[SourceRow, AreaFields, AreaFields | None]] = []
        for row, area_id in self._rows("areas", rows):
            old_area = self.d.areas.get(area_id)
            old = area_fields(old_area) if old_area else None
            base = old.model_dump() if old else {}
            new = self._checked(
                "areas", row, AreaFields, base | fields_of("areas", dict(row.values))
            )
            if new is not None:
                found.append((row, new, old))
        merged = dict(self.d.areas) | {new.id: to_area(new) for _, new, _ in found}
        self.prov = replace(self.d, areas=merged)
        for row, new, old in found:
            try:
                if old is None:
                    others = {k: v for k, v in merged.items() if k != new.id}
                    rules.check_area(replace(self.d, areas=others), new, None)
                else:
                    rules.check_area(self.prov, new, old)
            except Refused as exc:
                self._refused("areas", row, exc)
                continue
            if old is not None and not self._allowed("areas", row, self.d, [old.id]):
                continue
            if (old is None or new.parent_id != old.parent_id) and not self._allowed(
                "areas", row, self.prov, [new.parent_id]
            ):
                continue
            before = area_row(old) if old else None
            if self._count("areas", row, new.id, before, area_row(new)):
                self.plan.writes.append(Write("area", new, old, new.id))
        # A street before its communities, for the eye: the tables have no foreign keys.
        rank = {Level.DISTRICT: 0, Level.STREET: 1, Level.COMMUNITY: 2}
        self.plan.writes.sort(key=lambda w: rank[w.new.level])

    # --- providers ---------------------------------------------------------------------

    def _providers(self, rows: Sequence[SourceRow]) -> None:
        for row, provider_id in self._rows("providers", rows):
            old = self.providers.get(provider_id)
            base = old.model_dump() if old else {}
            values = base | fields_of("providers", dict(row.values))
            new = self._checked("providers", row, ProviderFields, values)
            if new is None:
                continue
            if new.area_id not in self.prov.areas:
                self.plan.error("providers", row, "area", f"{new.area_id!r} is not an area")
                continue
            if old is not None and not self._allowed("providers", row, self.d, [old.area_id]):
                continue
            if not self._allowed("providers", row, self.prov, [new.area_id]):
                continue
            before = provider_row(old) if old else None
            if self._count("providers", row, new.id, before, provider_row(new)):
                self.plan.writes.append(Write("provider", new, old, new.area_id))

    # --- staff -------------------------------------------------------------------------

    def _staff(self, rows: Sequence[SourceRow]) -> None:
        tokens: dict[str, int] = {}
        for row, staff_id in self._rows("staff", rows):
            old_staff = self.d.staff.get(staff_id)
            old = (
                staff_fields(old_staff, self.d.contact_methods.get(staff_id, ()))
                if old_staff
                else None
            )
            given = fields_of("staff", dict(row.values))
            if not given.get("api_token"):
                given.pop("api_token", None)  # blank: the token set (an export has none)
            base = old.model_dump() if old else {}
            new = self._checked("staff", row, StaffFields, base | given)
            if new is None:
                continue
            if new.api_token is not None and "api_token" in given:
                if new.api_token in tokens:
                    self.plan.error(
                        "staff",
                        row,
                        "api_token",
                        f"is the same as on line {tokens[new.api_token]}; tokens are unique",
                    )
                    continue
                tokens[new.api_token] = row.line
            try:
                rules.check_staff(self.prov, self.actor, new, old)
            except Refused as exc:
                self._refused("staff", row, exc)
                continue
            if old is not None and not self._allowed("staff", row, self.d, [old.area_id]):
                continue
            if not self._allowed("staff", row, self.prov, [new.area_id]):
                continue
            before = staff_row(old) if old else None
            after = staff_row(new)
            if before is not None and old is not None and new.api_token != old.api_token:
                # Never shown, but a change all the same.
                before = before | {"api_token": "(set)" if old.api_token else ""}
                after = after | {"api_token": "(new)"}
            if self._count("staff", row, new.id, before, after):
                self.plan.writes.append(Write("staff", new, old, new.area_id))

    # --- residents ---------------------------------------------------------------------

    def _old_resident(self, resident_id: str) -> ResidentFields | None:
        r = self.d.residents.get(resident_id)
        return resident_fields(r, self.d.contact_methods) if r else None

    def _entry(self, resident_id: str) -> _Entry | None:
        """The file's resident, her fields made now if her row changed nothing."""
        entry = self.residents.get(resident_id)
        if entry is not None and entry.new is None:
            entry.old = self._old_resident(resident_id)
            entry.new = entry.old
        return entry

    def _residents(self, rows: Sequence[SourceRow]) -> None:
        for row, resident_id in self._rows("residents", rows):
            self.named.add(resident_id)
            r = self.d.residents.get(resident_id)
            if r is not None and _same(resident_row_of(r), row.values, "device_id"):
                # The record in force, valid already: checked for scope, not again.
                if self._allowed("residents", row, self.d, [r.community_id]):
                    self.residents[r.id] = _Entry("residents", row, None, None)
                    self._resident_seen(row, r.id, r.birth_date)
                continue
            old = self._old_resident(resident_id)
            given = fields_of("residents", dict(row.values))
            given.pop("device_id", None)
            base = old.model_dump(exclude={"contacts"}) if old else {}
            new = self._checked("residents", row, ResidentFields, base | given)
            if new is None:
                continue
            try:
                rules.check_resident(self.prov, new, old)
            except Refused as exc:
                self._refused("residents", row, exc)
                continue
            if old is not None and not self._allowed("residents", row, self.d, [old.community_id]):
                continue
            if not self._allowed("residents", row, self.prov, [new.community_id]):
                continue
            if old is not None:
                new = new.model_copy(update={"contacts": old.contacts})
            self.residents[new.id] = _Entry("residents", row, new, old)
            self._resident_seen(row, new.id, new.birth_date)

    def _resident_seen(self, row: SourceRow, resident_id: str, born: date) -> None:
        age = age_on(born, self.today)
        if age < OLDEST_WARNING_AGE:
            self.plan.warnings.append(
                Issue(
                    "residents",
                    row.line,
                    row.sheet,
                    "birth_date",
                    f"{resident_id} is {age} (born {born}): under "
                    f"{OLDEST_WARNING_AGE}, imported all the same",
                )
            )
        device_id = row.values.get("device_id", "")
        if not device_id:
            return
        first = self.device_of_row.setdefault(device_id, (row, resident_id))
        if first[1] != resident_id:
            self.plan.error(
                "residents",
                row,
                "device_id",
                f"{device_id!r} is also the device of line {first[0].line}",
            )

    def _contacts(self, rows: Sequence[SourceRow]) -> None:
        known = set(COLUMNS["contacts"])
        given_at: dict[tuple[str, int], SourceRow] = {}
        wanted: dict[str, dict[int, tuple[SourceRow, ContactFields]]] = {}
        for row in rows:
            unknown = sorted(set(row.values) - known)
            if unknown:
                self.plan.error("contacts", row, None, f"unknown columns {', '.join(unknown)}")
                continue
            resident_id = row.values.get("resident", "")
            try:
                order = int(row.values.get("order", ""))
                if not 1 <= order <= MAX_CONTACTS:
                    raise ValueError
            except ValueError:
                self.plan.error(
                    "contacts",
                    row,
                    "order",
                    f"{row.values.get('order', '')!r} is not a number from 1 to {MAX_CONTACTS}",
                )
                continue
            if (resident_id, order) in given_at:
                first = given_at[(resident_id, order)]
                self.plan.error(
                    "contacts",
                    row,
                    "order",
                    f"order {order} of resident {resident_id!r} is also on line {first.line}",
                )
                continue
            given_at[(resident_id, order)] = row
            entry = self.residents.get(resident_id)
            r = self.d.residents.get(resident_id)
            if entry is None and r is None:
                if resident_id in self.named:
                    continue  # her own row is in error: said there
                self.plan.error(
                    "contacts",
                    row,
                    "resident",
                    f"{resident_id!r} is neither a resident of the file nor of the registry",
                )
                continue
            if (
                entry is None
                and r is not None
                and not self._allowed("contacts", row, self.d, [r.community_id])
            ):
                continue
            # Her contacts are those in force: a row equal to one is not validated.
            if (
                (entry is None or entry.new is None)
                and r is not None
                and order <= len(r.contacts)
                and _same(contact_row_of(resident_id, order, r.contacts[order - 1]), row.values)
            ):
                self.plan.counts["contacts"]["unchanged"] += 1
                continue
            resident = self._resident_now(resident_id)
            old = resident.contacts[order - 1] if order <= len(resident.contacts) else None
            values = fields_of("contacts", dict(row.values))
            values.pop("resident_id", None)
            values.pop("order", None)
            base = old.model_dump() if old else {}
            new = self._checked("contacts", row, ContactFields, base | values)
            if new is not None:
                wanted.setdefault(resident_id, {})[order] = (row, new)
        for resident_id, by_order in wanted.items():
            self._merge_contacts(resident_id, by_order)

    def _resident_now(self, resident_id: str) -> ResidentFields:
        """The resident as the file leaves her so far (she exists: checked)."""
        entry = self._entry(resident_id)
        if entry is not None and entry.new is not None:
            return entry.new
        found = self._old_resident(resident_id)
        assert found is not None
        return found

    def _merge_contacts(
        self, resident_id: str, by_order: dict[int, tuple[SourceRow, ContactFields]]
    ) -> None:
        entry = self._entry(resident_id)
        if entry is None:
            first_row = min((r for r, _ in by_order.values()), key=lambda r: r.line)
            old_resident = self._old_resident(resident_id)
            entry = self.residents[resident_id] = _Entry(
                "contacts", first_row, old_resident, old_resident
            )
        resident = entry.new
        assert resident is not None
        contacts = list(resident.contacts)
        for order in sorted(by_order):
            row, new = by_order[order]
            if order > len(contacts) + 1:
                self.plan.error(
                    "contacts",
                    row,
                    "order",
                    f"order {order} of resident {resident_id} leaves a gap: she has "
                    f"{len(contacts)} contact(s) before it",
                )
                return
            old = contacts[order - 1] if order <= len(contacts) else None
            before = contact_row(resident_id, order, old) if old else None
            self._count("contacts", row, f"{resident_id}#{order}", before,
                        contact_row(resident_id, order, new))  # fmt: skip
            if old is None:
                contacts.append(new)
            else:
                contacts[order - 1] = new
        entry.new = resident.model_copy(update={"contacts": contacts})

    def _write_residents(self) -> None:
        for resident_id, e in self.residents.items():
            if e.new is None:  # her row is the record in force
                self.plan.counts["residents"]["unchanged"] += 1
                continue
            if e.source == "residents":
                device = self.device_by_resident.get(resident_id)
                device_id = device.id if device else None
                before = resident_row(e.old, device_id) if e.old else None
                after = resident_row(e.new, device_id) if e.old else None
                self._count("residents", e.row, resident_id, before, after)
            if e.new != e.old:
                self.plan.writes.append(Write("resident", e.new, e.old, e.new.community_id))

    # --- devices -----------------------------------------------------------------------

    def _community(self, resident_id: str | None) -> str | None:
        if resident_id is None:
            return None
        entry = self.residents.get(resident_id)
        if entry is not None and entry.new is not None:
            return entry.new.community_id
        r = self.d.residents.get(resident_id)
        return r.community_id if r else None

    def _devices(self, rows: Sequence[SourceRow]) -> None:
        wanted: dict[str, tuple[str, SourceRow, DeviceFields]] = {}
        for row, device_id in self._rows("devices", rows):
            old = self.devices.get(device_id)
            if old is not None and _same(device_row(old), row.values):
                wanted[device_id] = ("devices", row, old.fields)
                continue
            base = old.fields.model_dump() if old else {}
            new = self._checked(
                "devices", row, DeviceFields, base | fields_of("devices", dict(row.values))
            )
            if new is not None:
                wanted[new.id] = ("devices", row, new)
        for device_id, (row, resident_id) in self.device_of_row.items():
            if device_id in wanted:
                _, device_row_at, fields = wanted[device_id]
                if fields.resident_id != resident_id:
                    self.plan.error(
                        "residents",
                        row,
                        "device_id",
                        f"{device_id!r} is given to {fields.resident_id or 'stock'} on line "
                        f"{device_row_at.line} of devices",
                    )
                continue
            old = self.devices.get(device_id)
            if old is not None and old.resident_id == resident_id:
                wanted[device_id] = ("residents", row, old.fields)
                continue
            base = old.fields.model_dump() if old else {}
            implied = self._checked(
                "residents",
                row,
                DeviceFields,
                base | {"id": device_id, "resident_id": resident_id},
            )
            if implied is not None:
                wanted[device_id] = ("residents", row, implied)
        holder: dict[str, str] = {}  # resident -> the device wanted for her
        for device_id, (kind, row, new) in wanted.items():
            if new.resident_id is not None:
                if new.resident_id in holder:
                    self.plan.error(
                        kind,
                        row,
                        column_of("resident_id") if kind == "devices" else "device_id",
                        f"resident {new.resident_id} is given device {holder[new.resident_id]} "
                        "as well: one device each",
                    )
                    continue
                holder[new.resident_id] = device_id
            self._device(kind, row, new)
        # The device a resident had goes back to stock when the file gives her another.
        for resident_id, device_id in holder.items():
            had = self.device_by_resident.get(resident_id)
            if had is None or had.id == device_id or had.id in wanted:
                continue
            kind, row, _ = wanted[device_id]
            self._device(kind, row, had.fields.model_copy(update={"resident_id": None}))

    def _device(self, kind: str, row: SourceRow, new: DeviceFields) -> None:
        old = self.devices.get(new.id)
        if old is not None and not old.active:
            if new != old.fields:
                self.plan.error(kind, row, None, f"device {new.id} is retired")
            else:
                self.plan.counts["devices"]["unchanged"] += 1
            return
        area = self._community(new.resident_id)
        if new.resident_id is not None and area is None:
            if new.resident_id in self.named:
                return  # her own row is in error: said there
            self.plan.error(
                kind,
                row,
                "resident" if kind == "devices" else "device_id",
                f"{new.resident_id!r} is neither a resident of the file nor of the registry",
            )
            return
        old_area = None
        if old is not None and old.resident_id is not None:
            served = self.d.residents.get(old.resident_id)
            old_area = served.community_id if served else None
            if not self._allowed(kind, row, self.d, [old_area]):
                return
        # Back to stock is the old area's business; a new device in stock the district's.
        if (new.resident_id is not None or old is None) and not self._allowed(
            kind, row, self.prov, [area]
        ):
            return
        if old is not None and new == old.fields:
            self.plan.counts["devices"]["unchanged"] += 1
            return
        before = device_row(old) if old else None
        after = device_row(Device(new)) if old else None
        if self._count("devices", row, new.id, before, after, kind):
            self.plan.writes.append(Write("device", Device(new), old, area or old_area))
            if old is not None and old.resident_id not in (None, new.resident_id):
                self.plan.moved[new.id] = (kind, row)
