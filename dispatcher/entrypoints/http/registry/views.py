"""What the registry's API answers with: the records as the caller may see them.

A resident's ID-card number is shown masked; her medical details (conditions,
medication, mobility) and access details (key safe, access notes) are withheld from
a role that may not see them, as on a call's page (``redacted`` names the groups
withheld, whether or not they held anything). A staff member's API token is never
shown: ``has_api_token`` says whether one is set.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

from dispatcher.core import scope
from dispatcher.core.directory import Staff, mask_id_card
from dispatcher.core.registry.audit import AuditEntry
from dispatcher.core.registry.records import (
    Assignment,
    Device,
    MethodFields,
    ResidentFields,
    StaffFields,
)
from dispatcher.services.operations import ACCESS_FIELDS, MEDICAL_FIELDS


class ContactOut(BaseModel):
    order: int
    name: str
    relation: str
    phone: str
    language: str
    key_holder: bool
    contact_methods: list[MethodFields]


class ResidentOut(BaseModel):
    id: str
    name: str
    birth_date: date
    address: str
    community_id: str
    building: str
    unit: str
    room: str
    phone: str | None
    mobile: str | None
    sex: str
    id_card_masked: str
    language: str
    key_resident: str
    device_id: str | None
    contacts: list[ContactOut]
    notes: str
    conditions: str
    medication: str
    mobility: str
    key_safe: str
    access_notes: str
    redacted: list[str]


def resident_out(r: ResidentFields, device_id: str | None, viewer: Staff) -> ResidentOut:
    medical, access = scope.may_see_medical(viewer), scope.may_see_access(viewer)
    redacted = [
        *([] if medical and access else ["notes"]),
        *([] if medical else list(MEDICAL_FIELDS)),
        *([] if access else list(ACCESS_FIELDS)),
    ]
    values: dict[str, Any] = r.model_dump(exclude={"id_card", "contacts"})
    for name in redacted:
        values[name] = ""
    return ResidentOut(
        **values,
        id_card_masked=mask_id_card(r.id_card) if r.id_card else "",
        device_id=device_id,
        contacts=[ContactOut(order=n, **c.model_dump()) for n, c in enumerate(r.contacts, start=1)],
        redacted=redacted,
    )


class StaffOut(BaseModel):
    id: str
    name: str
    phone: str | None
    area_id: str
    role: str
    language: str
    has_api_token: bool
    contact_methods: list[MethodFields]


def staff_out(s: StaffFields) -> StaffOut:
    values = s.model_dump(exclude={"api_token"})
    return StaffOut(**values, has_api_token=s.api_token is not None)


class AssignmentOut(BaseModel):
    resident_id: str
    start: datetime
    end: datetime | None
    by: str


class DeviceOut(BaseModel):
    id: str
    model: str
    firmware: str
    installed_on: date | None
    installed_by: str
    resident_id: str | None
    notes: str
    retired_at: datetime | None
    history: list[AssignmentOut] | None = None  # on GET /devices/{id} only


def device_out(d: Device, history: list[Assignment] | None = None) -> DeviceOut:
    return DeviceOut(
        **d.fields.model_dump(),
        retired_at=d.retired_at,
        history=None
        if history is None
        else [
            AssignmentOut(resident_id=a.resident_id, start=a.start, end=a.end, by=a.by)
            for a in history
        ],
    )


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    kind: str
    record_id: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def audit_out(e: AuditEntry, viewer: Staff) -> AuditOut:
    return AuditOut(
        id=e.id,
        at=e.at,
        actor=e.actor,
        kind=e.kind,
        record_id=e.record_id,
        action=e.action,
        before=_withheld(e.before, viewer),
        after=_withheld(e.after, viewer),
    )


def _withheld(values: dict[str, Any] | None, viewer: Staff) -> dict[str, Any] | None:
    """A resident's medical and access details stay off the screen of a role that may
    not see them, in the audit as everywhere."""
    if values is None:
        return None
    hidden = set()
    if not scope.may_see_medical(viewer):
        hidden |= {*MEDICAL_FIELDS, "notes"}
    if not scope.may_see_access(viewer):
        hidden |= {*ACCESS_FIELDS, "notes"}
    return {k: ("" if k in hidden and v else v) for k, v in values.items()}
