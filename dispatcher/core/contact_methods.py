"""How a person is reached: their ordered contact methods (SMS or voice, to a number).

A person is a staff member (their staff id) or a resident's emergency contact
(``contact:<resident id>:<order>``, the routing's recipient id). Without rows in the
optional data file ``contact_methods.csv`` a person is reached by SMS then by voice,
both to their phone. A permanent failure of one method moves the notification to the
next one at once. Pure: no I/O here; the file is read by
``dispatcher.adapters.files.directory_files``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Channel(StrEnum):
    SMS = "sms"
    VOICE = "voice"


@dataclass(frozen=True)
class ContactMethod:
    order: int  # 1 is tried first
    kind: Channel
    number: str  # E.164


ContactMethods = Mapping[str, tuple[ContactMethod, ...]]


# What these functions read of ``dispatcher.core.directory.Directory``, as protocols:
# the directory holds contact methods, so this module must not import it back.
class _Phoned(Protocol):
    @property
    def phone(self) -> str | None: ...


class _WithContacts(Protocol):
    @property
    def contacts(self) -> tuple[_Phoned, ...]: ...


class People(Protocol):
    """The directory as far as reaching a person goes: methods, staff, residents."""

    @property
    def contact_methods(self) -> ContactMethods: ...

    @property
    def staff(self) -> Mapping[str, _Phoned]: ...

    @property
    def residents(self) -> Mapping[str, _WithContacts]: ...


def default_methods(phone: str) -> tuple[ContactMethod, ...]:
    return (ContactMethod(1, Channel.SMS, phone), ContactMethod(2, Channel.VOICE, phone))


def methods_for(directory: People, person_id: str, phone: str) -> tuple[ContactMethod, ...]:
    """The person's methods in order: their rows in the data file, else SMS then voice."""
    found = directory.contact_methods.get(person_id)
    return found if found else default_methods(phone)


def first_of_kind(methods: tuple[ContactMethod, ...], kind: Channel) -> ContactMethod | None:
    return next((m for m in methods if m.kind is kind), None)


def next_after(methods: tuple[ContactMethod, ...], order: int) -> ContactMethod | None:
    """The method tried after the one numbered ``order``, or None when none is left."""
    return next((m for m in methods if m.order > order), None)


def person_phone(directory: People, person_id: str) -> str | None:
    """The phone on file for a staff id or a ``contact:<resident>:<n>`` id."""
    if person_id.startswith("contact:"):
        resident_id, _, number = person_id.removeprefix("contact:").rpartition(":")
        resident = directory.residents.get(resident_id)
        if resident is None or not number.isdigit():
            return None
        index = int(number) - 1
        return resident.contacts[index].phone if 0 <= index < len(resident.contacts) else None
    staff = directory.staff.get(person_id)
    return staff.phone if staff is not None else None
