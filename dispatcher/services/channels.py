"""The notification port: what the dispatcher needs from an SMS and voice provider
(send an SMS, place a voice call). The senders are adapters: Twilio
(``dispatcher.adapters.twilio.sender``) and the log (``dispatcher.adapters.log_sender``);
the in-memory double for tests is ``dispatcher.testing.FakeSmsSender``.

Nothing here retries: a failed send raises :class:`SmsSendError` and the outbox decides
whether and when to try again, so a retry is always a deliberate, recorded act (a POST
retried blindly after a 5xx can text a resident's daughter twice).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SmsReceipt:
    """What the provider answered to an accepted message."""

    sid: str  # the provider's message id, e.g. Twilio's "SM" + 32 hex digits
    status: str  # the provider's status at acceptance, e.g. Twilio's "queued"


class SmsSendError(Exception):
    """A send that did not go through.

    ``permanent`` means trying again will not help (invalid or landline number, bad
    credentials, a request the provider refuses); otherwise the outbox may retry later.
    ``status`` is the HTTP status if there was an answer, ``code`` the provider's error code.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        status: int | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status = status
        self.code = code

    def __str__(self) -> str:
        kind = "permanent" if self.permanent else "temporary"
        details = [kind]
        if self.status is not None:
            details.append(f"HTTP {self.status}")
        if self.code is not None:
            details.append(f"code {self.code}")
        return f"{self.message} ({', '.join(details)})"

    def __repr__(self) -> str:
        return (
            f"SmsSendError({self.message!r}, permanent={self.permanent}, "
            f"status={self.status}, code={self.code})"
        )


class SmsSender(Protocol):
    """A provider of SMS and voice calls (:data:`Notifier` is the same port)."""

    async def send(self, to: str, body: str, *, status_callback: str | None = None) -> SmsReceipt:
        """Hand one SMS to the provider; raise :class:`SmsSendError` if it was not accepted.

        ``to`` is an E.164 number. ``status_callback`` is a URL the provider posts delivery
        reports to. Returning means the provider accepted the message, not that it arrived.
        """
        ...

    async def place_call(
        self, to: str, url: str, *, status_callback: str | None = None
    ) -> SmsReceipt:
        """Start one voice call to ``to`` whose script (TwiML) the provider fetches from ``url``.

        Raise :class:`SmsSendError` if the provider did not accept it; returning means the
        call was queued (its receipt's sid is the call's), not that anyone answered.
        """
        ...

    async def aclose(self) -> None:
        """Release connections. The sender is not used afterwards."""
        ...


# The port under the name it has since it also places calls.
Notifier = SmsSender


def made_up_sid(prefix: str) -> str:
    # Same shape as a Twilio sid (two letters + 32 hex digits), so storage sized for real
    # sids takes it, but a prefix that no Twilio resource uses.
    return prefix + uuid.uuid4().hex
