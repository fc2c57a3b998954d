"""The protocols of a call as operators see them: which apply (by the call's kind),
which one the operator works through, and the answers so far, read from the call's
timeline (``dispatcher.core.call_protocols``). ``CallOperations`` serves them to the
API and the console alike; answering is its one transaction per change."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field

from dispatcher.core.call_protocols import (
    CallProtocol,
    Entry,
    ProtocolBook,
    answers_of,
    current_protocol,
    localized,
)
from dispatcher.core.calls import CallKind
from dispatcher.core.texts import language_of


class ProtocolSource(Protocol):
    """Where the protocols in force come from (``adapters.files.protocols.ProtocolFile``)."""

    def book(self) -> ProtocolBook: ...


class FixedProtocols:
    """A book that never changes: for tests, and for a service built without one."""

    def __init__(self, book: ProtocolBook | None = None) -> None:
        self._book = book or ProtocolBook()

    def book(self) -> ProtocolBook:
        return self._book


class ChoiceView(BaseModel):
    id: str
    text: str


class StepAnswerView(BaseModel):
    value: str  # the answer's id: done, yes, a choice's id...
    text: str  # the same in the asked language
    note: str = ""
    by: str  # a staff id
    by_name: str
    channel: str  # console, api
    at: datetime


class ProtocolStepView(BaseModel):
    id: str
    number: int  # 1, 2, ... in the protocol's order
    text: str
    answer_kind: str  # check, yes_no, choice
    answers: list[ChoiceView]  # what may be answered, with its text
    guidance: str = ""
    default: str | None = None  # the decision that stands until answered
    default_text: str = ""
    answer: StepAnswerView | None = None


class ProtocolView(BaseModel):
    id: str  # kind.situation, e.g. emergency.silent
    kind: str
    situation: str
    title: str
    is_default: bool  # the kind's default protocol
    steps: list[ProtocolStepView]
    answered: int  # steps with an answer
    total: int


class CallProtocolsView(BaseModel):
    """The protocols of one call's kind, with the answers given to each so far."""

    call_id: str
    kind: str
    language: str
    answerable: bool  # False once the call is resolved
    current: str | None  # the protocol the operator works through (None: none for this kind)
    protocols: list[ProtocolView] = Field(default_factory=list)


def protocols_view(
    book: ProtocolBook,
    *,
    call_id: str,
    kind: CallKind,
    resolved: bool,
    timeline: Sequence[Entry],
    language: str,
    name_of: Callable[[str], str],
) -> CallProtocolsView:
    lang = language_of(language)
    current = current_protocol(book, kind, timeline)
    default = book.default_for(kind)
    return CallProtocolsView(
        call_id=call_id,
        kind=kind.value,
        language=lang,
        answerable=not resolved,
        current=current.id if current else None,
        protocols=[
            _protocol_view(p, p is default, timeline, lang, name_of) for p in book.for_kind(kind)
        ],
    )


def _protocol_view(
    protocol: CallProtocol,
    is_default: bool,
    timeline: Sequence[Entry],
    lang: str,
    name_of: Callable[[str], str],
) -> ProtocolView:
    given = answers_of(timeline, protocol.id)
    steps = []
    for number, step in enumerate(protocol.steps, start=1):
        found = given.get(step.id)
        # An answer the step no longer takes (the file changed) stays on the timeline only.
        answer = (
            StepAnswerView(
                value=found.value,
                text=step.answer_text(found.value, lang),
                note=found.note,
                by=found.actor,
                by_name=name_of(found.actor),
                channel=found.channel,
                at=found.at,
            )
            if found is not None and found.value in step.answers
            else None
        )
        steps.append(
            ProtocolStepView(
                id=step.id,
                number=number,
                text=localized(step.text, lang),
                answer_kind=step.answer.value,
                answers=[ChoiceView(id=a, text=step.answer_text(a, lang)) for a in step.answers],
                guidance=localized(step.guidance, lang) if step.guidance else "",
                default=step.default,
                default_text=step.answer_text(step.default, lang) if step.default else "",
                answer=answer,
            )
        )
    return ProtocolView(
        id=protocol.id,
        kind=protocol.kind.value,
        situation=protocol.situation,
        title=localized(protocol.title, lang),
        is_default=is_default,
        steps=steps,
        answered=sum(1 for s in steps if s.answer is not None),
        total=len(steps),
    )
