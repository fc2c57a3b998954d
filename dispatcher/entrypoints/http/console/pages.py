"""The console's routes: sign-in, the live queue (page, server-sent events, JSON), taking
a call, a call's page. Every rule is the service layer's (``Operations``,
``LiveQueue``, ``Accounts``); these routes read forms, call it and render."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.templating import Jinja2Templates

from dispatcher.core import texts
from dispatcher.core.calls import AlreadyTakenError, InvalidTransitionError, Outcome
from dispatcher.core.dispatches import MAX_ETA_MIN, MIN_ETA_MIN
from dispatcher.core.scope import can_see
from dispatcher.entrypoints.http.console import auth, keys
from dispatcher.services.accounts import LoginRefusedError, SignedIn
from dispatcher.services.live_queue import LiveQueue
from dispatcher.services.read_models import CallNotFoundError, Operations

TEMPLATES = Jinja2Templates(directory=Path(__file__).with_name("templates"))
# How soon a browser reconnects after a dropped stream, and how often the stream
# speaks when nothing changes (so a silent, dead connection is noticed).
RETRY_MS = 1000
HEARTBEAT_S = 5.0

router = APIRouter(prefix=auth.CONSOLE, include_in_schema=False)


def _ops(request: Request) -> Operations:
    ops: Operations = request.state.ops
    return ops


def _queue(request: Request) -> LiveQueue:
    queue: LiveQueue = request.state.live_queue
    return queue


def language(request: Request, signed_in: SignedIn | None = None) -> str:
    chosen = request.cookies.get(auth.LANGUAGE_COOKIE)
    if chosen in texts.LANGUAGES:
        return chosen
    return texts.language_of(signed_in.staff.language if signed_in else None)


def translator(lang: str) -> Any:
    def t(key: str, **values: object) -> str:
        return texts.text(lang, key if "." in key else f"console.{key}", **values)

    return t


def _render(
    request: Request,
    template: str,
    lang: str,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {"t": translator(lang), "lang": lang, **context},
        status_code=status,
    )


# ------------------------------------------------------------------ sign-in


@router.get("", response_class=RedirectResponse)
async def console_root() -> RedirectResponse:
    return RedirectResponse(f"{auth.CONSOLE}/", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    return _login_page(request, None)


def _login_page(request: Request, message: str | None, status: int = 200) -> HTMLResponse:
    # The double-submit token: the same value in a cookie and in the form.
    token = secrets.token_urlsafe(32)
    response = _render(
        request, "login.html", language(request), status, message=message, csrf=token
    )
    auth.set_login_csrf(response, request, token)
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    staff_id: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    csrf: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    t = translator(language(request))
    try:
        auth.check_login_csrf(request, csrf)
    except auth.BadCsrfError:
        return _login_page(request, t("form_expired"), 400)
    accounts = auth.accounts_of(request)
    try:
        new = await accounts.login(staff_id.strip(), password)
    except LoginRefusedError as refused:
        if refused.locked_until is not None:
            until = _local(request, refused.locked_until).strftime("%H:%M")
            return _login_page(request, t("locked", until=until), 429)
        return _login_page(request, t("wrong_login"), 401)
    response = RedirectResponse(f"{auth.CONSOLE}/", status_code=303)
    now = request.state.clock.now()
    auth.set_session_cookie(response, request, new.token, new.expires_at, now)
    response.delete_cookie(auth.LOGIN_CSRF_COOKIE, path=auth.CONSOLE)
    return response


@router.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form(max_length=128)] = "") -> Response:
    signed_in = await auth.current(request)
    auth.check_csrf(request, signed_in, csrf)
    await auth.accounts_of(request).logout(request.cookies.get(auth.SESSION_COOKIE, ""))
    response = RedirectResponse(f"{auth.CONSOLE}/login", status_code=303)
    auth.clear_session_cookie(response)
    return response


@router.get("/language")
async def switch_language(request: Request, to: str = "zh", back: str = "/console/") -> Response:
    # Only a path of the console: the switch is no open redirect.
    target = back if back.startswith(f"{auth.CONSOLE}/") and "//" not in back else "/console/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        auth.LANGUAGE_COOKIE,
        texts.language_of(to),
        max_age=365 * 86400,
        path=auth.CONSOLE,
        samesite="strict",
        secure=auth.is_https(request),
    )
    return response


# ------------------------------------------------------------------ the queue


@router.get("/", response_class=HTMLResponse)
async def queue_page(request: Request) -> Response:
    signed_in = await auth.current(request)
    lang = language(request, signed_in)
    snapshot = await _queue(request).snapshot(signed_in.staff)
    t = translator(lang)
    page_texts = {
        key: t(key)
        for key in (
            "take",
            "taken",
            "open",
            "unknown_device",
            "mute",
            "muted",
            "live",
            "not_live",
            "empty",
            "sound_blocked",
        )
    }
    page_texts["waiting"] = t("waiting", n="{n}")
    page_texts["alarm_title"] = t("alarm_title", n="{n}")
    page_texts["unattended"] = t("unattended", s=snapshot.untaken_flag_s)
    page_texts["queue_title"] = t("queue_title")
    page_texts["supervisor_paged"] = t("watchdog.paged")
    page_texts.update(keys.queue_texts(t))
    for kind in ("emergency", "fall", "service", "technical"):
        page_texts[f"kind_{kind}"] = t(f"kind.{kind}")
    for state in ("open", "acknowledged", "responder_on_site", "cancelled", "resolved"):
        page_texts[f"state_{state}"] = t(f"state_{state}")
    for responder in ("on_the_way", "overdue", "arrived"):
        page_texts[f"responder_{responder}"] = t(f"console.dispatch.queue_{responder}")
    config = {
        "csrf": signed_in.csrf_token,
        "me": signed_in.staff.id,
        "texts": page_texts,
        "snapshot": snapshot.model_dump(mode="json"),
        "events": f"{auth.CONSOLE}/events",
        "queue": f"{auth.CONSOLE}/queue.json",
        "login": f"{auth.CONSOLE}/login",
        "heartbeat_s": HEARTBEAT_S,
    }
    return _render(
        request,
        "queue.html",
        lang,
        me=signed_in,
        role=t(f"role_{signed_in.staff.role.value}"),
        # Inside <script type="application/json">: "<" escaped, so no "</script>".
        config=json.dumps(config, ensure_ascii=False).replace("<", "\\u003c"),
    )


@router.get("/queue.json")
async def queue_json(request: Request) -> Response:
    signed_in = await auth.current(request)
    snapshot = await _queue(request).snapshot(signed_in.staff)
    return JSONResponse(snapshot.model_dump(mode="json"))


@router.get("/events")
async def queue_events(request: Request) -> Response:
    """The queue as server-sent events: a ``queue`` event at once and at every change,
    the same again every few seconds when nothing changes. The stream ends when the
    session does, and the page then goes back to the sign-in form."""
    signed_in = await auth.current(request)
    accounts = auth.accounts_of(request)
    token = request.cookies.get(auth.SESSION_COOKIE, "")

    async def stream() -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        async for snapshot in _queue(request).watch(signed_in.staff, HEARTBEAT_S):
            if await accounts.signed_in(token) is None:
                yield "event: signed_out\ndata: {}\n\n"
                return
            data = snapshot.model_dump_json()
            yield f"id: {snapshot.version}\nevent: queue\ndata: {data}\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.post("/calls/{call_id}/take")
async def take(
    request: Request, call_id: str, csrf: Annotated[str, Form(max_length=128)] = ""
) -> Response:
    """首问负责: the operator who takes a call owns it; the device hears
    ``acknowledged``. A call someone else has taken stays theirs (409)."""
    signed_in = await auth.current(request)
    auth.check_csrf(request, signed_in, csrf)
    ops = _ops(request)
    t = translator(language(request, signed_in))
    staff = signed_in.staff
    try:
        call = await ops.take(call_id, staff.id, "console", viewer=staff)
    except CallNotFoundError:
        return JSONResponse({"error": t("not_found")}, status_code=404)
    except AlreadyTakenError as taken:
        owner = request.state.directory.staff.get(taken.owner)
        name = owner.name if owner else taken.owner
        return JSONResponse(
            {"error": t("already_taken", name=name), "taken_by": taken.owner}, status_code=409
        )
    except InvalidTransitionError as refused:  # resolved meanwhile
        return JSONResponse({"error": str(refused)}, status_code=409)
    _queue_changed(request)
    if "text/html" in request.headers.get("accept", ""):  # the call page's form, no script
        return RedirectResponse(f"{auth.CONSOLE}/calls/{call_id}", status_code=303)
    return JSONResponse({"call_id": call.call_id, "state": call.state, "taken_by": staff.id})


def _queue_changed(request: Request) -> None:
    # The screens hear of it at the next poll; this one is told at once.
    queue = _queue(request)
    asyncio.get_running_loop().create_task(queue.poke())


# ------------------------------------------------------------------ a call's page


@router.get("/calls/{call_id}", response_class=HTMLResponse)
async def call_page(request: Request, call_id: str) -> Response:
    signed_in = await auth.current(request)
    lang = language(request, signed_in)
    t = translator(lang)
    try:
        call = await _ops(request).get_call(call_id, viewer=signed_in.staff)
    except CallNotFoundError:
        return _render(request, "message.html", lang, 404, me=signed_in, message=t("not_found"))
    return _render(
        request,
        "call.html",
        lang,
        me=signed_in,
        call=call,
        protocols=await _ops(request).call_protocols(call_id, signed_in.staff, lang),
        local=lambda when: _local(request, when).strftime("%m-%d %H:%M:%S") if when else "-",
        name_of=lambda who: _name_of(request, who),
        outcomes=[o.value for o in Outcome],
        # The dispatch form (_dispatches.html): whom to send, the expected time's bounds.
        dispatch_choices=await _ops(request).dispatch_choices(call_id, viewer=signed_in.staff),
        eta_bounds=(MIN_ETA_MIN, MAX_ETA_MIN),
        ts=lambda key, **values: texts.text(lang, f"console.sheet.{key}", **values),
        # Who may take the call over: the staff who can see it, but its holder.
        colleagues=[
            s
            for s in request.state.directory.staff.values()
            if s.id != (call.held_by or call.acknowledged_by)
            and can_see(request.state.directory, s, call.community_id)
        ],
    )


def _name_of(request: Request, who: str | None) -> str:
    """A staff member's name for a timeline actor or recipient id; other actors
    (``device``, ``system``, a contact) as they are."""
    staff = request.state.directory.staff.get(who or "")
    return staff.name if staff else (who or "-")


def _local(request: Request, when: datetime) -> datetime:
    return when.astimezone(ZoneInfo(request.state.directory.timezone))


# ------------------------------------------------------------------ a call's actions


async def act(request: Request, call_id: str, csrf: str, action: Any) -> Response:
    """One form post of the call's page: checked, done through the service layer,
    then back to the page (303), or the reason it was refused."""
    signed_in = await auth.current(request)
    auth.check_csrf(request, signed_in, csrf)
    lang = language(request, signed_in)
    t = translator(lang)
    try:
        await action(_ops(request), signed_in.staff)
    except CallNotFoundError:
        return _render(request, "message.html", lang, 404, me=signed_in, message=t("not_found"))
    except AlreadyTakenError as taken:
        name = _name_of(request, taken.owner)
        message = t("already_taken", name=name)
        return _render(request, "message.html", lang, 409, me=signed_in, message=message)
    except (InvalidTransitionError, ValueError) as refused:
        return _render(request, "message.html", lang, 409, me=signed_in, message=str(refused))
    _queue_changed(request)
    return RedirectResponse(f"{auth.CONSOLE}/calls/{call_id}", status_code=303)


Csrf = Annotated[str, Form(max_length=128)]
FormNote = Annotated[str, Form(max_length=2000)]


@router.post("/calls/{call_id}/note")
async def note(request: Request, call_id: str, text: FormNote, csrf: Csrf = "") -> Response:
    return await act(
        request,
        call_id,
        csrf,
        lambda ops, me: ops.add_note(call_id, me.id, "console", clean(text), viewer=me),
    )


@router.post("/calls/{call_id}/resolve")
async def resolve(
    request: Request,
    call_id: str,
    outcome: Annotated[Outcome, Form()],
    text: FormNote = "",
    csrf: Csrf = "",
) -> Response:
    return await act(
        request,
        call_id,
        csrf,
        lambda ops, me: ops.resolve(call_id, me.id, "console", outcome, clean(text), viewer=me),
    )


@router.post("/calls/{call_id}/escalate")
async def escalate(request: Request, call_id: str, csrf: Csrf = "") -> Response:
    return await act(
        request,
        call_id,
        csrf,
        lambda ops, me: ops.escalate_now(call_id, me.id, "console", viewer=me),
    )


@router.post("/calls/{call_id}/hand-over")
async def hand_over(
    request: Request,
    call_id: str,
    to: Annotated[str, Form(max_length=64)],
    text: FormNote = "",
    csrf: Csrf = "",
) -> Response:
    return await act(
        request,
        call_id,
        csrf,
        lambda ops, me: ops.hand_over(call_id, me.id, to, "console", clean(text), viewer=me),
    )


def clean(text: str) -> str:
    """A note as the API takes it: line breaks and tabs, no other control characters."""
    return "".join(ch for ch in text if ch in "\n\t" or (ord(ch) >= 32 and ord(ch) != 127)).strip()
