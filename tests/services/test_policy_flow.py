"""Escalation policies through the whole app, on SQLite and PostgreSQL: per-community
policies, skipping a step that names nobody, the acknowledgement timeout, a policy
edited while a call is in progress, and calls stored in the old policy format."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db.escalator_store import SqlEscalationStore
from dispatcher.adapters.db.transactions import Transactions
from dispatcher.adapters.files.directory_files import DataFileError
from dispatcher.adapters.files.policies import POLICIES
from dispatcher.bootstrap import App
from dispatcher.core.calls import Outcome
from dispatcher.core.rota import on_duty as rota
from dispatcher.services.escalator import Escalator
from dispatcher.testing import FakeChannelSender, FakeClock
from tests.support.app import (
    COMMUNITY_LH,
    DATA,
    HOTLINE,
    R0001_CONTACTS,
    SUPERVISOR_HX,
    built_app,
    event,
    settings_for,
    sqlite_url,
)

TOPIC = "eldercall/v1/dev/x/event"
# Tuesday 24 November 2026, 14:00 in Shanghai (streets have no backups in the example).
TUESDAY_2PM = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
DEMO_OPERATOR = "+8613800138000"
WANG_FANG = "+8613916200101"
WU_HONG_QS = "+8613761400303"

LH_POLICY = """
[community.c-lh.emergency]
repeat_every_s = 600
steps = [
  { delay_s = 0, targets = ["hotline"] },
  { delay_s = 60, targets = ["on_duty:street:backup"] },
  { delay_s = 120, targets = ["street_supervisor"] },
]
"""


def data_with(tmp_path: Path, policies: str | None) -> Path:
    folder = tmp_path / "data"
    if not folder.exists():
        shutil.copytree(DATA, folder)
    target = folder / POLICIES
    if policies is None:
        target.unlink(missing_ok=True)
    else:
        target.write_text(policies, encoding="utf-8")
    return folder


async def build(
    tmp_path: Path,
    database_url: str,
    clock: FakeClock,
    sms: FakeChannelSender,
    policies: str | None,
    *voice: FakeChannelSender,
    **overrides: Any,
) -> App:
    settings = settings_for(
        tmp_path,
        database={"url": database_url},
        data={"dir": str(data_with(tmp_path, policies)), "timezone": "Asia/Shanghai"},
        **overrides,
    )
    return await built_app(settings, clock, sms, *voice)


@pytest.fixture
async def lh_app(
    tmp_path: Path, database_url: str, clock: FakeClock, fake_sms: FakeChannelSender
) -> AsyncIterator[App]:
    app = await build(tmp_path, database_url, clock, fake_sms, LH_POLICY)
    yield app
    await app.aclose()


async def tick(app: App) -> None:
    await app.escalator.run_due()
    await app.outbox.send_due()


async def press(app: App, device: str, ref: str, kind: str = "emergency") -> str:
    ack = await app.intake.on_event(device, TOPIC, event(ref, kind))
    assert ack is not None and ack.call_id is not None
    return ack.call_id


def sent_to(sms: FakeChannelSender, since: int = 0) -> set[str]:
    return {m.to for m in sms.sent[since:]}


async def actions(app: App, call_id: str) -> list[str]:
    return [e.action for e in (await app.operations.get_call(call_id)).timeline]


async def test_a_step_naming_nobody_is_skipped_at_once_and_communities_have_their_own(
    lh_app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    clock.set(TUESDAY_2PM)
    lh = await press(lh_app, "dev-0001", "a1")  # c-lh: its own policy
    qs = await press(lh_app, "dev-0011", "a2")  # c-qs: the default policy
    await tick(lh_app)
    assert sent_to(fake_sms) == HOTLINE
    before = len(fake_sms.sent)
    clock.advance(60)
    await tick(lh_app)  # ONE poll: c-lh's step 2 finds nobody, step 3 fires now
    lh_view = await lh_app.operations.get_call(lh)
    assert {n.to_number for n in lh_view.notifications if n.step == 2} == SUPERVISOR_HX
    assert lh_view.policy == "c-lh.emergency"
    skipped = [e for e in lh_view.timeline if e.action == "step_skipped"]
    assert len(skipped) == 1 and "step 2 (on_duty:street:backup)" in skipped[0].detail
    qs_view = await lh_app.operations.get_call(qs)
    assert {n.to_number for n in qs_view.notifications if n.step == 1} == HOTLINE | {WU_HONG_QS}
    assert sent_to(fake_sms, before) == SUPERVISOR_HX | HOTLINE | {WU_HONG_QS}
    # The skipped step does not drag the repeats along: the next is at 120 + 600 s.
    assert lh_view.next_escalation_at == TUESDAY_2PM + timedelta(seconds=720)


async def test_ack_timeout_escalates_to_the_holder_then_the_street_and_a_new_ack_stops_it(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    call_id = await press(app, "dev-0001", "k1")
    await tick(app)
    await app.operations.acknowledge(call_id, "demo-operator", "api")
    clock.advance(45 * 60 - 1)
    await tick(app)
    before = len(fake_sms.sent)
    clock.advance(1)
    await tick(app)
    assert sent_to(fake_sms, before) == {DEMO_OPERATOR}  # the person who took it
    [reminder] = fake_sms.sent[before:]
    assert "已确认但仍未处理完毕" in reminder.body and "仍无人确认" not in reminder.body
    assert (await actions(app, call_id))[-2:] == ["ack_timeout", "ack_escalated"]
    # A restart between the steps neither loses nor repeats one.
    restarted = Escalator(Transactions(app.sessions, SqlEscalationStore), app.directory, clock)
    assert await restarted.run_due() == 0
    clock.advance(300)
    before = len(fake_sms.sent)
    assert await restarted.run_due() == 1
    await app.outbox.send_due()
    assert sent_to(fake_sms, before) == {DEMO_OPERATOR} | SUPERVISOR_HX
    view = await app.operations.get_call(call_id)
    assert view.state == "acknowledged" and view.acknowledged_by == "demo-operator"
    assert view.held_by == "demo-operator" and view.policy == "emergency"
    assert view.next_ack_escalation_at == clock.now() + timedelta(seconds=300)

    # Somebody acknowledges again: it stops, and starts afresh for them.
    await app.operations.acknowledge(call_id, "wang-fang", "sms")
    before = len(fake_sms.sent)
    clock.advance(45 * 60 - 1)
    await tick(app)
    assert len(fake_sms.sent) == before
    clock.advance(1)
    await tick(app)
    assert sent_to(fake_sms, before) == {WANG_FANG}
    # An operator's resolve ends it for good.
    await app.operations.resolve(call_id, "wang-fang", "api", Outcome.VISIT)
    before = len(fake_sms.sent)
    clock.advance(6 * 3600)
    await tick(app)
    assert len(fake_sms.sent) == before


async def test_editing_the_policy_file_or_settings_leaves_a_call_in_progress_alone(
    tmp_path: Path, database_url: str, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    first = """
