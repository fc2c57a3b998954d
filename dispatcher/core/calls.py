"""The call's lifecycle: pure code that takes ``now`` and says what happened.

A call opens on a resident's press (or a device fault), escalates step by step
while nobody acknowledges, and stays in the operators' queue until an operator
resolves it. Each transition mutates the :class:`Call` and returns a
:class:`Transition` (timeline entries to append, an update for the device); the
service layer stores both in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from devices.protocol import CallUpdateState
from dispatcher.core.escalation import Policy
from dispatcher.core.texts import DEFAULT_LANGUAGE, text


class Outcome(StrEnum):
    """How a call ended, as the operator records it on resolving."""

    HELPED_BY_PHONE = "helped_by_phone"
    VISIT = "visit"  # someone went to the home
    AMBULANCE = "ambulance"  # 120 called
    SERVICE_DONE = "service_done"  # a service request was carried out
    FALSE_ALARM = "false_alarm"
    CANCELLED_BY_RESIDENT = "cancelled_by_resident"
    TECHNICAL_FIXED = "technical_fixed"
    FAMILY_ATTENDED = "family_attended"  # a family member or key-holder went
    OTHER = "other"


class InvalidTransitionError(ValueError):
    """The call cannot do that in its present state (for example, resolve twice)."""


class AlreadyTakenError(InvalidTransitionError):
    """Another person has taken the call (首问负责): it stays theirs until handed over."""

    def __init__(self, call_id: str, owner: str) -> None:
        super().__init__(f"call {call_id} is already taken by {owner}")
        self.owner = owner


class CallState(StrEnum):
    OPEN = "open"  # unacknowledged: escalating
    ACKNOWLEDGED = "acknowledged"  # a person has taken it
    RESPONDER_ON_SITE = "responder_on_site"  # someone pressed presence at the home
    CANCELLED = "cancelled"  # the resident cancelled; an operator still confirms it
    RESOLVED = "resolved"  # closed by an operator (or a technical fault that cleared)


class CallKind(StrEnum):
    EMERGENCY = "emergency"
    FALL = "fall"
    SERVICE = "service"
    TECHNICAL = "technical"


class Priority(StrEnum):
    CRITICAL = "critical"
    NORMAL = "normal"
    TECHNICAL = "technical"


PRIORITY_OF = {
    CallKind.EMERGENCY: Priority.CRITICAL,
    CallKind.FALL: Priority.CRITICAL,
    CallKind.SERVICE: Priority.NORMAL,
    CallKind.TECHNICAL: Priority.TECHNICAL,
}
_RANK = {Priority.TECHNICAL: 0, Priority.NORMAL: 1, Priority.CRITICAL: 2}

# What the resident's device says at each state (the speaker or the display), in the
# devices' language, from the catalogues.
DEVICE_TEXT = {state: text(DEFAULT_LANGUAGE, f"device.{state.value}") for state in CallUpdateState}


# The outbox rows of dispatches (dispatcher.core.dispatches) carry this ``timer``: they
# are wanted on an acknowledged call too, and an operator's change does not cancel them.
DISPATCH_TIMER = "dispatch"


@dataclass
class TimelineEntry:
    at: datetime
    actor: str
    action: str
    channel: str
    detail: str = ""
    call_id: str = ""
    id: int | None = None


@dataclass
class Transition:
    """What a transition produced, for the service layer to store and send."""

    timeline: list[TimelineEntry] = field(default_factory=list)
    device_update: CallUpdateState | None = None

    def note(self, at: datetime, actor: str, action: str, channel: str, detail: str = "") -> None:
        self.timeline.append(TimelineEntry(at, actor, action, channel, detail))


@dataclass
class Call:
    id: str
    device_id: str
    kind: CallKind
    priority: Priority
    state: CallState
    opened_at: datetime
    policy: Policy
    escalation_started_at: datetime
    next_escalation_at: datetime | None
    escalation_step: int = 0  # the index of the next step to fire
    # The step a repeated press already brought forward (None: none yet, this
    # escalation): each step is brought forward once, however often she presses.
    brought_forward_step: int | None = None
    resident_id: str | None = None
    community_id: str | None = None
    unknown_device: bool = False
    press_count: int = 1
    detail: str = ""  # for technical alerts: what is wrong
    alert_key: str | None = None  # for technical alerts: which fault, one open per device
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    outcome: str | None = None
    note: str | None = None
    updated_at: datetime | None = None
    # The first answer, for the service-level figures (dispatcher.core.reports): set once,
    # never moved by a later acknowledgement or a call given back (escalate_now).
    answered_at: datetime | None = None
    answered_by: str | None = None
    answered_channel: str | None = None
    answered_level: str | None = None  # filled by the service layer from the directory
    # The acknowledgement timeout (see escalation.AckTimeout), as data polled like the
    # escalation steps: who holds the call now (the latest acknowledgement), when the
    # timeout falls (its steps count from then), the next of its steps to fire, when.
    held_by: str | None = None
    ack_timeout_at: datetime | None = None
    ack_step: int = 0
    next_ack_escalation_at: datetime | None = None
    # The supervisor watchdog (escalation.Watchdog, dispatcher.core.watchdog), as data
    # polled like the steps: when the shift supervisor is next paged while nobody has
    # taken the call (None: not, or no more), how many pages went, when the first did.
    watchdog_at: datetime | None = None
    watchdog_pages: int = 0
    watchdog_paged_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        return self.state is not CallState.RESOLVED

    @property
    def is_escalating(self) -> bool:
        return self.state is CallState.OPEN and self.next_escalation_at is not None

    def wants_notification(self, queued_at: datetime, timer: str | None = None) -> bool:
        """Whether a notification queued at ``queued_at`` should still reach someone:
        the call is unacknowledged, or its acknowledgement timeout queued it (it was
        queued since the timeout fell), or it is a dispatch's (``DISPATCH_TIMER``: a
        responder told where to go, an owner told a responder is overdue) and the call
        is not resolved. ``outbox_store.outbox_row_wanted`` is this rule in SQL, for
        the outbox's claim."""
        if self.state is CallState.OPEN:
            return True
        if timer == DISPATCH_TIMER:
            return self.state is not CallState.RESOLVED
        return (
            self.state is CallState.ACKNOWLEDGED
            and self.ack_timeout_at is not None
            and queued_at >= self.ack_timeout_at
        )

    @property
    def is_ack_escalating(self) -> bool:
        """Acknowledged, and the acknowledgement timeout is running (or has fired)."""
        return self.state is CallState.ACKNOWLEDGED and self.next_ack_escalation_at is not None


