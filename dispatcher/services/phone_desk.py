"""Acknowledging by phone: what an SMS reply or a key pressed in a voice call does.

The service behind the Twilio webhooks (``dispatcher.adapters.twilio.phone_webhooks``),
free of HTTP: it
finds who is speaking and which call they mean, and hands every change of a call to
:class:`~dispatcher.services.operations.CallOperations` (channel ``sms`` or ``voice``), so the
timeline, the device's update and the cancellation of unsent SMS happen exactly as
they do for an operator at the console.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

import structlog

from dispatcher.core import messages, phone_texts, replies
from dispatcher.core.calls import (
    Call,
    CallKind,
    CallState,
    InvalidTransitionError,
    Outcome,
    TimelineEntry,
)
from dispatcher.core.directory import Directory
from dispatcher.core.directory_holder import DirectoryHolder, ReadsDirectory, hold
from dispatcher.core.phone_texts import OpenCode
from dispatcher.core.replies import Action
from dispatcher.services.clock import Clock
from dispatcher.services.operations import CallOperations
from dispatcher.services.ports import Transactions

log = structlog.get_logger(__name__)

# Twilio's answering-machine detection: every answer but a person's.
MACHINE_ANSWERS = frozenset(
    {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"}
)
_TAKEN = (CallState.ACKNOWLEDGED, CallState.RESPONDER_ON_SITE)


@dataclass(frozen=True)
class Person:
    """Someone the centre may text or call: a staff member or a resident's contact."""

    id: str  # a staff id, or "contact:<resident id>:<n>" as in the outbox
    name: str
    phone: str  # as the directory writes it (the reply codes' key)
    language: str


def normalize_phone(number: str) -> str:
    """``+86 138-0013-8000`` and ``+8613800138000`` are one number."""
    return re.sub(r"[^\d+]", "", number)


def people_by_phone(directory: Directory) -> dict[str, list[Person]]:
    """Everyone with a phone, by normalized number; staff before contacts."""
    out: dict[str, list[Person]] = {}
    for s in directory.staff.values():
        if s.phone:
            out.setdefault(normalize_phone(s.phone), []).append(
                Person(s.id, s.name, s.phone, s.language)
            )
    for r in directory.residents.values():
        for n, c in enumerate(r.contacts, start=1):
            out.setdefault(normalize_phone(c.phone), []).append(
                Person(f"contact:{r.id}:{n}", f"{c.name} ({c.relation})", c.phone, c.language)
            )
    return out


def person_by_id(directory: Directory, person_id: str) -> Person | None:
    """The staff member or contact an outbox row's ``recipient`` names."""
    staff = directory.staff.get(person_id)
    if staff is not None:
        return Person(staff.id, staff.name, staff.phone or "", staff.language)
    kind, _, rest = person_id.partition(":")
    resident_id, _, n = rest.rpartition(":")
    resident = directory.residents.get(resident_id)
    if kind != "contact" or resident is None or not n.isdigit():
        return None
    if not 1 <= int(n) <= len(resident.contacts):
        return None
    c = resident.contacts[int(n) - 1]
    return Person(person_id, f"{c.name} ({c.relation})", c.phone, c.language)


@dataclass(frozen=True)
class Notification:
    """One outbox row, as a voice call's webhooks name it."""

    call_id: str
    recipient: str  # a Person id
    to_number: str


class PhoneStore(Protocol):
    """What the phone desk reads and writes, in one transaction."""

    async def call_with_code(self, phone: str, number: int) -> str | None:
        """The active call that ``phone`` knows as reply code ``number``, or None."""
        ...

    async def open_codes(self, phone: str) -> list[OpenCode]:
        """``phone``'s active reply codes for unresolved calls, by number."""
        ...

    async def call(self, call_id: str) -> Call | None: ...

    async def last_recipient(self, call_id: str, phone: str) -> str | None:
        """Who the latest notification of ``call_id`` to ``phone`` was for."""
        ...

    async def notification(self, notification_id: int) -> Notification | None: ...

    def add_timeline(self, entry: TimelineEntry) -> None: ...

    async def handled(self, sid: str) -> str | None:
        """The answer given to the webhook ``sid`` if it was already handled."""
        ...

    async def remember(self, sid: str, kind: str, answer: str, now: datetime) -> None:
        """Record webhook ``sid`` as handled with ``answer`` (a second record of one
        sid keeps the first)."""
        ...


class VoiceStep(StrEnum):
    PROMPT = "prompt"  # read the call and gather one key (then once more, then hang up)
    SAY_AND_HANG_UP = "say_and_hang_up"
    HANG_UP = "hang_up"  # at once, saying nothing (a machine, an unknown notification)


@dataclass(frozen=True)
class VoiceAnswer:
    step: VoiceStep
    language: str = "zh"  # "zh" or "en"
    text: str = ""
    no_key_text: str = ""  # said before hanging up when a prompt gets no key


