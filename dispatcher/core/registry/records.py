"""The registry's records as their fields: one pydantic model per kind of record,
built on the same field validators as the data folder's CSV files
(``dispatcher.core.fields``), and the conversions to and from the directory's
dataclasses, which routing, scope and the screens read.

A change is checked field by field by validating the whole record again (the
record as it stands with the change applied), so a patch and a create are held to
the same rules and an error names the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from dispatcher.core.contact_methods import Channel, ContactMethod
from dispatcher.core.directory import Area, Contact, KeyResident, Resident, Staff
from dispatcher.core.fields import (
    ADate,
    DeviceId,
    IdCard,
    Ident,
    KeyResidentField,
    Language,
    LevelField,
    OptDate,
    OptIdent,
    OptPhone,
    OptText,
    Phone,
    RoleField,
    Sex,
    Text,
    Token,
    YesNo,
    choice,
)
from dispatcher.core.shared_values import shared

Kind = Literal["area", "staff", "resident", "device", "provider"]
KINDS: tuple[Kind, ...] = ("area", "staff", "resident", "device", "provider")
MAX_CONTACTS = 20
MAX_METHODS = 10


class _Fields(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MethodFields(_Fields):
    """One way to reach a person, in order: an SMS or a voice call to a number."""

    kind: Annotated[str, AfterValidator(choice(c.value for c in Channel))]
    number: Phone


Methods = Annotated[list[MethodFields], Field(max_length=MAX_METHODS)]


class ContactFields(_Fields):
    """An emergency contact or key-holder; a resident's contacts are called in order."""

    name: Text
    relation: Text
    phone: Phone
    language: Language = "zh"
    key_holder: YesNo = False
    contact_methods: Methods = []


class AreaFields(_Fields):
    id: Ident
    level: LevelField
    name: Text
    parent_id: OptIdent = None


class StaffFields(_Fields):
    id: Ident
    name: Text
    phone: OptPhone = None
    area_id: Ident
    role: RoleField
    language: Language = "zh"
    api_token: Token = None  # never shown, never in the audit
    contact_methods: Methods = []


class ResidentFields(_Fields):
    id: Ident
    name: Text
    birth_date: ADate
    address: Text
    community_id: Ident
    phone: OptPhone = None
    mobile: OptPhone = None
    notes: OptText = ""
    sex: Sex = ""
    id_card: IdCard = ""
    building: OptText = ""
    unit: OptText = ""
    room: OptText = ""
    language: Language = "zh"
    conditions: OptText = ""
    medication: OptText = ""
    mobility: OptText = ""
    key_safe: OptText = ""
    access_notes: OptText = ""
    key_resident: KeyResidentField = KeyResident.NONE
    contacts: Annotated[list[ContactFields], Field(max_length=MAX_CONTACTS)] = []


class DeviceFields(_Fields):
    id: DeviceId
    model: OptText = ""
    firmware: OptText = ""
    installed_on: OptDate = None
    installed_by: OptText = ""  # a staff id or the installer's name
    resident_id: OptIdent = None  # the resident it serves; None: in stock
    notes: OptText = ""


class ProviderFields(_Fields):
    """A service provider the centre sends (meals, cleaning, home nursing, a locksmith)."""

    id: Ident
    name: Text
    service: Text
    phone: OptPhone = None
    area_id: Ident  # the area it serves, and whose supervisors manage it
    contact: OptText = ""
    notes: OptText = ""


# What the directory's dataclasses do not carry: devices and providers.


_DEVICE_NAMES = tuple(DeviceFields.model_fields)
# Shared by every device's fields, never changed (a model_copy copies it first).
_DEVICE_FIELDS_SET = set(_DEVICE_NAMES)
_RESIDENT_AT = _DEVICE_NAMES.index("resident_id")
# The fields many devices have in common (see dispatcher.core.shared_values).
_DEVICE_SHARED = frozenset({"model", "firmware", "installed_on", "installed_by"})


class Device:
    """A registered device: its fields, and since when it is retired (None: in service).

    Compact on purpose: the registry holds every device in memory (100,000 of them), so
    a device keeps its values as one tuple, and ``fields`` is made when asked for."""

    __slots__ = ("_values", "retired_at")
    _values: tuple[Any, ...]
    retired_at: datetime | None

    def __init__(self, fields: DeviceFields, retired_at: datetime | None = None) -> None:
        values = tuple(
            shared(getattr(fields, n)) if n in _DEVICE_SHARED else getattr(fields, n)
            for n in _DEVICE_NAMES
        )
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "retired_at", retired_at)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a Device is frozen: {name} cannot be set")

    @property
    def fields(self) -> DeviceFields:
        values = dict(zip(_DEVICE_NAMES, self._values, strict=True))
        return DeviceFields.model_construct(_DEVICE_FIELDS_SET, **values)

    @property
    def id(self) -> str:
        return str(self._values[0])

    @property
    def resident_id(self) -> str | None:
        found = self._values[_RESIDENT_AT]
        return None if found is None else str(found)

    @property
    def active(self) -> bool:
        return self.retired_at is None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Device):
            return NotImplemented
        return (self._values, self.retired_at) == (other._values, other.retired_at)

    def __hash__(self) -> int:
        return hash((self._values, self.retired_at))

    def __repr__(self) -> str:
        return f"Device({self.fields!r}, retired_at={self.retired_at!r})"


