"""Typed models of the device protocol, version 1 (``shared/spec/device-protocol.md``).

Shared by the dispatcher, the reference device client and the simulator, so that
both sides of the contract are checked by the same code. Parsing never raises on
bad input: it returns a :class:`Rejected` or :class:`Invalid` that says why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from devices.text import clean_text

MAX_PAYLOAD_BYTES = 4096
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# 1-64 printable ASCII characters (space to tilde).
REF_RE = re.compile(r"^[\x20-\x7e]{1,64}$")
DEFAULT_TOPIC_ROOT = "eldercall/v1"
DEVICE_RESEND_AFTER_S = 10.0
# Deeper than any event needs, far below the depth where Python's json recurses out.
MAX_JSON_DEPTH = 32
# The longest firmware version string kept (the events.fw column's size).
MAX_FW_CHARS = 64


class EventType(StrEnum):
    EMERGENCY = "emergency"
    FALL = "fall"
    SERVICE = "service"
    CANCEL = "cancel"
    PRESENCE = "presence"
    HEARTBEAT = "heartbeat"
    BATTERY_LOW = "battery_low"
    BATTERY_OK = "battery_ok"
    POWER_LOST = "power_lost"
    POWER_RESTORED = "power_restored"
    # Optional (an extension of version 1, docs/device-protocol.md): a periodic
    # end-to-end test of the device's chain; answered like any event, opens no call.
    TEST = "test"


CALL_TYPES = frozenset({EventType.EMERGENCY, EventType.FALL, EventType.SERVICE})
# The alarms: never refused for a bad optional field (see "Optional fields" in
# docs/device-protocol.md), since a life may depend on them.
ALARM_TYPES = frozenset({EventType.EMERGENCY, EventType.FALL})
# The optional fields of an event: an alarm is accepted without those that are bad.
OPTIONAL_FIELDS = ("ts", "battery", "rssi", "fw")
TECHNICAL_TYPES = frozenset(
    {
        EventType.BATTERY_LOW,
        EventType.BATTERY_OK,
        EventType.POWER_LOST,
        EventType.POWER_RESTORED,
    }
)


class AckResult(StrEnum):
    OK = "ok"
    DUPLICATE = "duplicate"
    INVALID = "invalid"


class CallUpdateState(StrEnum):
    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    RESPONDER_ON_SITE = "responder_on_site"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class DroppedField:
    """An optional field of an alarm that was not valid, and was dropped."""

    field: str
    value: str  # what the device sent, shortened and cleaned, for the call's timeline
    error: str

    def describe(self) -> str:
        return f"{self.field} {self.value}: {self.error}"


class Event(BaseModel):
    """An event a device sends on ``{root}/dev/{device_id}/event``."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    # Not a field: what :func:`parse_event` dropped from an alarm, never read from input.
    _dropped: tuple[DroppedField, ...] = PrivateAttr(default=())

    ref: Annotated[str, Field(pattern=REF_RE.pattern)]
    type: EventType
    ts: datetime | None = None
    battery: Annotated[int, Field(ge=0, le=100, strict=True)] | None = None
    # Bounded so that no integer a device sends can overflow a database column.
    rssi: Annotated[int, Field(ge=-1000, le=1000, strict=True)] | None = None
    fw: Annotated[str, Field(max_length=MAX_FW_CHARS, pattern=r"^[\x20-\x7e]*$")] | None = None

    @field_validator("ts", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        # RFC 3339 needs a date, a time and an offset; pydantic would also take numbers.
        if value is None:
            return None
        if not isinstance(value, str) or len(value) > 64:
            raise ValueError("ts must be an RFC 3339 string")
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("ts must be an RFC 3339 string") from None
        if parsed.tzinfo is None:
            raise ValueError("ts must carry a UTC offset")
        try:
            # Stored in UTC: one form, whatever offset (even with seconds) it came in.
            return parsed.astimezone(UTC)
        except OverflowError:
            raise ValueError("ts is out of range") from None

    @field_validator("fw", mode="before")
    @classmethod
    def _printable(cls, value: Any) -> Any:
        # Shown to operators and stored: control characters never get that far.
        return clean_text(value) if isinstance(value, str) else value

    @property
    def dropped(self) -> tuple[DroppedField, ...]:
        """The bad optional fields this alarm was accepted without (empty: none)."""
        return self._dropped


class Ack(BaseModel):
    """The centre's answer on ``{root}/dev/{device_id}/ack``."""

    model_config = ConfigDict(extra="ignore")

    ref: str
    result: AckResult
    call_id: str | None = None
    error: str | None = None
    heartbeat_s: int | None = None

    def to_payload(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class CallUpdate(BaseModel):
    """A ``call_update`` command on ``{root}/dev/{device_id}/cmd``."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["call_update"] = "call_update"
    call_id: str
    state: CallUpdateState
    text: str | None = None

    def to_payload(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class ConfigCommand(BaseModel):
    """A ``config`` command on ``{root}/dev/{device_id}/cmd``."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["config"] = "config"
    heartbeat_s: Annotated[int, Field(ge=1)]

    def to_payload(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class DeviceStatus(BaseModel):
    """The retained ``status`` of a device or of the centre."""

    model_config = ConfigDict(extra="ignore")

    state: Literal["online", "offline"]

    def to_payload(self) -> bytes:
        return self.model_dump_json().encode()


class Rejected(BaseModel):
    """A message that cannot be answered: not JSON, not an object, or no usable ``ref``."""

    reason: str


class Invalid(BaseModel):
    """A message with a usable ``ref`` that is otherwise malformed: answered ``invalid``."""

    ref: str
    error: str


def parse_event(payload: bytes) -> Event | Invalid | Rejected:
    """Validate a raw event payload at the edge. Never raises, whatever the bytes.

    What is not a usable event is answered ``invalid`` whenever a ``ref`` can be read
    from it (the device then knows), and is otherwise rejected without an answer.
    """
    try:
        return _parse(payload)
    except Exception as exc:  # a last guard: no input may escape unanswered
        return Rejected(reason=f"payload could not be read ({type(exc).__name__})")


def _parse(payload: bytes) -> Event | Invalid | Rejected:
    if len(payload) > MAX_PAYLOAD_BYTES:
        return _unusable(payload, f"payload is {len(payload)} bytes, more than {MAX_PAYLOAD_BYTES}")
    try:
        # A byte-order mark is allowed before JSON text (RFC 8259 section 8.1).
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError:
        return _unusable(payload, "payload is not UTF-8")
    if _may_nest_deep(payload) and _too_deep(text):
        return _unusable(payload, f"payload nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except ValueError as exc:  # also numbers longer than Python's int-string limit
        return _unusable(payload, f"payload is not JSON: {_short(exc)}")
    if not isinstance(data, dict):
        return Rejected(reason="payload is not a JSON object")
    ref = data.get("ref")
    if not isinstance(ref, str) or not REF_RE.fullmatch(ref):
        return Rejected(reason="ref is missing or is not 1-64 printable ASCII characters")
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        if data.get("type") in ALARM_TYPES:
            return _alarm_without_bad_fields(data, ref, exc)
        return Invalid(ref=ref, error=_first_error(exc))


def _alarm_without_bad_fields(
    data: dict[str, Any], ref: str, exc: ValidationError
) -> Event | Invalid:
    """An alarm is never refused for a detail: its bad optional fields are dropped (and
    named on the event, for the call's timeline). Anything else wrong stays ``invalid``."""
    bad: dict[str, str] = {}
    for err in exc.errors():
        where = err["loc"][0] if err["loc"] else None
        if where not in OPTIONAL_FIELDS:
            return Invalid(ref=ref, error=_first_error(exc))
        bad.setdefault(str(where), err["msg"].removeprefix("Value error, "))
    try:
        event = Event.model_validate({k: v for k, v in data.items() if k not in bad})
    except ValidationError as again:
        return Invalid(ref=ref, error=_first_error(again))
    event._dropped = tuple(DroppedField(name, _shown(data[name]), msg) for name, msg in bad.items())
    return event


def _shown(value: Any) -> str:
    """A device's bad value as a short, printable text (it may be 4,000 digits long)."""
    try:
        shown = json.dumps(value, ensure_ascii=True)
    except Exception:  # nothing a device sends may make this raise
        shown = type(value).__name__
    shown = clean_text(shown)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def _unusable(payload: bytes, reason: str) -> Invalid | Rejected:
    """Answered ``invalid`` if the payload's ``ref`` can still be read, else rejected."""
    ref = _sniff_ref(payload)
    return Invalid(ref=ref, error=reason) if ref else Rejected(reason=reason)


def _short(exc: ValueError) -> str:
    return clean_text(str(exc))[:200]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Which of two "type"s a device meant is a guess; a guess must not open a call.
    data = dict(pairs)  # the usual object, without a loop in Python
    if len(data) == len(pairs):
        return data
    data = {}  # a key twice: which one, the first repeated
    for key, value in pairs:
        if key in data:
            raise ValueError(f"duplicate key {clean_text(key)[:64]!r}")
        data[key] = value
    return data


def _may_nest_deep(payload: bytes) -> bool:
    """False when the payload has too few brackets to nest deeper than MAX_JSON_DEPTH
    (the usual event has one): the scan of :func:`_too_deep` is then not needed. In
    UTF-8 no byte of a multi-byte character is a bracket, so bytes count as text."""
    return payload.count(b"{") + payload.count(b"[") > MAX_JSON_DEPTH


def _too_deep(text: str) -> bool:
    """True when arrays and objects nest deeper than MAX_JSON_DEPTH (outside strings)."""
    depth = 0
    for token in _tokens(text):
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


# A JSON string (with its escapes), or one structural character.
_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:,]')


def _tokens(text: str) -> Iterator[str]:
    for match in _TOKEN_RE.finditer(text):
        yield match.group()


def _sniff_ref(payload: bytes) -> str | None:
    """The top-level ``ref`` of a payload that does not parse, if one can be read, so
    the device can be told. Reads at most the first few KiB; never raises."""
    try:
        text = payload[: 2 * MAX_PAYLOAD_BYTES].decode("utf-8", errors="replace")
        depth = 0
        key: str | None = None  # the member name just read at depth 1
        expecting_key = False
        for token in _tokens(text):
            if token in ("[", "{"):
                depth += 1
                expecting_key = depth == 1 and token == "{"
            elif token in ("]", "}"):
                depth -= 1
            elif depth != 1:
                continue
            elif token == ",":
                expecting_key, key = True, None
            elif token == ":":
                expecting_key = False
            elif expecting_key:
                key, expecting_key = json.loads(token), False
            elif key == "ref":
                ref = json.loads(token)
                return ref if isinstance(ref, str) and REF_RE.fullmatch(ref) else None
        return None
    except Exception:
        return None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "payload"
    msg = err["msg"]
    if err["type"] == "enum":
        msg = "unknown type"
    return f"{where}: {msg}"


class Topics:
    """Topic names below a configurable root."""

    def __init__(self, root: str = DEFAULT_TOPIC_ROOT) -> None:
        self.root = root.rstrip("/")

    def event(self, device_id: str) -> str:
        return f"{self.root}/dev/{device_id}/event"

    def status(self, device_id: str) -> str:
        return f"{self.root}/dev/{device_id}/status"

    def ack(self, device_id: str) -> str:
        return f"{self.root}/dev/{device_id}/ack"

    def cmd(self, device_id: str) -> str:
        return f"{self.root}/dev/{device_id}/cmd"

    @property
    def centre_status(self) -> str:
        return f"{self.root}/centre/status"

    @property
    def all_events(self) -> str:
        return f"{self.root}/dev/+/event"

    @property
    def all_statuses(self) -> str:
        return f"{self.root}/dev/+/status"

    def device_of(self, topic: str) -> tuple[str, str] | None:
        """``(device_id, leaf)`` of a device topic, or None when it is not one of ours."""
        prefix = f"{self.root}/dev/"
        if not topic.startswith(prefix):
            return None
        rest = topic[len(prefix) :].split("/")
        if len(rest) != 2 or not DEVICE_ID_RE.fullmatch(rest[0]):
            return None
        return rest[0], rest[1]
