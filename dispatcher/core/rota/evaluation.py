"""Reading a schedule at an instant, and cutting a period where the duty changes.

Pure functions over ``dispatcher.core.rota.model``'s data (see its module doc for the
semantics of rules, overrides and overlaps).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from dispatcher.core.rota.model import (
    PRIMARY,
    Override,
    OverrideKind,
    Rotation,
    Schedule,
    require_aware,
)


@dataclass(frozen=True)
class Duty:
    """One reason someone is on duty: a rule, a dated shift or an override."""

    staff_id: str
    role: str
    source: str
    shared: bool = False  # doubling up here is intended: never an overlap


def duties(
    schedule: Schedule,
    rotations: Mapping[str, Rotation],
    overrides: Iterable[Override],
    at: datetime,
) -> list[Duty]:
    """Everyone ``schedule`` (with the overrides of its area) puts on duty at ``at``,
    one entry per reason, rules first in their order, then dated shifts."""
    require_aware(at)
    tz = schedule.zone
    found: list[Duty] = []
    for number, rule in enumerate(schedule.rules, start=1):
        if not rule.covers(tz, at):
            continue
        if rule.rotation_id is not None:
            rotation = rotations.get(rule.rotation_id)
            if rotation is None:
                continue  # the loader refuses this; a hand-built directory may not
            staff_id = rotation.on_call(at)
        else:
            assert rule.staff_id is not None
            staff_id = rule.staff_id
        found.append(Duty(staff_id, rule.role, rule.source or f"rule {number}", rule.shared))
    for shift in schedule.shifts:
        if shift.start <= at < shift.end:
            found.append(Duty(shift.staff_id, shift.role, "dated shift"))
    active = [o for o in overrides if o.area_id == schedule.area_id and o.active(at)]
    return apply_overrides(found, active)


def apply_overrides(found: list[Duty], overrides: Iterable[Override]) -> list[Duty]:
    out = list(found)
    for o in sorted(overrides, key=lambda o: (o.start, o.id)):
        source = f"override {o.id}"
        if o.kind is OverrideKind.REMOVE:
            out = [
                d
                for d in out
                if not (d.staff_id == o.staff_id and (o.role is None or d.role == o.role))
            ]
        elif o.kind is OverrideKind.REPLACE:
            out = [
                Duty(o.staff_id, o.role or d.role, source, shared=True)
                if d.staff_id == o.replaces
                else d
                for d in out
            ]
        else:
            out.append(Duty(o.staff_id, o.role or PRIMARY, source, shared=True))
    return out


def settle(found: Iterable[Duty]) -> list[tuple[str, str]]:
    """(staff id, role) pairs: primaries before backups, each person once in their
    more senior role, otherwise in the order found."""
    ordered = sorted(enumerate(found), key=lambda p: (p[1].role != PRIMARY, p[0]))
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for _, d in ordered:
        if d.staff_id not in seen:
            seen.add(d.staff_id)
            out.append((d.staff_id, d.role))
    return out


def unsettled_overlap(found: Iterable[Duty]) -> list[Duty]:
    """The primaries of different, unshared rules or shifts at one instant, if more
    than one person; else empty."""
    primaries = [d for d in found if d.role == PRIMARY and not d.shared]
    if len({d.staff_id for d in primaries}) < 2:
        return []
    return primaries


def change_points(
    schedule: Schedule,
    rotations: Mapping[str, Rotation],
    overrides: Iterable[Override],
    start: datetime,
    end: datetime,
) -> list[datetime]:
    """Every instant in [start, end) where who is on duty in ``schedule`` may change,
    with ``start`` itself first."""
    require_aware(start)
    require_aware(end)
    points = {start.astimezone(UTC)}
    tz = schedule.zone
    used: set[str] = set()
    for rule in schedule.rules:
        for begins, ends in rule.windows(tz, start, end):
            points.update((begins, ends))
        if rule.rotation_id is not None:
            used.add(rule.rotation_id)
    for rotation_id in sorted(used):
        rotation = rotations.get(rotation_id)
        if rotation is not None:
            points.update(rotation.handoffs(start, end))
    for shift in schedule.shifts:
        points.update((shift.start, shift.end))
    for o in overrides:
        if o.area_id == schedule.area_id:
            points.update((o.start, o.end))
    return sorted(p.astimezone(UTC) for p in points if start <= p < end)


def segments(
    schedule: Schedule,
    rotations: Mapping[str, Rotation],
    overrides: Iterable[Override],
    start: datetime,
    end: datetime,
) -> Iterator[tuple[datetime, datetime, list[Duty]]]:
    """[start, end) cut where anything changes, with who is on duty in each piece."""
    book = list(overrides)
    points = change_points(schedule, rotations, book, start, end)
    ends = [*points[1:], end.astimezone(UTC)]
    for begins, finishes in zip(points, ends, strict=True):
        yield begins, finishes, duties(schedule, rotations, book, begins)
