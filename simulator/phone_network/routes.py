"""The local Twilio sink's HTTP face: the Messages and Calls resources, and ``/sink/*``.

:func:`create_sink_app` builds the Starlette app over a :class:`SinkState`: HTTP Basic
auth with the account sid and auth token, Twilio's error codes and (legacy) error shape,
injected faults, and the test-only ``/sink/messages``, ``/sink/calls`` and ``/sink/fail``.
Status callbacks are posted by :class:`~simulator.phone_network.callbacks.CallbackPoster`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import re
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.phone_network.callbacks import CallbackPoster
from simulator.phone_network.state import (
    API_VERSION,
    SinkAttempt,
    SinkCall,
    SinkMessage,
    SinkState,
    SmsScript,
)

# The sink logs under one name, whichever of its modules speaks.
log = structlog.get_logger("simulator.phone_network.server")

# Twilio error codes the sink answers with.
AUTH_FAILED = 20003
NOT_FOUND = 20404
TOO_MANY_REQUESTS = 20429
INTERNAL_ERROR = 20500
SERVICE_UNAVAILABLE = 20503
INVALID_TO = 21211
BODY_REQUIRED = 21602
FROM_REQUIRED = 21603
TO_REQUIRED = 21604
INVALID_STATUS_CALLBACK = 21609
NOT_MOBILE = 21614
BODY_TOO_LONG = 21617
URL_REQUIRED = 21205
INVALID_URL = 21205

DEFAULT_CODE_FOR_STATUS = {429: TOO_MANY_REQUESTS, 500: INTERNAL_ERROR, 503: SERVICE_UNAVAILABLE}
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_MAX_BODY = 1600


def _new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _twilio_error(status: int, code: int, message: str) -> JSONResponse:
    """An error answer in Twilio's (legacy, non-RFC 9457) shape, which the library parses."""
    headers = {"Twilio-Request-Id": _new_sid("RQ")}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
    payload: dict[str, Any] = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    if code == AUTH_FAILED:
        payload["detail"] = "Your AccountSid or AuthToken was incorrect."
    return JSONResponse(
        payload,
        status_code=status,
        headers=headers,
    )


def _authenticated(request: Request, state: SinkState) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, sep, password = decoded.partition(":")
    if not sep:
        return False
    # Both compared, constant time, so the sink does not teach timing attacks by example.
    user_ok = hmac.compare_digest(user.encode(), state.account_sid.encode())
    password_ok = hmac.compare_digest(password.encode(), state.auth_token.encode())
    return user_ok and password_ok


