"""The rota as data: rotations, schedules of rules, dated shifts and overrides.

Reading them at an instant is ``dispatcher.core.rota.evaluation``'s; per area of a
directory, ``dispatcher.core.rota.on_duty``'s. Pure: no clock and no I/O; every question takes
the instant it is about. Instants are aware datetimes; wall-clock times (hand-offs,
rule windows) are naive and read in the rotation's or schedule's IANA time zone.

Rotations
    An ordered list of people taking turns. A rotation is anchored by its first
    hand-off (a local wall-clock datetime) and hands over every ``every`` hours,
    days or weeks. Daily and weekly rotations hand over at the same *wall-clock*
    time each day (08:00 stays 08:00), so across a daylight-saving change the shift
    that spans it lasts 23 or 25 hours: no hour is lost or doubled, it simply
    belongs to that shift. Hourly rotations advance in absolute hours (a 12-hour
    shift is always 12 real hours, whatever the clocks do). The turn order extends
    before the first hand-off too: the anchor only fixes the phase.

Wall-clock times that do not exist or happen twice
    As in RFC 5545 (3.3.5), a wall time in a skipped hour is read with the offset
    from before the change (01:30 on London's spring-forward day is 02:30 BST) and a
    wall time that happens twice is the first of the two (``fold=0``).

Schedules
    One per area (a community, a street, the district command centre): rules and
    dated shifts. A rule covers some weekdays with a local time window that belongs
    to the day it starts on; an end not after the start runs overnight into the next
    day, and start == end is 24 hours. A rule names either a rotation (whoever it
    has on call) or one person, with a role on the shift: ``primary`` or ``backup``.
    Dated shifts (staff, aware start, aware end, role) are fixed one-off shifts, for
    example imported from an iCalendar file.

    Everyone the rules and dated shifts put on duty at an instant is on duty. Two
    primaries from different rules (or dated shifts) at once is an *overlap*, which
    ``rota check`` reports unless one of the two rules is marked ``shared`` (the rule
    that doubles up on purpose, e.g. a second hotline operator in the daytime).

Overrides
    Changes to a schedule for a period [start, end): ``replace`` (whoever of the
    schedule has ``replaces`` on duty gets ``staff_id`` instead, in the same role
    unless one is given), ``add`` (``staff_id`` is also on duty, as a primary unless
    a role is given) and ``remove`` (``staff_id`` is off; in every role unless one is
    given). A swap between two people is two replaces (see :func:`swap`). Overrides
    apply in order of start (then id), after the rules; an override is never an
    overlap.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

PRIMARY = "primary"
BACKUP = "backup"
ROLES = (PRIMARY, BACKUP)
DEFAULT_TIMEZONE = "Asia/Shanghai"
_DAY = timedelta(days=1)


def require_aware(at: datetime, what: str = "rota lookups") -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} need a timezone-aware datetime, got {at!r}")


def instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The aware (UTC) instant of the naive wall-clock time ``wall`` in ``tz``.

    ``fold=0``: a doubled wall time is its first occurrence; a skipped one is read
    with the offset from before the change (RFC 5545 3.3.5).
    """
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