def open_call(
    *,
    call_id: str,
    device_id: str,
    kind: CallKind,
    policy: Policy,
    now: datetime,
    resident_id: str | None,
    community_id: str | None,
    detail: str = "",
    alert_key: str | None = None,
) -> tuple[Call, Transition]:
    call = Call(
        id=call_id,
        device_id=device_id,
        kind=kind,
        priority=PRIORITY_OF[kind],
        state=CallState.OPEN,
        opened_at=now,
        policy=policy,
        escalation_started_at=now,
        next_escalation_at=policy.due_at(now, 0),
        resident_id=resident_id,
        community_id=community_id,
        unknown_device=resident_id is None,
        detail=detail,
        alert_key=alert_key,
        updated_at=now,
    )
    arm_watchdog(call, now)
    t = Transition(device_update=CallUpdateState.RECEIVED if kind != CallKind.TECHNICAL else None)
    who = "unknown device" if resident_id is None else f"resident {resident_id}"
    t.note(
        now, "device", "opened", "mqtt", f"{kind} from {who}" + (f": {detail}" if detail else "")
    )
    return call, t


def join(call: Call, kind: CallKind, now: datetime, policy_for_kind: Policy) -> Transition:
    """Another press while the device has an active call joins it and raises urgency.

    A press brings the next step forward at most once per step, and only a step of
    the policy's own: once everyone it names has been told, its repeats keep their
    pace (a thousand presses were 694 steps and 1,769 SMS in 43 s). Each press is
    stored as an event and counted in ``press_count``; the timeline lists every press
    that changed something, and of the others presses 2-10, then every 10th to 100,
    every 100th to 1,000 and so on (see :func:`_listed`), each saying why it changed
    nothing, so that a stuck button cannot flood the operators' view of the call.
    """
    t = Transition()
    call.press_count += 1
    call.updated_at = now
    pressed = f"{kind} pressed again (press {call.press_count})"
    if _RANK[PRIORITY_OF[kind]] > _RANK[call.priority]:
        # A service request that turns into an emergency follows the emergency policy
        # from its first step: the earlier, slower steps no longer apply.
        t.note(now, "device", "joined", "mqtt", pressed)
        t.note(now, "system", "priority_raised", "system", f"{call.priority} → {kind}")
        call.kind, call.priority, call.policy = kind, PRIORITY_OF[kind], policy_for_kind
        _restart_escalation(call, now)
        if call.watchdog_pages == 0:
            # Untaken since it opened: the new kind's watchdog counts from then.
            arm_watchdog(call, call.opened_at)
        if call.state is CallState.ACKNOWLEDGED:
            _start_ack_timer(call, now)
    elif call.state is CallState.CANCELLED:
        # The resident cancelled and then pressed again: they need help after all.
        t.note(now, "device", "joined", "mqtt", pressed)
        t.note(now, "system", "reopened", "system", "pressed again after cancelling")
        call.state = CallState.OPEN
        _restart_escalation(call, now)
        arm_watchdog(call, now)
    elif call.state is CallState.OPEN and call.next_escalation_at is not None:
        # Pressing again while nobody has answered: do not wait out the step's delay.
        unchanged = _bring_forward(call, now)
        if unchanged is None:
            t.note(now, "device", "joined", "mqtt", pressed)
            t.note(
                now,
                "system",
                "urgency_raised",
                "system",
                f"step {call.escalation_step + 1} brought forward",
            )
        elif _listed(call.press_count):
            t.note(now, "device", "joined", "mqtt", f"{pressed}: {unchanged}")
    elif _listed(call.press_count):
        t.note(now, "device", "joined", "mqtt", pressed)
    t.device_update = _device_state(call)
    return t


