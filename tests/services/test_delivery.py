"""Delivery with fakes: channels, contact methods and their fallback, status callbacks
(as the outbox receives them), throttling and bundling per number, catalogues."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.files.directory_files import DataFileError, load_directory
from dispatcher.adapters.twilio.delivery_reports import read_delivery_report
from dispatcher.bootstrap import App
from dispatcher.core import messages
from dispatcher.core.calls import CallKind
from dispatcher.core.contact_methods import Channel, ContactMethod, person_phone
from dispatcher.core.routing import Recipient
from dispatcher.services.channels import Channels
from dispatcher.services.notify import methods_to_use
from dispatcher.testing import FakeChannelSender, FakeClock
from tests.support.app import DATA, HOTLINE, event

TOPIC = "eldercall/v1/dev/{}/event"
WANG = "+8613916200101"  # wang-fang, on the hotline at TUESDAY_10AM


async def press(app: App, device: str, kind: str, ref: str) -> str:
    ack = await app.intake.on_event(device, TOPIC.format(device), event(ref, kind))
    assert ack is not None and ack.call_id
    return ack.call_id


async def tick(app: App) -> None:
    await app.escalator.run_due()
    await app.outbox.send_due()


async def report(app: App, row_id: int, form: dict[str, str]) -> bool:
    """Twilio's status callback ``form`` for ``row_id``, read as the webhook reads it."""
    return await app.outbox.record_status(row_id, read_delivery_report(form))


async def rows(app: App, **where: Any) -> list[Any]:
    async with app.sessions() as s:
        query = select(db.sms_outbox).order_by(db.sms_outbox.c.id)
        for column, value in where.items():
            query = query.where(db.sms_outbox.c[column] == value)
        return list(await s.execute(query))


async def timeline(app: App, call_id: str) -> list[tuple[str, str]]:
    view = await app.operations.get_call(call_id)
    return [(e.action, e.detail) for e in view.timeline]


def with_methods(app: App, methods: dict[str, tuple[ContactMethod, ...]]) -> None:
    """Give the running app's outbox and escalator a directory with these methods."""
    # Swapped into the holder every service reads, as the registry does.
    app.directory = dataclasses.replace(app.directory, contact_methods=methods)


# -- catalogues ---------------------------------------------------------------------------


def test_unknown_language_falls_back_to_chinese() -> None:
    assert messages.kind_name("fr", CallKind.FALL) == "跌倒报警"
    assert messages.kind_name("en", CallKind.FALL) == "FALL detected"


def test_bundled_sms_lists_each_call_with_its_code() -> None:
    items = [
        messages.BundleItem("C-1 服务请求 张桂兰", 1),
        messages.BundleItem("C-2 服务请求 李秀英", 2),
    ]
    zh = messages.bundle_sms("zh", items)
    assert (
        zh == "【Eldercall】2 个呼叫待处理：回复 1A 确认 C-1 服务请求 张桂兰；"
        "回复 2A 确认 C-2 服务请求 李秀英。"
    )
    en = messages.bundle_sms("en", [messages.BundleItem("C-1 Service request Ann", 3)])
    assert en == "[Eldercall] 1 calls waiting: reply 3A to acknowledge C-1 Service request Ann."


async def test_voice_script_reads_the_call_without_medical_notes(app: App) -> None:
    call_id = await press(app, "dev-0001", "emergency", "v1")
    async with app.sessions() as s:
        from dispatcher.core.calls import Call

        call = await s.get(Call, call_id)
    assert call is not None
    resident = app.directory.residents["r-0001"]
    assert resident.notes  # the seed data has notes: they must not be read out
    zh = messages.voice_script(call, resident, app.directory, "zh")
    en = messages.voice_script(call, resident, app.directory, "en", step=1)
    assert "张桂兰" in zh and "按 1" in zh and resident.notes not in zh
    assert en.startswith("This is") and "Still unanswered" in en and "Press 1" in en
    assert call_id.endswith("0001") and "0 0 0 1" in zh


