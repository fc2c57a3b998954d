"""Who a step of an escalation notifies: targets resolved against the rota at ``now``.

Pure: the directory and the time come in, a list of people with phone numbers
goes out. An empty list means the step has nobody to tell (the caller records
that on the call's timeline and moves on).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dispatcher import rota
from dispatcher.directory import Directory, Resident, Staff
from dispatcher.escalation import Target


@dataclass(frozen=True)
class Recipient:
    id: str  # a staff id, or "contact:<resident id>:<n>" for a resident's contact
    name: str
    phone: str
    language: str
    why: str  # which target picked them: hotline, community@street, contact 1 ...


def recipients(
    directory: Directory,
    targets: tuple[Target, ...],
    *,
    community_id: str | None,
    resident: Resident | None,
    at: datetime,
) -> list[Recipient]:
    """Everyone the targets name at ``at``, each phone number once, in target order."""
    out: list[Recipient] = []
    seen: set[str] = set()

    def add(r: Recipient) -> None:
        if r.phone not in seen:
            seen.add(r.phone)
            out.append(r)

    for target in targets:
        for r in _resolve(directory, target, community_id, resident, at):
            add(r)
    return out


def _resolve(
    directory: Directory,
    target: Target,
    community_id: str | None,
    resident: Resident | None,
    at: datetime,
) -> list[Recipient]:
    if target is Target.HOTLINE:
        return [_staff(d.staff, "hotline") for d in rota.hotline(directory, at) if d.staff.phone]
    if target is Target.COMMUNITY:
        found = rota.responsible(directory, community_id, at)
        why = f"on duty at {found.found_at.level}:{found.found_at.id}"
        return [_staff(d.staff, why) for d in found.on_duty if d.staff.phone]
    if target is Target.STREET_SUPERVISOR:
        area = community_id if community_id in directory.areas else None
        return [_staff(s, "supervisor") for s in rota.supervisors(directory, area, at) if s.phone]
    if target is Target.EMERGENCY_CONTACTS:
        if resident is None:
            return []
        return [
            Recipient(
                id=f"contact:{resident.id}:{n}",
                name=f"{c.name} ({c.relation})",
                phone=c.phone,
                language=c.language,
                why=f"emergency contact {n}",
            )
            for n, c in enumerate(resident.contacts, start=1)
        ]
    raise AssertionError(f"unhandled target {target}")


def _staff(s: Staff, why: str) -> Recipient:
    assert s.phone is not None
    return Recipient(id=s.id, name=s.name, phone=s.phone, language=s.language, why=why)
