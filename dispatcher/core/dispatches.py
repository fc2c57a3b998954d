"""Sending a responder to a call: who goes, when they are expected, whether they came.

An operator dispatches a responder (a staff member of the call's area, one of the
resident's contacts or key-holders, an emergency service 120/110/119, or someone
else with a name and phone) with an expected arrival. The dispatch is on the way
until someone marks it arrived (an operator, or the device's presence key, which
marks the earliest dispatch of a person on the way) or stands it down.

A dispatch not arrived by its expected time is **overdue**: its due time is a
column, polled by the escalator's cycle like the escalation steps (so a restart
loses none), and fires once. The call is then *raised again*. Its state is not
changed: the call keeps its owner (首问负责) and its acknowledgement timeout, and an
overdue responder is not a reason to restart the escalation from the hotline (who
would be told of a call that someone already holds and is handling). Instead the
call goes back to the top of the live queue as needing attention
(``needs_attention``), its owner is sent an SMS, and the timeline says so. Marking
the responder arrived, or standing them down, ends it.

Pure code: it takes ``now`` and returns timeline entries for the service to store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from dispatcher.core import calls as lifecycle
from dispatcher.core.calls import Call, CallState, InvalidTransitionError, Transition
from dispatcher.core.directory import Directory, Resident
from dispatcher.core.messages import kind_name
from dispatcher.core.scope import can_see
from dispatcher.core.texts import text

# How soon a responder may be expected, in minutes: an expected time outside it is a
# typing error (0, or 600 for 60), not a plan.
MIN_ETA_MIN = 1
MAX_ETA_MIN = 240


class ResponderKind(StrEnum):
    STAFF = "staff"  # a staff member, by id, who can see the call's community
    CONTACT = "contact"  # one of the resident's contacts or key-holders, by order
    SERVICE = "service"  # 120 (ambulance), 110 (police), 119 (fire): phoned by the operator
    OTHER = "other"  # anyone else, with a name and a phone


class DispatchState(StrEnum):
    ON_THE_WAY = "on_the_way"
    OVERDUE = "overdue"  # on the way still, past the expected time: the call was raised
    ARRIVED = "arrived"
    STOOD_DOWN = "stood_down"  # no longer needed (or the call was resolved)


# The emergency services, by number: the operator phones them; no SMS is sent to them.
SERVICES = ("120", "110", "119")
_GOING = frozenset({DispatchState.ON_THE_WAY, DispatchState.OVERDUE})


class InvalidDispatchError(InvalidTransitionError):
    """A dispatch that cannot be made or changed (an unknown responder, a time out of
    bounds, a dispatch already arrived)."""


@dataclass(frozen=True)
class Responder:
    kind: ResponderKind
    ref: str  # a staff id, "contact:<resident>:<order>", "120"/"110"/"119", or ""
    name: str
    phone: str | None
    language: str = "zh"

    @property
    def texted(self) -> bool:
        """Whether the responder is told where to go by SMS: a person with a phone
        (an emergency service is phoned by the operator)."""
        return self.kind is not ResponderKind.SERVICE and bool(self.phone)


@dataclass
class Dispatch:
    call_id: str
    number: int  # 1, 2, ... within the call
    responder_kind: ResponderKind
    responder_ref: str
    responder_name: str
    responder_phone: str | None
    dispatched_by: str
    channel: str
    dispatched_at: datetime
    expected_at: datetime
    state: DispatchState = DispatchState.ON_THE_WAY
    # When the poll must raise the call if nobody has arrived; None once it has fired
    # (or the dispatch ended): each dispatch raises its call once.
    overdue_due_at: datetime | None = None
    overdue_at: datetime | None = None
    arrived_at: datetime | None = None
    arrived_by: str | None = None
    ended_at: datetime | None = None  # stood down
    ended_by: str | None = None
    note: str = ""
    # The outbox rows of the SMS telling the responder where to go, and of the one
    # telling the call's owner the responder is overdue (None: none sent).
    notice_id: int | None = None
    alert_id: int | None = None
    id: int | None = None

    @property
    def going(self) -> bool:
        return self.state in _GOING


@dataclass(frozen=True)
class DispatchRequest:
    """What an operator asks for, validated at the edge: ``ref`` is the staff id, the
    contact's order ("1"), the service's number, or "" for ``other``."""

    kind: ResponderKind
    ref: str = ""
    name: str = ""
    phone: str = ""
    eta_minutes: int = 15
    note: str = ""


@dataclass
class Dispatched:
    """A new dispatch and what it did to its call."""

    dispatch: Dispatch
    transition: Transition = field(default_factory=Transition)


def responder_for(directory: Directory, call: Call, request: DispatchRequest) -> Responder:
    """The responder ``request`` names, for ``call``; raises InvalidDispatchError."""
    if request.kind is ResponderKind.STAFF:
        staff = directory.staff.get(request.ref)
        if staff is None:
            raise InvalidDispatchError(f"no staff member {request.ref!r}")
        if not can_see(directory, staff, call.community_id):
            # A responder reads the call (address, timeline) on their own screen.
            raise InvalidDispatchError(f"{staff.name} ({staff.id}) cannot see this call's area")
        return Responder(ResponderKind.STAFF, staff.id, staff.name, staff.phone, staff.language)
    if request.kind is ResponderKind.CONTACT:
        resident = directory.residents.get(call.resident_id or "")
        contacts = resident.contacts if resident else ()
        if not request.ref.isdigit() or not 1 <= int(request.ref) <= len(contacts):
            raise InvalidDispatchError(f"the resident has no contact {request.ref!r}")
        assert resident is not None
        contact = contacts[int(request.ref) - 1]
        ref = f"contact:{resident.id}:{request.ref}"  # as routing and SMS replies name them
        return Responder(ResponderKind.CONTACT, ref, contact.name, contact.phone, contact.language)
    if request.kind is ResponderKind.SERVICE:
        if request.ref not in SERVICES:
            raise InvalidDispatchError(f"not an emergency service: {request.ref!r} (120/110/119)")
        return Responder(ResponderKind.SERVICE, request.ref, request.ref, request.ref)
    name, phone = request.name.strip(), request.phone.strip()
    if not name:
        raise InvalidDispatchError("a responder of kind other needs a name")
    return Responder(ResponderKind.OTHER, "", name, phone or None)


def dispatch(
    call: Call,
    responder: Responder,
    number: int,
    by: str,
    channel: str,
    now: datetime,
    eta_minutes: int,
    note: str = "",
) -> Dispatched:
    """Send ``responder`` to ``call``, expected within ``eta_minutes``. A call nobody
    has taken is taken by whoever dispatches (sending help answers it: 首问负责)."""
    if call.state is CallState.RESOLVED:
        raise InvalidDispatchError(f"call {call.id} is already resolved; cannot dispatch to it")
    if not MIN_ETA_MIN <= eta_minutes <= MAX_ETA_MIN:
        raise InvalidDispatchError(
            f"the expected arrival must be {MIN_ETA_MIN}..{MAX_ETA_MIN} minutes from now"
        )
    t = Transition()
    if call.state in (CallState.OPEN, CallState.CANCELLED):
        t = lifecycle.take(call, by, channel, now)
    expected = now + timedelta(minutes=eta_minutes)
    d = Dispatch(
        call_id=call.id,
        number=number,
        responder_kind=responder.kind,
        responder_ref=responder.ref,
        responder_name=responder.name,
        responder_phone=responder.phone,
        dispatched_by=by,
        channel=channel,
        dispatched_at=now,
        expected_at=expected,
        overdue_due_at=expected,
        note=note.strip(),
    )
    call.updated_at = now
    detail = f"#{number} {_label(responder)}, expected within {eta_minutes} min"
    if responder.kind is ResponderKind.SERVICE:
        detail += f" (phoned {responder.ref})"
    t.note(now, by, "dispatched", channel, detail + (f": {d.note}" if d.note else ""))
    return Dispatched(d, t)


def mark_arrived(d: Dispatch, call: Call, by: str, channel: str, now: datetime) -> Transition:
    """An operator says the responder has arrived: the call has a responder on site
    (as the presence key would say), escalation and the acknowledgement timeout stop."""
    _require_going(d, "mark arrived")
    if call.state is CallState.RESOLVED:
        raise InvalidDispatchError(f"call {call.id} is already resolved")
    _arrived(d, by, now)
    return lifecycle.presence(call, now, by, channel, f"#{d.number} {d.responder_name} arrived")


def on_presence(dispatches: Iterable[Dispatch], now: datetime) -> Dispatch | None:
    """The presence key was pressed at the home: the earliest dispatch of a person
    still on the way (a staff member, contact or other; an emergency service's crew
    does not know the key, so one is taken only when no person is on the way) is
    marked arrived. Returns it, or None when nobody was on the way."""
    going = sorted((d for d in dispatches if d.going), key=lambda d: d.number)
    people = [d for d in going if d.responder_kind is not ResponderKind.SERVICE]
    candidates = people or going
    if not candidates:
        return None
    _arrived(candidates[0], "device", now)
    return candidates[0]


def presence_note(d: Dispatch, now: datetime) -> lifecycle.TimelineEntry:
    return lifecycle.TimelineEntry(
        now, "device", "dispatch_arrived", "mqtt", f"#{d.number} {d.responder_name}", d.call_id
    )


def stand_down(
    d: Dispatch, by: str, channel: str, now: datetime, note: str = ""
) -> lifecycle.TimelineEntry:
    """The responder is no longer needed: no longer expected, nothing raised."""
    _require_going(d, "stand down")
    d.state = DispatchState.STOOD_DOWN
    d.ended_at, d.ended_by = now, by
    d.overdue_due_at = None
    detail = f"#{d.number} {d.responder_name}" + (f": {note.strip()}" if note.strip() else "")
    return lifecycle.TimelineEntry(now, by, "stood_down", channel, detail, d.call_id)


def take_overdue(d: Dispatch, call: Call, now: datetime) -> lifecycle.TimelineEntry | None:
    """If ``d`` is due and nobody has arrived: overdue, once (its due time is cleared);
    the entry for the call's timeline, or None. A dispatch whose call was resolved is
    stood down instead, by the system, without raising anything."""
    if d.overdue_due_at is None or d.overdue_due_at > now:
        return None
    d.overdue_due_at = None
    if not d.going:
        return None
    if call.state is CallState.RESOLVED:
        d.state = DispatchState.STOOD_DOWN
        d.ended_at, d.ended_by = now, "system"
        return None
    d.state = DispatchState.OVERDUE
    d.overdue_at = now
    call.updated_at = now
    late = int((now - d.expected_at).total_seconds() // 60)
    detail = f"#{d.number} {d.responder_name} not arrived, expected {late} min ago"
    return lifecycle.TimelineEntry(now, "system", "responder_overdue", "system", detail, call.id)


def needs_attention(dispatches: Sequence[Dispatch] | Sequence[str]) -> bool:
    """Whether any of the call's dispatches (or their states) is overdue."""
    return any(_state(d) is DispatchState.OVERDUE for d in dispatches)


