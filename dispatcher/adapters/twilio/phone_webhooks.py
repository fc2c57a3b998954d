"""Twilio's webhooks: inbound SMS replies and the voice calls' TwiML, under ``/twilio``.

Outside the operators' bearer-token auth: Twilio proves itself instead with
``X-Twilio-Signature``, an HMAC of the URL it called and the form it posted, under
the account's auth token (or the secondary one while it is being rotated). Every
route checks it before reading anything else; a request that fails gets 403 and
changes nothing. HTTP only here: what an answer does is ``dispatcher.services.phone_desk``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl

import structlog
from fastapi import APIRouter, Depends, Request, Response
from starlette.datastructures import URL
from starlette.exceptions import HTTPException
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from dispatcher.adapters.twilio import signature as twilio_signature
from dispatcher.config import Settings
from dispatcher.core.phone_texts import VOICE_LANGUAGE
from dispatcher.services.phone_desk import PhoneDesk, VoiceAnswer, VoiceStep

log = structlog.get_logger(__name__)

PREFIX = "/twilio"
MAX_FORM_BYTES = 64 * 1024  # Twilio's forms are a few hundred bytes
GATHER_TIMEOUT_S = 6  # seconds Twilio waits for the key after the prompt is read


@dataclass(frozen=True)
class TwilioWebhooks:
    """What the webhook routes need: the service, the tokens, the public URL."""

    desk: PhoneDesk
    auth_tokens: tuple[str, ...]
    # The base URL Twilio calls (``https://centre.example.org``) when a proxy stands in
    # front of us; None: the request's own URL is what Twilio signed.
    public_url: str | None = None

    @classmethod
    def from_settings(cls, desk: PhoneDesk, settings: Settings) -> TwilioWebhooks:
        tokens = (settings.sms.auth_token, settings.sms.auth_token_secondary)
        return cls(desk, tuple(t for t in tokens if t), settings.http.public_url)


def signed_url(request_url: URL, public_url: str | None) -> str:
    """The URL Twilio called (and signed): the public base with our path and query."""
    if not public_url:
        return str(request_url)
    query = f"?{request_url.query}" if request_url.query else ""
    return f"{public_url.rstrip('/')}{request_url.path}{query}"


def _hooks(request: Request) -> TwilioWebhooks:
    hooks: TwilioWebhooks = request.app.state.twilio
    return hooks


async def signed_form(request: Request) -> dict[str, str]:
    """The posted form, once its signature is checked; 403 if it is not Twilio's."""
    hooks = _hooks(request)
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "form too large")
    params = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    url = signed_url(request.url, hooks.public_url)
    signature = request.headers.get("X-Twilio-Signature")
    if not twilio_signature.is_valid(url, params, signature, hooks.auth_tokens):
        log.warning("twilio.signature_refused", path=request.url.path, signed=bool(signature))
        raise HTTPException(403, "invalid or missing X-Twilio-Signature")
    return params


Form = Annotated[dict[str, str], Depends(signed_form)]
router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _xml(twiml: object) -> Response:
    return Response(content=str(twiml), media_type="application/xml")


@router.post("/sms")
async def inbound_sms(request: Request, form: Form) -> Response:
    """An SMS to our number: a reply such as ``7A``; answered by SMS (TwiML)."""
    answer = await _hooks(request).desk.on_sms(
        form.get("From", ""), form.get("Body", ""), form.get("MessageSid", "")
    )
    twiml = MessagingResponse()
    twiml.message(answer)
    return _xml(twiml)


@router.post("/voice/{notification_id}")
async def voice_answered(request: Request, notification_id: str, form: Form) -> Response:
    """Twilio's call for outbox row ``notification_id`` was answered."""
    number = _row_id(notification_id)
    desk = _hooks(request).desk
    if number is None:
        return _xml(_voice(VoiceAnswer(VoiceStep.HANG_UP), ""))
    answer = await desk.voice_answered(number, form.get("AnsweredBy", ""))
    return _xml(_voice(answer, _key_url(request, number)))


@router.post("/voice/{notification_id}/key")
async def voice_key(request: Request, notification_id: str, form: Form) -> Response:
    """The key pressed after the prompt (``Digits``)."""
    number = _row_id(notification_id)
    if number is None:
        return _xml(_voice(VoiceAnswer(VoiceStep.HANG_UP), ""))
    answer = await _hooks(request).desk.voice_key(
        number, form.get("Digits", "").strip(), form.get("CallSid", "")
    )
    return _xml(_voice(answer, _key_url(request, number)))


def _row_id(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) < 19 else None


def _key_url(request: Request, notification_id: int) -> str:
    """Where Twilio posts the key: absolute, so that it signs the URL we check."""
    base = _hooks(request).public_url or str(request.base_url)
    return f"{base.rstrip('/')}{PREFIX}/voice/{notification_id}/key"


def _voice(answer: VoiceAnswer, key_url: str) -> VoiceResponse:
    """TwiML for ``answer``. A prompt is read twice (a second chance to press 1);
    with no key after that the call says so and hangs up, unacknowledged."""
    twiml = VoiceResponse()
    language = VOICE_LANGUAGE.get(answer.language, "zh-CN")
    if answer.step is VoiceStep.PROMPT:
        for _ in range(2):
            gather = twiml.gather(
                num_digits=1, action=key_url, method="POST", timeout=GATHER_TIMEOUT_S
            )
            gather.say(answer.text, language=language)
        twiml.say(answer.no_key_text, language=language)
    elif answer.step is VoiceStep.SAY_AND_HANG_UP:
        twiml.say(answer.text, language=language)
    twiml.hangup()
    return twiml
