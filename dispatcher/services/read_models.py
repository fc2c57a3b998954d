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
    timeline: list[TimelineEntryView] = Field(default_factory=list)
    notifications: list[NotificationView] = Field(default_factory=list)


class StaffView(BaseModel):
    id: str
    name: str
    phone: str | None
    role: str
    shift_role: str = "primary"


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
