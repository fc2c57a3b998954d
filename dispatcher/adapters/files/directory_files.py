"""Load the district's data folder (areas, staff, residents, contacts, rota) into a Directory.

The files are edited by hand by the people who run the service, so every problem
is reported as ``file:line: what is wrong`` and nothing is half loaded: either the
whole folder is valid and a :class:`Directory` comes back, or :class:`DataFileError`
is raised. Row syntax is checked with pydantic; references between rows and files
(parents, communities, staff on the rota...) are checked here, file by file in
dependency order, so that one broken area does not also report every resident in it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import time
from pathlib import Path
from typing import Annotated, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError

from dispatcher.adapters.files.rota_toml import RotaFile, load_rota_file
from dispatcher.core.contact_methods import Channel, ContactMethod
from dispatcher.core.directory import (
    Area,
    Contact,
    Directory,
    Level,
    Resident,
    Shift,
    Staff,
)
from dispatcher.core.fields import (
    ADate,
    DeviceId,
    IdCard,
    Ident,
    KeyResidentField,
    Language,
    LevelField,
    OptIdent,
    OptPhone,
    OptText,
    Order,
    Phone,
    RoleField,
    Sex,
    Text,
    Token,
    YesNo,
    choice,
    end_time,
    start_time,
)
from dispatcher.core.rota.days import parse_days
from dispatcher.core.rota.model import OverrideBook

AREAS = "areas.csv"
STAFF = "staff.csv"
RESIDENTS = "residents.csv"
CONTACTS = "contacts.csv"
ROTA = "rota.csv"  # weekly shifts: the simple form of the rota, still read
ROTA_TOML = "rota.toml"  # rotations, schedules and overrides (dispatcher.adapters.files.rota_toml)
FILES = (AREAS, STAFF, RESIDENTS, CONTACTS)  # and at least one of ROTA, ROTA_TOML
# Optional: ordered contact methods per person (dispatcher.core.contact_methods).
CONTACT_METHODS = "contact_methods.csv"

SHIFT_ROLES = ("primary", "backup")
MAX_REPORTED = 20  # more problems than this are counted, not listed


class DataFileError(Exception):
    """The data folder cannot be used. ``problems`` holds one ``file:line: problem`` each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = self.problems[:MAX_REPORTED]
        if len(self.problems) > MAX_REPORTED:
            shown.append(f"... and {len(self.problems) - MAX_REPORTED} more problems")
        super().__init__("\n".join(shown))


