"""Reading a form Twilio posted to one of our webhooks, once it is proven Twilio's.

Every Twilio webhook (SMS replies, voice keys, delivery reports) posts a URL-encoded
form signed with ``X-Twilio-Signature``: an HMAC of the URL Twilio called and of the
form, under the account's auth token (or the secondary one while it is rotated; see
``signature``). :func:`read_signed_form` is the one place that parses such a form and
checks it; a form that fails raises :class:`FormRefused`, and each router answers that
in its own shape (the operator API's JSON error, or a bare status for callbacks).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl

import structlog
from starlette.datastructures import URL
from starlette.requests import Request

from dispatcher.adapters.twilio import signature as twilio_signature

log = structlog.get_logger(__name__)

MAX_FORM_BYTES = 64 * 1024  # Twilio's forms are a few hundred bytes


class FormRefused(Exception):
    """The form is not one we read: ``status`` is the HTTP answer, ``reason`` says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def signed_url(request_url: URL, public_url: str | None) -> str:
    """The URL Twilio called (and signed): the public base with our path and query."""
    if not public_url:
        return str(request_url)
    query = f"?{request_url.query}" if request_url.query else ""
    return f"{public_url.rstrip('/')}{request_url.path}{query}"


async def read_signed_form(
    request: Request,
    public_url: str | None,
    tokens: Sequence[str],
    *,
    max_bytes: int | None = MAX_FORM_BYTES,
    not_utf8: int | None = None,
) -> dict[str, str]:
    """The posted form, once its signature is checked against ``tokens``.

    ``public_url`` is the base Twilio was given (None: the request's own URL is what
    it signed). ``max_bytes`` refuses a larger body with 413 (None: no limit).
    ``not_utf8``: the status a body that is not UTF-8 gets; None reads it with
    replacement characters instead, so that its signature (over other bytes) fails.
    """
    body = await request.body()
    if max_bytes is not None and len(body) > max_bytes:
        raise FormRefused(413, "form too large")
    try:
        text = body.decode("utf-8", errors="strict" if not_utf8 is not None else "replace")
    except UnicodeDecodeError:
        assert not_utf8 is not None
        raise FormRefused(not_utf8, "form is not UTF-8") from None
    params = dict(parse_qsl(text, keep_blank_values=True))
    url = signed_url(request.url, public_url)
    signature = request.headers.get("X-Twilio-Signature")
    if not twilio_signature.is_valid(url, params, signature, tokens):
        log.warning("twilio.signature_refused", path=request.url.path, signed=bool(signature))
        raise FormRefused(403, "invalid or missing X-Twilio-Signature")
    return params
