"""Validation of device payloads at the edge (devices/protocol.py): what is accepted,
what is answered ``invalid`` with a reason, and what cannot be answered at all."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devices import protocol
from devices.protocol import Event, EventType, Invalid, Rejected, Topics, parse_event
from tests.support.fuzz import CORPUS


def raw(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def test_a_full_event_is_accepted_and_unknown_fields_are_ignored() -> None:
    parsed = parse_event(
        raw(
            ref="a1",
            type="emergency",
            ts="2026-11-28T08:15:02+08:00",
            battery=87,
            rssi=-70,
            fw="1.2.3",
            device_id="someone-else",
            extra={"x": 1},
        )
    )
    assert isinstance(parsed, Event)
    assert parsed.type is EventType.EMERGENCY and parsed.battery == 87 and parsed.rssi == -70
    assert parsed.ts is not None and parsed.ts.utcoffset() is not None


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "not a JSON object"),
        (raw(type="fall"), "ref"),
        (raw(ref="", type="fall"), "ref"),
        (raw(ref="r" * 65, type="fall"), "ref"),
        (raw(ref="caf\u00e9", type="fall"), "ref"),
        (raw(ref=5, type="fall"), "ref"),
        (b'{"pad": "' + b"x" * 5000 + b'"}', "more than 4096"),
        (b"[" * 1000 + b"]" * 1000, "deeper than"),
        (b"", "not JSON"),
        (b"null", "not a JSON object"),
    ],
)
def test_what_cannot_be_answered_is_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    parsed = parse_event(payload)
    assert isinstance(parsed, Rejected) and reason in parsed.reason


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"type": "explode"}, "type: unknown type"),
        ({}, "type"),
        ({"type": "service", "battery": 101}, "battery"),
        ({"type": "service", "battery": "80"}, "battery"),
        ({"type": "battery_low", "rssi": 3_000_000_000}, "rssi"),
        ({"type": "heartbeat", "fw": "1." + "0" * 63}, "fw"),
        ({"type": "cancel", "ts": "yesterday"}, "ts"),
        ({"type": "cancel", "ts": "2026-11-28T08:15:02"}, "ts"),
        ({"type": "cancel", "ts": 1764288902}, "ts"),
        ({"type": "fall", "pad": "x" * 5000}, "more than 4096"),
        ({"type": "cancel", "ts": "0001-01-01T00:00:00+08:00"}, "ts is out of range"),
        ({"type": "cancel", "ts": "x" * 65}, "ts"),
        # An alarm of a type that is not one stays invalid, whatever its other fields.
        ({"type": "Emergency", "battery": 150}, "type: unknown type"),
    ],
)
def test_a_malformed_event_with_a_ref_is_invalid_with_a_reason(
    fields: dict[str, Any], where: str
) -> None:
    parsed = parse_event(raw(ref="k1", **fields))
    assert isinstance(parsed, Invalid) and parsed.ref == "k1" and where in parsed.error


BAD_OPTIONAL_FIELDS = [
    ({"battery": 150}, {"battery"}),
    ({"battery": "80"}, {"battery"}),
    ({"battery": True}, {"battery"}),
    ({"rssi": 3_000_000_000}, {"rssi"}),
    ({"fw": "1." + "0" * 63}, {"fw"}),
    ({"fw": ["1"]}, {"fw"}),
    ({"ts": "yesterday"}, {"ts"}),
    ({"ts": "2026-11-28T08:15:02"}, {"ts"}),
    ({"ts": 1764288902}, {"ts"}),
    ({"ts": "0001-01-01T00:00:00+08:00"}, {"ts"}),
    ({"battery": 150, "ts": "yesterday", "rssi": "x", "fw": 7}, {"battery", "ts", "rssi", "fw"}),
]


@pytest.mark.parametrize("alarm", ["emergency", "fall"])
@pytest.mark.parametrize(("fields", "bad"), BAD_OPTIONAL_FIELDS)
def test_an_alarm_is_never_refused_for_a_bad_optional_field(
    alarm: str, fields: dict[str, Any], bad: set[str]
) -> None:
    """Accepted without the bad fields, each named with what was sent and why; the
    good optional fields it carried are kept."""
    parsed = parse_event(
        raw(ref="k1", type=alarm, **fields, **({"rssi": -70} if "rssi" not in bad else {}))
    )
    assert isinstance(parsed, Event), parsed
    assert parsed.ref == "k1" and parsed.type == alarm
    assert {d.field for d in parsed.dropped} == bad
    assert all(getattr(parsed, name) is None for name in bad)
    if "rssi" not in bad:
        assert parsed.rssi == -70
    for d in parsed.dropped:
        assert d.error and d.value and len(d.value) <= 40
        assert d.describe().startswith(f"{d.field} {d.value}: ")


def test_a_good_alarm_drops_nothing_and_a_dropped_field_cannot_be_sent() -> None:
    good = parse_event(raw(ref="k1", type="fall", battery=87))
    assert isinstance(good, Event) and good.dropped == () and good.battery == 87
    # What the centre drops is its own note, never read from the payload.
    sent = parse_event(raw(ref="k2", type="fall", _dropped=[{"field": "x"}], dropped=["y"]))
    assert isinstance(sent, Event) and sent.dropped == ()


def test_an_alarm_keeps_the_payload_rules() -> None:
    """Only optional fields are dropped: not JSON, over 4096 bytes, a duplicate key or no
    usable ref refuse an alarm as before."""
    over = parse_event(raw(ref="k1", type="emergency", battery=150, pad="x" * 5000))
    assert isinstance(over, Invalid) and "more than 4096" in over.error
    nan = parse_event(b'{"ref": "k1", "type": "emergency", "battery": NaN}')
    assert isinstance(nan, Invalid) and "not JSON" in nan.error
    twice = parse_event(b'{"ref": "k1", "type": "emergency", "battery": 1, "battery": 2}')
    assert isinstance(twice, Invalid) and "duplicate key" in twice.error
    no_ref = parse_event(raw(type="emergency", battery=150))
    assert isinstance(no_ref, Rejected)
    bad_ref = parse_event(raw(ref="", type="emergency", battery=150))
    assert isinstance(bad_ref, Rejected)


def test_a_huge_bad_value_is_shown_short() -> None:
    parsed = parse_event(b'{"ref": "k1", "type": "fall", "battery": ' + b"9" * 4000 + b"}")
    assert isinstance(parsed, Event)
    [dropped] = parsed.dropped
    assert dropped.field == "battery" and len(dropped.value) == 40 and dropped.value.endswith("...")


def test_topics_name_the_device_and_refuse_what_is_not_a_device() -> None:
    t = Topics("eldercall/v1")
    assert t.device_of("eldercall/v1/dev/dev-0001/event") == ("dev-0001", "event")
    assert t.device_of("eldercall/v1/dev/bad id/event") is None
    assert t.device_of("eldercall/v1/dev/" + "x" * 65 + "/event") is None
    assert t.device_of("other/v1/dev/dev-0001/event") is None
    assert t.event("d1") == "eldercall/v1/dev/d1/event" and t.centre_status.endswith(
        "centre/status"
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        # Python's json would recurse out (RecursionError) long before 1,000 levels.
        (b'{"ref": "k1", "type": "fall", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}", "deeper"),
        # More digits than Python's int-string limit (4,300), in an oversized payload.
        (b'{"ref": "k1", "type": "fall", "x": ' + b"1" * 5000 + b"}", "more than 4096"),
        (b'{"ref": "k1", "type": "fall", "battery": NaN}', "NaN"),
        (b'{"ref": "k1", "type": "fall", "rssi": -Infinity}', "Infinity"),
        (b'{"ref": "k1", "type": "emergency", "type": "cancel"}', "duplicate key 'type'"),
        (b'{"ref": "k1", "type": "fall", "x": "\xff"}', "not UTF-8"),
        (b'{"ref": "k1", "type": "fall"', "not JSON"),
        (b'{"x": {"ref": "inner"}, "ref": "k1", "type": "fall", "y": NaN}', "NaN"),
    ],
)
def test_an_unreadable_payload_whose_ref_can_be_read_is_answered_invalid(
    payload: bytes, reason: str
) -> None:
    parsed = parse_event(payload)
    assert isinstance(parsed, Invalid), parsed
    assert parsed.ref == "k1" and reason in parsed.error


def test_a_ts_with_offset_seconds_or_many_digits_is_normalised_to_utc() -> None:
    parsed = parse_event(raw(ref="k1", type="fall", ts="2026-11-28T08:15:02.123456+08:00:30"))
    assert isinstance(parsed, Event) and parsed.ts is not None
    assert parsed.ts.isoformat() == "2026-11-28T00:14:32.123456+00:00"


def test_a_byte_order_mark_is_allowed_and_control_characters_leave_fw() -> None:
    parsed = parse_event(b"\xef\xbb\xbf" + raw(ref="k1", type="fall", fw="1.0\x1b[2J\x00"))
    assert isinstance(parsed, Event) and parsed.fw == "1.0[2J"


def _unique_keys_one_by_one(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"duplicate key {protocol.clean_text(key)[:64]!r}")
        data[key] = value
    return data


def test_the_parsers_shortcuts_change_no_result(monkeypatch: pytest.MonkeyPatch) -> None:
    # The depth scan is skipped when there are too few brackets to nest too deep, and
    # duplicate keys are looked for one by one only when dict() lost one: every
    # payload of the hostile corpus, and the usual heartbeat, parse as with neither.
    nested = [
        b'{"ref": "n%d", "type": "heartbeat", "x": %s}' % (d, b"[" * d + b"]" * d)
        for d in (30, 31, 32, 33)
    ]
    payloads = (
        [case.payload for case in CORPUS]
        + nested
        + [
            raw(ref="hb-1", type="heartbeat"),
            raw(ref="hb-2", type="heartbeat", battery=80, rssi=-60),
            b'\xef\xbb\xbf{"ref": "hb-3", "type": "heartbeat"}',
            b'{"ref": "hb-4", "type": "heartbeat", "ref": "hb-5"}',
            b'{"ref": "hb-6", "type": "heartbeat", "x": {"a": 1, "a": 2}}',
        ]
    )

    def outcome(payload: bytes) -> tuple[type, dict[str, Any], set[str]]:
        parsed = parse_event(payload)
        return type(parsed), parsed.model_dump(), parsed.model_fields_set

    quick = [outcome(p) for p in payloads]
    monkeypatch.setattr(protocol, "_may_nest_deep", lambda payload: True)
    monkeypatch.setattr(protocol, "_unique_keys", _unique_keys_one_by_one)
    assert [outcome(p) for p in payloads] == quick
    # With the object itself, 31 nested arrays are 32 levels: the most allowed.
    assert [type(parse_event(p)) for p in nested] == [Event, Event, Invalid, Invalid]