# --- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One record of a data file, with where it came from for error messages."""

    path: Path
    line: int
    values: dict[str, str]

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def read_rows(path: Path, columns: Sequence[str], optional: Sequence[str] = ()) -> list[Row]:
    """The records of a UTF-8 CSV file whose header names exactly ``columns`` (in any order),
    and any of the ``optional`` columns (a missing one reads as blank).

    Lines starting with ``#`` are comments and blank lines are skipped, so the files
    can explain themselves. Each record is one physical line (a quoted field may not
    span lines), which is what lets every message name the one line to fix. Values
    are stripped of surrounding spaces. Raises :class:`DataFileError` listing every
    structural problem of the file (missing, not UTF-8, bad header, bad line).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataFileError([f"{path}: no such file"]) from None
    except OSError as exc:
        raise DataFileError([f"{path}: cannot read it: {exc.strerror}"]) from None
    try:
        # utf-8-sig: spreadsheet programs often save a byte-order mark first.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = raw.count(b"\n", 0, exc.start) + 1
        raise DataFileError([f"{path}:{bad_line}: not UTF-8 text ({exc.reason})"]) from None

    header: list[str] | None = None
    rows: list[Row] = []
    problems: list[str] = []
    # split("\n") rather than splitlines(): the latter also breaks on characters such
    # as U+2028 that editors do not show as line ends, and the numbers would drift.
    for number, physical in enumerate(text.split("\n"), start=1):
        line = physical.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            fields = [f.strip() for f in next(csv.reader([line], strict=True))]
        except csv.Error as exc:
            problems.append(f"{path}:{number}: not valid CSV ({exc})")
            continue
        if header is None:
            header = fields
            missing = [c for c in columns if c not in header]
            unknown = [c for c in header if c not in columns and c not in optional]
            if missing or unknown or len(set(header)) != len(header):
                also = f" (and may name {','.join(optional)})" if optional else ""
                raise DataFileError(
                    [
                        f"{path}:{number}: the header must name the columns "
                        f"{','.join(columns)}{also}; found {','.join(header)}"
                    ]
                )
            continue
        if len(fields) != len(header):
            problems.append(
                f"{path}:{number}: {len(fields)} fields where the header has {len(header)}"
                f" ({','.join(header)})"
            )
            continue
        values = dict.fromkeys(optional, "") | dict(zip(header, fields, strict=True))
        rows.append(Row(path, number, values))
    if header is None:
        problems.append(f"{path}: no header line ({','.join(columns)})")
    if problems:
        raise DataFileError(problems)
    return rows


# --- row syntax ------------------------------------------------------------------------
# The fields' validators are the registry's (dispatcher.core.fields): a line of a file
# and a request to the API are checked by the same rules.


class _RowModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AreaRow(_RowModel):
    id: Ident
    level: LevelField
    name: Text
    parent: OptIdent


class StaffRow(_RowModel):
    id: Ident
    name: Text
    phone: OptPhone
    area: Ident
    role: RoleField
    language: Language
    api_token: Token


class ResidentRow(_RowModel):
    id: Ident
    name: Text
    birth_date: ADate
    address: Text
    community: Ident
    device_id: DeviceId
    phone: OptPhone
    notes: OptText
    sex: Sex
    id_card: IdCard
    building: OptText
    unit: OptText
    room: OptText
    mobile: OptPhone
    language: Language
    conditions: OptText
    medication: OptText
    mobility: OptText
    key_safe: OptText
    access_notes: OptText
    key_resident: KeyResidentField


# The optional columns of residents.csv, in the order the example file gives them.
RESIDENT_OPTIONAL = (
    "sex",
    "id_card",
    "building",
    "unit",
    "room",
    "mobile",
    "language",
    "conditions",
    "medication",
    "mobility",
    "key_safe",
    "access_notes",
    "key_resident",
)


class ContactRow(_RowModel):
    resident: Ident
    order: Order
    name: Text
    relation: Text
    phone: Phone
    language: Language
    key_holder: YesNo


class ContactMethodRow(_RowModel):
    staff: Text  # a staff id, or contact:<resident>:<order> for an emergency contact
    order: Order
    kind: Annotated[str, AfterValidator(choice(c.value for c in Channel))]
    number: Phone


class ShiftRow(_RowModel):
    area: Ident
    staff: Ident
    role: Annotated[str, AfterValidator(choice(SHIFT_ROLES))]
    days: Annotated[frozenset[int], BeforeValidator(parse_days)]
    start: Annotated[time, BeforeValidator(start_time)]
    end: Annotated[time, BeforeValidator(end_time)]


M = TypeVar("M", bound=_RowModel)


def _parse(rows: list[Row], model: type[M], problems: list[str]) -> Iterator[tuple[Row, M]]:
    """Validate each row; a bad row adds one problem per bad column and is left out.

    A generator, so that the caller's reference checks of a row are reported in line
    order with the syntax problems of the rows around it.
    """
    for row in rows:
        try:
            parsed = model.model_validate(row.values)
        except ValidationError as exc:
            for err in exc.errors():
                column = ".".join(str(p) for p in err["loc"])
                if err["type"] == "value_error":
                    problems.append(f"{row.where}: {column} {err['ctx']['error']}")
                else:
                    problems.append(f"{row.where}: {column}: {err['msg']}")
            continue
        yield row, parsed


def _check(problems: list[str]) -> None:
    if problems:
        raise DataFileError(problems)


# --- the folder ------------------------------------------------------------------------


def load_directory(path: Path, timezone: str = "Asia/Shanghai") -> Directory:
    """Read the data files in the folder ``path`` into a :class:`Directory`.

    The rota is ``rota.toml`` (rotations, schedules, overrides), ``rota.csv`` (weekly
    shifts, each read as a rule for one person), or both.

    ``timezone`` is the IANA name the rota's times are in. Raises
    :class:`DataFileError` naming the file, line and problem.
    """
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DataFileError(
            [f"unknown time zone {timezone!r} (expected an IANA name like Asia/Shanghai)"]
        ) from None
    path = Path(path)
    if not path.is_dir():
        raise DataFileError([f"{path}: no such data folder"])
    missing = [f"{path / name}: no such file" for name in FILES if not (path / name).is_file()]
    if not (path / ROTA).is_file() and not (path / ROTA_TOML).is_file():
        missing.append(f"{path}: no rota: neither {ROTA_TOML} nor {ROTA} is there")
    _check(missing)

    problems: list[str] = []
    areas = _load_areas(path / AREAS, problems)
    _check(problems)
    staff = _load_staff(path / STAFF, areas, problems)
    residents = _load_residents(path / RESIDENTS, areas, problems)
    _check(problems)
    contacts = _load_contacts(path / CONTACTS, residents, problems)
    shifts, rota_file = _rota_files(path, areas, staff, timezone, problems)
    _check(problems)
    methods: dict[str, tuple[ContactMethod, ...]] = {}
    if (path / CONTACT_METHODS).is_file():
        methods = _load_contact_methods(path / CONTACT_METHODS, staff, contacts, problems)
        _check(problems)

    return Directory(
        areas=areas,
        staff=staff,
        residents={
            rid: replace(r, contacts=tuple(c for _, c in sorted(contacts.get(rid, []), key=_first)))
            for rid, r in residents.items()
        },
        shifts=tuple(shifts),
        timezone=timezone,
        rotations=rota_file.rotations if rota_file else {},
        schedules=rota_file.schedules if rota_file else {},
        overrides=OverrideBook(rota_file.overrides if rota_file else ()),
        contact_methods=methods,
    )


def load_rota_directory(
    path: Path, timezone: str, areas: dict[str, Area], staff: dict[str, Staff]
) -> Directory:
    """The folder's rota (``rota.toml`` and/or ``rota.csv``) read against ``areas`` and
    ``staff`` from elsewhere (the registry in the database), as a directory with no
    residents: the base the registry's records are put over. Raises
    :class:`DataFileError` as :func:`load_directory` does."""
    path = Path(path)
    if not (path / ROTA).is_file() and not (path / ROTA_TOML).is_file():
        raise DataFileError([f"{path}: no rota: neither {ROTA_TOML} nor {ROTA} is there"])
    problems: list[str] = []
    shifts, rota_file = _rota_files(path, areas, staff, timezone, problems)
    _check(problems)
    return Directory(
        areas=areas,
        staff=staff,
        residents={},
        shifts=tuple(shifts),
        timezone=timezone,
        rotations=rota_file.rotations if rota_file else {},
        schedules=rota_file.schedules if rota_file else {},
        overrides=OverrideBook(rota_file.overrides if rota_file else ()),
    )


def _rota_files(
    path: Path,
    areas: dict[str, Area],
    staff: dict[str, Staff],
    timezone: str,
    problems: list[str],
) -> tuple[list[Shift], RotaFile | None]:
    shifts = _load_rota(path / ROTA, areas, staff, problems) if (path / ROTA).is_file() else []
    rota_file = None
    if (path / ROTA_TOML).is_file():
        rota_file = load_rota_file(path / ROTA_TOML, areas, staff, timezone, problems)
    return shifts, rota_file


def _load_areas(path: Path, problems: list[str]) -> dict[str, Area]:
    parsed = _parse(read_rows(path, ("id", "level", "name", "parent")), AreaRow, problems)
    areas: dict[str, Area] = {}
    lines: dict[str, int] = {}
    for row, a in parsed:
        if a.id in areas:
            problems.append(f"{row.where}: duplicate id {a.id!r} (first on line {lines[a.id]})")
            continue
        areas[a.id] = Area(id=a.id, level=a.level, name=a.name, parent_id=a.parent)
        lines[a.id] = row.line
    if problems:
        return areas

    districts = [a for a in areas.values() if a.level is Level.DISTRICT]
    if not districts:
        problems.append(f"{path}: no area has level district; there must be exactly one")
    for extra in districts[1:]:
        problems.append(
            f"{path}:{lines[extra.id]}: a second district {extra.id!r} (the first is "
            f"{districts[0].id!r} on line {lines[districts[0].id]}); there must be exactly one"
        )
    # Each level's parent is the level above, so the parents form a tree of depth
    # three and Directory.chain() always ends at the district.
    expected_parent = {Level.STREET: Level.DISTRICT, Level.COMMUNITY: Level.STREET}
    for area in areas.values():
        where = f"{path}:{lines[area.id]}"
        if area.level is Level.DISTRICT:
            if area.parent_id is not None:
                problems.append(f"{where}: parent must be empty for the district {area.id!r}")
            continue
        want = expected_parent[area.level]
        parent = areas.get(area.parent_id) if area.parent_id else None
        if area.parent_id is None:
            problems.append(f"{where}: parent is empty; a {area.level} needs a {want} as parent")
        elif parent is None:
            problems.append(f"{where}: parent {area.parent_id!r} is not in {AREAS}")
        elif parent.level is not want:
            problems.append(
                f"{where}: parent {parent.id!r} is a {parent.level}; "
                f"the parent of a {area.level} must be a {want}"
            )
    return areas


def _load_staff(path: Path, areas: dict[str, Area], problems: list[str]) -> dict[str, Staff]:
    columns = ("id", "name", "phone", "area", "role", "language", "api_token")
    staff: dict[str, Staff] = {}
    lines: dict[str, int] = {}
    token_owner: dict[str, tuple[str, int]] = {}
    for row, s in _parse(read_rows(path, columns), StaffRow, problems):
        if s.id in staff:
            problems.append(f"{row.where}: duplicate id {s.id!r} (first on line {lines[s.id]})")
            continue
        if s.area not in areas:
            problems.append(f"{row.where}: area {s.area!r} is not in {AREAS}")
        if s.api_token is not None:
            if s.api_token in token_owner:
                owner, line = token_owner[s.api_token]
                problems.append(
                    f"{row.where}: api_token is the same as {owner!r}'s (line {line}); "
                    "tokens must be unique"
                )
            else:
                token_owner[s.api_token] = (s.id, row.line)
        staff[s.id] = Staff(
            id=s.id,
            name=s.name,
            phone=s.phone,
            area_id=s.area,
            role=s.role,
            language=s.language,
            api_token=s.api_token,
        )
        lines[s.id] = row.line
    return staff


def _load_residents(path: Path, areas: dict[str, Area], problems: list[str]) -> dict[str, Resident]:
    columns = ("id", "name", "birth_date", "address", "community", "device_id", "phone", "notes")
    residents: dict[str, Resident] = {}
    lines: dict[str, int] = {}
    device_line: dict[str, int] = {}
    for row, r in _parse(read_rows(path, columns, RESIDENT_OPTIONAL), ResidentRow, problems):
        if r.id in residents:
            problems.append(f"{row.where}: duplicate id {r.id!r} (first on line {lines[r.id]})")
            continue
        community = areas.get(r.community)
        if community is None:
            problems.append(f"{row.where}: community {r.community!r} is not in {AREAS}")
        elif community.level is not Level.COMMUNITY:
            problems.append(
                f"{row.where}: community {r.community!r} is a {community.level}, not a community"
            )
        if r.device_id in device_line:
            problems.append(
                f"{row.where}: device_id {r.device_id!r} is already used on line "
                f"{device_line[r.device_id]}"
            )
        else:
            device_line[r.device_id] = row.line
        residents[r.id] = Resident(
            id=r.id,
            name=r.name,
            birth_date=r.birth_date,
            address=r.address,
            community_id=r.community,
            device_id=r.device_id,
            phone=r.phone,
            notes=r.notes,
            sex=r.sex,
            id_card=r.id_card,
            building=r.building,
            unit=r.unit,
            room=r.room,
            mobile=r.mobile,
            language=r.language,
            conditions=r.conditions,
            medication=r.medication,
            mobility=r.mobility,
            key_safe=r.key_safe,
            access_notes=r.access_notes,
            key_resident=r.key_resident,
        )
        lines[r.id] = row.line
    return residents


def _load_contacts(
    path: Path, residents: dict[str, Resident], problems: list[str]
) -> dict[str, list[tuple[int, Contact]]]:
    columns = ("resident", "order", "name", "relation", "phone", "language")
    contacts: dict[str, list[tuple[int, Contact]]] = {}
    order_line: dict[tuple[str, int], int] = {}
    for row, c in _parse(read_rows(path, columns, ("key_holder",)), ContactRow, problems):
        if c.resident not in residents:
            problems.append(f"{row.where}: resident {c.resident!r} is not in {RESIDENTS}")
            continue
        key = (c.resident, c.order)
        if key in order_line:
            problems.append(
                f"{row.where}: order {c.order} of resident {c.resident!r} is already used "
                f"on line {order_line[key]}"
            )
            continue
        order_line[key] = row.line
        contact = Contact(
            name=c.name,
            relation=c.relation,
            phone=c.phone,
            language=c.language,
            key_holder=c.key_holder,
        )
        contacts.setdefault(c.resident, []).append((c.order, contact))
    return contacts


def _load_contact_methods(
    path: Path,
    staff: dict[str, Staff],
    contacts: dict[str, list[tuple[int, Contact]]],
    problems: list[str],
) -> dict[str, tuple[ContactMethod, ...]]:
    columns = ("staff", "order", "kind", "number")
    known_contacts = {f"contact:{rid}:{n}" for rid, cs in contacts.items() for n, _ in cs}
    found: dict[str, list[ContactMethod]] = {}
    order_line: dict[tuple[str, int], int] = {}
    for row, m in _parse(read_rows(path, columns), ContactMethodRow, problems):
        if m.staff not in staff and m.staff not in known_contacts:
            problems.append(
                f"{row.where}: {m.staff!r} is neither a staff id in {STAFF} nor "
                f"contact:<resident>:<order> of a contact in {CONTACTS}"
            )
            continue
        key = (m.staff, m.order)
        if key in order_line:
            problems.append(
                f"{row.where}: order {m.order} of {m.staff!r} is already used "
                f"on line {order_line[key]}"
            )
            continue
        order_line[key] = row.line
        found.setdefault(m.staff, []).append(ContactMethod(m.order, Channel(m.kind), m.number))
    return {who: tuple(sorted(ms, key=lambda m: m.order)) for who, ms in found.items()}


def _load_rota(
    path: Path, areas: dict[str, Area], staff: dict[str, Staff], problems: list[str]
) -> list[Shift]:
    columns = ("area", "staff", "role", "days", "start", "end")
    shifts: list[Shift] = []
    for row, s in _parse(read_rows(path, columns), ShiftRow, problems):
        if s.area not in areas:
            problems.append(f"{row.where}: area {s.area!r} is not in {AREAS}")
        if s.staff not in staff:
            problems.append(f"{row.where}: staff {s.staff!r} is not in {STAFF}")
        shifts.append(
            Shift(
                area_id=s.area,
                staff_id=s.staff,
                weekdays=s.days,
                start=s.start,
                end=s.end,
                role=s.role,
            )
        )
    return shifts


def _first(pair: tuple[int, Contact]) -> int:
    return pair[0]