async def _form_fields(request: Request) -> dict[str, str]:
    """The urlencoded form, parsed by hand: Starlette's form() needs python-multipart."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    # A repeated field (MediaUrl) keeps its first value; the sink does not do media.
    fields: dict[str, str] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        fields.setdefault(key, value)
    return fields


def _valid_callback_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def create_sink_app(state: SinkState) -> Starlette:
    """The ASGI app; :class:`SmsSinkServer` runs it, tests may also mount it elsewhere."""
    poster = CallbackPoster(state)

    def refusal(request: Request) -> tuple[int, int, str] | None:
        """(HTTP status, Twilio code, message) if the caller may not use this account."""
        if not _authenticated(request, state):
            return 401, AUTH_FAILED, "Authenticate"
        if request.path_params["account_sid"] != state.account_sid:
            # Twilio answers so for another account's resources, even with valid credentials.
            return 404, NOT_FOUND, f"The requested resource {request.url.path} was not found"
        return None

    async def create_message(request: Request) -> Response:
        arrived_at = time.time()
        fields = await _form_fields(request)
        to = fields.get("To", "").strip()
        with state.changed:
            fault = state.faults.popleft() if state.faults else None
        if fault is not None:
            status, code = fault
            state.record_attempt(status, code, to or None)
            return _twilio_error(status, code, f"Injected fault: HTTP {status}")
        if (refused := refusal(request)) is not None:
            state.record_attempt(refused[0], refused[1], to or None)
            return _twilio_error(*refused)
        from_ = fields.get("From", "").strip()
        body = fields.get("Body", "")
        callback = fields.get("StatusCallback") or None

        error: tuple[int, str] | None = None
        if not to:
            error = (TO_REQUIRED, "A 'To' phone number is required.")
        elif not _E164.match(to):
            error = (INVALID_TO, f"The 'To' number {to} is not a valid phone number.")
        elif not from_ and not fields.get("MessagingServiceSid"):
            error = (FROM_REQUIRED, "A 'From' phone number is required.")
        elif not body:
            error = (BODY_REQUIRED, "Message body is required.")
        elif len(body) > _MAX_BODY:
            error = (
                BODY_TOO_LONG,
                "The concatenated message body exceeds the 1600 character limit.",
            )
        elif callback is not None and not _valid_callback_url(callback):
            error = (INVALID_STATUS_CALLBACK, f"The StatusCallback URL {callback} is not valid.")
        else:
            with state.changed:
                landline = to in state.landlines
            if landline:
                error = (NOT_MOBILE, f"The 'To' number {to} is not a valid mobile number.")
        if error is not None:
            code, text = error
            state.record_attempt(400, code, to or None)
            log.info("sms_sink.refused", to=to, code=code, reason=text)
            return _twilio_error(400, code, text)

        message = SinkMessage(
            sid=_new_sid("SM"),
            to=to,
            from_=from_,
            body=body,
            # Twilio's dates have whole seconds (RFC 2822); keep the record consistent.
            received_at=datetime.now(UTC).replace(microsecond=0),
            status_callback=callback,
            account_sid=state.account_sid,
            arrived_at=arrived_at,
        )
        with state.changed:
            state.messages.append(message)
            state.attempts.append(SinkAttempt(201, None, to, datetime.now(UTC)))
            state.changed.notify_all()
        if state.on_message is not None:
            try:
                state.on_message(message)
            except Exception:
                log.exception("sms_sink.on_message_failed", sid=message.sid)
        else:
            log.info("sms_sink.received", sid=message.sid, to=to, body=body)
        script = state.next_sms_script(to)
        if state.status_callbacks or (script is not None and callback is not None):
            poster.in_background(poster.deliver(message, script or SmsScript("delivered")))
        return JSONResponse(
            message.resource(), status_code=201, headers={"Twilio-Request-Id": _new_sid("RQ")}
        )

    async def create_call(request: Request) -> Response:
        raw = (await request.body()).decode("utf-8", errors="replace")
        fields = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        events = tuple(parse_qs(raw).get("StatusCallbackEvent", []))
        to = fields.get("To", "").strip()
        with state.changed:
            fault = state.faults.popleft() if state.faults else None
        if fault is not None:
            state.record_attempt(fault[0], fault[1], to or None)
            return _twilio_error(fault[0], fault[1], f"Injected fault: HTTP {fault[0]}")
        if (refused := refusal(request)) is not None:
            state.record_attempt(refused[0], refused[1], to or None)
            return _twilio_error(*refused)
        from_ = fields.get("From", "").strip()
        url = fields.get("Url") or None
        callback = fields.get("StatusCallback") or None
        error: tuple[int, str] | None = None
        if not to:
            error = (TO_REQUIRED, "A 'To' phone number is required.")
        elif not _E164.match(to):
            error = (INVALID_TO, f"The 'To' number {to} is not a valid phone number.")
        elif not from_:
            error = (FROM_REQUIRED, "A 'From' phone number is required.")
        elif url is None and not fields.get("Twiml") and not fields.get("ApplicationSid"):
            error = (URL_REQUIRED, "Either Url, Twiml or ApplicationSid is required.")
        elif url is not None and not _valid_callback_url(url):
            error = (INVALID_URL, f"Url is not a valid URL: {url}")
        elif callback is not None and not _valid_callback_url(callback):
            error = (INVALID_STATUS_CALLBACK, f"The StatusCallback URL {callback} is not valid.")
        if error is not None:
            state.record_attempt(400, error[0], to or None)
            log.info("sms_sink.call_refused", to=to, code=error[0], reason=error[1])
            return _twilio_error(400, *error)
        call = SinkCall(
            sid=_new_sid("CA"),
            to=to,
            from_=from_,
            url=url,
            received_at=datetime.now(UTC).replace(microsecond=0),
            status_callback=callback,
            status_callback_events=events,
            machine_detection=fields.get("MachineDetection") or None,
            account_sid=state.account_sid,
        )
        with state.changed:
            state.calls.append(call)
            state.attempts.append(SinkAttempt(201, None, to, datetime.now(UTC)))
            state.changed.notify_all()
        log.info("sms_sink.call", sid=call.sid, to=to, url=url)
        poster.in_background(poster.progress(call, state.next_voice_script(to)))
        return JSONResponse(
            call.resource(), status_code=201, headers={"Twilio-Request-Id": _new_sid("RQ")}
        )

    async def fetch_call(request: Request) -> Response:
        if (refused := refusal(request)) is not None:
            return _twilio_error(*refused)
        with state.changed:
            call = next((c for c in state.calls if c.sid == request.path_params["sid"]), None)
        if call is None:
            return _twilio_error(
                404, NOT_FOUND, f"The requested resource {request.url.path} was not found"
            )
        return JSONResponse(call.resource())

    async def fetch_message(request: Request) -> Response:
        if (refused := refusal(request)) is not None:
            return _twilio_error(*refused)
        message = state.find(request.path_params["sid"])
        if message is None:
            return _twilio_error(
                404, NOT_FOUND, f"The requested resource {request.url.path} was not found"
            )
        return JSONResponse(message.resource())

    async def list_recorded(request: Request) -> Response:
        with state.changed:
            messages = list(state.messages)
        return JSONResponse(
            [
                {
                    "sid": m.sid,
                    "to": m.to,
                    "from": m.from_,
                    "body": m.body,
                    "status": m.status,
                    "status_callback": m.status_callback,
                    "received_at": m.received_at.isoformat(),
                    "arrived_at": m.arrived_at,
                }
                for m in messages
            ]
        )

    async def list_calls(request: Request) -> Response:
        with state.changed:
            calls = list(state.calls)
        return JSONResponse(
            [
                {
                    "sid": c.sid,
                    "to": c.to,
                    "from": c.from_,
                    "url": c.url,
                    "status": c.status,
                    "answered_by": c.answered_by,
                    "status_callback": c.status_callback,
                    "received_at": c.received_at.isoformat(),
                }
                for c in calls
            ]
        )

    async def clear_recorded(request: Request) -> Response:
        with state.changed:
            state.messages.clear()
            state.attempts.clear()
            state.callbacks.clear()
            state.calls.clear()
            state.changed.notify_all()
        return Response(status_code=204)

    async def inject_faults(request: Request) -> Response:
        """``POST /sink/fail?count=3&status=503``: the next POSTs answer that error."""
        try:
            count = int(request.query_params.get("count", "1"))
            status = int(request.query_params.get("status", "500"))
        except ValueError:
            return JSONResponse({"error": "count and status must be integers"}, status_code=400)
        code = int(request.query_params.get("code", DEFAULT_CODE_FOR_STATUS.get(status, 20500)))
        with state.changed:
            state.faults.extend([(status, code)] * count)
        return JSONResponse({"queued_faults": count, "status": status, "code": code})

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 405:
            return _twilio_error(405, 20004, f"Method not allowed: {request.method}")
        return _twilio_error(
            404, NOT_FOUND, f"The requested resource {request.url.path} was not found"
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await poster.aclose()

    base = f"/{API_VERSION}/Accounts/{{account_sid}}"
    return Starlette(
        routes=[
            Route(f"{base}/Messages.json", create_message, methods=["POST"]),
            Route(f"{base}/Messages/{{sid}}.json", fetch_message, methods=["GET"]),
            Route(f"{base}/Calls.json", create_call, methods=["POST"]),
            Route(f"{base}/Calls/{{sid}}.json", fetch_call, methods=["GET"]),
            Route("/sink/messages", list_recorded, methods=["GET"]),
            Route("/sink/messages", clear_recorded, methods=["DELETE"]),
            Route("/sink/calls", list_calls, methods=["GET"]),
            Route("/sink/fail", inject_faults, methods=["POST"]),
        ],
        exception_handlers={404: not_found, 405: not_found},
        lifespan=lifespan,
    )
