"""Who is on duty: the rota (``dispatcher.core.rota.model``) read for a directory's areas.

Pure functions of a :class:`Directory` and aware datetimes: no clock reads and no
I/O, so routing and its tests choose the instant. Each area's schedule is its rota
file schedule plus its weekly shifts (``rota.csv``, each a rule for one person);
overrides in ``directory.overrides`` apply on top. See ``dispatcher.core.rota.model`` for
rotations, rules, daylight saving and overrides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from dispatcher.core.directory import Area, Directory, Level, Role, Staff
from dispatcher.core.rota import evaluation as model
from dispatcher.core.rota.evaluation import Duty
from dispatcher.core.rota.model import BACKUP, PRIMARY, OverrideKind, Schedule

__all__ = [
    "BACKUP",
    "PRIMARY",
    "Interval",
    "OnDuty",
    "Responsibility",
    "district_gaps",
    "gaps",
    "hotline",
    "intervals",
    "on_duty",
    "person_intervals",
    "responsible",
    "rotation_on_call",
    "supervisors",
]


@dataclass(frozen=True)
class OnDuty:
    staff: Staff
    shift_role: str  # "primary" or "backup"


@dataclass(frozen=True)
class Responsibility:
    """Who answers for ``asked`` at an instant: the nearest level with someone on duty.

    ``found_at`` is ``asked`` itself or one of its parents. An empty ``on_duty`` means
    that not even the district has anyone on shift: the rota is broken and the caller
    must raise an alarm.
    """

    asked: Area
    found_at: Area
    on_duty: list[OnDuty]

    @property
    def fell_back(self) -> bool:
        return self.found_at.id != self.asked.id

    @property
    def level(self) -> Level:
        """The level the answer was found at: community, street or district."""
        return self.found_at.level


@dataclass(frozen=True)
class Interval:
    """``staff_id`` on duty for ``area_id`` in ``role`` over [start, end) (aware, UTC).

    What the iCalendar export and ``rota check`` read; ``area_name`` is the
    schedule's name.
    """

    staff_id: str
    staff_name: str
    area_id: str
    area_name: str
    role: str
    start: datetime
    end: datetime

    @property
    def schedule_name(self) -> str:
        return self.area_name


def _schedule(directory: Directory, area_id: str) -> Schedule | None:
    return directory.schedule_by_area.get(area_id)


def _check_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"rota lookups need a timezone-aware datetime, got {at!r}")


def duties(directory: Directory, area_id: str, at: datetime) -> list[Duty]:
    """Every reason someone is on duty for exactly ``area_id`` at ``at`` (see
    :func:`dispatcher.core.rota.model.duties`)."""
    _check_aware(at)
    found = _schedule(directory, area_id)
    if found is None:
        found = Schedule(area_id, timezone=directory.timezone)
    return model.duties(found, directory.rotations, directory.overrides.for_area(area_id), at)


def _people(directory: Directory, pairs: Iterable[tuple[str, str]]) -> list[OnDuty]:
    out = []
    for staff_id, role in pairs:
        staff = directory.staff.get(staff_id)
        if staff is not None:
            out.append(OnDuty(staff=staff, shift_role=role))
    return out


def on_duty(directory: Directory, area_id: str, at: datetime) -> list[OnDuty]:
    """The people on duty for exactly ``area_id`` at ``at``, overrides applied.

    Primaries come before backups, then in rule order. Someone on duty for two
    reasons is listed once, with the more senior role.
    """
    return _people(directory, model.settle(duties(directory, area_id, at)))


def rotation_on_call(directory: Directory, rotation_id: str, at: datetime) -> list[Staff]:
    """Who ``rotation_id`` has on call at ``at``: normally one person.

    Overrides that take that person off (``remove``) or hand their duty on
    (``replace``) in a schedule that uses the rotation apply here too; ``add``
    overrides do not (they add to a schedule, not to a rotation). Empty when the
    person is off with nobody in their place. Raises ``KeyError`` for an unknown
    rotation.
    """
    _check_aware(at)
    rotation = directory.rotations[rotation_id]
    person = rotation.on_call(at)
    areas = {
        s.area_id
        for s in directory.schedule_by_area.values()
        if any(r.rotation_id == rotation_id for r in s.rules)
    }
    found = [Duty(person, PRIMARY, f"rotation {rotation_id}")]
    relevant = [
        o
        for area in sorted(areas)
        for o in directory.overrides.for_area(area)
        if o.active(at) and o.kind is not OverrideKind.ADD
    ]
    settled = model.settle(model.apply_overrides(found, relevant))
    return [p.staff for p in _people(directory, settled)]


def intervals(directory: Directory, area_id: str, start: datetime, end: datetime) -> list[Interval]:
    """Who is on duty for exactly ``area_id`` from when to when within [start, end),
    with their role; a person's consecutive pieces in one role are merged. Sorted by
    start, then primaries first."""
    _check_aware(start)
    _check_aware(end)
    area = directory.areas.get(area_id)
    schedule = _schedule(directory, area_id)
    if area is None or schedule is None or end <= start:
        return []
    book = directory.overrides.for_area(area_id)
    open_: dict[tuple[str, str], list[datetime]] = {}
    done: list[tuple[str, str, datetime, datetime]] = []
    for begins, ends, found in model.segments(schedule, directory.rotations, book, start, end):
        now_on = set(model.settle(found))
        for key in list(open_):
            if key not in now_on:
                span = open_.pop(key)
                done.append((key[0], key[1], span[0], span[1]))
        for key in now_on:
            if key in open_:
                open_[key][1] = ends
            else:
                open_[key] = [begins, ends]
    for key, span in open_.items():
        done.append((key[0], key[1], span[0], span[1]))
    out = []
    for staff_id, role, begins, ends in done:
        staff = directory.staff.get(staff_id)
        out.append(
            Interval(
                staff_id=staff_id,
                staff_name=staff.name if staff else staff_id,
                area_id=area_id,
                area_name=area.name,
                role=role,
                start=begins,
                end=ends,
            )
        )
    return sorted(out, key=lambda i: (i.start, i.role != PRIMARY, i.staff_id))


def person_intervals(
    directory: Directory, staff_id: str, start: datetime, end: datetime
) -> list[Interval]:
    """Every duty of ``staff_id`` in [start, end), in every area, sorted by start."""
    out = [
        i
        for area_id in directory.areas
        for i in intervals(directory, area_id, start, end)
        if i.staff_id == staff_id
    ]
    return sorted(out, key=lambda i: (i.start, i.area_id))


def district_gaps(
    directory: Directory, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The periods in [start, end) when the district command centre has nobody on duty."""
    return area_gaps(directory, directory.district.id, start, end)


