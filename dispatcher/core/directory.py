"""Who is who: the district's areas, staff, residents and duty shifts.

Pure data, loaded from the files in the data folder (see
``dispatcher.adapters.files.directory_files``) and read by routing. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time
from enum import StrEnum

from dispatcher.core.contact_methods import ContactMethod
from dispatcher.core.rota.model import OverrideBook, Rotation, Rule, Schedule
from dispatcher.core.shared_values import shared


class Level(StrEnum):
    """The three levels of service, from the top."""

    DISTRICT = "district"  # the command centre and its hotline, always staffed
    STREET = "street"  # 街道
    COMMUNITY = "community"  # 社区


class Role(StrEnum):
    OPERATOR = "operator"  # command-centre hotline operator
    STAFF = "staff"  # community or street duty staff
    SUPERVISOR = "supervisor"  # street or district supervisor
    ADMIN = "admin"  # the centre's administrator: a supervisor's rights, and accounts


@dataclass(frozen=True, slots=True)
class Area:
    id: str
    level: Level
    name: str
    parent_id: str | None  # None only for the district


@dataclass(frozen=True, slots=True)
class Staff:
    id: str
    name: str
    phone: str | None
    area_id: str
    role: Role
    language: str = "zh"  # "zh" or "en": which message catalogue to use
    api_token: str | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    """A resident's emergency contact (family, neighbour), in the order to call them."""

    name: str
    relation: str
    phone: str
    language: str = "zh"
    # A key-holder has a key to the home: the one to send when nobody can open the door.
    key_holder: bool = False

    def __post_init__(self) -> None:
        for name in ("relation", "language"):
            object.__setattr__(self, name, shared(getattr(self, name)))


class KeyResident(StrEnum):
    """Why a resident is a key resident (重点对象), visited regularly and watched more
    closely: "" (``NONE``) for a resident who is not."""

    NONE = ""
    LIVING_ALONE = "living_alone"  # 独居
    DISABLED = "disabled"  # 失能、残疾
    RECENTLY_DISCHARGED = "recently_discharged"  # 近期出院
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Resident:
    id: str
    name: str
    birth_date: date
    address: str
    community_id: str
    device_id: str  # "" while no device serves her (the registry's devices)
    phone: str | None = None
    contacts: tuple[Contact, ...] = ()
    # Notes for the operator's screen only, never for SMS (they may hold medical and
    # access details alike, so they are shown only to a role that may see both).
    notes: str = ""
    # The rest is optional: a resident record with only the fields above still works.
    sex: str = ""  # "F", "M" or "" (not recorded)
    id_card: str = ""  # 身份证号: stored whole, shown masked (see mask_id_card)
    building: str = ""  # 楼/号
    unit: str = ""  # 单元
    room: str = ""  # 室
    mobile: str | None = None  # the resident's own mobile, beside the home phone
    language: str = "zh"
    # Medical (shown only to roles that may see medical details, never by SMS).
    conditions: str = ""
    medication: str = ""
    mobility: str = ""  # how she moves: what a responder must know to help her up
    # Access (shown only to roles that may see access details): the key safe and door
    # code, and how to get in.
    key_safe: str = ""
    access_notes: str = ""
    key_resident: KeyResident = KeyResident.NONE

    def __post_init__(self) -> None:
        # Held once for all who share them (100,000 residents are held in memory).
        for name in _RESIDENT_SHARED:
            object.__setattr__(self, name, shared(getattr(self, name)))

    @property
    def key_holders(self) -> tuple[Contact, ...]:
        return tuple(c for c in self.contacts if c.key_holder)

    def age_on(self, day: date) -> int:
        before_birthday = (day.month, day.day) < (self.birth_date.month, self.birth_date.day)
        return day.year - self.birth_date.year - before_birthday


# The fields of a resident that many residents have in common.
_RESIDENT_SHARED = (
    "birth_date",
    "community_id",
    "sex",
    "building",
    "unit",
    "language",
    "mobility",
)


def mask_id_card(number: str) -> str:
    """An ID-card number as shown on screens and in exports: the first 6 digits (the
    place of registration) and the last 4, the birth date and sequence hidden."""
    if len(number) <= 10:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


@dataclass(frozen=True)
class Shift:
    """A weekly duty shift: ``staff_id`` is on duty for ``area_id`` on these weekdays.

    ``weekdays`` are ISO numbers (1 Monday .. 7 Sunday) of the day the shift starts;
    a shift whose ``end`` is not after ``start`` runs overnight into the next day,
    and ``start == end`` means a full 24 hours.
    """

    area_id: str
    staff_id: str
    weekdays: frozenset[int]
    start: time
    end: time
    role: str = "primary"


@dataclass(frozen=True)
class Directory:
    areas: dict[str, Area]
    staff: dict[str, Staff]
    residents: dict[str, Resident]
    shifts: tuple[Shift, ...]
    timezone: str = "Asia/Shanghai"
    # The rota file's rotations and schedules (by area id), and the overrides in force:
    # the book is shared and mutable, so overrides made through the API apply at once.
    rotations: dict[str, Rotation] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    overrides: OverrideBook = field(default_factory=OverrideBook, compare=False)
    # Ordered ways to reach a person (staff id or contact:<resident>:<n>), from the
    # optional contact_methods.csv; a person without rows gets SMS then voice.
    contact_methods: dict[str, tuple[ContactMethod, ...]] = field(default_factory=dict)
    residents_by_device: dict[str, Resident] = field(init=False, compare=False)
    staff_by_token: dict[str, Staff] = field(init=False, compare=False)
    # Each area's schedule with the weekly shifts (rota.csv) added as rules for a person.
    schedule_by_area: dict[str, Schedule] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "residents_by_device",
            # A resident whose device was moved or retired has none ("") for now.
            {r.device_id: r for r in self.residents.values() if r.device_id},
        )
        object.__setattr__(
            self, "staff_by_token", {s.api_token: s for s in self.staff.values() if s.api_token}
        )
        merged = dict(self.schedules)
        for shift in self.shifts:
            schedule = merged.get(shift.area_id) or Schedule(shift.area_id, timezone=self.timezone)
            rule = Rule(
                weekdays=shift.weekdays,
                start=shift.start,
                end=shift.end,
                role=shift.role,
                staff_id=shift.staff_id,
                source="weekly shift",
            )
            merged[shift.area_id] = Schedule(
                schedule.area_id, (*schedule.rules, rule), schedule.shifts, schedule.timezone
            )
        object.__setattr__(self, "schedule_by_area", merged)

    @property
    def district(self) -> Area:
        return next(a for a in self.areas.values() if a.level is Level.DISTRICT)

    def chain(self, area_id: str | None) -> list[Area]:
        """The area and its parents up to the district, nearest first.

        An unknown or missing area (an unregistered device) is the district alone.
        """
        out: list[Area] = []
        area = self.areas.get(area_id) if area_id else None
        while area is not None:
            out.append(area)
            area = self.areas.get(area.parent_id) if area.parent_id else None
        if not out or out[-1].level is not Level.DISTRICT:
            out.append(self.district)
        return out
