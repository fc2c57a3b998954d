"""Who a step of an escalation notifies: targets resolved against the rota at ``now``.

Pure: the directory and the time come in, a list of people with phone numbers
goes out. An empty list means the step has nobody to tell (the caller records
that on the call's timeline and moves on).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dispatcher.core.directory import Directory, Resident, Role, Staff
from dispatcher.core.escalation import ParsedTarget, Target, TargetKind, parse_target
from dispatcher.core.rota import on_duty as rota
from dispatcher.core.rota.model import MAINTENANCE_TEAM


@dataclass(frozen=True)
class Recipient:
    id: str  # a staff id, or "contact:<resident id>:<n>" for a resident's contact
    name: str
    phone: str
    language: str
    why: str  # which target picked them: hotline, community@street, contact 1 ...


def recipients(
    directory: Directory,
    targets: tuple[str, ...],
    *,
    community_id: str | None,
    resident: Resident | None,
    at: datetime,
    holder: str | None = None,
) -> list[Recipient]:
    """Everyone the targets name at ``at``, each phone number once, in target order.

    ``holder`` is the staff id the ``acknowledger`` target names (whoever holds the
    call). A target that cannot be resolved (an unknown rotation or person, say a
    policy copied onto a call before the rota changed) names nobody.
    """
    out: list[Recipient] = []
    seen: set[str] = set()

    def add(r: Recipient) -> None:
        if r.phone not in seen:
            seen.add(r.phone)
            out.append(r)

    for spec in targets:
        for r in _resolve(directory, parse_target(spec), community_id, resident, at, holder):
            add(r)
    return out


def command_centre(directory: Directory, at: datetime) -> list[Recipient]:
    """The fallback when a policy names nobody: the hotline on duty; else anyone on duty
    for the district; else the district's supervisors, on shift or not."""
    hotline = rota.hotline(directory, at)
    found = [_staff(d.staff, "command centre") for d in hotline if d.staff.phone]
    if found:
        return found
    district = directory.district.id
    found = [
        _staff(d.staff, "command centre")
        for d in rota.on_duty(directory, district, at)
        if d.staff.phone
    ]
    if found:
        return found
    return [
        _staff(s, "district supervisor")
        for s in directory.staff.values()
        if s.area_id == district and s.role is Role.SUPERVISOR and s.phone
    ]


class Routes:
    """:func:`recipients` and :func:`command_centre` at one instant, each answer kept:
    the escalator fires a batch of calls at one ``now``, and most of them name the
    same targets (the hotline, a community's staff), so the rota is read once per
    batch instead of once per call. Keep one only as long as the directory and the
    instant hold (one batch)."""

    def __init__(self, directory: Directory, at: datetime) -> None:
        self._directory = directory
        self._at = at
        self._parsed: dict[str, ParsedTarget] = {}
        self._found: dict[tuple[str, str | None, str | None, str | None], list[Recipient]] = {}
        self._centre: list[Recipient] | None = None

    def recipients(
        self,
        targets: tuple[str, ...],
        *,
        community_id: str | None,
        resident: Resident | None,
        holder: str | None = None,
    ) -> list[Recipient]:
        """What :func:`recipients` answers, each target resolved once per key: a
        resident's contacts are keyed by the resident, the acknowledger by the holder,
        the rest by the call's community."""
        out: list[Recipient] = []
        seen: set[str] = set()
        for spec in targets:
            target = self._parsed.get(spec)
            if target is None:
                target = self._parsed[spec] = parse_target(spec)
            reads_resident = target.kind is TargetKind.CONTACTS or (
                target.kind is TargetKind.NAMED and target.name == Target.EMERGENCY_CONTACTS
            )
            reads_holder = target.kind is TargetKind.NAMED and target.name == Target.ACKNOWLEDGER
            key = (
                spec,
                community_id,
                resident.id if reads_resident and resident is not None else None,
                holder if reads_holder else None,
            )
            found = self._found.get(key)
            if found is None:
                found = _resolve(self._directory, target, community_id, resident, self._at, holder)
                self._found[key] = found
            for r in found:
                if r.phone not in seen:
                    seen.add(r.phone)
                    out.append(r)
        return out

    def command_centre(self) -> list[Recipient]:
        if self._centre is None:
            self._centre = command_centre(self._directory, self._at)
        return list(self._centre)


