"""Operator scripts (处置规程) as data: for each kind of call and each situation, the
ordered steps an operator goes through, each a check, a yes/no question or a short
choice. Built from ``protocols.toml`` by ``dispatcher.adapters.files.protocols``.

An operator's answer to a step is a line on the call's timeline (action
``protocol_answer``); the answers of a call are read back from its timeline, the
latest answer to a step standing. The timeline is the record: no other table holds
them, so an answer is shown, exported and kept exactly as every other transition is.
The situation an operator picks is a timeline line too (``protocol_chosen``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from dispatcher.core.calls import Call, CallKind, CallState, InvalidTransitionError, Transition
from dispatcher.core.texts import DEFAULT_LANGUAGE, text

ANSWERED = "protocol_answer"
CHOSEN = "protocol_chosen"
MAX_NOTE = 500
# Ids of situations, steps and choices: short, lower case, so that a timeline line
# ``emergency.silent call_home = no_answer`` reads back without ambiguity.
ID_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
_ID = r"[a-z][a-z0-9_]{0,31}"
_DETAIL = re.compile(rf"^({_ID}\.{_ID}) ({_ID}) = ({_ID})(?: · (.*))?$", re.DOTALL)

Texts = Mapping[str, str]  # language -> text


class ProtocolAnswerError(ValueError):
    """The answer names no step of the protocol, or is not one of the step's answers."""


class AnswerKind(StrEnum):
    CHECK = "check"  # a checkbox: done or not done
    YES_NO = "yes_no"
    CHOICE = "choice"  # one of the step's choices


FIXED_ANSWERS = {
    AnswerKind.CHECK: ("done", "not_done"),
    AnswerKind.YES_NO: ("yes", "no"),
}


def localized(texts: Texts, language: str) -> str:
    """The text in ``language``, else the Chinese one."""
    return texts.get(language) or texts.get(DEFAULT_LANGUAGE, "")


@dataclass(frozen=True)
class Choice:
    id: str
    text: Texts


@dataclass(frozen=True)
class Step:
    id: str
    text: Texts
    answer: AnswerKind
    choices: tuple[Choice, ...] = ()
    guidance: Texts = field(default_factory=dict)
    # The decision that stands until someone answers otherwise (a choice's id, "yes",
    # "done"...): the silent emergency's last step defaults to sending someone.
    default: str | None = None

    @property
    def answers(self) -> tuple[str, ...]:
        if self.answer is AnswerKind.CHOICE:
            return tuple(c.id for c in self.choices)
        return FIXED_ANSWERS[self.answer]

    def answer_text(self, value: str, language: str) -> str:
        for choice in self.choices:
            if choice.id == value:
                return localized(choice.text, language)
        if value in FIXED_ANSWERS.get(self.answer, ()):
            return text(language, f"console.protocol.answer_{value}")
        return value


@dataclass(frozen=True)
class CallProtocol:
    kind: CallKind
    situation: str
    title: Texts
    steps: tuple[Step, ...]

    @property
    def id(self) -> str:
        return f"{self.kind.value}.{self.situation}"

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)


@dataclass(frozen=True)
class ProtocolBook:
    """The protocols in force. The first protocol of a kind is its default unless the
    file marks another (``defaults``)."""

    protocols: tuple[CallProtocol, ...] = ()
    defaults: Mapping[CallKind, str] = field(default_factory=dict)  # kind -> situation

    def for_kind(self, kind: CallKind) -> list[CallProtocol]:
        return [p for p in self.protocols if p.kind is kind]

    def default_for(self, kind: CallKind) -> CallProtocol | None:
        mine = self.for_kind(kind)
        chosen = self.defaults.get(kind)
        return next((p for p in mine if p.situation == chosen), mine[0] if mine else None)

    def get(self, protocol_id: str) -> CallProtocol | None:
        return next((p for p in self.protocols if p.id == protocol_id), None)


