"""Test doubles shipped on purpose, as structlog ships ``structlog.testing``: the clock
that only moves when told to and the in-memory channel sender. The daemon never wires
them; tests, the simulator and anyone embedding the dispatcher may."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dispatcher.services.channels import SmsReceipt, SmsSendError, made_up_sid


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 28, 0, 15, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when


class FakeTimeSources:
    """The two time sources of a :class:`~dispatcher.services.clock.SteadyClock`, moved
    by hand: :meth:`advance` lets time pass (both move), :meth:`step_wall` sets the
    system clock (only the wall moves), :meth:`suspend` is a machine asleep (both
    move, as CLOCK_BOOTTIME does). Pass :meth:`wall` and :meth:`elapsed` to the clock."""

    def __init__(self, start: datetime | None = None) -> None:
        self._wall = start or datetime(2026, 11, 28, 0, 15, tzinfo=UTC)
        self._elapsed = 1000.0  # any origin: only differences count

    def wall(self) -> datetime:
        return self._wall

    def elapsed(self) -> float:
        return self._elapsed

    def advance(self, seconds: float) -> None:
        self._wall += timedelta(seconds=seconds)
        self._elapsed += seconds

    suspend = advance

    def step_wall(self, seconds: float) -> None:
        self._wall += timedelta(seconds=seconds)


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
        sms = SentSms(to=to, body=body, status_callback=status_callback, sid=made_up_sid("SF"))
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
        call = PlacedCall(to=to, url=url, status_callback=status_callback, sid=made_up_sid("CF"))
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


# The in-memory notifier under the port's newer name.
FakeNotifier = FakeSmsSender