class Unit(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"


@dataclass(frozen=True)
class Rotation:
    """People taking turns, handing over every ``every`` ``unit`` from ``handoff``.

    ``handoff`` is the first hand-off as a naive local wall-clock datetime in
    ``timezone``; ``people`` are staff ids in turn order (someone may appear twice).
    """

    id: str
    unit: Unit
    every: int
    handoff: datetime
    people: tuple[str, ...]
    timezone: str = DEFAULT_TIMEZONE
    name: str = ""

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"rotation {self.id}: every must be at least 1")
        if not self.people:
            raise ValueError(f"rotation {self.id}: needs at least one person")
        if self.handoff.tzinfo is not None:
            raise ValueError(f"rotation {self.id}: the hand-off is a local wall-clock time")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def shift_start(self, index: int) -> datetime:
        """The instant shift ``index`` begins (shift 0 begins at the first hand-off)."""
        if self.unit is Unit.HOUR:
            return instant(self.handoff, self.zone) + timedelta(hours=self.every * index)
        days = self.every * (7 if self.unit is Unit.WEEK else 1) * index
        return instant(self.handoff + timedelta(days=days), self.zone)

    def shift_index(self, at: datetime) -> int:
        """The number of the shift that covers ``at`` (negative before the first hand-off)."""
        require_aware(at)
        if self.unit is Unit.HOUR:
            span = timedelta(hours=self.every)
            index = (at - instant(self.handoff, self.zone)) // span
        else:
            local = at.astimezone(self.zone).replace(tzinfo=None)
            span_days = self.every * (7 if self.unit is Unit.WEEK else 1)
            index = (local - self.handoff).days // span_days
        # The estimate can be one off near a hand-off on a DST day: settle on instants.
        while self.shift_start(index) > at:
            index -= 1
        while self.shift_start(index + 1) <= at:
            index += 1
        return index

    def on_call(self, at: datetime) -> str:
        """The staff id on call at ``at``."""
        return self.people[self.shift_index(at) % len(self.people)]

    def handoffs(self, start: datetime, end: datetime) -> list[datetime]:
        """The hand-off instants in [start, end)."""
        index = self.shift_index(start)
        out: list[datetime] = []
        at = self.shift_start(index)
        while at < end:
            if at >= start:
                out.append(at)
            index += 1
            at = self.shift_start(index)
        return out


@dataclass(frozen=True)
class Rule:
    """On these ISO weekdays (1 Monday .. 7 Sunday), from ``start`` to ``end`` local
    time, a rotation's person or a named person is on duty in ``role``.

    ``source`` says where the rule was written (``rota.toml:42``), for reports.
    """

    weekdays: frozenset[int]
    start: time
    end: time
    role: str = PRIMARY
    rotation_id: str | None = None
    staff_id: str | None = None
    shared: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        if (self.rotation_id is None) == (self.staff_id is None):
            raise ValueError("a rule names either a rotation or a person")
        if self.role not in ROLES:
            raise ValueError(f"role {self.role!r} is not one of {', '.join(ROLES)}")

    @property
    def length(self) -> timedelta:
        """The window's wall-clock length: overnight when end <= start, 24 h when equal."""
        start = timedelta(hours=self.start.hour, minutes=self.start.minute)
        end = timedelta(hours=self.end.hour, minutes=self.end.minute)
        return end - start if end > start else end - start + _DAY

    def windows(
        self, tz: ZoneInfo, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]]:
        """The rule's windows, as instants, that overlap [start, end)."""
        first = start.astimezone(tz).date() - _DAY
        last = end.astimezone(tz).date()
        out: list[tuple[datetime, datetime]] = []
        day = first
        while day <= last:
            if day.isoweekday() in self.weekdays:
                wall = datetime.combine(day, self.start)
                begins, ends = instant(wall, tz), instant(wall + self.length, tz)
                if begins < end and ends > start and begins < ends:
                    out.append((begins, ends))
            day += _DAY
        return out

    def covers(self, tz: ZoneInfo, at: datetime) -> bool:
        return any(b <= at < e for b, e in self.windows(tz, at, at + timedelta(microseconds=1)))


@dataclass(frozen=True)
class DatedShift:
    """A one-off shift: ``staff_id`` on duty in ``role`` for [start, end)."""

    staff_id: str
    start: datetime
    end: datetime
    role: str = PRIMARY

    def __post_init__(self) -> None:
        require_aware(self.start, "dated shifts")
        require_aware(self.end, "dated shifts")
        if self.end <= self.start:
            raise ValueError(f"a dated shift of {self.staff_id} ends before it starts")
        if self.role not in ROLES:
            raise ValueError(f"role {self.role!r} is not one of {', '.join(ROLES)}")


