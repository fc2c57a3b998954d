"""The hostile-input corpus: every kind of payload a broken or malicious device has sent
or could send, each with the answer the protocol says it gets
(/work/shared/spec/device-protocol.md, "Answers"; docs/device-protocol.md, "Optional fields").

- ``ok``: a usable event (unknown fields ignored, optional fields cleaned): stored,
  answered ``ok``. An alarm (``emergency``, ``fall``) whose optional fields are bad is
  accepted without them (``dropped`` names them; they are noted on its call).
- ``invalid``: malformed, but its ``ref`` can be read: recorded as rejected and
  answered ``invalid`` with a reason. A bad optional field makes only a non-alarm
  invalid; what is not JSON or over 4096 bytes is invalid whatever its type.
- ``unanswered``: no usable ``ref``: recorded as rejected, no answer.

Every answered case carries its own ``ref`` (unique in the corpus), so that the whole
corpus can be sent from one device. Used by the intake on both databases
(tests/services/test_intake_fuzz.py) and through Mosquitto (tests/e2e/test_hostile_input.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

Outcome = Literal["ok", "invalid", "unanswered"]
MAX_PAYLOAD = 4096  # the protocol's limit
# Valid for Python's fromisoformat, 42 characters: longer than events.device_ts once was.
OFFSET_SECONDS_TS = "2026-11-24T10:00:00.123456+08:00:30.123456"


@dataclass(frozen=True)
class Case:
    name: str
    payload: bytes
    outcome: Outcome
    ref: str | None = None  # the ref the answer must carry (answered cases)
    dropped: tuple[str, ...] = ()  # an alarm's bad optional fields, accepted without them


def _event(ref: str, type_: Any = "emergency", **fields: Any) -> bytes:
    return json.dumps({"ref": ref, "type": type_, **fields}).encode()


def _with_raw(ref: str, field: str, raw_value: bytes) -> bytes:
    """An event whose ``field`` is spliced in as raw bytes (what json.dumps cannot make)."""
    return (
        b'{"ref": "'
        + ref.encode()
        + b'", "type": "emergency", "'
        + field.encode()
        + b'": '
        + (raw_value + b"}")
    )


def _ok(name: str, payload: bytes, ref: str) -> Case:
    return Case(name, payload, "ok", ref)


def _dropped(name: str, payload: bytes, ref: str, *fields: str) -> Case:
    """An alarm answered ``ok`` and its call opened, without its bad ``fields``."""
    return Case(name, payload, "ok", ref, dropped=fields)


def _invalid(name: str, payload: bytes, ref: str) -> Case:
    return Case(name, payload, "invalid", ref)


def _unanswered(name: str, payload: bytes) -> Case:
    return Case(name, payload, "unanswered")


CORPUS: tuple[Case, ...] = (
    # Nesting: Python's json recurses out (RecursionError) near 1,000 levels.
    _unanswered("deep array", b"[" * 1000 + b"]" * 1000),
    _invalid("deep field", _with_raw("f-deep", "x", b"[" * 1000 + b"]" * 1000), "f-deep"),
    _unanswered("deep objects", b'{"a": ' * 600 + b"1" + b"}" * 600),
    # Numbers: past the int-string limit (4,300 digits), past a float, past a column.
    _invalid("5000-digit number", _with_raw("f-digits", "battery", b"9" * 5000), "f-digits"),
    _dropped(
        "4000-digit number",
        _with_raw("f-digits2", "battery", b"9" * 4000),
        "f-digits2",
        "battery",
    ),
    _dropped("huge exponent", _with_raw("f-exp", "rssi", b"1e400"), "f-exp", "rssi"),
    _dropped("rssi past an integer column", _event("f-rssi", rssi=2**63), "f-rssi", "rssi"),
    _invalid(
        "rssi past an integer column, not an alarm",
        _event("f-rssi-s", "service", rssi=2**63),
        "f-rssi-s",
    ),
    _invalid("NaN", _with_raw("f-nan", "battery", b"NaN"), "f-nan"),
    _invalid("Infinity", _with_raw("f-inf", "rssi", b"Infinity"), "f-inf"),
    _invalid("-Infinity", _with_raw("f-ninf", "rssi", b"-Infinity"), "f-ninf"),
    # Strings: huge ones, in known and unknown fields.
    _dropped("huge fw", _event("f-fw", fw="x" * 4000), "f-fw", "fw"),
    _invalid("huge fw, not an alarm", _event("f-fw-b", "battery_low", fw="x" * 4000), "f-fw-b"),
    _ok("huge unknown string", _event("f-note", note="x" * 3900), "f-note"),
    _invalid("1 MB event", _event("f-mb", pad="x" * 1_000_000), "f-mb"),
    _unanswered("1 MB of garbage", b"x" * 1_000_000),
    # Not UTF-8, or UTF-8 of a lone surrogate.
    _unanswered("not UTF-8", b"\xff\xfe\x00\x01"),
    _invalid("not UTF-8 in a field", _with_raw("f-u8", "x", b'"\xff"'), "f-u8"),
    _invalid("surrogate bytes", _with_raw("f-sur8", "fw", b'"\xed\xa0\x80"'), "f-sur8"),
    _ok("escaped lone surrogate in fw", _with_raw("f-sur", "fw", b'"1.0\\ud800"'), "f-sur"),
    _ok("escaped lone surrogate elsewhere", _with_raw("f-sur2", "x", b'"\\udfff"'), "f-sur2"),
    # Wrong types and nulls.
    _unanswered("ref a number", _event(5)),  # type: ignore[arg-type]
    _unanswered("ref null", b'{"ref": null, "type": "emergency"}'),
    _unanswered("ref a list", b'{"ref": ["r"], "type": "emergency"}'),
    _invalid("type a number", _event("f-type", 7), "f-type"),
    _invalid("type null", _event("f-typenull", None), "f-typenull"),
    _dropped("battery a string", _event("f-batt", battery="80"), "f-batt", "battery"),
    _dropped("battery a bool", _event("f-bool", "fall", battery=True), "f-bool", "battery"),
    _dropped("ts a number", _event("f-tsnum", ts=1764288902), "f-tsnum", "ts"),
    _dropped("fw a list", _event("f-fwlist", fw=["1"]), "f-fwlist", "fw"),
    _dropped(
        "every optional field bad",
        _event("f-allbad", battery=150, ts="yesterday", rssi="x", fw=7),
        "f-allbad",
        "battery",
        "ts",
        "rssi",
        "fw",
    ),
    _invalid(
        "battery a string, not an alarm", _event("f-batt-s", "service", battery="80"), "f-batt-s"
    ),
    _invalid("battery 150, a heartbeat", _event("f-batt-h", "heartbeat", battery=150), "f-batt-h"),
    _invalid("ts a number, a cancel", _event("f-ts-c", "cancel", ts=1764288902), "f-ts-c"),
    _invalid(
        "an alarm of an unknown type", _event("f-alarmish", "emergancy", battery=150), "f-alarmish"
    ),
    _ok("optional fields null", _event("f-nulls", battery=None, rssi=None, fw=None), "f-nulls"),
    _unanswered("null", b"null"),
    _unanswered("a number", b"42"),
    _unanswered("a string", b'"emergency"'),
    _unanswered("top-level array", b'[{"ref": "f-arr", "type": "emergency"}]'),
    # Duplicate keys: which "type" was meant is a guess, and a guess opens no call.
    _invalid("duplicate type", b'{"ref": "f-dup", "type": "emergency", "type": "cancel"}', "f-dup"),
    # Framing: a byte-order mark is allowed before JSON text; nothing at all is not JSON.
    _ok("byte-order mark", b"\xef\xbb\xbf" + _event("f-bom"), "f-bom"),
    _unanswered("empty", b""),
    _unanswered("whitespace", b" \n\t "),
    _invalid("truncated", _event("f-cut")[:-1], "f-cut"),
    # Device clocks: offset seconds (42 characters as given), far past and future.
    _ok(
        "ts offset seconds",
        _event("f-ts1", ts="2026-11-24T10:00:00.123456+08:00:30.123456"),
        "f-ts1",
    ),
    _ok("ts far past", _event("f-ts2", ts="0001-01-01T00:00:00Z"), "f-ts2"),
    _ok("ts far future", _event("f-ts3", ts="9999-12-31T23:59:59.999999Z"), "f-ts3"),
    _dropped(
        "ts before year 1 in UTC", _event("f-ts4", ts="0001-01-01T00:00:00+08:00"), "f-ts4", "ts"
    ),
    _dropped(
        "ts after 9999 in UTC", _event("f-ts5", ts="9999-12-31T23:59:59-08:00"), "f-ts5", "ts"
    ),
    _dropped("ts without offset", _event("f-ts6", ts="2026-11-24T10:00:00"), "f-ts6", "ts"),
    _dropped(
        "ts huge", _event("f-ts7", ts="2026-11-24T10:00:00." + "1" * 3000 + "Z"), "f-ts7", "ts"
    ),
    _invalid(
        "ts without offset, not an alarm",
        _event("f-ts6-p", "power_lost", ts="2026-11-24T10:00:00"),
        "f-ts6-p",
    ),
    # Control characters: cleaned from what is kept, refused where they make a ref.
    _ok("escape sequence in fw", _event("f-esc", fw="1.0\x1b[2J\x07\x00"), "f-esc"),
    _ok("NUL in an unknown field", _event("f-nul", note="\x00\x1b]0;owned\x07"), "f-nul"),
    _unanswered("control character in ref", _event("f-\x07bell")),
    _invalid("raw control character in a string", _with_raw("f-raw", "x", b'"a\x01b"'), "f-raw"),
)


def answered(case: Case) -> bool:
    return case.outcome != "unanswered"


__all__ = ["CORPUS", "MAX_PAYLOAD", "OFFSET_SECONDS_TS", "Case", "Outcome", "answered"]
