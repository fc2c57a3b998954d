"""Test doubles shipped on purpose, as structlog ships ``structlog.testing``: the clock
that only moves when told to and the recording in-memory channel sender. The daemon never wires
them; tests, the simulator and anyone embedding the dispatcher may."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dispatcher.core.contact_methods import Channel
from dispatcher.services.channels import Outgoing, Receipt, SendError, made_up_sid


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
class Sent:
    """One message or call a :class:`FakeChannelSender` accepted."""

    to: str
    body: str
    status_callback: str | None
    script_url: str | None
    sid: str


# Sid prefixes like Twilio's (two letters) that no Twilio resource uses.
_SID_PREFIXES = {Channel.SMS.value: "SF", Channel.VOICE.value: "CF"}


class FakeChannelSender:
    """In-memory sender of one channel for service-layer tests.

    Records every accepted message or call in :attr:`sent`, counts every send in
    :attr:`attempts`, and can be told to fail the next sends (:meth:`fail_next`) or every
    send to a number (:meth:`fail_number`).
    """

    def __init__(self, channel: str = Channel.SMS.value) -> None:
        self.channel = channel
        self.sent: list[Sent] = []
        self.attempts = 0
        self.failures: list[tuple[Outgoing, SendError]] = []  # (message, error raised)
        self.closed = False
        self._fail_queue: deque[SendError] = deque()
        self._fail_numbers: dict[str, SendError] = {}

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
                SendError(error_message, permanent=permanent, status=status, code=code)
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
        """Make every send to ``to`` raise (by default like Twilio refusing an SMS to a
        landline)."""
        self._fail_numbers[to] = SendError(message, permanent=permanent, status=status, code=code)

    def heal(self) -> None:
        """Forget every failure set up with :meth:`fail_next` or :meth:`fail_number`."""
        self._fail_queue.clear()
        self._fail_numbers.clear()

    def to(self, number: str) -> list[Sent]:
        """The accepted messages or calls to ``number``, oldest first."""
        return [sent for sent in self.sent if sent.to == number]

    async def send(self, message: Outgoing) -> Receipt:
        if self.closed:
            raise RuntimeError("FakeChannelSender used after aclose()")
        self.attempts += 1
        to = message.to
        error = self._fail_queue.popleft() if self._fail_queue else self._fail_numbers.get(to)
        if error is not None:
            # A fresh exception per raise: one instance raised twice would chain tracebacks.
            fresh = SendError(
                error.message, permanent=error.permanent, status=error.status, code=error.code
            )
            self.failures.append((message, fresh))
            raise fresh
        sid = made_up_sid(_SID_PREFIXES.get(self.channel, "XF"))
        self.sent.append(Sent(to, message.body, message.status_callback, message.script_url, sid))
        return Receipt(sid=sid, status="queued")

    async def wait_for_sent(
        self,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109  # a polling test helper, like the sink's
        predicate: Callable[[Sent], bool] | None = None,
    ) -> list[Sent]:
        """Wait until at least ``count`` accepted messages match ``predicate``; return them.

        For tests where a background task (the outbox poller) does the sending.
        """
        deadline = time.monotonic() + timeout
        while True:
            matching = [sent for sent in self.sent if predicate is None or predicate(sent)]
            if len(matching) >= count:
                return matching
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{len(matching)} of {count} expected {self.channel} after {timeout}s; "
                    f"sent: {self.sent}"
                )
            await asyncio.sleep(0.005)

    async def aclose(self) -> None:
        self.closed = True
