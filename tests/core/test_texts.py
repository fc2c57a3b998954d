"""The catalogues: every language has the same texts with the same placeholders, and
the texts built from them (phone answers, device texts, alert details) read as they should."""

from __future__ import annotations

import string

from devices.protocol import CallUpdateState
from dispatcher.core import phone_texts, texts
from dispatcher.core.calls import DEVICE_TEXT, CallKind
from dispatcher.core.phone_texts import OpenCode
from dispatcher.services.intake import ALERT_TEXT


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_catalogues_have_the_same_keys_and_placeholders() -> None:
    zh, en = texts.catalogue("zh"), texts.catalogue("en")
    assert zh.keys() == en.keys()
    for section in zh:
        assert zh[section].keys() == en[section].keys(), section
        for key in zh[section]:
            assert _placeholders(zh[section][key]) == _placeholders(en[section][key]), key


def test_every_language_has_a_catalogue_and_others_fall_back_to_chinese() -> None:
    for language in texts.LANGUAGES:
        assert texts.catalogue(language)
    assert texts.catalogue("fr") == texts.catalogue("zh")
    assert texts.language_of(None) == texts.language_of("fr") == "zh"


def _codes(count: int) -> list[OpenCode]:
    return [OpenCode(n, f"C-{n}", CallKind.FALL) for n in range(1, count + 1)]


def test_an_answer_lists_a_few_open_calls_and_marks_the_rest() -> None:
    assert (
        phone_texts.open_calls("en", _codes(2))
        == "Your open calls: 1A C-1 fall alarm; 2A C-2 fall alarm."
    )
    six = phone_texts.open_calls("zh", _codes(6))
    assert six.startswith("您的待处理呼叫：1A C-1 跌倒报警；") and six.endswith(
        "5A C-5 跌倒报警；…"
    )
    assert phone_texts.open_calls("en", []) == "You have no open calls."


def test_answers_fill_the_call_and_the_open_calls_in() -> None:
    assert phone_texts.stale("zh", 9, []) == "9 不存在或已结束。您目前没有待处理的呼叫。"
    assert (
        phone_texts.close_refused("en", "C-1", CallKind.EMERGENCY)
        == "C-1 is a emergency call: only an operator can close it. Reply A to acknowledge."
    )
    assert phone_texts.voice_acknowledged("fr", "C-1") == "已确认呼叫 C-1，谢谢。请尽快处理。再见。"


def test_an_unknown_sender_is_answered_in_every_language_chinese_first() -> None:
    answer = phone_texts.unknown_sender()
    zh, en = answer.split(" / ")
    assert zh.startswith("您好") and "120" in zh
    assert en.startswith("This number is not registered") and "120" in en


def test_voice_texts_are_read_in_their_language() -> None:
    assert phone_texts.say_language("en") == "en-US"
    assert phone_texts.say_language("fr") == "zh-CN"


def test_device_texts_are_chinese_and_alerts_carry_every_language() -> None:
    assert set(DEVICE_TEXT) == set(CallUpdateState)
    assert DEVICE_TEXT[CallUpdateState.CANCELLED] == "呼叫已取消"
    assert ALERT_TEXT["battery_low"] == "电量低 battery low"


def test_a_sub_table_is_a_section_of_its_own() -> None:
    out: dict[str, dict[str, str]] = {}
    texts._flatten("", {"console": {"title": "呼叫", "board": {"title": "看板"}}}, out)
    assert out == {"console": {"title": "呼叫"}, "console.board": {"title": "看板"}}
