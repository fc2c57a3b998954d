"""A local stand-in for Twilio's Messages and Calls APIs: records and prints every SMS.

Serves enough of ``/2010-04-01/Accounts/{AccountSid}/Messages.json`` and ``Calls.json``
(shapes taken from
Twilio's OpenAPI description) that the real ``twilio`` library, pointed here through
``[sms] api_base``, creates and fetches messages as it would at Twilio: HTTP Basic auth
with the account sid and auth token, Twilio's error codes for bad numbers, a Message
resource on success, and optionally the delivery status callbacks Twilio would post,
signed with ``X-Twilio-Signature``. Per-number scripts make a number behave as a test
needs: an SMS undelivered with 30006 (a landline), a call nobody answers, a call
answered by a voicemail.

:class:`SmsSinkServer` runs it with uvicorn in its own thread and event loop, so sync
fixtures, async tests and the demo can all use it. ``python -m dispatcher.smssink`` runs
one in the foreground.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hmac
import math
import re
import secrets
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from dispatcher.config import SmsSettings

log = structlog.get_logger(__name__)

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = SmsSettings().account_sid
DEFAULT_AUTH_TOKEN = SmsSettings().auth_token

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

_DEFAULT_CODE_FOR_STATUS = {429: TOO_MANY_REQUESTS, 500: INTERNAL_ERROR, 503: SERVICE_UNAVAILABLE}
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_MAX_BODY = 1600

# GSM 03.38: the basic set costs one septet, the extension set two; anything else forces
# UCS-2. Used only to report num_segments the way Twilio would.
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def num_segments(body: str) -> int:
    """How many SMS segments ``body`` takes (GSM-7 160/153, else UCS-2 70/67)."""
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in body):
        septets = sum(2 if ch in _GSM_EXTENDED else 1 for ch in body)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


@dataclass(frozen=True)
class SinkMessage:
    """One SMS the sink accepted. ``status`` moves to sent/delivered only with callbacks on."""

    sid: str
    to: str
    from_: str
    body: str
    received_at: datetime
    status_callback: str | None = None
    account_sid: str = DEFAULT_ACCOUNT_SID
    status: str = "queued"
    updated_at: datetime | None = None

    def resource(self) -> dict[str, Any]:
        """The Message resource JSON, as in Twilio's OpenAPI ``api.v2010.account.message``."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"
        created = format_datetime(self.received_at)
        sent = self.status in ("sent", "delivered")
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": created,
            "date_sent": format_datetime(self.updated_at) if sent and self.updated_at else None,
            "date_updated": format_datetime(self.updated_at or self.received_at),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": str(num_segments(self.body)),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": uri.removesuffix(".json") + "/Media.json"},
            "to": self.to,
            "uri": uri,
        }


