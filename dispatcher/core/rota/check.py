"""``rota check``: gaps, unsettled overlaps and people on duty without a phone.

Pure: a directory (with its overrides) and a period in, a :class:`RotaReport` out.

- A *gap* is a period when an area has nobody on duty of its own. A community's
  gap is cut by what its street and the district have: each piece says who answers
  instead (the street, the district, or nobody). A gap of the district command
  centre is the one that matters: calls would reach nobody. The daemon refuses to
  start on one (:func:`require_command_centre`).
- An *overlap* is two or more people on duty as primaries at once in one schedule
  from different rules or dated shifts, none of which is marked ``shared`` (see
  ``dispatcher.core.rota.model``); overrides never overlap.
- *No phone*: someone on duty whose staff record has no E.164 phone number, so no
  SMS or call can reach them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dispatcher.core.directory import Area, Directory, Level, Staff
from dispatcher.core.rota import evaluation as model
from dispatcher.core.rota import on_duty as rota
from dispatcher.core.rota.model import Schedule

E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")

Span = tuple[datetime, datetime]


class RotaGapError(Exception):
    """The command centre has nobody on duty at some time in the period checked."""


@dataclass(frozen=True)
class Gap:
    area: Area
    start: datetime
    end: datetime
    answered_by: Area | None  # the level above that has someone, None if nobody does


@dataclass(frozen=True)
class Overlap:
    area: Area
    start: datetime
    end: datetime
    staff_ids: tuple[str, ...]
    sources: tuple[str, ...]


@dataclass(frozen=True)
class NoPhone:
    staff: Staff
    area_ids: tuple[str, ...]
    first: datetime


@dataclass
class RotaReport:
    start: datetime
    end: datetime
    gaps: list[Gap] = field(default_factory=list)
    overlaps: list[Overlap] = field(default_factory=list)
    no_phone: list[NoPhone] = field(default_factory=list)

    @property
    def command_centre_gaps(self) -> list[Gap]:
        return [g for g in self.gaps if g.area.level is Level.DISTRICT]


def require_command_centre(directory: Directory, now: datetime, days: int) -> None:
    """Raise :class:`RotaGapError` if the command centre has a gap in the next ``days``."""
    if days <= 0:
        return
    holes = rota.district_gaps(directory, now, now + timedelta(days=days))
    if not holes:
        return
    tz = ZoneInfo(directory.timezone)
    begins, ends = holes[0]
    more = f" (and {len(holes) - 1} more)" if len(holes) > 1 else ""
    raise RotaGapError(
        f"the command centre {directory.district.id} has nobody on duty from "
        f"{_local(begins, tz)} to {_local(ends, tz)} ({directory.timezone}){more} "
        f"within the next {days} days; fix the rota (see `eldercall rota check`)"
    )


def _cut(span: Span, holes: list[Span]) -> list[tuple[datetime, datetime, bool]]:
    """``span`` cut into pieces, each flagged whether it lies inside one of ``holes``."""
    start, end = span
    out: list[tuple[datetime, datetime, bool]] = []
    at = start
    for h_start, h_end in holes:
        if h_end <= at or h_start >= end:
            continue
        if h_start > at:
            out.append((at, h_start, False))
        piece_end = min(h_end, end)
        out.append((max(h_start, at), piece_end, True))
        at = piece_end
    if at < end:
        out.append((at, end, False))
    return out


def _gaps(directory: Directory, start: datetime, end: datetime) -> list[Gap]:
    holes = {a: rota.area_gaps(directory, a, start, end) for a in directory.areas}
    out: list[Gap] = []
    levels = [Level.DISTRICT, Level.STREET, Level.COMMUNITY]
    for area in sorted(directory.areas.values(), key=lambda a: (levels.index(a.level), a.id)):
        parents = directory.chain(area.id)[1:]
        for span in holes[area.id]:
            pieces: list[tuple[datetime, datetime, Area | None]] = [(*span, None)]
            # Walk up: a piece is answered by the first parent not in a hole there.
            resolved: list[tuple[datetime, datetime, Area | None]] = []
            for parent in parents:
                still: list[tuple[datetime, datetime, Area | None]] = []
                for p_start, p_end, _ in pieces:
                    for c_start, c_end, inside in _cut((p_start, p_end), holes[parent.id]):
                        if inside:
                            still.append((c_start, c_end, None))
                        else:
                            resolved.append((c_start, c_end, parent))
                pieces = still
            resolved.extend(pieces)
            for p_start, p_end, by in sorted(resolved, key=lambda p: p[0]):
                out.append(Gap(area, p_start, p_end, by))
    return out


def _overlaps(directory: Directory, start: datetime, end: datetime) -> list[Overlap]:
    out: list[Overlap] = []
    for area in directory.areas.values():
        schedule = directory.schedule_by_area.get(area.id) or Schedule(
            area.id, timezone=directory.timezone
        )
        book = directory.overrides.for_area(area.id)
        for begins, ends, found in model.segments(schedule, directory.rotations, book, start, end):
            clash = model.unsettled_overlap(found)
            if not clash:
                continue
            staff_ids = tuple(dict.fromkeys(d.staff_id for d in clash))
            sources = tuple(dict.fromkeys(d.source for d in clash))
            last = out[-1] if out else None
            if (
                last
                and last.area.id == area.id
                and last.end == begins
                and (
                    last.staff_ids,
                    last.sources,
                )
                == (staff_ids, sources)
            ):
                out[-1] = Overlap(area, last.start, ends, staff_ids, sources)
            else:
                out.append(Overlap(area, begins, ends, staff_ids, sources))
    return out


def _no_phone(directory: Directory, start: datetime, end: datetime) -> list[NoPhone]:
    found: dict[str, tuple[list[str], datetime]] = {}
    for area_id in directory.areas:
        for i in rota.intervals(directory, area_id, start, end):
            staff = directory.staff.get(i.staff_id)
            if staff is None or (staff.phone and E164_RE.fullmatch(staff.phone)):
                continue
            areas, first = found.get(staff.id, ([], i.start))
            if area_id not in areas:
                areas.append(area_id)
            found[staff.id] = (areas, min(first, i.start))
    return [
        NoPhone(directory.staff[s], tuple(areas), first)
        for s, (areas, first) in sorted(found.items())
    ]


def check(directory: Directory, start: datetime, end: datetime) -> RotaReport:
    """Everything ``rota check`` reports about [start, end)."""
    return RotaReport(
        start=start,
        end=end,
        gaps=_gaps(directory, start, end),
        overlaps=_overlaps(directory, start, end),
        no_phone=_no_phone(directory, start, end),
    )


# --- the printed report ----------------------------------------------------------------


def _local(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %a %H:%M")


def _span(start: datetime, end: datetime, tz: ZoneInfo) -> str:
    a, b = start.astimezone(tz), end.astimezone(tz)
    last = b.strftime("%H:%M") if a.date() == b.date() else _local(end, tz)
    return f"{_local(start, tz)} - {last}"


def format_report(report: RotaReport, directory: Directory) -> list[str]:
    tz = ZoneInfo(directory.timezone)
    days = (report.end - report.start) / timedelta(days=1)
    lines = [
        f"Rota check from {_local(report.start, tz)} to {_local(report.end, tz)} "
        f"({directory.timezone}, {days:g} days)",
        "",
    ]
    district = directory.district
    centre = report.command_centre_gaps
    lines.append(f"Command centre {district.name} ({district.id}):")
    if centre:
        lines += [f"  GAP, nobody on duty: {_span(g.start, g.end, tz)}" for g in centre]
    else:
        lines.append("  always someone on duty")
    lines.append("")
    lines.append("Gaps (an area with nobody of its own on duty, and who answers instead):")
    others = [g for g in report.gaps if g.area.level is not Level.DISTRICT]
    if not others:
        lines.append("  none")
    current = None
    for g in others:
        if g.area.id != current:
            current = g.area.id
            lines.append(f"  {g.area.level} {g.area.id} {g.area.name}:")
        by = f"{g.answered_by.level} {g.answered_by.id}" if g.answered_by else "NOBODY"
        lines.append(f"    {_span(g.start, g.end, tz)}  -> {by}")
    lines.append("")
    lines.append("Overlaps (primaries from different rules, none marked shared):")
    if not report.overlaps:
        lines.append("  none")
    for o in report.overlaps:
        lines.append(
            f"  {o.area.id} {_span(o.start, o.end, tz)}: {', '.join(o.staff_ids)}"
            f" (from {', '.join(o.sources)})"
        )
    lines.append("")
    lines.append("On duty without a working phone number (missing or not E.164):")
    if not report.no_phone:
        lines.append("  none")
    for n in report.no_phone:
        lines.append(
            f"  {n.staff.id} {n.staff.name}: on duty for {', '.join(n.area_ids)}, "
            f"first from {_local(n.first, tz)}"
        )
    lines.append("")
    if centre:
        lines.append(f"FAIL: the command centre has {len(centre)} gap(s)")
    else:
        lines.append(
            f"OK: the command centre is always staffed; {len(others)} lower-level gap(s), "
            f"{len(report.overlaps)} overlap(s), {len(report.no_phone)} without a phone"
        )
    return lines
