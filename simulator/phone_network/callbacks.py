"""The status callbacks the local Twilio sink posts, signed as Twilio signs them.

An accepted SMS moves to ``sent`` then its final status (``delivered``, or a scripted
``undelivered``/``failed`` with its error code); a call walks through ``initiated``,
``ringing``, ``in-progress`` and its end, as its script says. Each step is posted to the
resource's ``StatusCallback`` with ``X-Twilio-Signature`` and recorded in the state.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import structlog
from twilio.request_validator import RequestValidator

from simulator.phone_network.state import (
    API_VERSION,
    SinkCall,
    SinkCallback,
    SinkMessage,
    SinkState,
    SmsScript,
)

# The sink logs under one name, whichever of its modules speaks.
log = structlog.get_logger("simulator.phone_network.server")


class CallbackPoster:
    """Posts a sink's status callbacks from background tasks, ended by :meth:`aclose`."""

    def __init__(self, state: SinkState) -> None:
        self._state = state
        self._background: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def in_background(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def deliver(self, message: SinkMessage, script: SmsScript) -> None:
        """Move the message to sent then its final status, posting Twilio's callbacks."""
        for status in ("sent", script.status):
            await asyncio.sleep(self._state.callback_delay_s)
            self._state.set_status(message.sid, status)
            if message.status_callback:
                code = script.error_code if status == script.status else None
                await self.post_callback(message, status, message.status_callback, code)

    async def post_callback(
        self, message: SinkMessage, status: str, url: str, error_code: int | None = None
    ) -> None:
        params = {
            "AccountSid": message.account_sid,
            "ApiVersion": API_VERSION,
            "From": message.from_,
            "MessageSid": message.sid,
            "MessageStatus": status,
            "SmsSid": message.sid,
            "SmsStatus": status,
            "To": message.to,
        }
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        await self.post_signed(message.sid, status, url, params)

    async def post_signed(self, sid: str, status: str, url: str, params: dict[str, str]) -> None:
        signature = RequestValidator(self._state.auth_token).compute_signature(url, params)
        client = self._client
        if client is None:
            client = self._client = httpx.AsyncClient(timeout=5.0)
        answer: int | None = None
        error: str | None = None
        try:
            response = await client.post(
                url, data=params, headers={"X-Twilio-Signature": signature}
            )
            answer = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("sms_sink.callback_failed", sid=sid, url=url, reason=error)
        with self._state.changed:
            self._state.callbacks.append(
                SinkCallback(sid, status, url, answer, error, tuple(sorted(params.items())))
            )
            self._state.changed.notify_all()

    async def progress(self, call: SinkCall, outcome: str) -> None:
        """Walk the call through Twilio's statuses for ``outcome``, posting callbacks."""
        answered = outcome in ("human", "machine")
        final = "completed" if answered else outcome
        answered_by = None
        if answered and call.machine_detection:
            answered_by = "human" if outcome == "human" else "machine_end_beep"
        steps: list[tuple[str, str]] = [("initiated", "initiated")]
        if outcome != "failed":
            steps.append(("ringing", "ringing"))
        if answered:
            steps.append(("answered", "in-progress"))
        steps.append(("completed", final))
        for sequence, (event, status) in enumerate(steps):
            await asyncio.sleep(self._state.callback_delay_s)
            self._state.set_call(
                call.sid, status=status, answered_by=answered_by if answered else None
            )
            # Twilio always reports the end; the other events only when asked for.
            if call.status_callback and (
                event == "completed" or event in call.status_callback_events
            ):
                params = {
                    "AccountSid": call.account_sid,
                    "ApiVersion": API_VERSION,
                    "CallSid": call.sid,
                    "CallStatus": status,
                    "Called": call.to,
                    "Caller": call.from_,
                    "Direction": "outbound-api",
                    "From": call.from_,
                    "SequenceNumber": str(sequence),
                    "To": call.to,
                }
                if answered_by is not None and event in ("answered", "completed"):
                    params["AnsweredBy"] = answered_by
                if event == "completed":
                    params["CallDuration"] = "12" if answered else "0"
                await self.post_signed(call.sid, status, call.status_callback, params)

    async def aclose(self) -> None:
        """Cancel the callbacks still pending and close the HTTP client."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