[emergency]
repeat_every_s = 600
steps = [{ delay_s = 0, targets = ["hotline"] }, { delay_s = 30, targets = ["street_supervisor"] }]
"""
    app = await build(tmp_path, database_url, clock, fake_sms, first)
    old = await press(app, "dev-0001", "e1")
    await tick(app)
    await app.aclose()

    edited = first.replace('["street_supervisor"]', '["emergency_contacts"]')
    app = await build(tmp_path, database_url, clock, fake_sms, edited)
    try:
        new = await press(app, "dev-0002", "e2")
        clock.advance(30)
        await tick(app)
        old_view = await app.operations.get_call(old)
        assert {n.to_number for n in old_view.notifications if n.step == 1} == SUPERVISOR_HX
        new_view = await app.operations.get_call(new)
        assert {n.to_number for n in new_view.notifications if n.step == 1}.isdisjoint(
            SUPERVISOR_HX
        )
    finally:
        await app.aclose()

    # The configuration's [escalation.policies] wins over the file, for new calls only.
    app = await build(
        tmp_path,
        database_url,
        clock,
        fake_sms,
        edited,
        escalation={
            "poll_interval_s": 0.05,
            "policies": {
                "emergency": {
                    "repeat_every_s": 600,
                    "steps": [{"delay_s": 0, "targets": ["person:sun-li"]}],
                }
            },
        },
    )
    try:
        newest = await press(app, "dev-0003", "e3")
        clock.advance(600)
        await tick(app)
        newest_view = await app.operations.get_call(newest)
        assert {n.to_number for n in newest_view.notifications} == SUPERVISOR_HX
        old_view = await app.operations.get_call(old)
        assert {n.to_number for n in old_view.notifications if n.step == 2} == SUPERVISOR_HX
    finally:
        await app.aclose()


OLD_FORMAT = {
    "name": "emergency",
    "repeat_every_s": 180,
    "steps": [
        {"delay_s": 0, "targets": ["hotline"]},
        {"delay_s": 60, "targets": ["hotline", "community"]},
        {
            "delay_s": 180,
            "targets": ["hotline", "community", "street_supervisor", "emergency_contacts"],
        },
    ],
}


async def test_a_call_stored_in_the_old_policy_format_still_escalates(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    call_id = await press(app, "dev-0001", "o1")
    async with app.sessions.begin() as s:
        await s.execute(
            text("UPDATE calls SET policy = :p WHERE id = :id"),
            {"p": json.dumps(OLD_FORMAT), "id": call_id},
        )
    await tick(app)
    assert sent_to(fake_sms) == HOTLINE
    clock.advance(180)
    await tick(app)  # overdue steps fire one per poll
    await tick(app)
    assert sent_to(fake_sms) == HOTLINE | COMMUNITY_LH | SUPERVISOR_HX | R0001_CONTACTS
    await app.operations.acknowledge(call_id, "demo-operator", "api")
    async with app.sessions() as s:
        row = (await s.execute(select(db.calls).where(db.calls.c.id == call_id))).one()
    assert row.next_ack_escalation_at is None  # stored without one: none is added


async def test_an_exhausted_policy_keeps_reminding_the_command_centre(
    tmp_path: Path, database_url: str, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    policy = """