@dataclass(frozen=True)
class SinkCall:
    """One voice call the sink accepted; ``status`` follows its scripted progress."""

    sid: str
    to: str
    from_: str
    url: str | None
    received_at: datetime
    status_callback: str | None = None
    status_callback_events: tuple[str, ...] = ()
    machine_detection: str | None = None
    account_sid: str = DEFAULT_ACCOUNT_SID
    status: str = "queued"
    answered_by: str | None = None
    updated_at: datetime | None = None

    def resource(self) -> dict[str, Any]:
        """The Call resource JSON, as in Twilio's OpenAPI ``api.v2010.account.call``."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}.json"
        return {
            "account_sid": self.account_sid,
            "answered_by": self.answered_by,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": format_datetime(self.received_at),
            "date_updated": format_datetime(self.updated_at or self.received_at),
            "direction": "outbound-api",
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": self.from_,
            "from_formatted": self.from_,
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": self.sid,
            "start_time": None,
            "status": self.status,
            "subresource_uris": {
                "recordings": uri.removesuffix(".json") + "/Recordings.json",
                "notifications": uri.removesuffix(".json") + "/Notifications.json",
            },
            "to": self.to,
            "to_formatted": self.to,
            "trunk_sid": None,
            "uri": uri,
        }


# What a scripted number does with a voice call.
VOICE_OUTCOMES = ("human", "machine", "no-answer", "busy", "failed")


@dataclass(frozen=True)
class SmsScript:
    """A scripted delivery outcome for SMS to one number: e.g. undelivered with 30006."""

    status: str  # the final status posted: "undelivered", "failed" or "delivered"
    error_code: int | None = None


@dataclass(frozen=True)
class SinkAttempt:
    """One POST to Messages.json, whatever the sink answered."""

    http_status: int
    code: int | None  # the Twilio error code answered, None on success
    to: str | None
    at: datetime


@dataclass(frozen=True)
class SinkCallback:
    """One status callback the sink posted (or tried to)."""

    sid: str
    status: str
    url: str
    http_status: int | None  # the answer of the callback endpoint; None if it failed
    error: str | None = None
    params: tuple[tuple[str, str], ...] = ()  # the form posted, signed


def format_sms_line(message: SinkMessage) -> str:
    """The console line the demo prints per SMS."""
    body = " ⏎ ".join(message.body.splitlines())
    return f"SMS → {message.to} : {body}"


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


class SinkState:
    """Everything the sink records and is told, shared between its thread and the caller's."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        on_message: Callable[[SinkMessage], None] | None,
        landlines: Iterable[str],
        status_callbacks: bool,
        callback_delay_s: float,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.on_message = on_message
        self.status_callbacks = status_callbacks
        self.callback_delay_s = callback_delay_s
        self.changed = threading.Condition()  # guards everything below, notified on change
        self.landlines: set[str] = set(landlines)
        self.messages: list[SinkMessage] = []
        self.attempts: list[SinkAttempt] = []
        self.callbacks: list[SinkCallback] = []
        self.faults: deque[tuple[int, int]] = deque()  # (HTTP status, Twilio code) to answer
        self.calls: list[SinkCall] = []
        # Per number: scripted outcomes used in turn; the last one stays for good
        # unless it was given a count (then the number behaves normally afterwards).
        self.sms_scripts: dict[str, deque[tuple[SmsScript, bool]]] = {}
        self.voice_scripts: dict[str, deque[tuple[str, bool]]] = {}

    def next_sms_script(self, to: str) -> SmsScript | None:
        with self.changed:
            return _next_script(self.sms_scripts, to)

    def next_voice_script(self, to: str) -> str:
        with self.changed:
            return _next_script(self.voice_scripts, to) or "human"

    def set_call(self, sid: str, **changes: Any) -> SinkCall | None:
        with self.changed:
            for index, call in enumerate(self.calls):
                if call.sid == sid:
                    updated = dataclasses.replace(call, updated_at=datetime.now(UTC), **changes)
                    self.calls[index] = updated
                    self.changed.notify_all()
                    return updated
        return None

    def record_attempt(self, http_status: int, code: int | None, to: str | None) -> None:
        with self.changed:
            self.attempts.append(SinkAttempt(http_status, code, to, datetime.now(UTC)))
            self.changed.notify_all()

    def find(self, sid: str) -> SinkMessage | None:
        with self.changed:
            return next((m for m in self.messages if m.sid == sid), None)

    def set_status(self, sid: str, status: str) -> SinkMessage | None:
        with self.changed:
            for index, message in enumerate(self.messages):
                if message.sid == sid:
                    updated = dataclasses.replace(
                        message, status=status, updated_at=datetime.now(UTC)
                    )
                    self.messages[index] = updated
                    self.changed.notify_all()
                    return updated
        return None


T = TypeVar("T")


