"""Twilio's webhooks: inbound SMS replies and the voice calls' TwiML, under ``/twilio``.

Outside the operators' bearer-token auth: Twilio proves itself instead with
``X-Twilio-Signature``, an HMAC of the URL it called and the form it posted, under
the account's auth token (or the secondary one while it is being rotated). Every
route checks it before reading anything else (``signed_forms``); a request that fails gets
403 and changes nothing. HTTP only here: what an answer does is
``dispatcher.services.phone_desk``'s, and the TwiML documents are ``twiml``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.exceptions import HTTPException

from dispatcher.adapters.twilio import twiml
from dispatcher.adapters.twilio.signed_forms import FormRefused, read_signed_form
from dispatcher.config import Settings
from dispatcher.services.outbox import SmsOutbox
from dispatcher.services.phone_desk import PhoneDesk

PREFIX = "/twilio"


@dataclass(frozen=True)
class TwilioWebhooks:
    """What the webhook routes need: the services, the tokens, the public URL."""

    desk: PhoneDesk
    auth_tokens: tuple[str, ...]
    # The base URL Twilio calls (``https://centre.example.org``) when a proxy stands in
    # front of us; None: the request's own URL is what Twilio signed.
    public_url: str | None = None
    # Where delivery reports go (``status_webhooks``); None: they are not served.
    outbox: SmsOutbox | None = None

    @classmethod
    def from_settings(
        cls, desk: PhoneDesk, settings: Settings, outbox: SmsOutbox | None = None
    ) -> TwilioWebhooks:
        tokens = (settings.sms.auth_token, settings.sms.auth_token_secondary)
        return cls(desk, tuple(t for t in tokens if t), settings.http.public_url, outbox)


def _hooks(request: Request) -> TwilioWebhooks:
    hooks: TwilioWebhooks = request.state.twilio
    return hooks


async def signed_form(request: Request) -> dict[str, str]:
    """The posted form, once its signature is checked; 403 if it is not Twilio's."""
    hooks = _hooks(request)
    try:
        return await read_signed_form(request, hooks.public_url, hooks.auth_tokens)
    except FormRefused as refused:
        raise HTTPException(refused.status, refused.reason) from None


Form = Annotated[dict[str, str], Depends(signed_form)]
router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _xml(document: str) -> Response:
    return Response(content=document, media_type="application/xml")


@router.post("/sms")
async def inbound_sms(request: Request, form: Form) -> Response:
    """An SMS to our number: a reply such as ``7A``; answered by SMS (TwiML)."""
    answer = await _hooks(request).desk.on_sms(
        form.get("From", ""), form.get("Body", ""), form.get("MessageSid", "")
    )
    return _xml(twiml.sms_reply(answer))


@router.post("/voice/{notification_id}")
async def voice_answered(request: Request, notification_id: str, form: Form) -> Response:
    """Twilio's call for outbox row ``notification_id`` was answered."""
    number = _row_id(notification_id)
    desk = _hooks(request).desk
    if number is None:
        return _xml(twiml.hang_up())
    answer = await desk.voice_answered(number, form.get("AnsweredBy", ""))
    return _xml(twiml.voice(answer, _key_url(request, number)))


@router.post("/voice/{notification_id}/key")
async def voice_key(request: Request, notification_id: str, form: Form) -> Response:
    """The key pressed after the prompt (``Digits``)."""
    number = _row_id(notification_id)
    if number is None:
        return _xml(twiml.hang_up())
    answer = await _hooks(request).desk.voice_key(
        number, form.get("Digits", "").strip(), form.get("CallSid", "")
    )
    return _xml(twiml.voice(answer, _key_url(request, number)))


def _row_id(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) < 19 else None


def _key_url(request: Request, notification_id: int) -> str:
    """Where Twilio posts the key: absolute, so that it signs the URL we check."""
    base = _hooks(request).public_url or str(request.base_url)
    return f"{base.rstrip('/')}{PREFIX}/voice/{notification_id}/key"