# -- contact methods: the data file and the choice per channel ----------------------------


def _data_with(tmp_path: Path, methods: str) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for f in DATA.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "contact_methods.csv").write_text(methods, encoding="utf-8")
    return folder


def test_contact_methods_file_is_loaded_in_order(tmp_path: Path) -> None:
    folder = _data_with(
        tmp_path,
        "staff,order,kind,number\n"
        "wang-fang,2,sms,+8613916200101\n"
        "wang-fang,1,voice,+862155550101\n"
        "contact:r-0001:1,1,voice,+8613601110001\n",
    )
    directory = load_directory(folder)
    assert directory.contact_methods["wang-fang"] == (
        ContactMethod(1, Channel.VOICE, "+862155550101"),
        ContactMethod(2, Channel.SMS, "+8613916200101"),
    )
    assert directory.contact_methods["contact:r-0001:1"][0].kind is Channel.VOICE


def test_contact_methods_file_errors_name_the_line(tmp_path: Path) -> None:
    folder = _data_with(
        tmp_path,
        "staff,order,kind,number\n"
        "wang-fang,1,fax,+8613916200101\n"
        "nobody,1,sms,+8613916200101\n"
        "wang-fang,2,sms,12345\n"
        "li-qiang,1,sms,+8613916200102\n"
        "li-qiang,1,voice,+8613916200102\n"
        "contact:r-0001:9,1,sms,+8613601110001\n",
    )
    with pytest.raises(DataFileError) as caught:
        load_directory(folder)
    text = str(caught.value)
    assert "contact_methods.csv:2: kind" in text
    assert "contact_methods.csv:3: 'nobody' is neither a staff id" in text
    assert "contact_methods.csv:4: number" in text
    assert "contact_methods.csv:6: order 1 of 'li-qiang' is already used on line 5" in text
    assert "contact_methods.csv:7: 'contact:r-0001:9'" in text


def test_without_rows_a_person_gets_sms_then_voice_to_their_phone() -> None:
    directory = load_directory(DATA)
    person = Recipient("wang-fang", "王芳", WANG, "zh", "hotline")
    assert methods_to_use(directory, person, ("sms",)) == [ContactMethod(1, Channel.SMS, WANG)]
    assert methods_to_use(directory, person, ("sms", "voice")) == [
        ContactMethod(1, Channel.SMS, WANG),
        ContactMethod(2, Channel.VOICE, WANG),
    ]
    only_voice = dataclasses.replace(
        directory, contact_methods={"wang-fang": (ContactMethod(1, Channel.VOICE, WANG),)}
    )
    # No SMS method: the person is still reached, by their first method.
    assert methods_to_use(only_voice, person, ("sms",)) == [ContactMethod(1, Channel.VOICE, WANG)]


async def test_a_step_asking_for_sms_and_voice_queues_both_per_person(app: App) -> None:
    from dispatcher.adapters.db import stores as store
    from dispatcher.adapters.db.escalator_store import SqlEscalationStore
    from dispatcher.services import notify

    call_id = await press(app, "dev-0001", "emergency", "c1")
    person = Recipient("wang-fang", "王芳", WANG, "zh", "hotline")
    async with app.sessions.begin() as s:
        call = await store.lock_call(s, call_id)
        assert call is not None
        queued = await notify.queue_step(
            SqlEscalationStore(s),
            call,
            None,
            app.directory,
            [person],
            0,
            app.clock.now(),
            channels=("sms", "voice"),
        )
    assert queued == 2
    mine = [r for r in await rows(app) if r.recipient == "wang-fang"]
    assert [(r.channel, r.to_number, r.method_order) for r in mine] == [
        ("sms", WANG, 1),
        ("voice", WANG, 2),
    ]
    assert mine[0].reply_code == mine[1].reply_code  # one code per phone and call


