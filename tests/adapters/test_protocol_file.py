"""config/data/protocols.toml: the shipped file loads; every kind of mistake is refused
with its file and line; a running daemon follows a good change and keeps its
protocols through a bad one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from dispatcher.adapters.files.directory_files import DataFileError
from dispatcher.adapters.files.protocols import PROTOCOLS, ProtocolFile, load_protocols
from dispatcher.core.call_protocols import AnswerKind
from dispatcher.core.calls import CallKind
from tests.support.app import DATA

GOOD = """\
# two protocols for emergencies, the second the default
[[protocol]]
kind = "emergency"
situation = "voice"
title = { zh = "能应答", en = "answers" }

[[protocol.step]]
id = "identity"
text = { zh = "核实身份", en = "confirm who" }
answer = "yes_no"

[[protocol]]
kind = "emergency"
situation = "silent"
default = true
title = { zh = "无人应答", en = "silent" }

[[protocol.step]]
id = "call_home"
text = { zh = "回拨家中电话", en = "call home" }
answer = "choice"
choices = [
  { id = "answered", zh = "接通", en = "answered" },
  { id = "no_answer", zh = "无人接听", en = "no answer" },
]

[[protocol.step]]
id = "decision"
text = { zh = "如有疑问，派人上门", en = "if in doubt, send someone" }
answer = "choice"
choices = [
  { id = "send_someone", zh = "派人上门", en = "send someone" },
  { id = "confirmed_safe", zh = "确认平安", en = "confirmed safe" },
]
default = "send_someone"
guidance = { zh = "不能确认的一律派人", en = "when unsure, always send someone" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / PROTOCOLS
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(DataFileError) as refused:
        load_protocols(write(tmp_path, text))
    return refused.value.problems


def test_the_shipped_file_covers_every_kind_and_the_silent_emergency_sends_someone() -> None:
    book = load_protocols(DATA / PROTOCOLS)
    assert {p.kind for p in book.protocols} == set(CallKind)
    assert {p.situation for p in book.for_kind(CallKind.EMERGENCY)} == {"voice", "silent", "smoke"}
    defaults = {kind: book.default_for(kind) for kind in CallKind}
    assert {k: p.id for k, p in defaults.items() if p} == {
        CallKind.EMERGENCY: "emergency.voice",
        CallKind.FALL: "fall.fall",
        CallKind.SERVICE: "service.request",
        CallKind.TECHNICAL: "technical.fault",
    }
    silent = book.get("emergency.silent")
    assert silent is not None
    last = silent.steps[-1]
    assert last.text["zh"] == "决定：如有疑问，派人上门" and last.default == "send_someone"
    assert [s.id for s in silent.steps[1:4]] == ["call_home", "call_mobile", "call_keyholder"]
    smoke = book.get("emergency.smoke")
    assert smoke is not None and "119" in smoke.steps[1].text["zh"]
    for protocol in book.protocols:  # every text in both languages
        for step in protocol.steps:
            assert step.text["zh"] and step.text["en"]
            assert all(c.text["zh"] and c.text["en"] for c in step.choices)


def test_a_good_file_loads_with_its_default_and_answers(tmp_path: Path) -> None:
    book = load_protocols(write(tmp_path, GOOD))
    assert [p.id for p in book.protocols] == ["emergency.voice", "emergency.silent"]
    default = book.default_for(CallKind.EMERGENCY)
    assert default is not None and default.id == "emergency.silent"
    assert book.default_for(CallKind.FALL) is None
    identity = book.protocols[0].steps[0]
    assert identity.answer is AnswerKind.YES_NO and identity.answers == ("yes", "no")
    decision = book.protocols[1].steps[1]
    assert decision.answers == ("send_someone", "confirmed_safe")
    assert decision.guidance == {
        "zh": "不能确认的一律派人",
        "en": "when unsure, always send someone",
    }


def test_the_first_protocol_of_a_kind_is_its_default_when_none_is_marked(tmp_path: Path) -> None:
    book = load_protocols(write(tmp_path, GOOD.replace("default = true\n", "")))
    default = book.default_for(CallKind.EMERGENCY)
    assert default is not None and default.id == "emergency.voice"


def test_an_absent_file_is_no_protocols(tmp_path: Path) -> None:
    assert load_protocols(tmp_path / PROTOCOLS).protocols == ()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # an unknown kind, on its line
        (('kind = "emergency"\nsituation = "voice"', 'kind = "flood"\nsituation = "voice"'),
         ":3: protocol 1 (flood.voice): kind: Input should be"),
        # an answer kind that does not exist
        (('answer = "yes_no"', 'answer = "maybe"'), ":10: protocol 1 (emergency.voice), step 1"
         " (identity): answer: Input should be 'check', 'yes_no' or 'choice'"),
        # an English text missing
        (('text = { zh = "核实身份", en = "confirm who" }', 'text = { zh = "核实身份" }'),
         ":9: protocol 1 (emergency.voice), step 1 (identity): text.en: Field required"),
        # a key misspelt
        (('answer = "yes_no"', 'answer = "yes_no"\nguidence = { zh = "x", en = "x" }'),
         ":11: protocol 1 (emergency.voice), step 1 (identity): guidence: unknown key"),
        # an id that is not one
        (('id = "identity"', 'id = "Identity check"'),
         ":8: protocol 1 (emergency.voice), step 1 (Identity check): id: 'Identity check' is"
         " not an id"),
        # a default that is not one of the choices
        (('default = "send_someone"', 'default = "wait"'),
         ":27: protocol 2 (emergency.silent), step 2 (decision): default 'wait' is not one of"
         " send_someone, confirmed_safe"),
        # choices for a yes/no question
        (('answer = "yes_no"', 'answer = "yes_no"\nchoices = [{ id = "a", zh = "a", en = "a" }]'),
         ":7: protocol 1 (emergency.voice), step 1 (identity): choices are for"),
        # a choice question with one choice
        (('  { id = "no_answer", zh = "无人接听", en = "no answer" },\n', ""),
         ":18: protocol 2 (emergency.silent), step 1 (call_home): answer = \"choice\" needs at"
         " least two choices"),
        # two steps with one id
        (('id = "decision"', 'id = "call_home"'),
         ":12: protocol 2 (emergency.silent): two steps have the same id (call_home)"),
        # two protocols for one situation
        (('situation = "silent"', 'situation = "voice"'),
         ":14: protocol 2 (emergency.voice): situation: emergency.voice is already protocol 1"),
        # a protocol without steps
        (("[[protocol.step]]\nid = \"identity\"\ntext = { zh = \"核实身份\", en = \"confirm who\" }"
          "\nanswer = \"yes_no\"\n", ""),
         ":2: protocol 1 (emergency.voice): step: Field required"),
        # a table that is not a protocol
        (("[[protocol]]\nkind = \"emergency\"\nsituation = \"voice\"",
          "[fall]\nx = 1\n[[protocol]]\nkind = \"emergency\"\nsituation = \"voice\""),
         ": fall: unknown table"),
        # a control character in a text
        (('en = "confirm who"', 'en = "confirm\\u0007who"'),
         ":9: protocol 1 (emergency.voice), step 1 (identity): text.en: String should match"),
    ],
    ids=[
        "kind", "answer", "language", "unknown-key", "bad-id", "default", "choices-on-yes-no",
        "one-choice", "duplicate-step", "duplicate-situation", "no-steps", "stray-table",
        "control-character",
    ],
)  # fmt: skip
def test_each_kind_of_mistake_is_refused_with_file_and_line(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in GOOD
    found = problems(tmp_path, GOOD.replace(old, new, 1))
    assert any(expected in p for p in found), found
    assert all(p.startswith(str(tmp_path / PROTOCOLS)) for p in found)


def test_two_defaults_for_a_kind_are_refused(tmp_path: Path) -> None:
    text = GOOD.replace('situation = "voice"\n', 'situation = "voice"\ndefault = true\n')
    found = problems(tmp_path, text)
    assert any(":16: protocol 2 (emergency.silent): default: emergency already has" in p
               for p in found), found  # fmt: skip


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace('answer = "yes_no"', 'answer = "maybe"').replace(
        'default = "send_someone"', 'default = "wait"'
    )
    assert len(problems(tmp_path, text)) == 2


def test_a_file_that_is_not_toml_or_not_utf8_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, GOOD + "\n[[protocol]\n")[0].startswith(
        f"{tmp_path / PROTOCOLS}:38: not valid TOML"
    )
    path = tmp_path / PROTOCOLS
    path.write_bytes(b'# ok\n[[protocol]]\nkind = "\xff"\n')
    with pytest.raises(DataFileError, match=r":3: not UTF-8"):
        load_protocols(path)