def _resolve(
    directory: Directory,
    target: ParsedTarget,
    community_id: str | None,
    resident: Resident | None,
    at: datetime,
    holder: str | None,
) -> list[Recipient]:
    if target.kind is TargetKind.ROTATION:
        try:
            people = rota.rotation_on_call(directory, target.name, at)
        except KeyError:
            return []
        return [_staff(s, f"rotation {target.name}") for s in people if s.phone]
    if target.kind is TargetKind.PERSON:
        person = directory.staff.get(target.name)
        return [_staff(person, "named")] if person is not None and person.phone else []
    if target.kind is TargetKind.ON_DUTY:
        areas = [a for a in directory.chain(community_id) if a.level.value == target.name]
        if not areas:
            return []
        why = f"on duty at {target.name}:{areas[0].id}"
        return [
            _staff(d.staff, why)
            for d in rota.on_duty(directory, areas[0].id, at)
            if d.staff.phone and (target.role is None or d.shift_role == target.role)
        ]
    if target.kind is TargetKind.CONTACTS:
        return _contacts(resident, target.count)
    return _named(directory, Target(target.name), community_id, resident, at, holder)


def _named(
    directory: Directory,
    target: Target,
    community_id: str | None,
    resident: Resident | None,
    at: datetime,
    holder: str | None,
) -> list[Recipient]:
    if target is Target.HOTLINE:
        return [_staff(d.staff, "hotline") for d in rota.hotline(directory, at) if d.staff.phone]
    if target is Target.MAINTENANCE:
        team = [
            _staff(d.staff, "maintenance")
            for d in rota.on_duty(directory, MAINTENANCE_TEAM, at)
            if d.staff.phone
        ]
        if team:
            return team
        return [
            _staff(d.staff, "hotline (no maintenance on duty)")
            for d in rota.hotline(directory, at)
            if d.staff.phone
        ]
    if target is Target.COMMUNITY:
        found = rota.responsible(directory, community_id, at)
        why = f"on duty at {found.found_at.level}:{found.found_at.id}"
        return [_staff(d.staff, why) for d in found.on_duty if d.staff.phone]
    if target is Target.STREET_SUPERVISOR:
        area = community_id if community_id in directory.areas else None
        return [_staff(s, "supervisor") for s in rota.supervisors(directory, area, at) if s.phone]
    if target is Target.DISTRICT_SUPERVISORS:
        district = directory.district.id
        return [
            _staff(s, "district supervisor")
            for s in rota.supervisors(directory, district, at)
            if s.phone
        ]
    if target is Target.EMERGENCY_CONTACTS:
        return _contacts(resident, None)
    if target is Target.ACKNOWLEDGER:
        person = directory.staff.get(holder or "")
        return [_staff(person, "holds the call")] if person is not None and person.phone else []
    raise AssertionError(f"unhandled target {target}")


def _contacts(resident: Resident | None, count: int | None) -> list[Recipient]:
    if resident is None:
        return []
    chosen = resident.contacts if count is None else resident.contacts[:count]
    return [
        Recipient(
            id=f"contact:{resident.id}:{n}",
            name=f"{c.name} ({c.relation})",
            phone=c.phone,
            language=c.language,
            why=f"emergency contact {n}",
        )
        for n, c in enumerate(chosen, start=1)
    ]


def _staff(s: Staff, why: str) -> Recipient:
    assert s.phone is not None
    return Recipient(id=s.id, name=s.name, phone=s.phone, language=s.language, why=why)
