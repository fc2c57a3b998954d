"""The operator scripts' rules, pure: an answer is checked against its step and becomes
one timeline line; the answers and the current protocol are read back from the timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.core import call_protocols as scripts
from dispatcher.core.call_protocols import (
    AnswerKind,
    CallProtocol,
    Choice,
    ProtocolAnswerError,
    ProtocolBook,
    Step,
)
from dispatcher.core.calls import (
    Call,
    CallKind,
    InvalidTransitionError,
    Outcome,
    TimelineEntry,
    open_call,
    resolve,
)
from dispatcher.core.escalation import DEFAULT_POLICIES

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def _texts(zh: str, en: str) -> dict[str, str]:
    return {"zh": zh, "en": en}


VOICE = CallProtocol(
    CallKind.EMERGENCY,
    "voice",
    _texts("能应答", "answers"),
    (
        Step("identity", _texts("核实身份", "confirm who"), AnswerKind.YES_NO),
        Step("family", _texts("通知家属", "family told"), AnswerKind.CHECK),
    ),
)
SILENT = CallProtocol(
    CallKind.EMERGENCY,
    "silent",
    _texts("无人应答", "silent"),
    (
        Step(
            "decision",
            _texts("如有疑问，派人上门", "if in doubt, send someone"),
            AnswerKind.CHOICE,
            (
                Choice("send_someone", _texts("派人上门", "send someone")),
                Choice("confirmed_safe", _texts("确认平安", "confirmed safe")),
            ),
            default="send_someone",
        ),
    ),
)
FALL = CallProtocol(
    CallKind.FALL,
    "fall",
    _texts("跌倒", "fall"),
    (Step("do_not_lift", _texts("不要扶起", "do not lift"), AnswerKind.CHECK),),
)
BOOK = ProtocolBook((VOICE, SILENT, FALL))


def _call(kind: CallKind = CallKind.EMERGENCY) -> Call:
    call, _ = open_call(
        call_id="C-1",
        device_id="dev-1",
        kind=kind,
        policy=DEFAULT_POLICIES[kind.value],
        now=NOW,
        resident_id="r-1",
        community_id="c-1",
    )
    return call


def test_an_answer_is_one_timeline_line_under_its_person_and_channel() -> None:
    call = _call()
    later = NOW + timedelta(seconds=30)
    t = scripts.answer(
        BOOK,
        call,
        "wang-fang",
        "console",
        later,
        "emergency.voice",
        "identity",
        "yes",
        " 王 \n阿姨 ",
    )
    [entry] = t.timeline
    assert (entry.actor, entry.action, entry.channel, entry.at) == (
        "wang-fang",
        "protocol_answer",
        "console",
        later,
    )
    assert entry.detail == "emergency.voice identity = yes · 王 阿姨"
    assert t.device_update is None and call.updated_at == later
    found = scripts.read_answer(entry)
    assert found is not None and (found.step_id, found.value, found.note) == (
        "identity",
        "yes",
        "王 阿姨",
    )


@pytest.mark.parametrize(
    ("protocol_id", "step_id", "value", "error"),
    [
        ("emergency.flood", "identity", "yes", "no protocol 'emergency.flood'"),
        ("fall.fall", "do_not_lift", "done", "protocol fall.fall is for fall calls"),
        ("emergency.voice", "pulse", "yes", "has no step 'pulse'"),
        ("emergency.voice", "identity", "maybe", "'maybe' is not an answer to step identity"),
        ("emergency.voice", "family", "yes", "(one of: done, not_done)"),
        ("emergency.silent", "decision", "wait", "(one of: send_someone, confirmed_safe)"),
    ],
)
def test_an_answer_the_protocol_does_not_take_is_refused(
    protocol_id: str, step_id: str, value: str, error: str
) -> None:
    with pytest.raises(ProtocolAnswerError) as refused:
        scripts.answer(BOOK, _call(), "wang-fang", "api", NOW, protocol_id, step_id, value)
    assert error in str(refused.value)


def test_a_resolved_call_takes_no_answer_and_no_situation() -> None:
    call = _call()
    resolve(call, "wang-fang", "api", Outcome.VISIT, NOW)
    with pytest.raises(InvalidTransitionError, match="already resolved"):
        scripts.answer(BOOK, call, "wang-fang", "api", NOW, "emergency.voice", "identity", "yes")
    with pytest.raises(InvalidTransitionError, match="already resolved"):
        scripts.choose(BOOK, call, "wang-fang", "api", NOW, "silent")


def test_a_long_note_is_refused() -> None:
    with pytest.raises(ProtocolAnswerError, match="longer than 500"):
        scripts.answer(
            BOOK, _call(), "a", "api", NOW, "emergency.voice", "identity", "yes", "x" * 501
        )


def _line(at_s: int, action: str, detail: str, actor: str = "wang-fang") -> TimelineEntry:
    return TimelineEntry(NOW + timedelta(seconds=at_s), actor, action, "console", detail)


def test_the_latest_answer_to_a_step_stands_and_other_lines_are_ignored() -> None:
    timeline = [
        _line(0, "opened", "emergency from resident r-1", "device"),
        _line(10, "protocol_answer", "emergency.voice identity = no"),
        _line(20, "note", "emergency.voice identity = yes"),  # a note, not an answer
        _line(30, "protocol_answer", "emergency.voice identity = yes · 核实", "li-na"),
        _line(40, "protocol_answer", "emergency.silent decision = send_someone"),
        _line(50, "protocol_answer", "garbled"),
    ]
    answers = scripts.answers_of(timeline, "emergency.voice")
    assert list(answers) == ["identity"]
    assert (answers["identity"].value, answers["identity"].actor) == ("yes", "li-na")
    assert answers["identity"].note == "核实"
    assert scripts.answers_of(timeline, "emergency.silent")["decision"].value == "send_someone"


def test_the_current_protocol_is_the_last_picked_or_answered_of_the_calls_kind() -> None:
    assert scripts.current_protocol(BOOK, CallKind.EMERGENCY, []) is VOICE
    chosen = [_line(0, "protocol_chosen", "emergency.silent")]
    assert scripts.current_protocol(BOOK, CallKind.EMERGENCY, chosen) is SILENT
    back = [*chosen, _line(5, "protocol_answer", "emergency.voice identity = yes")]
    assert scripts.current_protocol(BOOK, CallKind.EMERGENCY, back) is VOICE
    # A fall's answers do not pick an emergency's protocol (a call raised to another kind).
    other = [_line(0, "protocol_answer", "fall.fall do_not_lift = done")]
    assert scripts.current_protocol(BOOK, CallKind.EMERGENCY, other) is VOICE
    assert scripts.current_protocol(BOOK, CallKind.SERVICE, other) is None


def test_choosing_a_situation_is_checked_against_the_calls_kind() -> None:
    t = scripts.choose(BOOK, _call(), "wang-fang", "api", NOW, "silent")
    assert [(e.action, e.detail) for e in t.timeline] == [("protocol_chosen", "emergency.silent")]
    with pytest.raises(ProtocolAnswerError, match=r"no protocol 'fall\.silent'"):
        scripts.choose(BOOK, _call(CallKind.FALL), "wang-fang", "api", NOW, "silent")


def test_answers_read_in_each_language() -> None:
    decision = SILENT.steps[0]
    assert decision.answer_text("send_someone", "zh") == "派人上门"
    assert decision.answer_text("send_someone", "en") == "send someone"
    assert VOICE.steps[0].answer_text("yes", "zh") == "是"
    assert VOICE.steps[1].answer_text("not_done", "en") == "not done"
    assert scripts.localized(_texts("是", ""), "en") == "是"  # falls back to Chinese