# -- fallback and status callbacks --------------------------------------------------------


async def test_undelivered_30006_moves_to_the_next_method_at_once(
    app: App, fake_sms: FakeChannelSender, fake_voice: FakeChannelSender
) -> None:
    call_id = await press(app, "dev-0001", "emergency", "f1")
    await tick(app)
    sms = next(r for r in await rows(app) if r.to_number == WANG)
    assert (
        fake_sms.to(WANG)[0].status_callback
        == f"{app.settings.http.base_url}/twilio/status/{sms.id}"
    )
    params = {"MessageSid": sms.provider_sid, "MessageStatus": "undelivered", "ErrorCode": "30006"}
    assert await report(app, sms.id, {**params, "MessageStatus": "sent"})
    assert await report(app, sms.id, params)
    assert await report(app, sms.id, params)  # Twilio may repeat itself
    voice = await rows(app, channel="voice")
    assert [(r.to_number, r.status, r.recipient) for r in voice] == [(WANG, "pending", "wang-fang")]
    assert (await rows(app, id=sms.id))[0].status == "failed"
    await app.outbox.send_due()
    assert [(c.to, c.script_url) for c in fake_voice.sent] == [
        (WANG, f"{app.settings.http.base_url}/twilio/voice/{voice[0].id}")
    ]
    events = await timeline(app, call_id)
    assert any(a == "sms_failed" and "30006" in d and "landline" in d for a, d in events)
    assert any(a == "notify_fallback" and "next voice" in d for a, d in events)
    assert not await report(app, 999_999, params)


async def test_a_person_with_no_method_left_is_on_the_timeline(
    app: App, fake_sms: FakeChannelSender
) -> None:
    with_methods(app, {"wang-fang": (ContactMethod(1, Channel.SMS, WANG),)})
    fake_sms.fail_number(WANG)  # refused at once with 21614
    call_id = await press(app, "dev-0001", "emergency", "f2")
    await tick(app)
    assert await rows(app, channel="voice") == []
    assert any(a == "notify_exhausted" for a, _ in await timeline(app, call_id))


async def test_an_ack_timeout_reminder_that_fails_moves_to_the_next_method(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender, fake_voice: FakeChannelSender
) -> None:
    call_id = await press(app, "dev-0001", "emergency", "a1")
    await tick(app)
    await app.operations.acknowledge(call_id, "wang-fang", "api")
    fake_sms.fail_number(WANG)  # wang-fang's phone stops taking SMS
    clock.advance(45 * 60)  # the acknowledgement timeout: a reminder to the holder
    await tick(app)
    [voice] = await rows(app, channel="voice")
    assert voice.to_number == WANG and voice.recipient == "wang-fang"
    await tick(app)
    assert [c.to for c in fake_voice.sent] == [WANG]  # the reminder reached them by voice
    assert "notify_fallback" in [a for a, _ in await timeline(app, call_id)]


