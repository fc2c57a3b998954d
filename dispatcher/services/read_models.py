"""What operators see of calls and of the duty rota: the read models of the service layer.

These are the shapes the REST API returns and the CLI prints, and the ``Operations``
protocol that serves them. They are built by ``dispatcher.services`` from the
database; nothing here does I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field

from dispatcher.core.calls import Outcome
from dispatcher.core.directory import Staff
from dispatcher.core.dispatches import DispatchRequest
from dispatcher.core.reports import AnswerTimes
from dispatcher.services.call_protocols import CallProtocolsView


class TimelineEntryView(BaseModel):
    at: datetime
    actor: str  # "device", "system", a staff id, or a phone number
    action: str  # "opened", "joined", "escalated", "sms_queued", "acknowledged", ...
    channel: str  # "mqtt", "api", "cli", "sms", "system"
    detail: str = ""


class NotificationView(BaseModel):
    id: int
    recipient: str  # a staff id, or "contact:<name>" for a resident's contact
    to_number: str
    step: int
    channel: str = "sms"  # "sms" or "voice"
    status: str  # pending, sending, sent, delivered, failed, cancelled
    provider_sid: str | None = None
    provider_status: str | None = None  # Twilio's status, e.g. "queued"
    attempts: int = 0
    error: str | None = None
    error_code: int | None = None  # Twilio's ErrorCode from a delivery report
    answered_by: str | None = None  # a voice call's AnsweredBy (human, machine_...)
    created_at: datetime
    sent_at: datetime | None = None


class ContactView(BaseModel):
    name: str
    relation: str
    phone: str
    key_holder: bool = False


class ResidentView(BaseModel):
    id: str
    name: str
    age: int
    address: str
    community_id: str
    community_name: str
    phone: str | None = None
    notes: str = ""  # medical and access (key-safe) notes: "" when withheld
    contacts: list[ContactView] = Field(default_factory=list)
    sex: str = ""
    id_card_masked: str = ""  # never the whole number
    building: str = ""
    unit: str = ""
    room: str = ""
    mobile: str | None = None
    language: str = "zh"
    key_resident: str = ""  # why she is a key resident (重点对象), "" if not
    # Medical: "" when withheld.
    conditions: str = ""
    medication: str = ""
    mobility: str = ""
    # Access: "" when withheld.
    key_safe: str = ""
    access_notes: str = ""
    # The fields withheld from the viewer's role, so that a page can say "withheld for
    # your role" rather than show nothing (see dispatcher.core.scope).
    redacted: list[str] = Field(default_factory=list)


class DispatchView(BaseModel):
    """A responder sent to the call (dispatcher.core.dispatches)."""

    number: int  # 1, 2, ... within the call: the routes' {n}
    responder_kind: str  # staff, contact, service, other
    responder_ref: str  # a staff id, "contact:<resident>:<order>", "120"/"110"/"119", ""
    responder_name: str
    responder_phone: str | None = None
    dispatched_by: str
    channel: str
    dispatched_at: datetime
    expected_at: datetime
    state: str  # on_the_way, overdue, arrived, stood_down
    overdue_at: datetime | None = None  # when the call was raised again for it
    arrived_at: datetime | None = None
    arrived_by: str | None = None  # a staff id, or "device" (the presence key)
    ended_at: datetime | None = None
    ended_by: str | None = None
    note: str = ""
    # The SMS telling the responder where to go, and the one telling the call's owner
    # the responder is overdue: the outbox row's status (None: none sent; the list of
    # calls leaves them out).
    notice_status: str | None = None
    alert_status: str | None = None


class DispatchChoice(BaseModel):
    """Someone the operator may send: ``kind`` and ``ref`` are what to post."""

    kind: str  # staff, contact, service
    ref: str  # a staff id, the contact's order ("1"), "120"/"110"/"119"
    name: str
    detail: str = ""  # the staff member's area, the contact's relation
    phone: str | None = None
    key_holder: bool = False


class DeviceAlertView(BaseModel):
    """An open technical alert of a device (a call of kind ``technical``)."""

    call_id: str
    alert: str  # battery_low, power_lost, heartbeat_missed, offline, ...
    detail: str = ""
    opened_at: datetime


class DeviceView(BaseModel):
    """The device's link as the dispatcher knows it at ``as_of``: the stored link with
    any contact still held in memory (heartbeats are written in batches) over it."""

    device_id: str
    status: str  # online, offline, or unknown (never heard from)
    battery: int | None = None  # percent, as the device last said
    last_seen_at: datetime | None = None  # its last message of any kind
    as_of: datetime  # when this was read
    alerts: list[DeviceAlertView] = Field(default_factory=list)


class CallView(BaseModel):
    call_id: str
    device_id: str
    kind: str  # emergency, fall, service, technical
    priority: str  # critical, normal, technical
    state: str  # open, acknowledged, responder_on_site, cancelled, resolved
    opened_at: datetime
    unknown_device: bool
    press_count: int
    community_id: str | None = None  # the call's community, as stored when it opened
    resident: ResidentView | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    outcome: str | None = None
    note: str | None = None
    escalation_step: int = 0
    next_escalation_at: datetime | None = None
    detail: str = ""  # technical alerts: what is wrong with the device
    # The escalation policy copied onto the call, and its acknowledgement timeout:
    # who holds the call and when it next escalates for want of a resolve.
    policy: str = ""
    held_by: str | None = None
    next_ack_escalation_at: datetime | None = None
    # The supervisor watchdog: when the shift supervisor was first paged because nobody
    # had taken the call (None: not paged), and how many pages went.
    watchdog_paged_at: datetime | None = None
    watchdog_pages: int = 0
    timeline: list[TimelineEntryView] = Field(default_factory=list)
    notifications: list[NotificationView] = Field(default_factory=list)
    dispatches: list[DispatchView] = Field(default_factory=list)  # responders sent
    device: DeviceView | None = None  # one call's view only (not in lists)


class StaffView(BaseModel):
    id: str
    name: str
    phone: str | None
    role: str
    shift_role: str = "primary"


class SheetEventView(BaseModel):
    """A line of "what has happened so far" on the hand-over sheet."""

    at: datetime
    actor: str  # as on the timeline
    actor_name: str  # a staff member's name, else the actor as it is
    action: str
    detail: str = ""


class HandoverSheetView(BaseModel):
    """The hand-over sheet for the emergency services (an ambulance crew, the police):
    where, how to get in, who she is and what she takes, whom to call, and what has
    happened. Built for one viewer: what their role may not see is empty, and
    ``access_withheld``/``medical_withheld`` say so (``dispatcher.core.scope``)."""

    call_id: str
    kind: str
    state: str
    opened_at: datetime
    device_id: str
    unknown_device: bool = False
    resident: ResidentView | None = None
    key_holders: list[ContactView] = Field(default_factory=list)
    access_withheld: bool = False  # key safe, door code, access notes
    medical_withheld: bool = False  # conditions, medication, mobility, notes
    holder: StaffView | None = None  # who has the call: the crew's number to call back
    events: list[SheetEventView] = Field(default_factory=list)
    printed_at: datetime
    printed_by: str  # a staff id
    printed_by_name: str
    channel: str  # console, api, cli


class OnDutyView(BaseModel):
    """Who answers for an area now, and at which level that answer was found."""

    area_id: str  # the area asked about
    area_name: str
    found_at_area_id: str
    found_at_level: str  # community, street or district
    staff: list[StaffView]
    found_at_area_name: str = ""


class OverrideView(BaseModel):
    """A change to an area's rota for a period (see dispatcher.core.rota.model)."""

    id: str
    area_id: str
    kind: str  # replace, add, remove
    staff_id: str  # who takes the duty, is added, or is off
    replaces: str | None = None  # replace: whose duty
    role: str | None = None
    start: datetime
    end: datetime
    reason: str = ""
    created_by: str  # a staff id (API), or the rota file's name
    source: str  # "api" (can be deleted through the API) or "file"


