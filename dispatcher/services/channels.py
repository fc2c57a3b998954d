"""The notification port: what the dispatcher needs from an SMS and voice provider
(send an SMS, place a voice call), and two senders with no I/O.

The real provider adapter lives in ``dispatcher.adapters.twilio.sender``. Nothing here retries: a
failed send raises :class:`SmsSendError` and the outbox decides whether and when to try
again, so a retry is always a deliberate, recorded act (a POST retried blindly after a
5xx can text a resident's daughter twice).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import structlog

if TYPE_CHECKING:
    from dispatcher.config import SmsSettings

log = structlog.get_logger(__name__)


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


@dataclass(frozen=True)
class SentSms:
    """One message a :class:`FakeSmsSender` accepted."""

    to: str
    body: str
    status_callback: str | None
    sid: str


@dataclass(frozen=True)
class PlacedCall:
    """One voice call a :class:`FakeSmsSender` accepted."""

    to: str
    url: str
    status_callback: str | None
    sid: str


def _made_up_sid(prefix: str) -> str:
    # Same shape as a Twilio sid (two letters + 32 hex digits), so storage sized for real
    # sids takes it, but a prefix that no Twilio resource uses.
    return prefix + uuid.uuid4().hex


class FakeSmsSender:
    """In-memory sender for service-layer tests.

    Records every accepted message in :attr:`sent`, counts every call in :attr:`attempts`,
    and can be told to fail the next sends (:meth:`fail_next`) or every send to a number
    (:meth:`fail_number`).
    """

    def __init__(self) -> None:
        self.sent: list[SentSms] = []
        self.calls: list[PlacedCall] = []
        self.attempts = 0
        self.failures: list[tuple[str, str, SmsSendError]] = []  # (to, body, error raised)
        self.closed = False
        self._fail_queue: deque[SmsSendError] = deque()
        self._fail_numbers: dict[str, SmsSendError] = {}

    def fail_next(
        self,
        count: int = 1,
        *,
        permanent: bool = False,
        status: int | None = None,
        code: int | None = None,
        message: str | None = None,
    ) -> None:
        """Make the next ``count`` sends raise: temporary (503) or permanent (400) by default."""
        if status is None:
            status = 400 if permanent else 503
        error_message = message or ("refused by fake" if permanent else "fake provider unavailable")
        for _ in range(count):
            self._fail_queue.append(
                SmsSendError(error_message, permanent=permanent, status=status, code=code)
            )

    def fail_number(
        self,
        to: str,
        *,
        permanent: bool = True,
        status: int = 400,
        code: int | None = 21614,
        message: str = "not a mobile number",
    ) -> None:
        """Make every send to ``to`` raise (by default like Twilio refusing a landline)."""
        self._fail_numbers[to] = SmsSendError(
            message, permanent=permanent, status=status, code=code
        )

    def heal(self) -> None:
        """Forget every failure set up with :meth:`fail_next` or :meth:`fail_number`."""
        self._fail_queue.clear()
        self._fail_numbers.clear()

    def to(self, number: str) -> list[SentSms]:
        """The accepted messages sent to ``number``, oldest first."""
        return [sms for sms in self.sent if sms.to == number]

    async def send(self, to: str, body: str, *, status_callback: str | None = None) -> SmsReceipt:
        if self.closed:
            raise RuntimeError("FakeSmsSender used after aclose()")
        self.attempts += 1
        error = self._fail_queue.popleft() if self._fail_queue else self._fail_numbers.get(to)
        if error is not None:
            # A fresh exception per raise: one instance raised twice would chain tracebacks.
            fresh = SmsSendError(
                error.message, permanent=error.permanent, status=error.status, code=error.code
            )
            self.failures.append((to, body, fresh))
            raise fresh
        sms = SentSms(to=to, body=body, status_callback=status_callback, sid=_made_up_sid("SF"))
        self.sent.append(sms)
        return SmsReceipt(sid=sms.sid, status="queued")

    async def place_call(
        self, to: str, url: str, *, status_callback: str | None = None
    ) -> SmsReceipt:
        if self.closed:
            raise RuntimeError("FakeSmsSender used after aclose()")
        self.attempts += 1
        if self._fail_queue:
            error = self._fail_queue.popleft()
            fresh = SmsSendError(
                error.message, permanent=error.permanent, status=error.status, code=error.code
            )
            self.failures.append((to, url, fresh))
            raise fresh
        # fail_number is about SMS (a landline); a landline takes calls.
        call = PlacedCall(to=to, url=url, status_callback=status_callback, sid=_made_up_sid("CF"))
        self.calls.append(call)
        return SmsReceipt(sid=call.sid, status="queued")

    async def wait_for_sent(
        self,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109  # a polling test helper, like the sink's
        predicate: Callable[[SentSms], bool] | None = None,
    ) -> list[SentSms]:
        """Wait until at least ``count`` accepted messages match ``predicate``; return them.

        For tests where a background task (the outbox poller) does the sending.
        """
        deadline = time.monotonic() + timeout
        while True:
            matching = [sms for sms in self.sent if predicate is None or predicate(sms)]
            if len(matching) >= count:
                return matching
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{len(matching)} of {count} expected SMS after {timeout}s; sent: {self.sent}"
                )
            await asyncio.sleep(0.005)

    async def aclose(self) -> None:
        self.closed = True


class LogSmsSender:
    """``provider = "log"``: write each SMS to the log instead of sending it.

    Lets the whole system run with no SMS provider at all; every send succeeds.
    """

    def __init__(self, from_number: str | None = None) -> None:
        self._from = from_number

    async def send(self, to: str, body: str, *, status_callback: str | None = None) -> SmsReceipt:
        sid = _made_up_sid("LG")
        log.info(
            "sms.logged",
            sid=sid,
            to=to,
            from_=self._from,
            body=body,
            status_callback=status_callback,
        )
        return SmsReceipt(sid=sid, status="queued")

    async def place_call(
        self, to: str, url: str, *, status_callback: str | None = None
    ) -> SmsReceipt:
        sid = _made_up_sid("LC")
        log.info("call.logged", sid=sid, to=to, from_=self._from, url=url)
        return SmsReceipt(sid=sid, status="queued")

    async def aclose(self) -> None:
        return None


# In-memory and logging notifiers under the port's newer name.
FakeNotifier = FakeSmsSender
LogNotifier = LogSmsSender


def build_sms_sender(settings: SmsSettings) -> SmsSender:
    """The sender the configuration asks for (``[sms] provider``)."""
    if settings.provider == "log":
        return LogSmsSender(settings.from_number)
    # Imported here so the port and the log sender do not pull in twilio and aiohttp.
    from dispatcher.adapters.twilio.sender import TwilioSmsSender

    return TwilioSmsSender(settings)
