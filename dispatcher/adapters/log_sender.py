"""``[sms] provider = "log"``: a channel sender that writes to the log instead of sending."""

from __future__ import annotations

import structlog

from dispatcher.services.channels import SmsReceipt, made_up_sid

log = structlog.get_logger(__name__)


class LogSmsSender:
    """``provider = "log"``: write each SMS to the log instead of sending it.

    Lets the whole system run with no SMS provider at all; every send succeeds.
    """

    def __init__(self, from_number: str | None = None) -> None:
        self._from = from_number

    async def send(self, to: str, body: str, *, status_callback: str | None = None) -> SmsReceipt:
        sid = made_up_sid("LG")
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
        sid = made_up_sid("LC")
        log.info("call.logged", sid=sid, to=to, from_=self._from, url=url)
        return SmsReceipt(sid=sid, status="queued")

    async def aclose(self) -> None:
        return None


LogNotifier = LogSmsSender
