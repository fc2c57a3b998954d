"""The operator API's protocols (operator scripts) of a call: read them with the answers
so far, pick the situation, answer a step. The same service calls as the console's."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.core.call_protocols import ID_PATTERN, MAX_NOTE, ProtocolAnswerError
from dispatcher.entrypoints.http.deps import ERRORS, PREFIX, ErrorBody, OpsDep, Refused, StaffDep
from dispatcher.services.call_protocols import CallProtocolsView

router = APIRouter(prefix=PREFIX)

Id = Annotated[str, Field(pattern=ID_PATTERN)]
CallId = Annotated[str, Path(min_length=1, max_length=64, description="e.g. C-20261128-0007")]
Language = Annotated[
    Literal["zh", "en"], Query(alias="lang", description="the texts' language (default zh)")
]
Channel = Annotated[
    Literal["api", "cli"],
    Header(alias="X-Eldercall-Channel", description="Recorded on the call's timeline."),
]


class AnswerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protocol: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}\.[a-z][a-z0-9_]{0,31}$")] = (
        Field(description="kind.situation, e.g. emergency.silent")
    )
    step: Id
    answer: Id = Field(description="done/not_done, yes/no, or one of the step's choices")
    note: Annotated[str, Field(max_length=MAX_NOTE, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")] = ""


class SituationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    situation: Id = Field(description="e.g. silent, for emergency.silent")


_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    404: {"model": ErrorBody, "description": "No such call"},
    409: {"model": ErrorBody, "description": "The call is resolved"},
}


@router.get(
    "/calls/{call_id}/protocols",
    response_model=CallProtocolsView,
    responses=_ERRORS,
    tags=["protocols"],
)
async def call_protocols(
    call_id: CallId, ops: OpsDep, staff: StaffDep, lang: Language = "zh"
) -> CallProtocolsView:
    """The protocols of the call's kind, each step with its standing answer (who, when,
    which channel); `current` is the one the operator works through."""
    return await ops.call_protocols(call_id, viewer=staff, language=lang)


@router.post(
    "/calls/{call_id}/protocols/answers",
    response_model=CallProtocolsView,
    responses=_ERRORS,
    tags=["protocols"],
)
async def answer_step(
    call_id: CallId,
    body: AnswerBody,
    ops: OpsDep,
    staff: StaffDep,
    channel: Channel = "api",
    lang: Language = "zh",
) -> CallProtocolsView:
    """Answer one step (again: the latest answer stands; each is on the timeline).
    422 for a protocol, step or answer the call's protocols do not have."""
    try:
        return await ops.answer_protocol_step(
            call_id,
            staff.id,
            channel,
            body.protocol,
            body.step,
            body.answer,
            body.note,
            viewer=staff,
            language=lang,
        )
    except ProtocolAnswerError as refused:
        raise Refused(422, str(refused)) from None


@router.post(
    "/calls/{call_id}/protocols/situation",
    response_model=CallProtocolsView,
    responses=_ERRORS,
    tags=["protocols"],
)
async def choose_situation(
    call_id: CallId,
    body: SituationBody,
    ops: OpsDep,
    staff: StaffDep,
    channel: Channel = "api",
    lang: Language = "zh",
) -> CallProtocolsView:
    """Say which situation the call is (the red button with no voice: `silent`)."""
    try:
        return await ops.choose_protocol(
            call_id, staff.id, channel, body.situation, viewer=staff, language=lang
        )
    except ProtocolAnswerError as refused:
        raise Refused(422, str(refused)) from None
