"""The hand-over sheet for the emergency services: one page an ambulance crew takes
to the door, with the address, how to get in, the resident's conditions and
medication, whom to call, and what has happened so far (what the crews did not have
in the Birkenhead and Mavis Reeves cases).

Built from a call's view as its viewer may see it (``CallOperations.get_call``
withholds by role, ``dispatcher.core.scope``), so the sheet withholds exactly what the
call page does: the console's page and the API's JSON are this one object.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from dispatcher.core.directory import Staff
from dispatcher.services.read_models import (
    CallView,
    HandoverSheetView,
    SheetEventView,
    StaffView,
    TimelineEntryView,
)

PRINTED = "handover_sheet_printed"

# The timeline's message traffic (each SMS queued, sent, delivered, retried) says
# nothing a crew at the door can use; everything else is what happened.
_TRAFFIC = ("sms_", "notify_", "delivery_", "call_placed", "machine_answered", PRINTED)


def build_sheet(
    call: CallView,
    staff: Mapping[str, Staff],
    printed_by: str,
    channel: str,
    now: datetime,
) -> HandoverSheetView:
    """The sheet of ``call`` (a view with its timeline), printed by the staff member
    ``printed_by`` at ``now`` through ``channel``; ``staff`` names the people in it."""
    resident = call.resident
    redacted = set(resident.redacted) if resident else set()
    holder_id = call.held_by or call.acknowledged_by
    holder = staff.get(holder_id or "")
    return HandoverSheetView(
        call_id=call.call_id,
        kind=call.kind,
        state=call.state,
        opened_at=call.opened_at,
        device_id=call.device_id,
        unknown_device=call.unknown_device,
        resident=resident,
        key_holders=[c for c in resident.contacts if c.key_holder] if resident else [],
        access_withheld="key_safe" in redacted,
        medical_withheld="medication" in redacted,
        holder=(
            StaffView(id=holder.id, name=holder.name, phone=holder.phone, role=holder.role.value)
            if holder
            else None
        ),
        events=[_event(e, staff) for e in call.timeline if not e.action.startswith(_TRAFFIC)],
        printed_at=now,
        printed_by=printed_by,
        printed_by_name=staff[printed_by].name if printed_by in staff else printed_by,
        channel=channel,
    )


def _event(entry: TimelineEntryView, staff: Mapping[str, Staff]) -> SheetEventView:
    person = staff.get(entry.actor)
    return SheetEventView(
        at=entry.at,
        actor=entry.actor,
        actor_name=person.name if person else entry.actor,
        action=entry.action,
        detail=entry.detail,
    )
