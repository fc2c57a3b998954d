"""Checks Twilio's ``X-Twilio-Signature`` with the twilio library's own validator.

Two auth tokens may be valid at once while the account's token is being rotated
(Twilio's secondary auth token): a request signed with either is accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from twilio.request_validator import RequestValidator


def is_valid(
    url: str, params: Mapping[str, str], signature: str | None, tokens: Iterable[str]
) -> bool:
    """Whether ``signature`` signs ``url`` and the form ``params`` under one of ``tokens``."""
    if not signature:
        return False
    return any(
        RequestValidator(token).validate(url, dict(params), signature) for token in tokens if token
    )