@dataclass(frozen=True)
class Schedule:
    """Who covers one area: rules and dated shifts, in ``timezone``."""

    area_id: str
    rules: tuple[Rule, ...] = ()
    shifts: tuple[DatedShift, ...] = ()
    timezone: str = DEFAULT_TIMEZONE

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def add_dated_shifts(schedule: Schedule, shifts: Iterable[DatedShift]) -> Schedule:
    """``schedule`` with ``shifts`` added after its own dated shifts."""
    return replace(schedule, shifts=schedule.shifts + tuple(shifts))


class OverrideKind(StrEnum):
    REPLACE = "replace"
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True)
class Override:
    """A change to the schedule of ``area_id`` for [start, end) (see the module doc).

    ``staff_id``: who takes the duty (replace), who is added (add), who is off
    (remove). ``replaces``: whose duty is taken (replace only). ``created_by``: the
    file it was written in, or the staff id who made it through the API.
    """

    id: str
    area_id: str
    kind: OverrideKind
    start: datetime
    end: datetime
    staff_id: str
    replaces: str | None = None
    role: str | None = None
    reason: str = ""
    created_by: str = ""

    def __post_init__(self) -> None:
        require_aware(self.start, "overrides")
        require_aware(self.end, "overrides")
        if self.end <= self.start:
            raise ValueError("the end must be after the start")
        if (self.kind is OverrideKind.REPLACE) != (self.replaces is not None):
            raise ValueError("a replace names whose duty it takes (replaces); others must not")
        if self.replaces is not None and self.replaces == self.staff_id:
            raise ValueError("a person cannot replace themselves")
        if self.role is not None and self.role not in ROLES:
            raise ValueError(f"role {self.role!r} is not one of {', '.join(ROLES)}")

    def active(self, at: datetime) -> bool:
        return self.start <= at < self.end


def swap(
    id_prefix: str,
    area_id: str,
    first: str,
    second: str,
    first_period: tuple[datetime, datetime],
    second_period: tuple[datetime, datetime],
    reason: str = "swap",
    created_by: str = "",
) -> tuple[Override, Override]:
    """Two people swap shifts: ``second`` does ``first``'s duty in ``first_period`` and
    ``first`` does ``second``'s in ``second_period``."""
    return (
        Override(
            f"{id_prefix}-1",
            area_id,
            OverrideKind.REPLACE,
            *first_period,
            staff_id=second,
            replaces=first,
            reason=reason,
            created_by=created_by,
        ),
        Override(
            f"{id_prefix}-2",
            area_id,
            OverrideKind.REPLACE,
            *second_period,
            staff_id=first,
            replaces=second,
            reason=reason,
            created_by=created_by,
        ),
    )


class OverrideBook:
    """The overrides in force, by id: mutable, so that an override made through the
    API takes effect at once for everyone holding the book (routing, the API)."""

    def __init__(self, overrides: Iterable[Override] = ()) -> None:
        self._by_id: dict[str, Override] = {}
        for o in overrides:
            self.add(o)

    def __iter__(self) -> Iterator[Override]:
        return iter(sorted(self._by_id.values(), key=lambda o: (o.start, o.id)))

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, override_id: str) -> Override | None:
        return self._by_id.get(override_id)

    def add(self, override: Override) -> None:
        if override.id in self._by_id:
            raise ValueError(f"there is already an override {override.id}")
        self._by_id[override.id] = override

    def remove(self, override_id: str) -> Override | None:
        return self._by_id.pop(override_id, None)

    def for_area(self, area_id: str) -> list[Override]:
        return [o for o in self if o.area_id == area_id]

    def copy(self) -> OverrideBook:
        return OverrideBook(self._by_id.values())

    def replace_all(self, overrides: Iterable[Override]) -> None:
        """Every override at once (a reloaded rota file): one assignment, so a reader
        sees the old set or the new one."""
        self._by_id = {o.id: o for o in overrides}
