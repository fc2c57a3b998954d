"""Twilio's delivery status callbacks: ``POST /twilio/status/{row_id}``.

Twilio posts what became of each SMS (queued, sent, delivered, undelivered, failed
with an ErrorCode) and each voice call (initiated, ringing, in-progress, completed,
busy, no-answer, failed, canceled, with AnsweredBy) to the URL the outbox gave it.
Each request must carry a valid ``X-Twilio-Signature`` for the public URL under the
primary or the secondary auth token; otherwise it gets 403 and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl

import structlog
from fastapi import APIRouter, Request, Response

from dispatcher.adapters.twilio import signature as twilio_signature
from dispatcher.adapters.twilio.delivery_reports import read_delivery_report
from dispatcher.adapters.twilio.phone_webhooks import signed_url
from dispatcher.services.outbox import SmsOutbox

log = structlog.get_logger(__name__)

STATUS_PATH = "/twilio/status/{row_id}"


def status_router(outbox: SmsOutbox, public_url: str | None, tokens: Sequence[str]) -> APIRouter:
    """The router for status callbacks; ``public_url`` is the base Twilio was given."""
    router = APIRouter()
    valid_tokens = [t for t in tokens if t]

    @router.post(STATUS_PATH, include_in_schema=False)
    async def status_callback(row_id: int, request: Request) -> Response:
        raw = await request.body()
        try:
            params = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return Response(status_code=400)
        # Signed over the URL as Twilio called it: our public base, the path, the query.
        url = signed_url(request.url, public_url)
        signature = request.headers.get("x-twilio-signature")
        if not twilio_signature.is_valid(url, params, signature, valid_tokens):
            log.warning("status_callback_refused", row=row_id, url=url)
            return Response(status_code=403)
        known = await outbox.record_status(row_id, read_delivery_report(params))
        # Twilio only needs a 2xx; a row we do not know is still answered 200 so that
        # the provider does not keep retrying a callback for a row deleted by hand.
        log.info("status_callback", row=row_id, known=known, status=_status(params))
        return Response(status_code=204)

    return router


def _status(params: dict[str, str]) -> str:
    return params.get("MessageStatus") or params.get("CallStatus") or params.get("SmsStatus", "")