def _bring_forward(call: Call, now: datetime) -> str | None:
    """Bring the call's next step forward to ``now``; None if it did, else why not."""
    index = call.escalation_step
    if call.brought_forward_step == index:
        return f"step {index + 1} was already brought forward by an earlier press"
    if call.next_escalation_at is None or call.next_escalation_at <= now:
        return f"step {index + 1} is already due"
    if index > call.policy.last:
        return "every step has fired; its repeats keep their pace"
    call.next_escalation_at = now
    call.brought_forward_step = index
    return None


def _listed(press: int) -> bool:
    """Whether a press that changed nothing is listed on the timeline: 2-10, then
    20, 30 ... 100, 200 ... 1,000, 2,000 ... (a thousand presses list 27)."""
    digits = str(press)
    return press <= 10 or set(digits[1:]) == {"0"}


def acknowledge(
    call: Call, staff_id: str, channel: str, now: datetime, note: str = ""
) -> Transition:
    _require_active(call, "acknowledge")
    t = Transition()
    if call.acknowledged_at is not None and call.state is CallState.ACKNOWLEDGED:
        if call.ack_step == 0:
            return t  # idempotent: the first acknowledgement stands
        # The acknowledgement timeout has fired: a new acknowledgement stops it and
        # starts it afresh for whoever now holds the call. The first answer time
        # stays on record for the service-level figures.
        call.held_by = staff_id
        _start_ack_timer(call, now)
        call.updated_at = now
        again = note or "again: acknowledgement timeout reset"
        t.note(now, staff_id, "acknowledged", channel, again)
        return t
    call.acknowledged_at = call.acknowledged_at or now
    call.acknowledged_by = call.acknowledged_by or staff_id
    _answered(call, staff_id, channel, now)
    call.held_by = staff_id
    if call.state in (CallState.OPEN, CallState.CANCELLED):
        call.state = CallState.ACKNOWLEDGED
    call.next_escalation_at = None
    call.watchdog_at = None  # taken by a person: the supervisor is never paged for it
    _start_ack_timer(call, now)
    call.updated_at = now
    t.note(now, staff_id, "acknowledged", channel, note)
    t.device_update = CallUpdateState.ACKNOWLEDGED
    return t


