"""Twilio's delivery status callbacks: ``POST /twilio/status/{row_id}``.

Twilio posts what became of each SMS (queued, sent, delivered, undelivered, failed
with an ErrorCode) and each voice call (initiated, ringing, in-progress, completed,
busy, no-answer, failed, canceled, with AnsweredBy) to the URL the outbox gave it.
Each request must carry a valid ``X-Twilio-Signature`` for the public URL under the
primary or the secondary auth token (read by ``signed_forms``, as every Twilio
webhook is); otherwise it gets 403 and changes nothing.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request, Response

from dispatcher.adapters.twilio.delivery_reports import read_delivery_report
from dispatcher.adapters.twilio.phone_webhooks import TwilioWebhooks
from dispatcher.adapters.twilio.signed_forms import FormRefused, read_signed_form

log = structlog.get_logger(__name__)

STATUS_PATH = "/twilio/status/{row_id}"


router = APIRouter(include_in_schema=False)


@router.post(STATUS_PATH)
async def status_callback(row_id: int, request: Request) -> Response:
    """What became of outbox row ``row_id``'s SMS or call, as Twilio reports it."""
    hooks: TwilioWebhooks = request.state.twilio
    outbox = hooks.outbox
    if outbox is None:  # webhooks wired without an outbox: no delivery reports here
        return Response(status_code=404)
    # Signed over the URL as Twilio called it: our public base, the path, the query.
    # A callback's refusals are bare statuses, with no size limit (as they always were).
    try:
        params = await read_signed_form(
            request, hooks.public_url, hooks.auth_tokens, max_bytes=None, not_utf8=400
        )
    except FormRefused as refused:
        log.warning("status_callback_refused", row=row_id, reason=refused.reason)
        return Response(status_code=refused.status)
    known = await outbox.record_status(row_id, read_delivery_report(params))
    # Twilio only needs a 2xx; a row we do not know is still answered 200 so that
    # the provider does not keep retrying a callback for a row deleted by hand.
    log.info("status_callback", row=row_id, known=known, status=_status(params))
    return Response(status_code=204)


def _status(params: dict[str, str]) -> str:
    return params.get("MessageStatus") or params.get("CallStatus") or params.get("SmsStatus", "")