class Entry(Protocol):
    """A timeline line, as the store or the read model has it."""

    @property
    def at(self) -> datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def detail(self) -> str: ...


@dataclass(frozen=True)
class Answer:
    protocol_id: str
    step_id: str
    value: str
    note: str
    actor: str
    channel: str
    at: datetime


def answer_detail(protocol_id: str, step_id: str, value: str, note: str = "") -> str:
    return f"{protocol_id} {step_id} = {value}" + (f" · {note}" if note else "")


def read_answer(entry: Entry) -> Answer | None:
    if entry.action != ANSWERED:
        return None
    found = _DETAIL.match(entry.detail)
    if found is None:
        return None
    protocol_id, step_id, value, note = found.groups()
    return Answer(protocol_id, step_id, value, note or "", entry.actor, entry.channel, entry.at)


def answers_of(entries: Iterable[Entry], protocol_id: str) -> dict[str, Answer]:
    """The standing answer to each step of ``protocol_id``: the latest (timeline order)."""
    out: dict[str, Answer] = {}
    for entry in entries:
        found = read_answer(entry)
        if found is not None and found.protocol_id == protocol_id:
            out[found.step_id] = found
    return out


def current_protocol(
    book: ProtocolBook, kind: CallKind, entries: Iterable[Entry]
) -> CallProtocol | None:
    """The protocol the operator works through: the one last picked or answered for
    this kind of call (a service request raised to an emergency starts on the
    emergency's), else the kind's default."""
    current = book.default_for(kind)
    for entry in entries:
        if entry.action == CHOSEN:
            protocol_id = entry.detail.split(" ", 1)[0]
        elif (found := read_answer(entry)) is not None:
            protocol_id = found.protocol_id
        else:
            continue
        picked = book.get(protocol_id)
        if picked is not None and picked.kind is kind:
            current = picked
    return current


def choose(
    book: ProtocolBook, call: Call, staff_id: str, channel: str, now: datetime, situation: str
) -> Transition:
    """The operator says which situation this call is (a red button with no voice...)."""
    protocol = _protocol(book, call, f"{call.kind.value}.{situation}")
    t = Transition()
    call.updated_at = now
    t.note(now, staff_id, CHOSEN, channel, protocol.id)
    return t


def answer(
    book: ProtocolBook,
    call: Call,
    staff_id: str,
    channel: str,
    now: datetime,
    protocol_id: str,
    step_id: str,
    value: str,
    note: str = "",
) -> Transition:
    """An answer to one step, checked against the protocol in force; a resolved call
    takes none (what is learnt afterwards is a note)."""
    protocol = _protocol(book, call, protocol_id)
    step = protocol.step(step_id)
    if step is None:
        raise ProtocolAnswerError(f"protocol {protocol.id} has no step {step_id!r}")
    if value not in step.answers:
        allowed = ", ".join(step.answers)
        raise ProtocolAnswerError(
            f"{value!r} is not an answer to step {step_id} of {protocol.id} (one of: {allowed})"
        )
    note = " ".join(note.split())  # one line on the timeline
    if len(note) > MAX_NOTE:
        raise ProtocolAnswerError(f"the note is longer than {MAX_NOTE} characters")
    t = Transition()
    call.updated_at = now
    t.note(now, staff_id, ANSWERED, channel, answer_detail(protocol.id, step.id, value, note))
    return t


def _protocol(book: ProtocolBook, call: Call, protocol_id: str) -> CallProtocol:
    if call.state is CallState.RESOLVED:
        raise InvalidTransitionError(f"call {call.id} is already resolved; its protocol is closed")
    protocol = book.get(protocol_id)
    if protocol is None:
        raise ProtocolAnswerError(f"no protocol {protocol_id!r}")
    if protocol.kind is not call.kind:
        raise ProtocolAnswerError(
            f"protocol {protocol_id} is for {protocol.kind.value} calls; "
            f"call {call.id} is {call.kind.value}"
        )
    return protocol