class PhoneDesk(ReadsDirectory):
    def __init__(
        self,
        tx: Transactions[PhoneStore],
        directory: Directory | DirectoryHolder,
        clock: Clock,
        operations: CallOperations,
        on_escalate: Callable[[], None] = lambda: None,
    ) -> None:
        self._tx = tx
        self._directories = hold(directory)
        self._clock = clock
        self._ops = operations
        self._on_escalate = on_escalate  # wakes the escalator after a "7E"
        # Who each phone number is, worked out again when the directory changes.
        self._people_of: tuple[Directory, dict[str, list[Person]]] | None = None

    # ------------------------------------------------------------ SMS

    @property
    def _people(self) -> dict[str, list[Person]]:
        d = self._directory
        if self._people_of is None or self._people_of[0] is not d:
            self._people_of = (d, people_by_phone(d))
        return self._people_of[1]

    async def on_sms(self, from_number: str, body: str, message_sid: str = "") -> str:
        """Act on an inbound SMS; returns the answer to send back to its sender.

        Twilio may post one message twice (a timeout on its side, a replayed request,
        before or after a restart): a ``MessageSid`` already handled gets the same
        answer and acts no more, so a "7E" never skips two steps. Remembered in the
        database, after acting: a crash between the two may still act twice, where
        remembering first could lose a reply that never acted at all.
        """
        if message_sid:
            async with self._tx.read() as store:
                before = await store.handled(message_sid)
            if before is not None:
                log.info("sms_in.repeated", message_sid=message_sid)
                return before
        answer = await self._answer_sms(from_number, body, message_sid)
        if message_sid:
            async with self._tx.begin() as store:
                await store.remember(message_sid, "sms", answer, self._clock.now())
        return answer

    async def _answer_sms(self, from_number: str, body: str, message_sid: str) -> str:
        bound = log.bind(message_sid=message_sid, from_tail=from_number[-4:])
        senders = self._people.get(normalize_phone(from_number), [])
        if not senders:
            bound.warning("sms_in.unknown_sender")
            return phone_texts.unknown_sender()
        sender = senders[0]
        lang, phone = sender.language, sender.phone
        bound = bound.bind(sender=sender.id)
        reply = replies.parse(body)
        if reply is None:
            bound.info("sms_in.unreadable", length=len(body))
            return phone_texts.usage(lang, await self._open_codes(phone))
        async with self._tx.read() as store:
            call_id = await store.call_with_code(phone, reply.number)
            call = await store.call(call_id) if call_id else None
            actor = await self._actor(store, call, phone, senders)
        if call is None or call.state is CallState.RESOLVED:
            bound.info("sms_in.stale_code", number=reply.number, action=reply.action.value)
            return phone_texts.stale(lang, reply.number, await self._open_codes(phone))
        bound = bound.bind(call_id=call.id, action=reply.action.value, actor=actor.id)
        try:
            answer, outcome = await self._act(call, reply.action, actor, lang)
        except InvalidTransitionError:
            # Resolved by someone else between our read and our change.
            bound.info("sms_in.stale_code", number=reply.number)
            return phone_texts.stale(lang, reply.number, await self._open_codes(phone))
        bound.info("sms_in", outcome=outcome)
        return answer

    async def _act(self, call: Call, action: Action, actor: Person, lang: str) -> tuple[str, str]:
        if call.state is CallState.RESPONDER_ON_SITE and action is not Action.CLOSE:
            return phone_texts.responder_on_site(lang, call.id), "on_site"
        if action is Action.ACKNOWLEDGE:
            if call.state in _TAKEN:
                by = self._name(call.acknowledged_by)
                return phone_texts.already_acknowledged(lang, call.id, by), "already"
            # Open (or handed back by a "7E", or cancelled): this acknowledgement takes it,
            # even if the call's first answer, kept for the figures, was someone else's.
            await self._ops.acknowledge(call.id, actor.id, "sms")
            return phone_texts.acknowledged(lang, call.id), "acknowledged"
        if action is Action.ESCALATE:
            await self._ops.escalate_now(call.id, actor.id, "sms")
            self._on_escalate()
            return phone_texts.escalated(lang, call.id), "escalated"
        if call.kind is not CallKind.SERVICE:
            return phone_texts.close_refused(lang, call.id, call.kind), "close_refused"
        await self._ops.resolve(call.id, actor.id, "sms", Outcome.SERVICE_DONE, "closed by SMS")
        return phone_texts.closed(lang, call.id), "closed"

    async def _actor(
        self, store: PhoneStore, call: Call | None, phone: str, senders: list[Person]
    ) -> Person:
        """Who the sender is for this call: the person its notifications went to (a
        neighbour may be the contact of two residents), else the directory's first."""
        if call is not None:
            recipient = await store.last_recipient(call.id, phone)
            for p in senders:
                if p.id == recipient:
                    return p
            for p in senders:
                if p.id.startswith(f"contact:{call.resident_id}:"):
                    return p
        return senders[0]

    async def _open_codes(self, phone: str) -> list[OpenCode]:
        async with self._tx.read() as store:
            return await store.open_codes(phone)

    def _name(self, person_id: str | None) -> str:
        if person_id is None:
            return "?"
        person = person_by_id(self._directory, person_id)
        return person.name if person else person_id

    # ------------------------------------------------------------ voice

    async def voice_answered(self, notification_id: int, answered_by: str = "") -> VoiceAnswer:
        """The person (or machine) called for outbox row ``notification_id`` answered."""
        found = await self._notification(notification_id)
        if found is None:
            log.warning("voice.unknown_notification", notification_id=notification_id)
            return VoiceAnswer(VoiceStep.HANG_UP)
        call, person = found
        bound = log.bind(call_id=call.id, notification_id=notification_id, person=person.id)
        if answered_by in MACHINE_ANSWERS:
            async with self._tx.begin() as store:
                store.add_timeline(
                    TimelineEntry(
                        self._clock.now(),
                        person.id,
                        "machine_answered",
                        "voice",
                        f"{answered_by}: not an acknowledgement (notification {notification_id})",
                        call.id,
                    )
                )
            bound.info("voice.machine_answered", answered_by=answered_by)
            return VoiceAnswer(VoiceStep.HANG_UP)
        bound.info("voice.answered", answered_by=answered_by or "unknown", state=call.state.value)
        return self._prompt_or_state(call, person)

    async def voice_key(self, notification_id: int, digits: str, call_sid: str = "") -> VoiceAnswer:
        """A key pressed in the call for outbox row ``notification_id``.

        A press that acknowledged is remembered by the voice call's ``CallSid``: the
        same request replayed (even after a restart, and after the call was handed
        back) gets the same answer and acknowledges no more."""
        replay_key = f"{call_sid}:ack" if call_sid else ""
        if replay_key:
            async with self._tx.read() as store:
                before = await store.handled(replay_key)
            if before is not None:
                log.info("voice.key_repeated", call_sid=call_sid, notification_id=notification_id)
                lang, _, text = before.partition(":")
                return VoiceAnswer(VoiceStep.SAY_AND_HANG_UP, lang, text)
        found = await self._notification(notification_id)
        if found is None:
            log.warning("voice.unknown_notification", notification_id=notification_id)
            return VoiceAnswer(VoiceStep.HANG_UP)
        call, person = found
        lang = phone_texts.lang_of(person.language)
        bound = log.bind(call_id=call.id, notification_id=notification_id, person=person.id)
        bound.info("voice.key", digits=digits)
        if not digits:
            return VoiceAnswer(VoiceStep.SAY_AND_HANG_UP, lang, phone_texts.voice_no_key(lang))
        if digits != "1" or call.state not in (CallState.OPEN, CallState.CANCELLED):
            return self._prompt_or_state(call, person)
        try:
            await self._ops.acknowledge(call.id, person.id, "voice")
        except InvalidTransitionError:
            text = phone_texts.voice_already_closed(lang)
            return VoiceAnswer(VoiceStep.SAY_AND_HANG_UP, lang, text)
        bound.info("voice.acknowledged")
        text = phone_texts.voice_acknowledged(lang, call.id)
        if replay_key:
            async with self._tx.begin() as store:
                await store.remember(replay_key, "voice_key", f"{lang}:{text}", self._clock.now())
        return VoiceAnswer(VoiceStep.SAY_AND_HANG_UP, lang, text)

    def _prompt_or_state(self, call: Call, person: Person) -> VoiceAnswer:
        lang = phone_texts.lang_of(person.language)
        if call.state is CallState.RESOLVED:
            text = phone_texts.voice_already_closed(lang)
            return VoiceAnswer(VoiceStep.SAY_AND_HANG_UP, lang, text)
        if call.state in _TAKEN:
            text = phone_texts.voice_already_acknowledged(lang)
            return VoiceAnswer(VoiceStep.SAY_AND_HANG_UP, lang, text)
        resident = self._directory.residents.get(call.resident_id or "")
        return VoiceAnswer(
            VoiceStep.PROMPT,
            lang,
            # The same script the outbox stored with the call (the message catalogues).
            messages.voice_script(
                call, resident, self._directory, lang, max(call.escalation_step - 1, 0)
            ),
            phone_texts.voice_no_key(lang),
        )

    async def _notification(self, notification_id: int) -> tuple[Call, Person] | None:
        async with self._tx.read() as store:
            row = await store.notification(notification_id)
            if row is None:
                return None
            call = await store.call(row.call_id)
        if call is None:
            return None
        person = person_by_id(self._directory, row.recipient) or Person(
            row.recipient, row.recipient, row.to_number, "zh"
        )
        return call, person
