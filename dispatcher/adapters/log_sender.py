"""``[sms] provider = "log"``: channel senders that write to the log instead of sending.

They let the whole system run with no provider at all; every send succeeds.
"""

from __future__ import annotations

import structlog

from dispatcher.core.contact_methods import Channel
from dispatcher.services.channels import ChannelSender, Outgoing, Receipt, made_up_sid

log = structlog.get_logger(__name__)


class LogSmsSender:
    """The SMS channel, written to the log."""

    channel = Channel.SMS.value

    def __init__(self, from_number: str | None = None) -> None:
        self._from = from_number

    async def send(self, message: Outgoing) -> Receipt:
        sid = made_up_sid("LG")
        log.info(
            "sms.logged",
            sid=sid,
            to=message.to,
            from_=self._from,
            body=message.body,
            status_callback=message.status_callback,
        )
        return Receipt(sid=sid, status="queued")

    async def aclose(self) -> None:
        return None


class LogVoiceSender:
    """The voice channel, written to the log."""

    channel = Channel.VOICE.value

    def __init__(self, from_number: str | None = None) -> None:
        self._from = from_number

    async def send(self, message: Outgoing) -> Receipt:
        sid = made_up_sid("LC")
        log.info("call.logged", sid=sid, to=message.to, from_=self._from, url=message.script_url)
        return Receipt(sid=sid, status="queued")

    async def aclose(self) -> None:
        return None


def log_channels(from_number: str | None = None) -> list[ChannelSender]:
    """The log's SMS and voice channel senders."""
    return [LogSmsSender(from_number), LogVoiceSender(from_number)]
