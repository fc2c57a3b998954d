"""devices.text: what text from outside keeps, and what it loses."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.text import clean_text


@pytest.mark.parametrize(
    ("given_text", "kept"),
    [
        ("张桂兰", "张桂兰"),
        ("Zhang Guilan (82)", "Zhang Guilan (82)"),
        ("\x1b[31mred\x1b[0m", "[31mred[0m"),  # ESC gone: the rest is harmless text
        ("a\x00b\x07c\x7fd\x9be", "abcde"),  # NUL, BEL, DEL, the C1 CSI
        ("one\ntwo\r\nthree\tfour\u2028five", "one two  three four five"),
        ("lone \ud800 surrogate", "lone  surrogate"),
        ("non-characters \ufffe\uffff", "non-characters "),
        ("emoji 🆘 and ｆｕｌｌ width stay", "emoji 🆘 and ｆｕｌｌ width stay"),
    ],
)
def test_controls_go_and_text_stays(given_text: str, kept: str) -> None:
    assert clean_text(given_text) == kept


def test_lines_can_be_kept() -> None:
    assert clean_text("a\r\nb\rc\td\x1b\u2029e", keep_lines=True) == "a\nb\nc\td\ne"


@given(st.text())
def test_anything_cleaned_is_valid_xml_utf_8_and_stable(text: str) -> None:
    cleaned = clean_text(text)
    assert clean_text(cleaned) == cleaned
    cleaned.encode("utf-8")  # no lone surrogate left
    assert ET.fromstring(f"<Say>{escape(cleaned)}</Say>").text in (cleaned, None)
