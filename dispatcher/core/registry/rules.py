"""The rules a change to the registry must keep, against the directory in force.

Each check raises :class:`Refused` naming the field and the reason; the service
turns them into answers (422 for a record that cannot be, 409 for one that
conflicts with another, 404 for one that is not there, 403 for a change outside the
person's scope). The service itself checks what only the database knows (a resident
with an open call). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

from dispatcher.core import scope
from dispatcher.core.directory import Directory, Level, Role, Staff
from dispatcher.core.registry.records import (
    AreaFields,
    Device,
    DeviceFields,
    ProviderFields,
    ResidentFields,
    StaffFields,
)


class Why(StrEnum):
    INVALID = "invalid"  # the record cannot be: 422
    CONFLICT = "conflict"  # it clashes with another record or with calls: 409
    NOT_FOUND = "not_found"  # 404 (also a record outside the person's scope)
    FORBIDDEN = "forbidden"  # the person may read it but not change it: 403


class Refused(Exception):
    def __init__(self, why: Why, field: str | None, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.why = why
        self.field = field
        self.message = message


def invalid(field: str, message: str) -> Refused:
    return Refused(Why.INVALID, field, message)


def conflict(field: str | None, message: str) -> Refused:
    return Refused(Why.CONFLICT, field, message)


def not_found(kind: str, record_id: str) -> Refused:
    return Refused(Why.NOT_FOUND, None, f"no {kind} {record_id!r}")


# --- who may do what -------------------------------------------------------------------

MANAGERS = frozenset({Role.SUPERVISOR, Role.ADMIN})


def may_read(d: Directory, who: Staff, area_id: str | None) -> bool:
    """Everyone reads the records of their own area and below (operators work at the
    district and read everything; community staff their community)."""
    return scope.can_see(d, who, area_id)


def require_manager(d: Directory, who: Staff, area_ids: Iterable[str | None], kind: str) -> None:
    """Supervisors and admins change the records of their area and below; a record
    (or the place it is moved to) outside it is refused."""
    if who.role not in MANAGERS:
        raise Refused(Why.FORBIDDEN, None, f"only supervisors and admins may change {kind} records")
    for area_id in area_ids:
        if not scope.can_see(d, who, area_id):
            where = area_id or "no area (the district's)"
            raise Refused(Why.FORBIDDEN, None, f"{where} is outside your area {who.area_id!r}")


# --- areas -----------------------------------------------------------------------------

_PARENT = {Level.STREET: Level.DISTRICT, Level.COMMUNITY: Level.STREET}


def check_area(d: Directory, new: AreaFields, old: AreaFields | None) -> None:
    if old is None and new.id in d.areas:
        raise conflict("id", f"an area {new.id!r} exists already")
    if old is not None and old.level is not new.level:
        raise invalid("level", "an area's level cannot change: make a new area")
    if new.level is Level.DISTRICT:
        if new.parent_id is not None:
            raise invalid("parent_id", "the district has no parent")
        if old is None:
            raise conflict("level", f"there is one district ({d.district.id!r})")
        return
    want = _PARENT[new.level]
    if new.parent_id is None:
        raise invalid("parent_id", f"a {new.level} needs a {want} as parent")
    parent = d.areas.get(new.parent_id)
    if parent is None:
        raise invalid("parent_id", f"{new.parent_id!r} is not an area")
    if parent.level is not want:
        raise invalid(
            "parent_id", f"{parent.id!r} is a {parent.level}; a {new.level}'s parent is a {want}"
        )


def check_area_delete(d: Directory, area_id: str, providers: Iterable[ProviderFields]) -> None:
    area = d.areas[area_id]
    if area.level is Level.DISTRICT:
        raise conflict(None, "the district cannot be deleted")
    uses = [
        *(f"area {a.id}" for a in d.areas.values() if a.parent_id == area_id),
        *(f"staff {s.id}" for s in d.staff.values() if s.area_id == area_id),
        *(f"resident {r.id}" for r in d.residents.values() if r.community_id == area_id),
        *(f"provider {p.id}" for p in providers if p.area_id == area_id),
    ]
    if area_id in d.schedule_by_area:
        uses.append("its rota schedule")
    if uses:
        raise conflict(None, f"area {area_id} is still used by {_some(uses)}")


# --- staff -----------------------------------------------------------------------------


def check_staff(d: Directory, who: Staff, new: StaffFields, old: StaffFields | None) -> None:
    if old is None and new.id in d.staff:
        raise conflict("id", f"a staff member {new.id!r} exists already")
    if new.area_id not in d.areas:
        raise invalid("area_id", f"{new.area_id!r} is not an area")
    if new.api_token is not None:
        owner = d.staff_by_token.get(new.api_token)
        if owner is not None and owner.id != new.id:
            raise conflict("api_token", "is another staff member's token; tokens are unique")
    # An admin manages accounts: only an admin makes one (or unmakes one).
    admin_change = Role.ADMIN in (new.role, old.role if old else None)
    if admin_change and (old is None or old.role is not new.role) and who.role is not Role.ADMIN:
        raise Refused(Why.FORBIDDEN, "role", "only an admin may give or take the admin role")


def on_rota(d: Directory, staff_id: str) -> list[str]:
    """Where the rota names ``staff_id``: a rotation, a schedule's rule or dated
    shift, an override (the file's or the API's)."""
    found = [f"rotation {r.id}" for r in d.rotations.values() if staff_id in r.people]
    for schedule in d.schedule_by_area.values():
        if any(rule.staff_id == staff_id for rule in schedule.rules):
            found.append(f"the schedule of {schedule.area_id}")
        if any(shift.staff_id == staff_id for shift in schedule.shifts):
            found.append(f"a dated shift of {schedule.area_id}")
    found += [f"override {o.id}" for o in d.overrides if staff_id in (o.staff_id, o.replaces)]
    return found


def check_staff_delete(d: Directory, staff_id: str) -> None:
    uses = on_rota(d, staff_id)
    if uses:
        raise conflict(
            None, f"staff {staff_id} is on the rota ({_some(uses)}): take them off first"
        )


# --- residents -------------------------------------------------------------------------


def check_resident(d: Directory, new: ResidentFields, old: ResidentFields | None) -> None:
    if old is None and new.id in d.residents:
        raise conflict("id", f"a resident {new.id!r} exists already")
    community = d.areas.get(new.community_id)
    if community is None:
        raise invalid("community_id", f"{new.community_id!r} is not an area")
    if community.level is not Level.COMMUNITY:
        raise invalid(
            "community_id", f"{new.community_id!r} is a {community.level}, not a community"
        )


# --- devices ---------------------------------------------------------------------------


def device_of(devices: Mapping[str, Device], resident_id: str) -> Device | None:
    return next((x for x in devices.values() if x.active and x.resident_id == resident_id), None)


def check_device(
    d: Directory, devices: Mapping[str, Device], new: DeviceFields, old: Device | None
) -> None:
    """A new device, or a change to one (its resident included: a move)."""
    if old is None and new.id in devices:
        gone = "" if devices[new.id].active else " (retired: its history stays under that id)"
        raise conflict("id", f"a device {new.id!r} is registered already{gone}")
    if old is not None and not old.active and new.resident_id is not None:
        raise conflict("resident_id", f"device {new.id} is retired")
    if new.resident_id is None or (old is not None and old.resident_id == new.resident_id):
        return
    if new.resident_id not in d.residents:
        raise invalid("resident_id", f"{new.resident_id!r} is not a resident")
    other = device_of(devices, new.resident_id)
    if other is not None and other.id != new.id:
        raise conflict(
            "resident_id",
            f"resident {new.resident_id} already has device {other.id}: move or retire it first",
        )


def _some(items: list[str], shown: int = 5) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more