[emergency]
repeat_every_s = 120
repeat = 1
steps = [{ delay_s = 0, targets = ["emergency_contacts:1"] }]
"""
    app = await build(tmp_path, database_url, clock, fake_sms, policy)
    try:
        call_id = await press(app, "stranger-1", "x1")  # unknown device: no contacts
        for _ in range(4):
            await tick(app)
            clock.advance(120)
        view = await app.operations.get_call(call_id)
        entries = [(e.action, e.detail) for e in view.timeline]
        names = [a for a, _ in entries]
        # Steps 1 and 2 (its one repeat) name nobody: the command centre instead.
        assert names.count("step_fallback") == 2
        assert names.count("policy_exhausted") == 1
        assert names.count("escalated") == 4
        by_step = {n.step for n in view.notifications}
        assert by_step == {0, 1, 2, 3}
        for step in (2, 3):
            to = {n.to_number for n in view.notifications if n.step == step}
            assert to >= HOTLINE and "+8613916200105" in to  # and the district supervisor
    finally:
        await app.aclose()


async def test_the_daemon_refuses_a_bad_policy_file(
    tmp_path: Path, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    bad = '[emergency]\nsteps = [{ delay_s = 0, targets = ["person:ghost"] }]\n'
    with pytest.raises(DataFileError, match=r"policies.toml:2: .*no staff 'ghost'"):
        await build(tmp_path, sqlite_url(tmp_path), clock, fake_sms, bad)


async def test_a_policy_naming_nobody_at_all_cannot_spin_and_reaches_the_command_centre(
    tmp_path: Path, database_url: str, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    policy = """
[emergency]
repeat_every_s = 60
steps = [
  { delay_s = 0, targets = ["emergency_contacts"] },
  { delay_s = 30, targets = ["emergency_contacts:1"] },
  { delay_s = 90, targets = ["on_duty:community"] },
]
"""
    app = await build(tmp_path, database_url, clock, fake_sms, policy)
    try:
        call_id = await press(app, "stranger-2", "s1")  # no contacts, no community
        assert await app.escalator.run_due() == 3  # two skipped, the last falls back
        assert await app.escalator.run_due() == 0  # and then it waits, it does not spin
        await app.outbox.send_due()
        assert sent_to(fake_sms) == HOTLINE
        view = await app.operations.get_call(call_id)
        names = [e.action for e in view.timeline]
        assert names[1:] == ["step_skipped", "step_skipped", "step_fallback", "escalated"]
        assert view.next_escalation_at == clock.now() + timedelta(seconds=90 + 60)
    finally:
        await app.aclose()


VOICE_POLICY = """
[emergency]
repeat_every_s = 180
steps = [
  { delay_s = 0, targets = ["person:demo-operator"], channels = ["sms", "voice"] },
]
"""


async def test_a_step_asking_for_voice_calls_as_well_as_texting(
    tmp_path: Path,
    database_url: str,
    clock: FakeClock,
    fake_sms: FakeChannelSender,
    fake_voice: FakeChannelSender,
) -> None:
    app = await build(tmp_path, database_url, clock, fake_sms, VOICE_POLICY, fake_voice)
    try:
        call_id = await press(app, "dev-0001", "v1")
        await tick(app)
        view = await app.operations.get_call(call_id)
        assert {(n.channel, n.to_number) for n in view.notifications} == {
            ("sms", DEMO_OPERATOR),
            ("voice", DEMO_OPERATOR),
        }
        assert [c.to for c in fake_voice.sent] == [DEMO_OPERATOR]
        assert sent_to(fake_sms) == {DEMO_OPERATOR}
    finally:
        await app.aclose()


ROTATION_POLICY = """
[emergency]
repeat_every_s = 180
steps = [
  { delay_s = 0, targets = ["rotation:c-lh-day"] },
  { delay_s = 60, targets = ["rotation:c-lh-backup"] },
]
"""


async def test_rotation_targets_follow_the_example_rota_hand_offs(
    tmp_path: Path, database_url: str, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    app = await build(tmp_path, database_url, clock, fake_sms, ROTATION_POLICY)
    try:
        day = rota.rotation_on_call(app.directory, "c-lh-day", clock.now())
        backup = rota.rotation_on_call(app.directory, "c-lh-backup", clock.now())
        assert len(day) == 1 and len(backup) == 1 and day != backup
        # The rotation's person is c-lh's primary on duty now, as the rota says.
        assert day[0].id in {d.staff.id for d in rota.on_duty(app.directory, "c-lh", clock.now())}
        await press(app, "dev-0001", "r1")
        await tick(app)
        assert sent_to(fake_sms) == {day[0].phone}
        before = len(fake_sms.sent)
        clock.advance(60)
        await tick(app)
        assert sent_to(fake_sms, before) == {backup[0].phone}
        # A day later the daily rotation has handed over to the next person.
        assert (
            rota.rotation_on_call(app.directory, "c-lh-day", clock.now() + timedelta(days=1)) != day
        )
    finally:
        await app.aclose()