def take(call: Call, staff_id: str, channel: str, now: datetime, note: str = "") -> Transition:
    """An operator takes the call and owns it (首问负责): an acknowledgement that
    refuses a call someone else holds. Taking one's own call again changes nothing; a
    call whose acknowledgement timeout has fired (nobody acted on it) may be taken
    over by anyone, as an SMS acknowledgement may."""
    owner = call.held_by or call.acknowledged_by
    held = call.state in (CallState.ACKNOWLEDGED, CallState.RESPONDER_ON_SITE)
    if held and owner is not None and owner != staff_id and call.ack_step == 0:
        raise AlreadyTakenError(call.id, owner)
    return acknowledge(call, staff_id, channel, now, note)


def resolve(
    call: Call, staff_id: str, channel: str, outcome: Outcome, now: datetime, note: str = ""
) -> Transition:
    _require_active(call, "resolve")
    t = Transition()
    if call.acknowledged_at is None:
        # Resolving answers the call too: answer time is the resolve time.
        call.acknowledged_at, call.acknowledged_by = now, staff_id
    _answered(call, staff_id, channel, now)
    call.state = CallState.RESOLVED
    call.resolved_at, call.resolved_by = now, staff_id
    call.outcome, call.note = outcome.value, note or None
    call.next_escalation_at = None
    call.watchdog_at = None
    _stop_ack_timer(call)
    call.updated_at = now
    t.note(now, staff_id, "resolved", channel, f"{outcome.value}" + (f": {note}" if note else ""))
    t.device_update = CallUpdateState.RESOLVED if call.kind != CallKind.TECHNICAL else None
    return t


def escalate_now(call: Call, staff_id: str, channel: str, now: datetime) -> Transition:
    """Someone asks for the next step at once (an SMS reply "7E": "I cannot go").

    An acknowledged call goes back to escalating: whoever took it has given it
    back. The first answer time stays on record for the service-level figures.
    """
    _require_active(call, "escalate")
    t = Transition()
    call.updated_at = now
    if call.state in (CallState.ACKNOWLEDGED, CallState.CANCELLED):
        call.state = CallState.OPEN
        _stop_ack_timer(call)
        t.device_update = CallUpdateState.RECEIVED
    if call.state is CallState.OPEN:
        call.next_escalation_at = now
    t.note(now, staff_id, "escalation_requested", channel, f"state {call.state}")
    return t


def add_note(call: Call, staff_id: str, channel: str, now: datetime, text: str) -> Transition:
    """A line on the timeline (what the resident said, who was phoned); a resolved
    call takes notes too, for what is learnt afterwards."""
    if not text.strip():
        raise InvalidTransitionError("a note needs some text")
    t = Transition()
    call.updated_at = now
    t.note(now, staff_id, "note", channel, text.strip())
    return t


def hand_over(
    call: Call,
    staff_id: str,
    to_staff_id: str,
    channel: str,
    now: datetime,
    note: str = "",
    *,
    may_reassign: bool = False,
) -> Transition:
    """The call's owner gives it to another person, who owns it from now on (首问负责
    ends only by a hand-over or a resolve). A supervisor (``may_reassign``) may move a
    call that someone else holds. The acknowledgement timeout starts afresh."""
    _require_active(call, "hand over")
    owner = call.held_by or call.acknowledged_by
    if call.state not in (CallState.ACKNOWLEDGED, CallState.RESPONDER_ON_SITE) or owner is None:
        raise InvalidTransitionError(f"call {call.id} is not taken: take it first")
    if owner != staff_id and not may_reassign:
        raise AlreadyTakenError(call.id, owner)
    if to_staff_id == owner:
        raise InvalidTransitionError(f"call {call.id} is already held by {to_staff_id}")
    t = Transition()
    call.held_by = to_staff_id
    if call.state is CallState.ACKNOWLEDGED:
        _start_ack_timer(call, now)
    call.updated_at = now
    detail = f"from {owner} to {to_staff_id}" + (f": {note}" if note else "")
    t.note(now, staff_id, "handed_over", channel, detail)
    return t