async def test_temporary_callback_failure_is_retried_with_backoff(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    await press(app, "dev-0001", "emergency", "t1")
    await tick(app)
    sms = next(r for r in await rows(app) if r.to_number == WANG)
    params = {"MessageSid": sms.provider_sid, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    await report(app, sms.id, params)
    again = (await rows(app, id=sms.id))[0]
    assert again.status == "pending" and again.next_attempt_at > clock.now()
    await app.outbox.send_due()
    assert len(fake_sms.to(WANG)) == 1  # not before the backoff
    clock.advance(31)
    await app.outbox.send_due()
    assert len(fake_sms.to(WANG)) == 2
    assert await rows(app, channel="voice") == []  # temporary: no fallback


async def test_unanswered_voice_is_retried_then_the_next_method_is_used(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender, fake_voice: FakeChannelSender
) -> None:
    office = "+862155550101"
    # No SMS method: the step's SMS becomes her first method, a call.
    with_methods(
        app,
        {
            "wang-fang": (
                ContactMethod(1, Channel.VOICE, WANG),
                ContactMethod(2, Channel.VOICE, office),
            )
        },
    )
    call_id = await press(app, "dev-0001", "emergency", "n1")
    await tick(app)
    assert [c.to for c in fake_voice.sent] == [WANG]

    async def outcome(status: str, answered_by: str = "") -> None:
        row = (await rows(app, channel="voice"))[0]
        sid = fake_voice.sent[-1].sid
        await report(app, row.id, {"CallSid": sid, "CallStatus": status, "AnsweredBy": answered_by})

    await outcome("ringing")
    await outcome("completed", "machine_end_beep")  # a voicemail is not a person
    assert (await rows(app, channel="voice"))[0].status == "pending"
    clock.advance(61)
    await app.outbox.send_due()
    assert [c.to for c in fake_voice.sent] == [WANG, WANG]
    await outcome("no-answer")
    assert (await rows(app, channel="voice"))[0].status == "failed"
    await app.outbox.send_due()
    assert [c.to for c in fake_voice.sent] == [WANG, WANG, office]
    assert fake_sms.to(WANG) == []
    assert any(a == "voice_failed" and "no-answer" in d for a, d in await timeline(app, call_id))


async def test_a_channel_nobody_registered_never_goes_out_as_sms(
    app: App, fake_sms: FakeChannelSender
) -> None:
    office = "+862155550101"
    with_methods(
        app,
        {
            "wang-fang": (
                ContactMethod(1, Channel.VOICE, WANG),
                ContactMethod(2, Channel.VOICE, office),
            )
        },
    )
    app.outbox._channels = Channels([fake_sms])  # a daemon that only has SMS
    call_id = await press(app, "dev-0001", "emergency", "c1")
    await tick(app)
    await app.outbox.send_due()  # the fallback, which has no sender either
    assert [r.status for r in await rows(app, channel="voice")] == ["failed", "failed"]
    assert fake_sms.to(WANG) == [] and fake_sms.to(office) == []
    events = await timeline(app, call_id)
    assert any(
        a == "voice_failed" and "no sender registered for channel 'voice'" in d for a, d in events
    )
    assert [a for a, _ in events if a.startswith("notify_")] == [
        "notify_fallback",
        "notify_exhausted",
    ]


async def test_a_forged_or_stale_callback_changes_nothing(
    app: App, fake_sms: FakeChannelSender
) -> None:
    await press(app, "dev-0001", "emergency", "s1")
    await tick(app)
    sms = next(r for r in await rows(app) if r.to_number == WANG)
    other_sid = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "failed", "ErrorCode": "30006"}
    await report(app, sms.id, other_sid)  # an earlier attempt's message
    assert (await rows(app, id=sms.id))[0].status == "sent"
    assert await rows(app, channel="voice") == []


async def test_nothing_is_sent_after_the_call_is_acknowledged(
    app: App, fake_sms: FakeChannelSender, fake_voice: FakeChannelSender
) -> None:
    call_id = await press(app, "dev-0001", "emergency", "a1")
    await tick(app)
    sms = next(r for r in await rows(app) if r.to_number == WANG)
    await app.operations.acknowledge(call_id, "demo-operator", "api")
    params = {"MessageSid": sms.provider_sid, "MessageStatus": "undelivered", "ErrorCode": "30006"}
    await report(app, sms.id, params)
    await app.outbox.send_due()
    assert fake_voice.sent == [] and await rows(app, channel="voice") == []


# -- throttling and bundling --------------------------------------------------------------


async def test_a_burst_of_service_calls_is_one_bundled_sms_and_an_emergency_goes_at_once(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    ids = [await press(app, f"dev-{n:04d}", "service", f"b{n}") for n in range(1, 11)]
    await tick(app)
    assert {m.to for m in fake_sms.sent} == HOTLINE
    assert len(fake_sms.sent) == len(HOTLINE)  # one SMS per number, not ten
    body = fake_sms.to(WANG)[0].body
    assert body.startswith("【Eldercall】10 个呼叫待处理：")
    codes = {}
    for call_id in ids:
        found = re.search(rf"回复 (\d+)A 确认 {call_id} 服务请求", body)
        assert found, (call_id, body)
        codes[call_id] = int(found.group(1))
    assert sorted(codes.values()) == list(range(1, 11))
    assert {r.status for r in await rows(app)} == {"sent"}

    # Another service call within the window waits for it.
    late = await press(app, "dev-0011", "service", "b11")
    clock.advance(10)
    await tick(app)
    assert len(fake_sms.to(WANG)) == 1
    # An emergency is never held back, and it carries the waiting call along.
    urgent = await press(app, "dev-0012", "emergency", "b12")
    await tick(app)
    mine = fake_sms.to(WANG)
    assert len(mine) == 2
    assert mine[1].body.startswith(f"【Eldercall】紧急呼叫 {urgent}")
    assert "另有 1 个呼叫待处理：回复 11A 确认 " + late in mine[1].body
    clock.advance(60)
    await tick(app)  # the emergency's reminder; the late call already left with it
    assert [late in m.body for m in fake_sms.to(WANG)] == [False, True, False]


async def test_throttled_sms_leaves_when_the_window_ends(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    first = await press(app, "dev-0001", "service", "w1")
    await tick(app)
    second = await press(app, "dev-0002", "service", "w2")
    clock.advance(30)
    await tick(app)
    assert [first in m.body for m in fake_sms.to(WANG)] == [True]
    clock.advance(30)
    await tick(app)
    mine = fake_sms.to(WANG)
    assert len(mine) == 2 and second in mine[1].body and first not in mine[1].body


async def test_a_bundle_reported_undelivered_moves_each_call_on(
    app: App, fake_sms: FakeChannelSender
) -> None:
    first = await press(app, "dev-0001", "service", "u1")
    second = await press(app, "dev-0002", "service", "u2")
    await tick(app)
    assert len(fake_sms.to(WANG)) == 1
    bundled = [r for r in await rows(app) if r.to_number == WANG]
    assert len(bundled) == 2 and {r.bundle_id for r in bundled} == {bundled[0].id}
    sid = bundled[0].provider_sid
    assert await report(
        app,
        bundled[0].id,
        {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "21614"},
    )
    after = [r for r in await rows(app) if r.to_number == WANG]
    assert [(r.channel, r.status) for r in after] == [
        ("sms", "failed"),
        ("sms", "failed"),
        ("voice", "pending"),
        ("voice", "pending"),
    ]
    assert {r.call_id for r in after if r.channel == "voice"} == {first, second}
    for call_id in (first, second):
        assert any(a == "notify_fallback" for a, _ in await timeline(app, call_id))


async def test_a_delivered_bundle_marks_every_row_it_carried(
    app: App, fake_sms: FakeChannelSender
) -> None:
    await press(app, "dev-0001", "service", "d1")
    await press(app, "dev-0002", "service", "d2")
    await tick(app)
    bundled = [r for r in await rows(app) if r.to_number == WANG]
    sid = bundled[0].provider_sid
    for status in ("sent", "delivered", "sent"):  # the last one arrives late
        await report(app, bundled[0].id, {"MessageSid": sid, "MessageStatus": status})
    after = [r for r in await rows(app) if r.to_number == WANG]
    assert [(r.status, r.provider_status) for r in after] == [("sent", "delivered")] * 2


def test_the_phone_of_a_staff_member_or_an_emergency_contact() -> None:
    directory = load_directory(DATA)
    assert person_phone(directory, "wang-fang") == WANG
    assert person_phone(directory, "contact:r-0001:2") == "+8613601110002"
    assert person_phone(directory, "contact:r-0001:9") is None
    assert person_phone(directory, "contact:nobody:1") is None
    assert person_phone(directory, "nobody") is None
