"""What the local Twilio sink records: its messages, calls, attempts and callbacks.

The records are frozen dataclasses whose ``resource()`` answers the JSON Twilio would
(shapes from Twilio's OpenAPI description); :class:`SinkState` holds them all, guarded
by one condition, shared between the sink's thread and the caller's. Per-number scripts
(an SMS undelivered with 30006, a call nobody answers) are queued here too.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, TypeVar

API_VERSION = "2010-04-01"
# The local phone network's own demo credentials. They equal the daemon's default [sms]
# settings, so that `make run` works on defaults (tests/simulator checks they agree).
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "local-sink-token"

# GSM 03.38: the basic set costs one septet, the extension set two; anything else forces
# UCS-2. Used only to report num_segments the way Twilio would.
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def num_segments(body: str) -> int:
    """How many SMS segments ``body`` takes (GSM-7 160/153, else UCS-2 70/67)."""
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in body):
        septets = sum(2 if ch in _GSM_EXTENDED else 1 for ch in body)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


@dataclass(frozen=True)
class SinkMessage:
    """One SMS the sink accepted. ``status`` moves to sent/delivered only with callbacks on."""

    sid: str
    to: str
    from_: str
    body: str
    received_at: datetime
    status_callback: str | None = None
    account_sid: str = DEFAULT_ACCOUNT_SID
    status: str = "queued"
    updated_at: datetime | None = None
    # When the request arrived, in seconds since the epoch at full precision
    # (received_at keeps Twilio's whole seconds): what benchmarks measure delays to.
    arrived_at: float = 0.0

    def resource(self) -> dict[str, Any]:
        """The Message resource JSON, as in Twilio's OpenAPI ``api.v2010.account.message``."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"
        created = format_datetime(self.received_at)
        sent = self.status in ("sent", "delivered")
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": created,
            "date_sent": format_datetime(self.updated_at) if sent and self.updated_at else None,
            "date_updated": format_datetime(self.updated_at or self.received_at),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": str(num_segments(self.body)),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": uri.removesuffix(".json") + "/Media.json"},
            "to": self.to,
            "uri": uri,
        }


@dataclass(frozen=True)
class SinkCall:
    """One voice call the sink accepted; ``status`` follows its scripted progress."""

    sid: str
    to: str
    from_: str
    url: str | None
    received_at: datetime
    status_callback: str | None = None
    status_callback_events: tuple[str, ...] = ()
    machine_detection: str | None = None
    account_sid: str = DEFAULT_ACCOUNT_SID
    status: str = "queued"
    answered_by: str | None = None
    updated_at: datetime | None = None

    def resource(self) -> dict[str, Any]:
        """The Call resource JSON, as in Twilio's OpenAPI ``api.v2010.account.call``."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}.json"
        return {
            "account_sid": self.account_sid,
            "answered_by": self.answered_by,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": format_datetime(self.received_at),
            "date_updated": format_datetime(self.updated_at or self.received_at),
            "direction": "outbound-api",
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": self.from_,
            "from_formatted": self.from_,
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": self.sid,
            "start_time": None,
            "status": self.status,
            "subresource_uris": {
                "recordings": uri.removesuffix(".json") + "/Recordings.json",
                "notifications": uri.removesuffix(".json") + "/Notifications.json",
            },
            "to": self.to,
            "to_formatted": self.to,
            "trunk_sid": None,
            "uri": uri,
        }


# What a scripted number does with a voice call.
VOICE_OUTCOMES = ("human", "machine", "no-answer", "busy", "failed")


@dataclass(frozen=True)
class SmsScript:
    """A scripted delivery outcome for SMS to one number: e.g. undelivered with 30006."""

    status: str  # the final status posted: "undelivered", "failed" or "delivered"
    error_code: int | None = None


@dataclass(frozen=True)
class SinkAttempt:
    """One POST to Messages.json, whatever the sink answered."""

    http_status: int
    code: int | None  # the Twilio error code answered, None on success
    to: str | None
    at: datetime


@dataclass(frozen=True)
class SinkCallback:
    """One status callback the sink posted (or tried to)."""

    sid: str
    status: str
    url: str
    http_status: int | None  # the answer of the callback endpoint; None if it failed
    error: str | None = None
    params: tuple[tuple[str, str], ...] = ()  # the form posted, signed


class SinkState:
    """Everything the sink records and is told, shared between its thread and the caller's."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        on_message: Callable[[SinkMessage], None] | None,
        landlines: Iterable[str],
        status_callbacks: bool,
        callback_delay_s: float,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.on_message = on_message
        self.status_callbacks = status_callbacks
        self.callback_delay_s = callback_delay_s
        self.changed = threading.Condition()  # guards everything below, notified on change
        self.landlines: set[str] = set(landlines)
        self.messages: list[SinkMessage] = []
        self.attempts: list[SinkAttempt] = []
        self.callbacks: list[SinkCallback] = []
        self.faults: deque[tuple[int, int]] = deque()  # (HTTP status, Twilio code) to answer
        self.calls: list[SinkCall] = []
        # Per number: scripted outcomes used in turn; the last one stays for good
        # unless it was given a count (then the number behaves normally afterwards).
        self.sms_scripts: dict[str, deque[tuple[SmsScript, bool]]] = {}
        self.voice_scripts: dict[str, deque[tuple[str, bool]]] = {}

    def next_sms_script(self, to: str) -> SmsScript | None:
        with self.changed:
            return _next_script(self.sms_scripts, to)

    def next_voice_script(self, to: str) -> str:
        with self.changed:
            return _next_script(self.voice_scripts, to) or "human"

    def set_call(self, sid: str, **changes: Any) -> SinkCall | None:
        with self.changed:
            for index, call in enumerate(self.calls):
                if call.sid == sid:
                    updated = dataclasses.replace(call, updated_at=datetime.now(UTC), **changes)
                    self.calls[index] = updated
                    self.changed.notify_all()
                    return updated
        return None

    def record_attempt(self, http_status: int, code: int | None, to: str | None) -> None:
        with self.changed:
            self.attempts.append(SinkAttempt(http_status, code, to, datetime.now(UTC)))
            self.changed.notify_all()

    def find(self, sid: str) -> SinkMessage | None:
        with self.changed:
            return next((m for m in self.messages if m.sid == sid), None)

    def set_status(self, sid: str, status: str) -> SinkMessage | None:
        with self.changed:
            for index, message in enumerate(self.messages):
                if message.sid == sid:
                    updated = dataclasses.replace(
                        message, status=status, updated_at=datetime.now(UTC)
                    )
                    self.messages[index] = updated
                    self.changed.notify_all()
                    return updated
        return None


T = TypeVar("T")


def _next_script(scripts: dict[str, deque[tuple[T, bool]]], to: str) -> T | None:
    queue = scripts.get(to)
    if not queue:
        return None
    value, counted = queue[0]
    if counted or len(queue) > 1:
        queue.popleft()
    return value