def cancel(call: Call, now: datetime) -> Transition:
    """The resident cancelled: escalation stops, an operator still confirms the call."""
    t = Transition()
    call.updated_at = now
    t.note(now, "device", "cancel_pressed", "mqtt")
    if call.state is CallState.OPEN:
        call.state = CallState.CANCELLED
        call.next_escalation_at = None
        call.watchdog_at = None
        t.note(now, "system", "escalation_stopped", "system", "resident cancelled")
    t.device_update = CallUpdateState.CANCELLED
    return t


def presence(
    call: Call, now: datetime, actor: str = "device", channel: str = "mqtt", detail: str = ""
) -> Transition:
    """A responder pressed the presence key at the home: help has arrived. (An
    operator who marks a dispatched responder arrived, ``dispatcher.core.dispatches``,
    is the same change under their own name and channel.)"""
    t = Transition()
    call.updated_at = now
    if call.state in (CallState.OPEN, CallState.ACKNOWLEDGED, CallState.CANCELLED):
        # Help has arrived: neither escalation nor the acknowledgement timeout runs.
        call.state = CallState.RESPONDER_ON_SITE
        call.next_escalation_at = None
        call.watchdog_at = None
        _stop_ack_timer(call)
    t.note(now, actor, "responder_on_site", channel, detail)
    t.device_update = CallUpdateState.RESPONDER_ON_SITE
    return t


def clear_technical(call: Call, now: datetime, why: str) -> Transition:
    """A technical fault that cleared by itself (battery ok, device back online)."""
    t = Transition()
    call.state = CallState.RESOLVED
    call.resolved_at, call.resolved_by = now, "system"
    call.outcome = Outcome.TECHNICAL_FIXED.value
    call.next_escalation_at = None
    call.watchdog_at = None
    _stop_ack_timer(call)
    call.updated_at = now
    t.note(now, "device", "cleared", "mqtt", why)
    return t


@dataclass(frozen=True)
class DueStep:
    """The step a poll fired: number ``index``. ``first`` is the step that was due;
    it is less than ``index`` after a catch-up: the escalation was held up (stopped,
    suspended, a step of the clock nobody saw) for longer than ``first``'s gap to the
    next, and ONE step stands for all those missed, with the steps after it counted
    from the moment it fired, never replaying each missed repeat."""

    index: int
    first: int
    late: timedelta  # how long after ``first`` fell due it fired

    @property
    def missed(self) -> int:
        return self.index - self.first

    def catch_up_note(self, label: str = "step") -> str:
        """The timeline's words for a catch-up; ``label`` names the steps as the
        escalator does ("step", "acknowledgement timeout step")."""
        return (
            f"catch-up: {self.missed} steps/repeats missed while escalation was held up "
            f"({label} {self.first + 1} was due {_duration(self.late)} earlier: the "
            "dispatcher stopped or was suspended, or the clock jumped); "
            f"{label} {self.index + 1} fired once for them, the following count from now"
        )


def take_due_step(call: Call, now: datetime) -> DueStep | None:
    """If a step is due, advance the call past it and say which; else None."""
    if not call.is_escalating or call.next_escalation_at is None or call.next_escalation_at > now:
        return None
    due = call.next_escalation_at
    first = call.escalation_step
    index = call.policy.latest_due(first, due, now)
    call.escalation_step = index + 1
    call.next_escalation_at = _following(
        call.policy.due_at(call.escalation_started_at, index + 1),
        due,
        call.policy.gap_after(index),
        now,
        caught_up=index > first,
    )
    call.updated_at = now
    return DueStep(index, first, now - due)