def _touch(path: Path, text: str, bump: int) -> None:
    # A new mtime for certain, however coarse the file system's clock.
    path.write_text(text, encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump * 1_000_000_000))


def test_a_running_daemon_follows_a_good_change_and_keeps_its_protocols_through_a_bad_one(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, GOOD)
    source = ProtocolFile(path)
    assert len(source.book().protocols) == 2

    _touch(path, GOOD.replace('answer = "yes_no"', 'answer = "maybe"'), 1)
    with capture_logs() as logs:
        kept = source.book()
        again = source.book()  # said once, not at every page
    assert [p.id for p in kept.protocols] == ["emergency.voice", "emergency.silent"]
    assert again is kept
    invalid = [e for e in logs if e["event"] == "protocols_invalid"]
    assert len(invalid) == 1 and "answer: Input should be" in invalid[0]["problems"][0]

    _touch(path, GOOD.replace('situation = "voice"', 'situation = "answers"'), 2)
    with capture_logs() as logs:
        followed = source.book()
    assert [p.id for p in followed.protocols] == ["emergency.answers", "emergency.silent"]
    assert [e["event"] for e in logs] == ["protocols_reloaded"]

    path.unlink()
    with capture_logs() as logs:
        assert source.book() is followed
    assert [e["event"] for e in logs] == ["protocols_missing"]


def test_a_bad_file_at_start_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('kind = "emergency"', 'kind = "flood"', 1))
    with pytest.raises(DataFileError, match="flood"):
        ProtocolFile(path)
