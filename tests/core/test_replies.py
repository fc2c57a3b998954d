"""Reading SMS replies, however a phone's keyboard typed them (pure)."""

from __future__ import annotations

import pytest

from dispatcher.core.replies import Action, Reply, parse


@pytest.mark.parametrize(
    "body",
    ["7A", "7a", " 7 a ", "7 A.", "７Ａ", "７ａ", "7A。", "\t7\u200bA!\n", "７　Ａ．"],
)
def test_a_reply_is_read_whatever_its_case_spacing_and_width(body: str) -> None:
    assert parse(body) == Reply(7, Action.ACKNOWLEDGE)


@pytest.mark.parametrize(
    ("body", "expected"),
    [("12E", Reply(12, Action.ESCALATE)), ("3c", Reply(3, Action.CLOSE))],
)
def test_escalate_and_close(body: str, expected: Reply) -> None:
    assert parse(body) == expected


@pytest.mark.parametrize(
    "body", ["", "   ", "A7", "7", "7X", "7AA", "ok 7A", "好的", "7A 8A", "-1A"]
)
def test_anything_else_is_not_a_reply(body: str) -> None:
    assert parse(body) is None
