"""Read ``rota.toml``: the rotations, schedules (with their rules) and overrides.

The file is edited by hand, so every problem is reported as ``file:line: what``,
the line being that of the ``[[rotation]]``, ``[[schedule]]``, ``[[schedule.rule]]``
``[[override]]`` or ``[[shift]]`` header the problem is under (a TOML syntax error names its own
line). The file's format is shown in ``config/data/rota.toml``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from dispatcher.core.directory import Area, Staff
from dispatcher.core.rota.days import parse_days  # the same day specs as rota.csv
from dispatcher.core.rota.model import (
    DEFAULT_TIMEZONE,
    MAINTENANCE_TEAM,
    ROLES,
    DatedShift,
    Override,
    OverrideKind,
    Rotation,
    Rule,
    Schedule,
    Unit,
    add_dated_shifts,
)

ROTA_TOML = "rota.toml"
_HEADER_RE = re.compile(r"^\s*\[\[\s*(rotation|schedule|schedule\.rule|override|shift)\s*\]\]")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_TIME_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


@dataclass(frozen=True)
class RotaFile:
    rotations: dict[str, Rotation]
    schedules: dict[str, Schedule]
    overrides: list[Override]


# --- value checks (messages read after the key name) ------------------------------------


def _ident(value: Any) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid id (lower-case letters, digits, '-' and '_', "
            "starting with a letter or digit, at most 64)"
        )
    return value


def _clock(value: Any, *, end: bool) -> time:
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0)
    if end and value == "24:00":
        return time(0, 0)
    if not isinstance(value, str) or not _TIME_RE.fullmatch(value):
        top = "24:00" if end else "23:59"
        raise ValueError(f'{value!r} is not a time "HH:MM" between 00:00 and {top}')
    return time.fromisoformat(value)


def _days(value: Any) -> frozenset[int]:
    if not isinstance(value, str):
        raise ValueError(f'{value!r} is not a day spec like "mon-fri" or "sat,sun"')
    return parse_days(value)


def _wall(value: Any) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise ValueError(
                f"{value.isoformat()} has a UTC offset; write the local wall-clock time "
                "without one (the rotation's timezone says where)"
            )
        return value
    if isinstance(value, str):
        try:
            return _wall(datetime.fromisoformat(value))
        except ValueError as exc:
            if "offset" in str(exc):
                raise
    raise ValueError(f"{value!r} is not a local date and time like 2026-11-23T08:00:00")


def _when(value: Any) -> datetime | date:
    # Offsets are kept; a local datetime is read in the rota's zone later.
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date and time like 2026-12-01T08:00:00+08:00")


def _zone(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone like Asia/Shanghai") from None
    return str(value)


def _role(value: Any) -> str:
    if value not in ROLES:
        raise ValueError(f"{value!r} is not one of {', '.join(ROLES)}")
    return str(value)


Ident = Annotated[str, BeforeValidator(_ident)]
Zone = Annotated[str, BeforeValidator(_zone)]
Role = Annotated[str, BeforeValidator(_role)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RotationModel(_Model):
    id: Ident
    name: str = ""
    unit: Unit
    every: int = Field(default=1, ge=1, le=1000)
    handoff: Annotated[datetime, BeforeValidator(_wall)]
    people: list[Ident] = Field(min_length=1)
    timezone: Zone | None = None


class RuleModel(_Model):
    days: Annotated[frozenset[int], BeforeValidator(_days)]
    start: Annotated[time, BeforeValidator(lambda v: _clock(v, end=False))]
    end: Annotated[time, BeforeValidator(lambda v: _clock(v, end=True))]
    rotation: Ident | None = None
    staff: Ident | None = None
    role: Role = "primary"
    shared: bool = False


class ScheduleModel(_Model):
    area: Ident
    rule: list[dict[str, Any]] = Field(default_factory=list)


class OverrideModel(_Model):
    id: Ident
    area: Ident
    kind: OverrideKind
    staff: Ident
    replaces: Ident | None = None
    role: Role | None = None
    start: Annotated[datetime, BeforeValidator(_when)]
    end: Annotated[datetime, BeforeValidator(_when)]
    reason: str = ""


class ShiftModel(_Model):
    """A dated one-off shift (hand-written or imported from an .ics by ``rota import``)."""

    area: Ident
    staff: Ident
    start: Annotated[datetime, BeforeValidator(_when)]
    end: Annotated[datetime, BeforeValidator(_when)]
    role: Role = "primary"
    uid: str = ""
    source: str = ""


class TopModel(_Model):
    timezone: Zone | None = None
    rotation: list[dict[str, Any]] = Field(default_factory=list)
    schedule: list[dict[str, Any]] = Field(default_factory=list)
    override: list[dict[str, Any]] = Field(default_factory=list)
    shift: list[dict[str, Any]] = Field(default_factory=list)


M = TypeVar("M", bound=_Model)


def _errors(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "value"
        if err["type"] == "value_error":
            out.append(f"{key} {err['ctx']['error']}")
        elif err["type"] == "missing":
            out.append(f"{key} is missing")
        elif err["type"] == "extra_forbidden":
            out.append(f"{key} is not a known key")
        else:
            out.append(f"{key}: {err['msg']}")
    return out


# --- the file --------------------------------------------------------------------------


def load_rota_file(
    path: Path,
    areas: dict[str, Area],
    staff: dict[str, Staff],
    timezone: str,
    problems: list[str],
) -> RotaFile:
    """Read ``path``; every problem is added to ``problems`` as ``file:line: what``."""
    empty = RotaFile({}, {}, [])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problems.append(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})")
        return empty
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: not valid TOML: {exc}")
        return empty
    headers: dict[str, list[int]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        m = _HEADER_RE.match(line)
        if m:
            headers.setdefault(m.group(1), []).append(number)

    def line_of(kind: str, index: int, count: int) -> int | None:
        lines = headers.get(kind, [])
        return lines[index] if len(lines) == count and index < count else None

    def where(kind: str, index: int, count: int) -> str:
        line = line_of(kind, index, count)
        return f"{path}:{line}" if line else str(path)

    def parse(model: type[M], data: Any, at: str, label: str) -> M | None:
        if not isinstance(data, dict):
            problems.append(f"{at}: {label} must be a table")
            return None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems.extend(f"{at}: {label}{msg}" for msg in _errors(exc))
            return None

    top = parse(TopModel, raw, str(path), "")
    if top is None:
        return empty
    zone = top.timezone or timezone or DEFAULT_TIMEZONE

    rotations: dict[str, Rotation] = {}
    broken: set[str] = set()  # rotations reported already: no knock-on "not defined"
    for i, data in enumerate(top.rotation):
        at = where("rotation", i, len(top.rotation))
        r = parse(RotationModel, data, at, "rotation: ")
        if r is None:
            if isinstance(data, dict) and isinstance(data.get("id"), str):
                broken.add(data["id"])
            continue
        label = f"rotation {r.id!r}"
        if r.id in rotations:
            problems.append(f"{at}: {label} is defined twice")
            continue
        for person in r.people:
            if person not in staff:
                problems.append(f"{at}: {label}: people: {person!r} is not in staff.csv")
        rotations[r.id] = Rotation(
            id=r.id,
            unit=r.unit,
            every=r.every,
            handoff=r.handoff.replace(second=0, microsecond=0),
            people=tuple(r.people),
            timezone=r.timezone or zone,
            name=r.name or r.id,
        )

    schedules: dict[str, Schedule] = {}
    rule_count = sum(len(s.get("rule", [])) if isinstance(s, dict) else 0 for s in top.schedule)
    rule_index = 0
    for i, data in enumerate(top.schedule):
        at = where("schedule", i, len(top.schedule))
        s = parse(ScheduleModel, data, at, "schedule: ")
        if s is None:
            rule_index += len(data.get("rule", [])) if isinstance(data, dict) else 0
            continue
        label = f"schedule {s.area!r}"
        if s.area not in areas and s.area != MAINTENANCE_TEAM:
            problems.append(f"{at}: {label}: area {s.area!r} is not in areas.csv")
        if s.area in schedules:
            problems.append(f"{at}: {label}: the area has a schedule already")
        rules: list[Rule] = []
        for rule_data in s.rule:
            rule_line = line_of("schedule.rule", rule_index, rule_count)
            rat = where("schedule.rule", rule_index, rule_count)
            rule_index += 1
            rm = parse(RuleModel, rule_data, rat, f"{label}: rule: ")
            if rm is None:
                continue
            r2 = rm
            if (r2.rotation is None) == (r2.staff is None):
                problems.append(f"{rat}: {label}: a rule names a rotation or a staff, not both")
                continue
            if r2.rotation is not None and r2.rotation not in rotations.keys() | broken:
                problems.append(f"{rat}: {label}: rotation {r2.rotation!r} is not defined")
            if r2.staff is not None and r2.staff not in staff:
                problems.append(f"{rat}: {label}: staff {r2.staff!r} is not in staff.csv")
            rules.append(
                Rule(
                    weekdays=r2.days,
                    start=r2.start,
                    end=r2.end,
                    role=r2.role,
                    rotation_id=r2.rotation,
                    staff_id=r2.staff,
                    shared=r2.shared,
                    source=f"{path.name}:{rule_line}" if rule_line else path.name,
                )
            )
        schedules[s.area] = Schedule(s.area, tuple(rules), (), zone)

    overrides: list[Override] = []
    seen: set[str] = set()
    for i, data in enumerate(top.override):
        at = where("override", i, len(top.override))
        o = parse(OverrideModel, data, at, "override: ")
        if o is None:
            continue
        label = f"override {o.id!r}"
        if o.id in seen:
            problems.append(f"{at}: {label} is defined twice")
            continue
        seen.add(o.id)
        if o.area not in areas and o.area != MAINTENANCE_TEAM:
            problems.append(f"{at}: {label}: area {o.area!r} is not in areas.csv")
        for key, someone in (("staff", o.staff), ("replaces", o.replaces)):
            if someone is not None and someone not in staff:
                problems.append(f"{at}: {label}: {key} {someone!r} is not in staff.csv")
        start, end = (_localise(t, zone) for t in (o.start, o.end))
        try:
            overrides.append(
                Override(
                    id=o.id,
                    area_id=o.area,
                    kind=o.kind,
                    start=start,
                    end=end,
                    staff_id=o.staff,
                    replaces=o.replaces,
                    role=o.role,
                    reason=o.reason,
                    created_by=path.name,
                )
            )
        except ValueError as exc:
            problems.append(f"{at}: {label}: {exc}")

    dated: dict[str, list[DatedShift]] = {}
    for i, data in enumerate(top.shift):
        at = where("shift", i, len(top.shift))
        d = parse(ShiftModel, data, at, "shift: ")
        if d is None:
            continue
        label = f"shift of {d.staff!r}"
        if d.area not in areas and d.area != MAINTENANCE_TEAM:
            problems.append(f"{at}: {label}: area {d.area!r} is not in areas.csv")
        if d.staff not in staff:
            problems.append(f"{at}: {label}: staff {d.staff!r} is not in staff.csv")
        start, end = (_localise(t, zone) for t in (d.start, d.end))
        if end <= start:
            problems.append(f"{at}: {label}: end {d.end.isoformat()} is not after start")
            continue
        dated.setdefault(d.area, []).append(DatedShift(d.staff, start, end, d.role))
    for area_id, shifts in dated.items():
        found = schedules.get(area_id) or Schedule(area_id, timezone=zone)
        schedules[area_id] = add_dated_shifts(found, shifts)
    return RotaFile(rotations, schedules, overrides)


def _localise(value: datetime, zone: str) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=ZoneInfo(zone))
    return value