@dataclass(frozen=True)
class Assignment:
    """A stretch of a device's history: it served ``resident_id`` from ``start`` until
    ``end`` (None: it still does)."""

    device_id: str
    resident_id: str
    start: datetime
    end: datetime | None
    by: str


# --- the directory's dataclasses and back -----------------------------------------------


def methods_of(fields: list[MethodFields]) -> tuple[ContactMethod, ...]:
    return tuple(ContactMethod(n, Channel(m.kind), m.number) for n, m in enumerate(fields, start=1))


def method_fields(methods: tuple[ContactMethod, ...]) -> list[MethodFields]:
    return [MethodFields(kind=m.kind.value, number=m.number) for m in methods]


def to_area(f: AreaFields) -> Area:
    return Area(id=f.id, level=f.level, name=f.name, parent_id=f.parent_id)


def area_fields(a: Area) -> AreaFields:
    return AreaFields(id=a.id, level=a.level, name=a.name, parent_id=a.parent_id)


def to_staff(f: StaffFields) -> Staff:
    return Staff(
        id=f.id,
        name=f.name,
        phone=f.phone,
        area_id=f.area_id,
        role=f.role,
        language=f.language,
        api_token=f.api_token,
    )


def staff_fields(s: Staff, methods: tuple[ContactMethod, ...] = ()) -> StaffFields:
    return StaffFields(
        id=s.id,
        name=s.name,
        phone=s.phone,
        area_id=s.area_id,
        role=s.role,
        language=s.language,
        api_token=s.api_token,
        contact_methods=method_fields(methods),
    )


_RESIDENT_SCALARS = (
    "name",
    "birth_date",
    "address",
    "phone",
    "mobile",
    "notes",
    "sex",
    "id_card",
    "building",
    "unit",
    "room",
    "language",
    "conditions",
    "medication",
    "mobility",
    "key_safe",
    "access_notes",
    "key_resident",
)


def to_resident(f: ResidentFields, device_id: str = "") -> Resident:
    """The directory's resident; ``device_id`` is the device serving her ("" for none)."""
    values: dict[str, Any] = {name: getattr(f, name) for name in _RESIDENT_SCALARS}
    return Resident(
        id=f.id,
        community_id=f.community_id,
        device_id=device_id,
        contacts=tuple(
            Contact(
                name=c.name,
                relation=c.relation,
                phone=c.phone,
                language=c.language,
                key_holder=c.key_holder,
            )
            for c in f.contacts
        ),
        **values,
    )


def resident_fields(
    r: Resident, methods: dict[str, tuple[ContactMethod, ...]] | None = None
) -> ResidentFields:
    """The fields of a directory's resident; ``methods`` the directory's contact methods,
    of which those of her contacts (``contact:<resident>:<n>``) come along."""
    methods = methods or {}
    return ResidentFields(
        id=r.id,
        community_id=r.community_id,
        contacts=[
            ContactFields(
                name=c.name,
                relation=c.relation,
                phone=c.phone,
                language=c.language,
                key_holder=c.key_holder,
                contact_methods=method_fields(methods.get(contact_key(r.id, n), ())),
            )
            for n, c in enumerate(r.contacts, start=1)
        ],
        **{name: getattr(r, name) for name in _RESIDENT_SCALARS},
    )


def contact_key(resident_id: str, order: int) -> str:
    """How routing names a resident's contact (``dispatcher.core.routing``)."""
    return f"contact:{resident_id}:{order}"


def changed(before: BaseModel, changes: dict[str, Any]) -> dict[str, Any]:
    """The record's values with ``changes`` applied, to validate again as a whole."""
    return {**before.model_dump(), **changes}


class FieldError(ValueError):
    """A record's values do not validate: ``field`` names the first bad one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], values: dict[str, Any]) -> M:
    """``values`` as a ``model``, or :class:`FieldError` naming the field (its path,
    e.g. ``contacts.1.phone``) and what is wrong with it, as the data files' loader
    says it."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        if err["type"] == "value_error":
            raise FieldError(where, str(err["ctx"]["error"])) from None
        if err["type"] == "extra_forbidden":
            raise FieldError(where, "is not a field of this record") from None
        raise FieldError(where, err["msg"]) from None
