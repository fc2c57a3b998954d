"""Typed models of the device protocol, version 1 (``shared/spec/device-protocol.md``).

Shared by the dispatcher, the reference device client and the simulator, so that
both sides of the contract are checked by the same code. Parsing never raises on
bad input: it returns a :class:`Rejected` or :class:`Invalid` that says why.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_PAYLOAD_BYTES = 4096
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# 1-64 printable ASCII characters (space to tilde).
REF_RE = re.compile(r"^[\x20-\x7e]{1,64}$")
DEFAULT_TOPIC_ROOT = "eldercall/v1"
DEVICE_RESEND_AFTER_S = 10.0


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


CALL_TYPES = frozenset({EventType.EMERGENCY, EventType.FALL, EventType.SERVICE})
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


class Event(BaseModel):
    """An event a device sends on ``{root}/dev/{device_id}/event``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ref: Annotated[str, Field(pattern=REF_RE.pattern)]
    type: EventType
    ts: datetime | None = None
    battery: Annotated[int, Field(ge=0, le=100, strict=True)] | None = None
    # Bounded so that no integer a device sends can overflow a database column.
    rssi: Annotated[int, Field(ge=-1000, le=1000, strict=True)] | None = None
    fw: Annotated[str, Field(max_length=64, pattern=r"^[\x20-\x7e]*$")] | None = None

    @field_validator("ts", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        # RFC 3339 needs a date, a time and an offset; pydantic would also take numbers.
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("ts must be an RFC 3339 string")
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise ValueError("ts must carry a UTC offset")
        return parsed


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
    """Validate a raw event payload at the edge. Never raises."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        ref = _sniff_ref(payload)
        reason = f"payload is {len(payload)} bytes, more than {MAX_PAYLOAD_BYTES}"
        return Invalid(ref=ref, error=reason) if ref else Rejected(reason=reason)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return Rejected(reason="payload is not UTF-8")
    try:
        data = json.loads(text)
    except ValueError as exc:
        return Rejected(reason=f"payload is not JSON: {exc}")
    if not isinstance(data, dict):
        return Rejected(reason="payload is not a JSON object")
    ref = data.get("ref")
    if not isinstance(ref, str) or not REF_RE.fullmatch(ref):
        return Rejected(reason="ref is missing or is not 1-64 printable ASCII characters")
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        return Invalid(ref=ref, error=_first_error(exc))


def _sniff_ref(payload: bytes) -> str | None:
    """The ``ref`` of an oversized payload, if it parses, so the device can be told."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    ref = data.get("ref") if isinstance(data, dict) else None
    return ref if isinstance(ref, str) and REF_RE.fullmatch(ref) else None


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
