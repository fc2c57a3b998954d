"""The boards of the command centre: who is on duty at each level and until when, the
gaps ahead, the devices that may not be able to call for help, and the periods and
distribution of the answer-time figures.

Pure: the directory, the device links and ``now`` come in; no clock, no I/O. The rota
is read through ``dispatcher.core.rota`` (``on_duty``, ``intervals``, ``check``), the
figures through ``dispatcher.core.reports``; nothing here re-decides either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dispatcher.core import reports
from dispatcher.core.directory import Area, Directory, Level
from dispatcher.core.rota import check
from dispatcher.core.rota import on_duty as rota

# How far ahead the board looks for gaps, and for when each shift ends.
HORIZON = timedelta(hours=24)

_LEVELS = (Level.DISTRICT, Level.STREET, Level.COMMUNITY)


# ---------------------------------------------------------------- duty


@dataclass(frozen=True)
class PersonOnDuty:
    staff_id: str
    name: str
    phone: str | None
    role: str  # operator, staff, supervisor, admin
    shift_role: str  # primary or backup
    until: datetime | None  # None: still on duty at the end of the horizon


@dataclass(frozen=True)
class AreaDuty:
    """Who is on duty for ``area`` itself, and who answers for it when nobody is."""

    area: Area
    on_duty: tuple[PersonOnDuty, ...]
    answered_by: Area | None  # the level above that answers now; None when it has its own
    answered_by_people: tuple[PersonOnDuty, ...] = ()


def areas_in_order(directory: Directory, visible: frozenset[str] | None) -> list[Area]:
    """The areas a viewer sees (``None``: every one), the district first, then each
    street followed by its communities, in the order of the areas file."""
    order = {area_id: n for n, area_id in enumerate(directory.areas)}
    chosen = [a for a in directory.areas.values() if visible is None or a.id in visible]

    def key(a: Area) -> tuple[int, int, int, int]:
        if a.level is Level.DISTRICT:
            return (0, 0, 0, order[a.id])
        street = a.id if a.level is Level.STREET else (a.parent_id or "")
        return (1, order.get(street, len(order)), _LEVELS.index(a.level), order[a.id])

    return sorted(chosen, key=key)


def _people(
    directory: Directory, area_id: str, now: datetime, horizon: datetime
) -> tuple[PersonOnDuty, ...]:
    spans = rota.intervals(directory, area_id, now, horizon)
    out = []
    for found in rota.on_duty(directory, area_id, now):
        ends = [i.end for i in spans if i.staff_id == found.staff.id and i.start <= now < i.end]
        end = max(ends) if ends else None
        out.append(
            PersonOnDuty(
                staff_id=found.staff.id,
                name=found.staff.name,
                phone=found.staff.phone,
                role=found.staff.role.value,
                shift_role=found.shift_role,
                until=end if end is not None and end < horizon else None,
            )
        )
    return tuple(out)


def duty_board(
    directory: Directory, areas: Sequence[Area], now: datetime, horizon: timedelta = HORIZON
) -> list[AreaDuty]:
    """Each of ``areas`` at ``now``: its own people on duty with the end of their
    shift (within ``horizon``), or the level above that answers for it."""
    end = now + horizon
    out = []
    for area in areas:
        own = _people(directory, area.id, now, end)
        if own:
            out.append(AreaDuty(area, own, None))
            continue
        found = rota.responsible(directory, area.id, now)
        above = found.found_at if found.on_duty else None
        people = _people(directory, found.found_at.id, now, end) if above else ()
        out.append(AreaDuty(area, (), above, people))
    return out


def gaps_ahead(
    directory: Directory,
    visible: frozenset[str] | None,
    now: datetime,
    horizon: timedelta = HORIZON,
) -> list[check.Gap]:
    """The periods in [now, now + horizon) when an area the viewer sees has nobody of
    its own on duty, each with who answers instead (``rota check``'s own gaps)."""
    report = check.check(directory, now, now + horizon)
    return [g for g in report.gaps if visible is None or g.area.id in visible]


# ---------------------------------------------------------------- devices


@dataclass(frozen=True)
class DeviceLink:
    """One device's link as the daemon last recorded it (``device_links``)."""

    device_id: str
    last_seen_at: datetime
    status: str  # online or offline
    status_at: datetime
    battery: int | None


@dataclass(frozen=True)
class DeviceRules:
    """When a device is a worry: the link supervision's own thresholds."""

    silent_since: datetime  # last heard before this: silent (missed heartbeats)
    offline_since: datetime  # offline since before this: past the grace, an alert is raised
    low_battery_pct: int


OFFLINE = "offline"
SILENT = "silent"
BATTERY_LOW = "battery_low"


def device_problems(link: DeviceLink, rules: DeviceRules) -> tuple[str, ...]:
    """What is wrong with ``link``: offline (its Last Will or its own word), silent for
    too long, a battery at or below the threshold; empty when nothing is."""
    found = []
    if link.status == OFFLINE:
        found.append(OFFLINE)
    if link.last_seen_at < rules.silent_since:
        found.append(SILENT)
    if link.battery is not None and link.battery <= rules.low_battery_pct:
        found.append(BATTERY_LOW)
    return tuple(found)


def device_community(directory: Directory, device_id: str) -> str | None:
    """The community of the device's resident; ``None`` for a device nobody is
    registered for (the district's alone, as its calls are)."""
    resident = directory.residents_by_device.get(device_id)
    return resident.community_id if resident else None


# ---------------------------------------------------------------- answer times


@dataclass(frozen=True)
class Period:
    key: str  # "today" or "week"
    since: datetime
    until: datetime


def periods(now: datetime, timezone: str) -> tuple[Period, Period]:
    """Today (from local midnight) and this week (from Monday's local midnight) up to
    ``now``, in the district's time zone."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone)
    monday = midnight.date() - timedelta(days=midnight.weekday())
    week = datetime(monday.year, monday.month, monday.day, tzinfo=zone)
    return Period("today", midnight, now), Period("week", week, now)


@dataclass(frozen=True)
class Bin:
    """Calls whose answer time is in (low_s, high_s]; the first bin includes 0, the
    last has no upper bound. ``unanswered``: the calls not answered (yet)."""

    low_s: int
    high_s: int | None
    count: int
    unanswered: bool = False


# Edges in seconds: the targets (60 s and 180 s) are edges, so the bars on either side
# of a target line are within it and beyond it.
EDGES = (15, 30, 45, reports.TARGETS[0].within_s, 90, 120, reports.TARGETS[1].within_s)


def histogram(records: Iterable[reports.CallRecord], edges: Sequence[int] = EDGES) -> list[Bin]:
    """The residents' calls (technical alerts apart, as in the figures) by answer time;
    an answer at exactly an edge falls in the bin below it (60 s is within 60 s)."""
    counts = [0] * (len(edges) + 1)
    unanswered = 0
    for r in records:
        if r.kind == reports.TECHNICAL:
            continue
        answer = r.answer_s
        if answer is None:
            unanswered += 1
            continue
        counts[next((i for i, edge in enumerate(edges) if answer <= edge), len(edges))] += 1
    lows = (0, *edges)
    highs: tuple[int | None, ...] = (*edges, None)
    out = [Bin(low, high, n) for low, high, n in zip(lows, highs, counts, strict=True)]
    out.append(Bin(0, None, unanswered, unanswered=True))
    return out