def summary(states: Iterable[str]) -> str | None:
    """What the live queue's row says of the call's responders: ``overdue`` before
    ``on_the_way`` before ``arrived``; None when none was dispatched or all stood down."""
    seen = {DispatchState(s) for s in states}
    for state in (DispatchState.OVERDUE, DispatchState.ON_THE_WAY, DispatchState.ARRIVED):
        if state in seen:
            return state.value
    return None


def owner_of(call: Call, d: Dispatch) -> str:
    """Who is told that a responder is overdue: the call's holder, else the dispatcher."""
    return call.held_by or call.acknowledged_by or d.dispatched_by


def _state(d: Dispatch | str) -> DispatchState:
    return d.state if isinstance(d, Dispatch) else DispatchState(d)


def _arrived(d: Dispatch, by: str, now: datetime) -> None:
    d.state = DispatchState.ARRIVED
    d.arrived_at, d.arrived_by = now, by
    d.overdue_due_at = None


def _require_going(d: Dispatch, what: str) -> None:
    if not d.going:
        raise InvalidDispatchError(f"dispatch #{d.number} is {d.state.value}; cannot {what} it")


def _label(r: Responder) -> str:
    if r.kind is ResponderKind.SERVICE:
        return r.ref
    who = f"{r.name} ({r.ref})" if r.ref and r.kind is ResponderKind.STAFF else r.name
    return f"{r.kind.value} {who}" + (f" {r.phone}" if r.phone else "")


def notice_sms(
    call: Call,
    resident: Resident | None,
    directory: Directory,
    d: Dispatch,
    language: str,
    by_name: str,
) -> str:
    """The SMS telling a responder where to go: the resident's name and address, what
    happened, who sent them and by when. Never the resident's notes (medical, key safe)."""
    if resident is None:
        where = text(language, "console.dispatch.sms_unknown_place", device=call.device_id)
    else:
        community = directory.areas.get(resident.community_id)
        place = f"{community.name} {resident.address}" if community else resident.address
        where = text(language, "console.dispatch.sms_place", name=resident.name, place=place)
    return text(
        language,
        "console.dispatch.sms_notice",
        call_id=call.id,
        kind=kind_name(language, call.kind),
        where=where,
        by=by_name,
        minutes=max(int((d.expected_at - d.dispatched_at).total_seconds() // 60), 0),
    )


def overdue_sms(call: Call, resident: Resident | None, d: Dispatch, language: str) -> str:
    """The SMS telling the call's owner that a responder has not arrived."""
    name = resident.name if resident is not None else call.device_id
    return text(
        language,
        "console.dispatch.sms_overdue",
        call_id=call.id,
        resident=name,
        responder=d.responder_name,
        number=d.number,
    )
