"""The operator API's dispatches: send a responder to a call, mark them arrived, stand
them down; whom the call offers to send. Every rule is the service layer's
(``Operations``, ``dispatcher.core.dispatches``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Header, Path
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.core.dispatches import (
    MAX_ETA_MIN,
    MIN_ETA_MIN,
    DispatchRequest,
    InvalidDispatchError,
    ResponderKind,
)
from dispatcher.entrypoints.http.deps import (
    ERRORS,
    PREFIX,
    ErrorBody,
    Note,
    OpsDep,
    Refused,
    StaffDep,
)
from dispatcher.services.read_models import CallView, DispatchChoice

router = APIRouter(prefix=PREFIX)

CallId = Annotated[str, Path(min_length=1, max_length=64, description="e.g. C-20261128-0007")]
Number = Annotated[int, Path(ge=1, le=10_000, description="the dispatch's number within the call")]
Channel = Annotated[
    Literal["api", "cli"],
    Header(alias="X-Eldercall-Channel", description="Recorded on the call's timeline."),
]
_ERRORS: dict[int | str, dict[str, object]] = {
    **ERRORS,
    404: {"model": ErrorBody, "description": "No such call"},
    409: {"model": ErrorBody, "description": "The call or the dispatch cannot do that now"},
}


class DispatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: ResponderKind
    ref: Annotated[
        str,
        Field(
            default="",
            max_length=64,
            description="staff: the staff id; contact: the contact's order (1, 2...); "
            "service: 120, 110 or 119; other: empty",
        ),
    ] = ""
    name: Annotated[str, Field(default="", max_length=100, description="other: the name")] = ""
    phone: Annotated[str, Field(default="", max_length=32, pattern=r"^(\+?[0-9 -]{3,31})?$")] = ""
    eta_minutes: Annotated[int, Field(ge=MIN_ETA_MIN, le=MAX_ETA_MIN)] = 15
    note: Note = ""


class StandDownBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Note = ""


class ChoiceList(BaseModel):
    choices: list[DispatchChoice]


@router.post(
    "/calls/{call_id}/dispatches", response_model=CallView, responses=_ERRORS, tags=["calls"]
)
async def dispatch(
    call_id: CallId, body: DispatchBody, ops: OpsDep, staff: StaffDep, channel: Channel = "api"
) -> CallView:
    """Send a responder (a staff member who can see the call, one of the resident's
    contacts, 120/110/119 phoned by you, or someone else) expected within
    `eta_minutes`. A person with a phone is told where to go by SMS; a call nobody
    has taken is taken by you. 422 for a responder who cannot be sent."""
    request = DispatchRequest(
        kind=body.kind,
        ref=body.ref.strip(),
        name=body.name,
        phone=body.phone.replace(" ", "").replace("-", ""),
        eta_minutes=body.eta_minutes,
        note=body.note,
    )
    try:
        return await ops.dispatch(call_id, staff.id, channel, request, viewer=staff)
    except InvalidDispatchError as refused:
        raise Refused(422, str(refused)) from refused


@router.post(
    "/calls/{call_id}/dispatches/{number}/arrived",
    response_model=CallView,
    responses=_ERRORS,
    tags=["calls"],
)
async def arrived(
    call_id: CallId, number: Number, ops: OpsDep, staff: StaffDep, channel: Channel = "api"
) -> CallView:
    """The responder has arrived (as the device's presence key says it)."""
    return await ops.mark_arrived(call_id, number, staff.id, channel, viewer=staff)


@router.post(
    "/calls/{call_id}/dispatches/{number}/stand-down",
    response_model=CallView,
    responses=_ERRORS,
    tags=["calls"],
)
async def stand_down(
    call_id: CallId,
    number: Number,
    ops: OpsDep,
    staff: StaffDep,
    body: Annotated[StandDownBody | None, Body()] = None,
    channel: Channel = "api",
) -> CallView:
    """The responder is no longer needed: not expected any more, nothing raised."""
    note = body.note if body else ""
    return await ops.stand_down(call_id, number, staff.id, channel, note, viewer=staff)


@router.get(
    "/calls/{call_id}/dispatch-choices",
    response_model=ChoiceList,
    responses=_ERRORS,
    tags=["calls"],
)
async def choices(call_id: CallId, ops: OpsDep, staff: StaffDep) -> ChoiceList:
    """Whom the call offers to send: its community's and street's staff, the
    resident's contacts (key-holders marked), the emergency services."""
    return ChoiceList(choices=await ops.dispatch_choices(call_id, viewer=staff))
