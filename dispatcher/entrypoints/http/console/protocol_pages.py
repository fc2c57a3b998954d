"""The console's protocol forms on a call's page (``_protocol.html``): pick the situation,
answer a step. Each post is checked (session, CSRF), done through the service layer
(``Operations.choose_protocol``, ``answer_protocol_step``: the API's calls) and goes
back to the page (303), or says why it was refused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from dispatcher.core.call_protocols import MAX_NOTE, ProtocolAnswerError
from dispatcher.core.calls import InvalidTransitionError
from dispatcher.core.directory import Staff
from dispatcher.entrypoints.http.console import auth
from dispatcher.entrypoints.http.console.pages import _ops, _render, clean, language, translator
from dispatcher.services.read_models import CallNotFoundError, Operations

router = APIRouter(prefix=auth.CONSOLE, include_in_schema=False)

Csrf = Annotated[str, Form(max_length=128)]
FormId = Annotated[str, Form(max_length=80)]


async def _post(
    request: Request,
    call_id: str,
    csrf: str,
    action: Callable[[Operations, Staff, str], Awaitable[Any]],
) -> Response:
    signed_in = await auth.current(request)
    auth.check_csrf(request, signed_in, csrf)
    lang = language(request, signed_in)
    t = translator(lang)
    try:
        await action(_ops(request), signed_in.staff, lang)
    except CallNotFoundError:
        return _render(request, "message.html", lang, 404, me=signed_in, message=t("not_found"))
    except ProtocolAnswerError as refused:  # a form the file no longer matches
        return _render(request, "message.html", lang, 422, me=signed_in, message=str(refused))
    except InvalidTransitionError as refused:  # resolved meanwhile
        return _render(request, "message.html", lang, 409, me=signed_in, message=str(refused))
    return RedirectResponse(f"{auth.CONSOLE}/calls/{call_id}#protocol", status_code=303)


@router.post("/calls/{call_id}/protocol/answer")
async def answer(
    request: Request,
    call_id: str,
    protocol: FormId,
    step: FormId,
    answer: FormId = "",
    # A checkbox left unticked sends nothing: the form says what that means.
    unchecked: FormId = "",
    note: Annotated[str, Form(max_length=MAX_NOTE)] = "",
    csrf: Csrf = "",
) -> Response:
    given = answer or unchecked
    return await _post(
        request,
        call_id,
        csrf,
        lambda ops, me, lang: ops.answer_protocol_step(
            call_id, me.id, "console", protocol, step, given, clean(note), viewer=me, language=lang
        ),
    )


@router.post("/calls/{call_id}/protocol/situation")
async def situation(request: Request, call_id: str, situation: FormId, csrf: Csrf = "") -> Response:
    return await _post(
        request,
        call_id,
        csrf,
        lambda ops, me, lang: ops.choose_protocol(
            call_id, me.id, "console", situation, viewer=me, language=lang
        ),
    )
