"""Queues the notifications of one escalation step, inside the step's transaction.

The escalator decides *who* (routing) and *when*; this module decides *how* each
person is reached (their contact methods, per channel) and *what* they are sent, and
writes it to the outbox through the step's :class:`NotifyStore`, so that the step, its
messages and the call's new escalation state commit together and leave through the
outbox.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from dispatcher.core.calls import Call
from dispatcher.core.contact_methods import Channel, ContactMethod, first_of_kind, methods_for
from dispatcher.core.directory import Directory, Resident
from dispatcher.core.messages import call_sms, call_summary, voice_script
from dispatcher.core.routing import Recipient

OutboxRow = dict[str, Any]
"""One outbox row's columns, as the outbox stores them."""


class NotifyStore(Protocol):
    """The writes of one step's notifications, in the step's transaction."""

    async def reply_code(self, phone: str, call_id: str, now: datetime) -> int:
        """The reply number ``phone`` uses for ``call_id`` (given once, then kept)."""
        ...

    async def queue_notifications(self, rows: list[OutboxRow]) -> None:
        """Insert the rows into the outbox."""
        ...


class QueuedSteps(Protocol):
    """Who is already queued for a step, in the step's transaction."""

    async def queued_for_step(
        self, call_id: str, timer: str, step: int, since: datetime
    ) -> set[str]:
        """The recipients with a row (not cancelled) for step ``step`` of ``timer``
        ("escalation" or "ack_timeout") of the call, created since ``since``."""
        ...


ESCALATION = "escalation"  # the call's escalation steps
ACK_TIMEOUT = "ack_timeout"  # the acknowledgement timeout's steps (numbered from 0 too)


async def not_yet_queued(
    store: QueuedSteps,
    call: Call,
    people: list[Recipient],
    step_index: int,
    timer: str,
    since: datetime,
) -> tuple[list[Recipient], list[Recipient]]:
    """``people`` split into those to notify of this step and those already queued for
    it: nobody gets more than one message per call per step, whatever fires it again.

    ``since`` is when this run of the timer began (the escalation's start, the
    acknowledgement timeout's deadline), so that a restarted escalation (a priority
    raised, a call reopened) or a new acknowledgement timeout reaches people again."""
    already = await store.queued_for_step(call.id, timer, step_index, since)
    fresh: list[Recipient] = []
    told: list[Recipient] = []
    seen: set[str] = set()
    for person in people:
        if person.id in already:
            told.append(person)
        elif person.id not in seen:
            fresh.append(person)
        seen.add(person.id)
    return fresh, told


def methods_to_use(
    directory: Directory, person: Recipient, channels: Iterable[str]
) -> list[ContactMethod]:
    """For each requested channel the person's first method of that kind; a person who
    has none of the requested kinds is reached by their first method all the same."""
    methods = methods_for(directory, person.id, person.phone)
    chosen: list[ContactMethod] = []
    for channel in dict.fromkeys(Channel(c) for c in channels):
        method = first_of_kind(methods, channel)
        if method is not None:
            chosen.append(method)
    if not chosen and methods:
        chosen.append(methods[0])
    return chosen


def _sms_body(
    call: Call,
    resident: Resident | None,
    directory: Directory,
    language: str,
    step_index: int,
    code: int,
) -> str:
    return call_sms(call, resident, directory, language, step_index, code)


def _voice_body(
    call: Call,
    resident: Resident | None,
    directory: Directory,
    language: str,
    step_index: int,
    code: int,
) -> str:
    # The TwiML is made when the provider asks for it; the body records what it reads.
    return voice_script(call, resident, directory, language, step_index)


# What an outbox row says, per channel.
_BODIES: Mapping[Channel, Callable[[Call, Resident | None, Directory, str, int, int], str]] = {
    Channel.SMS: _sms_body,
    Channel.VOICE: _voice_body,
}


def outbox_values(
    call: Call,
    resident: Resident | None,
    directory: Directory,
    *,
    recipient: str,
    language: str,
    method: ContactMethod,
    step_index: int,
    now: datetime,
    code: int,
    timer: str | None = None,
) -> OutboxRow:
    """The outbox row that reaches ``recipient`` about ``call`` by ``method``, whose
    reply number for the call is ``code``. ``timer`` says which of the call's step
    numberings ``step_index`` belongs to (None on a fallback's row: not counted by
    :func:`not_yet_queued`, its first row is)."""
    write = _BODIES.get(method.kind)
    if write is None:
        raise ValueError(f"no message text for channel {method.kind.value!r}")
    body = write(call, resident, directory, language, step_index, code)
    return {
        "call_id": call.id,
        "step": step_index,
        "recipient": recipient,
        "to_number": method.number,
        "body": body,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "channel": method.kind.value,
        "method_order": method.order,
        "language": language,
        "reply_code": code,
        "summary": call_summary(call, resident, language),
        "timer": timer,
    }


async def queue_step(
    store: NotifyStore,
    call: Call,
    resident: Resident | None,
    directory: Directory,
    people: list[Recipient],
    step_index: int,
    now: datetime,
    channels: Iterable[str] = ("sms",),
    timer: str = ESCALATION,
) -> int:
    """Write one outbox row per person per channel for step ``step_index`` of ``timer``;
    returns how many. Pass the people through :func:`not_yet_queued` first."""
    wanted = tuple(channels)
    rows: list[OutboxRow] = []
    for p in people:
        for method in methods_to_use(directory, p, wanted):
            code = await store.reply_code(method.number, call.id, now)
            rows.append(
                outbox_values(
                    call,
                    resident,
                    directory,
                    recipient=p.id,
                    language=p.language,
                    method=method,
                    step_index=step_index,
                    now=now,
                    code=code,
                    timer=timer,
                )
            )
    if rows:
        await store.queue_notifications(rows)
    return len(rows)
