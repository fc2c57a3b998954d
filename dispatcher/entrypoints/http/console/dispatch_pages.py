"""The call page's dispatch forms: send a responder, mark them arrived, stand them
down. Each goes through the service layer (``Operations``), as the API's routes do,
and back to the call's page; the form's choices are read and checked there."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from dispatcher.core.dispatches import (
    MAX_ETA_MIN,
    MIN_ETA_MIN,
    DispatchRequest,
    InvalidDispatchError,
    ResponderKind,
)
from dispatcher.entrypoints.http.console import auth
from dispatcher.entrypoints.http.console.pages import Csrf, FormNote, act, clean

router = APIRouter(prefix=auth.CONSOLE, include_in_schema=False)

# The responder as the form's select gives it: "staff:ma-lin", "contact:2", "service:120",
# "other:".
Who = Annotated[str, Form(max_length=80, pattern=r"^(staff|contact|service|other):[\w.-]*$")]


@router.post("/calls/{call_id}/dispatches")
async def dispatch(
    request: Request,
    call_id: str,
    who: Who,
    eta_minutes: Annotated[int, Form(ge=MIN_ETA_MIN, le=MAX_ETA_MIN)] = 15,
    name: Annotated[str, Form(max_length=100)] = "",
    phone: Annotated[str, Form(max_length=32, pattern=r"^(\+?[0-9 -]{3,31})?$")] = "",
    text: FormNote = "",
    csrf: Csrf = "",
) -> Response:
    kind, _, ref = who.partition(":")
    asked = DispatchRequest(
        kind=ResponderKind(kind),
        ref=ref,
        name=clean(name),
        phone=phone.replace(" ", "").replace("-", ""),
        eta_minutes=eta_minutes,
        note=clean(text),
    )
    return await act(
        request,
        call_id,
        csrf,
        lambda ops, me: ops.dispatch(call_id, me.id, "console", asked, viewer=me),
    )


@router.post("/calls/{call_id}/dispatches/{number}/arrived")
async def arrived(request: Request, call_id: str, number: int, csrf: Csrf = "") -> Response:
    return await act(
        request,
        call_id,
        csrf,
        lambda ops, me: ops.mark_arrived(call_id, number, me.id, "console", viewer=me),
    )


@router.post("/calls/{call_id}/dispatches/{number}/stand-down")
async def stand_down(
    request: Request, call_id: str, number: int, text: FormNote = "", csrf: Csrf = ""
) -> Response:
    return await act(
        request,
        call_id,
        csrf,
        lambda ops, me: ops.stand_down(call_id, number, me.id, "console", clean(text), viewer=me),
    )


__all__ = ["InvalidDispatchError", "router"]