def _next_script(scripts: dict[str, deque[tuple[T, bool]]], to: str) -> T | None:
    queue = scripts.get(to)
    if not queue:
        return None
    value, counted = queue[0]
    if counted or len(queue) > 1:
        queue.popleft()
    return value


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
    background: set[asyncio.Task[None]] = set()
    http: dict[str, httpx.AsyncClient] = {}

    def refusal(request: Request) -> tuple[int, int, str] | None:
        """(HTTP status, Twilio code, message) if the caller may not use this account."""
        if not _authenticated(request, state):
            return 401, AUTH_FAILED, "Authenticate"
        if request.path_params["account_sid"] != state.account_sid:
            # Twilio answers so for another account's resources, even with valid credentials.
            return 404, NOT_FOUND, f"The requested resource {request.url.path} was not found"
        return None

    async def create_message(request: Request) -> Response:
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
            in_background(deliver(message, script or SmsScript("delivered")))
        return JSONResponse(
            message.resource(), status_code=201, headers={"Twilio-Request-Id": _new_sid("RQ")}
        )

    def in_background(work: Any) -> None:
        task = asyncio.create_task(work)
        background.add(task)
        task.add_done_callback(background.discard)

    async def deliver(message: SinkMessage, script: SmsScript) -> None:
        """Move the message to sent then its final status, posting Twilio's callbacks."""
        for status in ("sent", script.status):
            await asyncio.sleep(state.callback_delay_s)
            state.set_status(message.sid, status)
            if message.status_callback:
                code = script.error_code if status == script.status else None
                await post_callback(message, status, message.status_callback, code)

    async def post_callback(
        message: SinkMessage, status: str, url: str, error_code: int | None = None
    ) -> None:
        params = {
            "AccountSid": message.account_sid,
            "ApiVersion": API_VERSION,
            "From": message.from_,
            "MessageSid": message.sid,
            "MessageStatus": status,
            "SmsSid": message.sid,
            "SmsStatus": status,
            "To": message.to,
        }
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        await post_signed(message.sid, status, url, params)

    async def post_signed(sid: str, status: str, url: str, params: dict[str, str]) -> None:
        signature = RequestValidator(state.auth_token).compute_signature(url, params)
        client = http.get("client")
        if client is None:
            client = http["client"] = httpx.AsyncClient(timeout=5.0)
        answer: int | None = None
        error: str | None = None
        try:
            response = await client.post(
                url, data=params, headers={"X-Twilio-Signature": signature}
            )
            answer = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("sms_sink.callback_failed", sid=sid, url=url, reason=error)
        with state.changed:
            state.callbacks.append(
                SinkCallback(sid, status, url, answer, error, tuple(sorted(params.items())))
            )
            state.changed.notify_all()

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
        in_background(progress(call, state.next_voice_script(to)))
        return JSONResponse(
            call.resource(), status_code=201, headers={"Twilio-Request-Id": _new_sid("RQ")}
        )

    async def progress(call: SinkCall, outcome: str) -> None:
        """Walk the call through Twilio's statuses for ``outcome``, posting callbacks."""
        answered = outcome in ("human", "machine")
        final = "completed" if answered else outcome
        answered_by = None
        if answered and call.machine_detection:
            answered_by = "human" if outcome == "human" else "machine_end_beep"
        steps: list[tuple[str, str]] = [("initiated", "initiated")]
        if outcome != "failed":
            steps.append(("ringing", "ringing"))
        if answered:
            steps.append(("answered", "in-progress"))
        steps.append(("completed", final))
        for sequence, (event, status) in enumerate(steps):
            await asyncio.sleep(state.callback_delay_s)
            state.set_call(call.sid, status=status, answered_by=answered_by if answered else None)
            # Twilio always reports the end; the other events only when asked for.
            if call.status_callback and (
                event == "completed" or event in call.status_callback_events
            ):
                params = {
                    "AccountSid": call.account_sid,
                    "ApiVersion": API_VERSION,
                    "CallSid": call.sid,
                    "CallStatus": status,
                    "Called": call.to,
                    "Caller": call.from_,
                    "Direction": "outbound-api",
                    "From": call.from_,
                    "SequenceNumber": str(sequence),
                    "To": call.to,
                }
                if answered_by is not None and event in ("answered", "completed"):
                    params["AnsweredBy"] = answered_by
                if event == "completed":
                    params["CallDuration"] = "12" if answered else "0"
                await post_signed(call.sid, status, call.status_callback, params)

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
        code = int(request.query_params.get("code", _DEFAULT_CODE_FOR_STATUS.get(status, 20500)))
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
        for task in list(background):
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if (client := http.pop("client", None)) is not None:
            await client.aclose()

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


