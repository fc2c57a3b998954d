"""A call's protocol through the service layer, on the real database (both backends) and
the shipped protocols.toml: an answer is a timeline line under its person and channel
and reads back as the step's answer; a refused answer stores nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dispatcher.adapters.files.directory_files import DataFileError
from dispatcher.adapters.files.protocols import PROTOCOLS
from dispatcher.bootstrap import App
from dispatcher.core.call_protocols import ProtocolAnswerError
from dispatcher.core.calls import InvalidTransitionError, Outcome
from dispatcher.services.read_models import CallNotFoundError
from dispatcher.testing import FakeClock
from tests.support.app import DATA, built_app, event, settings_for, snapshot


async def open_call(app: App, device_id: str = "dev-0001", kind: str = "emergency") -> str:
    ack = await app.intake.on_event(
        device_id, f"eldercall/v1/dev/{device_id}/event", event("e1", kind)
    )
    assert ack is not None and ack.call_id is not None
    return ack.call_id


async def test_a_call_gets_its_kinds_protocols_and_the_default_one(app: App) -> None:
    call_id = await open_call(app)
    view = await app.operations.call_protocols(call_id)
    assert view.kind == "emergency" and view.current == "emergency.voice" and view.answerable
    assert [p.id for p in view.protocols] == [
        "emergency.voice",
        "emergency.silent",
        "emergency.smoke",
    ]
    assert all(s.answer is None for p in view.protocols for s in p.steps)
    silent = next(p for p in view.protocols if p.id == "emergency.silent")
    decision = silent.steps[-1]
    assert decision.text == "决定：如有疑问，派人上门"
    assert (decision.default, decision.default_text) == ("send_someone", "派人上门")
    service = await app.operations.call_protocols(
        await open_call(app, "dev-0002", "service"), language="en"
    )
    assert service.current == "service.request" and service.protocols[0].title == "Service request"


async def test_an_answer_is_on_the_timeline_under_the_person_and_reads_back(
    app: App, clock: FakeClock
) -> None:
    call_id = await open_call(app)
    before = await app.operations.get_call(call_id)
    clock.advance(20)
    me = app.directory.staff["wang-fang"]
    view = await app.operations.choose_protocol(call_id, me.id, "console", "silent", viewer=me)
    assert view.current == "emergency.silent"
    clock.advance(10)
    view = await app.operations.answer_protocol_step(
        call_id,
        me.id,
        "console",
        "emergency.silent",
        "call_home",
        "no_answer",
        "响了12声",
        viewer=me,
    )
    silent = next(p for p in view.protocols if p.id == view.current)
    answer = silent.steps[1].answer
    assert answer is not None
    assert (answer.value, answer.text, answer.note) == ("no_answer", "无人接听", "响了12声")
    assert (answer.by, answer.by_name, answer.channel, answer.at) == (
        "wang-fang",
        "王芳",
        "console",
        clock.now(),
    )
    assert (silent.answered, silent.total) == (1, 6)

    call = await app.operations.get_call(call_id)
    lines = [
        (e.actor, e.action, e.channel, e.detail)
        for e in call.timeline
        if e.action.startswith("protocol")
    ]
    assert lines == [
        ("wang-fang", "protocol_chosen", "console", "emergency.silent"),
        (
            "wang-fang",
            "protocol_answer",
            "console",
            "emergency.silent call_home = no_answer · 响了12声",
        ),
    ]
    # An answer is a record, not an action on the call: escalation goes on as it was.
    assert (call.state, call.next_escalation_at) == ("open", before.next_escalation_at)

    # Answered again (the home phone rang back): the latest stands, both stay on record.
    view = await app.operations.answer_protocol_step(
        call_id, "li-qiang", "api", "emergency.silent", "call_home", "safe"
    )
    again = next(p for p in view.protocols if p.id == "emergency.silent").steps[1].answer
    assert again is not None and (again.value, again.by_name, again.channel) == (
        "safe",
        "李强",
        "api",
    )
    assert (
        sum(
            e.action == "protocol_answer" for e in (await app.operations.get_call(call_id)).timeline
        )
        == 2
    )


@pytest.mark.parametrize(
    ("protocol_id", "step_id", "answer"),
    [
        ("emergency.voice", "no_such_step", "yes"),
        ("emergency.voice", "identity", "perhaps"),
        ("fall.fall", "do_not_lift", "done"),  # another kind's protocol
        ("emergency.nothing", "identity", "yes"),
    ],
)
async def test_an_unknown_step_or_answer_is_refused_and_stores_nothing(
    app: App, protocol_id: str, step_id: str, answer: str
) -> None:
    call_id = await open_call(app)
    before = await snapshot(app)
    with pytest.raises(ProtocolAnswerError):
        await app.operations.answer_protocol_step(
            call_id, "wang-fang", "api", protocol_id, step_id, answer
        )
    with pytest.raises(ProtocolAnswerError):
        await app.operations.choose_protocol(call_id, "wang-fang", "api", "flood")
    assert await snapshot(app) == before


async def test_a_call_the_viewer_cannot_see_is_not_found_and_nothing_is_stored(app: App) -> None:
    call_id = await open_call(app)  # 柳湖 (c-lh)
    other = app.directory.staff["wu-hong"]  # 青石 (c-qs) community staff
    before = await snapshot(app)
    with pytest.raises(CallNotFoundError):
        await app.operations.call_protocols(call_id, viewer=other)
    with pytest.raises(CallNotFoundError):
        await app.operations.answer_protocol_step(
            call_id, other.id, "api", "emergency.voice", "identity", "yes", viewer=other
        )
    with pytest.raises(CallNotFoundError):
        await app.operations.choose_protocol(call_id, other.id, "api", "silent", viewer=other)
    with pytest.raises(CallNotFoundError):
        await app.operations.call_protocols("C-20000101-0001")
    assert await snapshot(app) == before


async def test_a_resolved_call_shows_its_answers_and_takes_no_more(app: App) -> None:
    call_id = await open_call(app)
    await app.operations.answer_protocol_step(
        call_id, "wang-fang", "api", "emergency.voice", "identity", "yes"
    )
    await app.operations.resolve(call_id, "wang-fang", "api", Outcome.HELPED_BY_PHONE)
    before = await snapshot(app)
    with pytest.raises(InvalidTransitionError, match="already resolved"):
        await app.operations.answer_protocol_step(
            call_id, "wang-fang", "api", "emergency.voice", "family", "done"
        )
    assert await snapshot(app) == before
    view = await app.operations.call_protocols(call_id)
    assert not view.answerable and view.protocols[0].steps[0].answer is not None


async def test_the_daemon_refuses_to_start_with_a_bad_protocols_file(
    tmp_path: Path, clock: FakeClock
) -> None:
    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    path = data / PROTOCOLS
    path.write_text(
        path.read_text(encoding="utf-8").replace('answer = "yes_no"', 'answer = "maybe"', 1),
        encoding="utf-8",
    )
    settings = settings_for(tmp_path, data={"dir": str(data)})
    with pytest.raises(DataFileError, match=r"protocols\.toml:\d+: .*answer: Input should be"):
        await built_app(settings, clock)