def _following(
    nominal: datetime, due: datetime, gap: timedelta, now: datetime, *, caught_up: bool
) -> datetime:
    """When the step after one that fired at ``now`` (due at ``due``) falls due.

    After a catch-up: its gap from now. Otherwise its own due time (``nominal``,
    counted from the escalation's start), so that a step brought forward (a repeated
    press) or skipped does not drag the ones after it along; but never sooner than
    its gap after this one's due time, which keeps the pace a catch-up set."""
    if caught_up:
        return now + gap
    return max(nominal, due + gap, now)


def skip_at_once(call: Call, now: datetime) -> None:
    """The step just taken had nobody to notify: the next one falls due now, not
    after its own delay (the steps after that keep their due times)."""
    if call.is_escalating:
        call.next_escalation_at = now


def take_due_ack_step(call: Call, now: datetime) -> DueStep | None:
    """If a step of the acknowledgement timeout is due, advance past it and say which
    (caught up like :func:`take_due_step`); else None."""
    timeout = call.policy.ack_timeout
    if (
        not call.is_ack_escalating
        or timeout is None
        or call.ack_timeout_at is None
        or call.next_ack_escalation_at is None
        or call.next_ack_escalation_at > now
    ):
        return None
    due = call.next_ack_escalation_at
    first = call.ack_step
    index = timeout.latest_due(first, due, now)
    call.ack_step = index + 1
    call.next_ack_escalation_at = _following(
        timeout.due_at(call.ack_timeout_at, index + 1),
        due,
        timeout.gap_after(index),
        now,
        caught_up=index > first,
    )
    call.updated_at = now
    return DueStep(index, first, now - due)


def skip_ack_at_once(call: Call, now: datetime) -> None:
    """Like :func:`skip_at_once`, for the acknowledgement timeout's steps."""
    if call.is_ack_escalating:
        call.next_ack_escalation_at = now


def _start_ack_timer(call: Call, now: datetime) -> None:
    timeout = call.policy.ack_timeout
    if timeout is None or call.state is not CallState.ACKNOWLEDGED:
        _stop_ack_timer(call)
        return
    call.ack_timeout_at = now + timedelta(seconds=timeout.after_s)
    call.ack_step = 0
    call.next_ack_escalation_at = call.ack_timeout_at


def arm_watchdog(call: Call, since: datetime) -> None:
    """Nobody has taken the call since ``since``: its next page of the shift supervisor
    falls due the policy's ``untaken_after_s`` after that. Not for a call a person has
    taken once (a call given back keeps escalating by its policy), one that is not
    open, one whose policy has no watchdog, or one that has sent every page it may."""
    watchdog = call.policy.watchdog
    if (
        watchdog is None
        or call.state is not CallState.OPEN
        or call.acknowledged_at is not None
        or call.watchdog_pages >= watchdog.pages
    ):
        call.watchdog_at = None
        return
    call.watchdog_at = since + timedelta(seconds=watchdog.untaken_after_s)


def _stop_ack_timer(call: Call) -> None:
    call.ack_timeout_at = None
    call.ack_step = 0
    call.next_ack_escalation_at = None


def _restart_escalation(call: Call, now: datetime) -> None:
    call.escalation_started_at = now
    call.escalation_step = 0
    call.brought_forward_step = None
    call.next_escalation_at = now if call.state is CallState.OPEN else None


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _answered(call: Call, who: str, channel: str, now: datetime) -> None:
    if call.answered_at is None:
        call.answered_at, call.answered_by, call.answered_channel = now, who, channel


def _require_active(call: Call, what: str) -> None:
    if call.state is CallState.RESOLVED:
        raise InvalidTransitionError(f"call {call.id} is already resolved; cannot {what} it")


def _device_state(call: Call) -> CallUpdateState:
    return {
        CallState.OPEN: CallUpdateState.RECEIVED,
        CallState.ACKNOWLEDGED: CallUpdateState.ACKNOWLEDGED,
        CallState.RESPONDER_ON_SITE: CallUpdateState.RESPONDER_ON_SITE,
        CallState.CANCELLED: CallUpdateState.CANCELLED,
        CallState.RESOLVED: CallUpdateState.RESOLVED,
    }[call.state]