class SmsSinkServer:
    """The sink on a real port, served by uvicorn in a thread of its own.

    ``on_message`` is called in the sink's thread for every accepted SMS (print it, count
    it); without one each SMS is logged. ``landlines`` are numbers Twilio would refuse with
    21614. With ``status_callbacks`` the sink posts ``sent`` then ``delivered`` to each
    message's ``StatusCallback``, ``callback_delay_s`` apart.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        on_message: Callable[[SinkMessage], None] | None = None,
        landlines: Iterable[str] = (),
        status_callbacks: bool = False,
        callback_delay_s: float = 0.05,
        backlog: int = 2048,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._backlog = backlog
        self._state = SinkState(
            account_sid=account_sid,
            auth_token=auth_token,
            on_message=on_message,
            landlines=landlines,
            status_callbacks=status_callbacks,
            callback_delay_s=callback_delay_s,
        )
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._crash: BaseException | None = None

    # -- life cycle ---------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; returns once the port accepts requests."""
        if self._thread is not None:
            raise RuntimeError("SmsSinkServer already started")
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._requested_port))
            # A deep backlog: a short one stalls concurrent clients (see field notes).
            sock.listen(self._backlog)
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_sink_app(self._state),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            backlog=self._backlog,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server

        def run() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            except BaseException as exc:  # reported by start(); a thread cannot raise
                self._crash = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=f"sms-sink-{self._port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"SMS sink failed to start: {self._crash!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"SMS sink not serving after {timeout}s")
            time.sleep(0.005)
        log.info("sms_sink.started", url=self.url)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread to end. Safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"SMS sink on {self.url} did not stop within {timeout}s")
        self._thread = None
        self._server = None

    def __enter__(self) -> SmsSinkServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- where ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("SmsSinkServer not started")
        return self._port

    @property
    def url(self) -> str:
        """The base to use as ``[sms] api_base``, e.g. ``http://127.0.0.1:40123``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def account_sid(self) -> str:
        return self._state.account_sid

    @property
    def auth_token(self) -> str:
        return self._state.auth_token

    def messages_url(self, account_sid: str | None = None) -> str:
        return f"{self.url}/{API_VERSION}/Accounts/{account_sid or self.account_sid}/Messages.json"

    # -- what it saw ------------------------------------------------------------------------

    @property
    def messages(self) -> list[SinkMessage]:
        """A snapshot of the accepted SMS, oldest first."""
        with self._state.changed:
            return list(self._state.messages)

    @property
    def attempts(self) -> list[SinkAttempt]:
        """A snapshot of every POST to Messages.json, accepted or not."""
        with self._state.changed:
            return list(self._state.attempts)

    @property
    def callbacks(self) -> list[SinkCallback]:
        """A snapshot of the status callbacks posted."""
        with self._state.changed:
            return list(self._state.callbacks)

    def message(self, sid: str) -> SinkMessage | None:
        return self._state.find(sid)

    @property
    def calls(self) -> list[SinkCall]:
        """A snapshot of the accepted voice calls, oldest first."""
        with self._state.changed:
            return list(self._state.calls)

    def script_sms(
        self, number: str, status: str, error_code: int | None = None, *, times: int | None = None
    ) -> None:
        """Make SMS to ``number`` end ``status`` (``undelivered`` with 30006 for a landline).

        The outcome is reported to the message's ``StatusCallback`` (sent, then ``status``),
        whether or not the sink posts callbacks for other numbers. With ``times`` it holds
        for that many messages, then the number behaves normally; scripts queue in order.
        """
        script = SmsScript(status, error_code)
        with self._state.changed:
            queue = self._state.sms_scripts.setdefault(number, deque())
            queue.extend([(script, True)] * times if times is not None else [(script, False)])

    def script_voice(self, number: str, outcome: str, *, times: int | None = None) -> None:
        """Make voice calls to ``number`` end as ``outcome``: ``human`` (the default),
        ``machine`` (a voicemail answers), ``no-answer``, ``busy`` or ``failed``."""
        if outcome not in VOICE_OUTCOMES:
            raise ValueError(f"outcome must be one of {VOICE_OUTCOMES}")
        with self._state.changed:
            queue = self._state.voice_scripts.setdefault(number, deque())
            queue.extend([(outcome, True)] * times if times is not None else [(outcome, False)])

    def wait_for_calls(self, count: int = 1, timeout: float = 5.0) -> list[SinkCall]:
        """Block until at least ``count`` voice calls were accepted; return them."""
        deadline = time.monotonic() + timeout
        with self._state.changed:
            while len(self._state.calls) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(self._state.calls)} of {count} calls after {timeout}s"
                    )
                self._state.changed.wait(left)
            return list(self._state.calls)

    async def wait_for_callbacks(
        self,
        predicate: Callable[[SinkCallback], bool],
        timeout: float = 5.0,  # noqa: ASYNC109  # a polling test helper
    ) -> list[SinkCallback]:
        """Wait (without blocking the loop) until a posted callback matches ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.callbacks if predicate(c)]
            if found:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no matching callback after {timeout}s: {self.callbacks}")
            await asyncio.sleep(0.01)

    # -- what it does -----------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 500, code: int | None = None) -> None:
        """Answer the next ``count`` POSTs to Messages.json with ``status`` (429/500/503...).

        ``code`` defaults to Twilio's code for that status (20429, 20500, 20503).
        """
        if code is None:
            code = _DEFAULT_CODE_FOR_STATUS.get(status, INTERNAL_ERROR)
        with self._state.changed:
            self._state.faults.extend([(status, code)] * count)

    def add_landline(self, *numbers: str) -> None:
        """Numbers to refuse with 21614, as Twilio refuses a landline."""
        with self._state.changed:
            self._state.landlines.update(numbers)

    def set_status_callbacks(self, enabled: bool, delay_s: float | None = None) -> None:
        self._state.status_callbacks = enabled
        if delay_s is not None:
            self._state.callback_delay_s = delay_s

    def clear(self) -> None:
        """Forget recorded messages, attempts and callbacks, and pending faults."""
        with self._state.changed:
            self._state.messages.clear()
            self._state.attempts.clear()
            self._state.callbacks.clear()
            self._state.faults.clear()
            self._state.calls.clear()
            self._state.sms_scripts.clear()
            self._state.voice_scripts.clear()
            self._state.changed.notify_all()

    def wait_for(
        self,
        predicate: Callable[[SinkMessage], bool] | None = None,
        timeout: float = 5.0,
        *,
        count: int = 1,
    ) -> list[SinkMessage]:
        """Block until ``count`` accepted SMS match ``predicate`` (any SMS if None); return them.

        Raises ``TimeoutError`` naming what did arrive.
        """
        deadline = time.monotonic() + timeout
        with self._state.changed:
            while True:
                matching = self._matching(predicate)
                if len(matching) >= count:
                    return matching
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._timeout_error(len(matching), count, timeout)
                self._state.changed.wait(left)

    async def wait_for_async(
        self,
        predicate: Callable[[SinkMessage], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109  # a polling test helper
        *,
        count: int = 1,
    ) -> list[SinkMessage]:
        """:meth:`wait_for` for coroutines: polls with short sleeps, never blocks the loop."""
        deadline = time.monotonic() + timeout
        while True:
            with self._state.changed:
                matching = self._matching(predicate)
            if len(matching) >= count:
                return matching
            if time.monotonic() >= deadline:
                raise self._timeout_error(len(matching), count, timeout)
            await asyncio.sleep(0.01)

    def _matching(self, predicate: Callable[[SinkMessage], bool] | None) -> list[SinkMessage]:
        return [m for m in self._state.messages if predicate is None or predicate(m)]

    def _timeout_error(self, got: int, wanted: int, timeout: float) -> TimeoutError:
        seen = [(m.to, m.body) for m in self._state.messages]
        return TimeoutError(f"{got} of {wanted} expected SMS after {timeout}s; sink has {seen}")


def main(argv: list[str] | None = None) -> int:
    """``python -m dispatcher.smssink``: run a sink in the foreground, printing every SMS."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    parser.add_argument("--landline", action="append", default=[], help="refuse with 21614")
    parser.add_argument(
        "--status-callbacks", action="store_true", help="post sent/delivered callbacks"
    )
    parser.add_argument(
        "--script-sms",
        action="append",
        default=[],
        metavar="NUMBER=STATUS[:CODE]",
        help="e.g. +862155550101=undelivered:30006 (a landline)",
    )
    parser.add_argument(
        "--script-voice",
        action="append",
        default=[],
        metavar="NUMBER=OUTCOME",
        help=f"calls to NUMBER end as one of {', '.join(VOICE_OUTCOMES)}",
    )
    args = parser.parse_args(argv)
    sms_scripts: list[tuple[str, str, int | None]] = []
    voice_scripts: list[tuple[str, str]] = []
    try:
        for spec in args.script_sms:
            number, _, outcome = spec.partition("=")
            status, _, code = outcome.partition(":")
            sms_scripts.append((number, status, int(code) if code else None))
        for spec in args.script_voice:
            number, _, outcome = spec.partition("=")
            if outcome not in VOICE_OUTCOMES:
                raise ValueError(f"{outcome!r} is not one of {VOICE_OUTCOMES}")
            voice_scripts.append((number, outcome))
    except ValueError as exc:
        parser.error(f"bad script: {exc}")

    def show(message: SinkMessage) -> None:
        print(format_sms_line(message), flush=True)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    sink = SmsSinkServer(
        args.host,
        args.port,
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        on_message=show,
        landlines=args.landline,
        status_callbacks=args.status_callbacks,
    )
    for number, status, code in sms_scripts:
        sink.script_sms(number, status, code)
    for number, outcome in voice_scripts:
        sink.script_voice(number, outcome)
    sink.start()
    print(f"SMS sink on {sink.url} (account {sink.account_sid})", file=sys.stderr, flush=True)
    try:
        stop.wait()
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
