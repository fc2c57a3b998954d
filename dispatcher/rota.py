"""Who is on duty: reading the weekly rota at a given instant.

Pure functions of a :class:`Directory` and an aware ``datetime``: no clock reads
and no I/O, so routing and its tests choose the instant. Shift times are wall-clock
times in ``directory.timezone``; a shift belongs to the weekday it starts on, so a
Friday 22:00-08:00 shift is what covers Saturday 03:00.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from dispatcher.directory import Area, Directory, Level, Role, Shift, Staff

PRIMARY = "primary"
BACKUP = "backup"
_DAY = timedelta(days=1)


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


def _local_wall_time(directory: Directory, at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"rota lookups need a timezone-aware datetime, got {at!r}")
    # Naive local wall-clock time: shifts are written as wall-clock times, so compare
    # in those terms (this also reads sensibly across a DST change, should the zone
    # have one).
    return at.astimezone(ZoneInfo(directory.timezone)).replace(tzinfo=None)


def _covers(shift: Shift, local: datetime) -> bool:
    """Whether ``shift`` covers the naive local time ``local``.

    A shift lasts at most 24 hours, so only one that started today or yesterday can
    cover ``local``; the window is half-open, [start, end).
    """
    start = timedelta(hours=shift.start.hour, minutes=shift.start.minute)
    end = timedelta(hours=shift.end.hour, minutes=shift.end.minute)
    length = end - start if end > start else end - start + _DAY  # overnight or 24 h
    today: date = local.date()
    for day in (today, today - _DAY):
        if day.isoweekday() not in shift.weekdays:
            continue
        begins = datetime.combine(day, datetime.min.time()) + start
        if begins <= local < begins + length:
            return True
    return False


def on_duty(directory: Directory, area_id: str, at: datetime) -> list[OnDuty]:
    """The people whose shift for exactly ``area_id`` covers ``at``.

    Primaries come before backups, then in rota file order. Someone on two
    overlapping shifts is listed once, with the more senior role.
    """
    local = _local_wall_time(directory, at)
    covering = [
        (0 if shift.role == PRIMARY else 1, index, shift)
        for index, shift in enumerate(directory.shifts)
        if shift.area_id == area_id and _covers(shift, local)
    ]
    out: list[OnDuty] = []
    seen: set[str] = set()
    for _, _, shift in sorted(covering, key=lambda c: (c[0], c[1])):
        staff = directory.staff.get(shift.staff_id)
        if staff is None or staff.id in seen:
            continue
        seen.add(staff.id)
        out.append(OnDuty(staff=staff, shift_role=shift.role))
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


def rotation_on_call(directory: Directory, rotation_id: str, at: datetime) -> list[Staff]:
    """Who rotation ``rotation_id`` has on call at ``at``.

    Replaced by the rota branch (rotations are its model); until then there are
    no rotations, so this names nobody.
    """
    return []