def area_gaps(
    directory: Directory, area_id: str, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The periods in [start, end) when ``area_id`` itself has nobody on duty."""
    schedule = _schedule(directory, area_id) or Schedule(area_id, timezone=directory.timezone)
    book = directory.overrides.for_area(area_id)
    out: list[tuple[datetime, datetime]] = []
    for begins, ends, found in model.segments(schedule, directory.rotations, book, start, end):
        if _people(directory, model.settle(found)):
            continue
        if out and out[-1][1] == begins:
            out[-1] = (out[-1][0], ends)
        else:
            out.append((begins, ends))
    return out


def responsible(directory: Directory, area_id: str | None, at: datetime) -> Responsibility:
    """The first level of ``area_id``'s chain (community, street, district) with someone on duty.

    An unknown or missing area (an unregistered device) goes straight to the
    district. Never raises for an empty rota: see :class:`Responsibility`.
    """
    chain = directory.chain(area_id)
    for area in chain:
        people = on_duty(directory, area.id, at)
        if people:
            return Responsibility(asked=chain[0], found_at=area, on_duty=people)
    return Responsibility(asked=chain[0], found_at=chain[-1], on_duty=[])


def hotline(directory: Directory, at: datetime) -> list[OnDuty]:
    """The district command centre's operators on duty at ``at``."""
    return [
        d for d in on_duty(directory, directory.district.id, at) if d.staff.role is Role.OPERATOR
    ]


def supervisors(directory: Directory, area_id: str | None, at: datetime) -> list[Staff]:
    """Supervisors to tell about ``area_id`` at ``at``.

    First the on-duty supervisors of the area's street, then of the district; when
    none is on shift anywhere, every supervisor of the street, then of the district
    (someone must be told, even off shift). Empty only if there is no supervisor at all.
    """
    levels = [a for a in directory.chain(area_id) if a.level is not Level.COMMUNITY]
    for area in levels:
        found = [
            d.staff for d in on_duty(directory, area.id, at) if d.staff.role is Role.SUPERVISOR
        ]
        if found:
            return found
    for area in levels:
        found = [
            s
            for s in directory.staff.values()
            if s.area_id == area.id and s.role is Role.SUPERVISOR
        ]
        if found:
            return found
    return []


def gaps(
    directory: Directory,
    start: datetime,
    end: datetime,
    step: timedelta = timedelta(minutes=15),
) -> list[datetime]:
    """The instants ``start``, ``start + step``, ... before ``end`` when the district has nobody.

    A startup check for a broken rota: calls routed to the district at those times
    would find no one. Gaps shorter than ``step`` between two samples are not seen.
    """
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    district = directory.district.id
    out: list[datetime] = []
    at = start
    while at < end:
        if not on_duty(directory, district, at):
            out.append(at)
        at += step
    return out