class CallNotFoundError(LookupError):
    pass


class Operations(Protocol):
    """The operator-facing service layer, as the API and the CLI use it."""

    def staff_for_token(self, token: str) -> Staff | None: ...

    # ``viewer``: the staff member asking. Given, only the calls of their area and
    # below are there (another's is a CallNotFoundError, as a missing call is), and
    # what their role may not see is withheld (``ResidentView.redacted``); see
    # dispatcher.core.scope. ``None`` is the system itself: every call, in full.

    async def list_calls(
        self, state: str | None = None, viewer: Staff | None = None
    ) -> list[CallView]:
        """Calls in a state; ``None`` or ``"active"`` means every call not yet resolved,
        ``"all"`` every call. Newest first; timeline and notifications left empty."""
        ...

    async def get_call(self, call_id: str, viewer: Staff | None = None) -> CallView:
        """One call with its timeline and notifications. Raises CallNotFoundError."""
        ...

    async def acknowledge(
        self,
        call_id: str,
        staff_id: str,
        channel: str,
        note: str = "",
        *,
        viewer: Staff | None = None,
    ) -> CallView:
        """Raises CallNotFoundError, InvalidTransitionError (already resolved)."""
        ...

    async def add_note(
        self, call_id: str, staff_id: str, channel: str, text: str, *, viewer: Staff | None = None
    ) -> CallView: ...

    async def hand_over(
        self,
        call_id: str,
        staff_id: str,
        to_staff_id: str,
        channel: str,
        note: str = "",
        *,
        viewer: Staff | None = None,
    ) -> CallView:
        """Raises CallNotFoundError, AlreadyTakenError (not the owner), InvalidTransitionError."""
        ...

    async def escalate_now(
        self, call_id: str, staff_id: str, channel: str, *, viewer: Staff | None = None
    ) -> CallView: ...

    async def take(
        self, call_id: str, staff_id: str, channel: str, *, viewer: Staff | None = None
    ) -> CallView:
        """Acknowledge as the call's owner (首问负责). Raises CallNotFoundError,
        AlreadyTakenError (someone else holds it), InvalidTransitionError."""
        ...

    async def resolve(
        self,
        call_id: str,
        staff_id: str,
        channel: str,
        outcome: Outcome,
        note: str = "",
        *,
        viewer: Staff | None = None,
    ) -> CallView:
        """Raises CallNotFoundError, InvalidTransitionError (already resolved)."""
        ...

    async def handover_sheet(
        self, call_id: str, staff_id: str, channel: str, *, viewer: Staff | None = None
    ) -> HandoverSheetView:
        """The call's hand-over sheet for the emergency services, as ``viewer`` may see
        it; its printing goes on the call's timeline (``handover_sheet_printed``).
        Raises CallNotFoundError."""
        ...

    async def on_duty(
        self, at: datetime | None = None, community_id: str | None = None
    ) -> list[OnDutyView]:
        """Who is on duty at ``at`` (default now) for one community, or for every
        community and the command centre when none is given."""
        ...

    async def answer_times(self, since: datetime, until: datetime | None = None) -> AnswerTimes:
        """Answer-time figures of the calls opened in ``[since, until)`` (``until``
        defaults to now; a naive time is in the data's time zone). Raises ValueError
        when ``since`` is not before ``until``. See ``dispatcher.core.reports``."""
        ...

    # Dispatching responders (dispatcher.core.dispatches; dispatcher.services.dispatches).
    # Each raises CallNotFoundError (outside the viewer's area too) and
    # InvalidTransitionError (InvalidDispatchError: an unknown responder, a time out of
    # bounds, a dispatch already ended, a resolved call).

    async def call_protocols(
        self, call_id: str, viewer: Staff | None = None, language: str = "zh"
    ) -> CallProtocolsView:
        """The protocols of the call's kind with the answers so far, texts in
        ``language``. Raises CallNotFoundError."""
        ...

    async def choose_protocol(
        self,
        call_id: str,
        staff_id: str,
        channel: str,
        situation: str,
        *,
        viewer: Staff | None = None,
        language: str = "zh",
    ) -> CallProtocolsView:
        """The operator picks the situation (``emergency.silent``'s ``silent``). Raises
        CallNotFoundError, ProtocolAnswerError (no such situation for the call's kind),
        InvalidTransitionError (resolved)."""
        ...

    async def answer_protocol_step(
        self,
        call_id: str,
        staff_id: str,
        channel: str,
        protocol_id: str,
        step_id: str,
        answer: str,
        note: str = "",
        *,
        viewer: Staff | None = None,
        language: str = "zh",
    ) -> CallProtocolsView:
        """An answer to one step, on the timeline under ``staff_id`` and ``channel``.
        Raises CallNotFoundError, ProtocolAnswerError (unknown protocol, step or
        answer: nothing stored), InvalidTransitionError (resolved)."""
        ...

    async def dispatch(
        self,
        call_id: str,
        staff_id: str,
        channel: str,
        request: DispatchRequest,
        *,
        viewer: Staff | None = None,
    ) -> CallView:
        """Send a responder; a call nobody has taken is taken by the dispatcher."""
        ...

    async def mark_arrived(
        self, call_id: str, number: int, staff_id: str, channel: str, *, viewer: Staff | None = None
    ) -> CallView: ...

    async def stand_down(
        self,
        call_id: str,
        number: int,
        staff_id: str,
        channel: str,
        note: str = "",
        *,
        viewer: Staff | None = None,
    ) -> CallView: ...

    async def dispatch_choices(
        self, call_id: str, *, viewer: Staff | None = None
    ) -> list[DispatchChoice]:
        """Whom the call's page offers to send: the staff of its community and street,
        the resident's contacts (key-holders marked), the emergency services."""
        ...
