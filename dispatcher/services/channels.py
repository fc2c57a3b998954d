"""The channel port: one sender per channel (SMS, voice call), each with one ``send``
for its kind of message, and the :class:`Channels` registry the outbox looks them up
in. The senders are adapters: Twilio (``dispatcher.adapters.twilio.sender``) and the log
(``dispatcher.adapters.log_sender``); the recording double for tests is
``dispatcher.testing.FakeChannelSender``.

A channel nobody registered is an error, never a quiet fallback: a new channel must
not go out as SMS. Nothing here retries: a failed send raises :class:`SendError` and
the outbox decides whether and when to try again, so a retry is always a deliberate,
recorded act (a POST retried blindly after a 5xx can text a resident's daughter twice).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Outgoing:
    """One message or call for a channel sender to hand to its provider."""

    to: str  # E.164
    body: str  # the text of an SMS; what a voice call reads (its script is fetched)
    # Where the provider posts its delivery reports.
    status_callback: str | None = None
    # Where a channel that speaks (voice) fetches what to say; a text channel ignores it.
    script_url: str | None = None


@dataclass(frozen=True)
class Receipt:
    """What the provider answered to an accepted message or call."""

    sid: str  # the provider's id, e.g. Twilio's "SM"/"CA" + 32 hex digits
    status: str  # the provider's status at acceptance, e.g. Twilio's "queued"


class SendError(Exception):
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
            f"SendError({self.message!r}, permanent={self.permanent}, "
            f"status={self.status}, code={self.code})"
        )


class ChannelSender(Protocol):
    """The provider of one channel."""

    @property
    def channel(self) -> str:
        """The channel it sends on: a ``dispatcher.core.contact_methods.Channel`` value."""
        ...

    async def send(self, message: Outgoing) -> Receipt:
        """Hand one message (an SMS) or call (voice) to the provider; raise
        :class:`SendError` if it was not accepted. Returning means the provider
        accepted it, not that it arrived or that anyone answered."""
        ...

    async def aclose(self) -> None:
        """Release connections. The sender is not used afterwards."""
        ...


class UnknownChannelError(LookupError):
    """A channel no sender was registered for."""


class Channels:
    """The registry: channel → its sender."""

    def __init__(self, senders: Iterable[ChannelSender]) -> None:
        self._senders: dict[str, ChannelSender] = {}
        for sender in senders:
            if sender.channel in self._senders:
                raise ValueError(f"two senders for channel {sender.channel!r}")
            self._senders[sender.channel] = sender

    def sender(self, channel: str) -> ChannelSender:
        """The sender of ``channel``; :class:`UnknownChannelError` when nobody registered it."""
        found = self._senders.get(channel)
        if found is None:
            known = ", ".join(sorted(self._senders)) or "none"
            raise UnknownChannelError(
                f"no sender registered for channel {channel!r} (registered: {known})"
            )
        return found

    def __iter__(self) -> Iterator[ChannelSender]:
        return iter(self._senders.values())

    async def aclose(self) -> None:
        for sender in self._senders.values():
            await sender.aclose()


def made_up_sid(prefix: str) -> str:
    # Same shape as a Twilio sid (two letters + 32 hex digits), so storage sized for real
    # sids takes it, but a prefix that no Twilio resource uses.
    return prefix + uuid.uuid4().hex
