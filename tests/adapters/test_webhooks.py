"""Twilio's webhooks, on the real ASGI app and a real database (SQLite and PostgreSQL):
requests signed with the twilio library's own ``RequestValidator``; SMS replies that
acknowledge, pass on or close calls; voice calls that ask to press 1."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.twilio.phone_webhooks import TwilioWebhooks
from dispatcher.bootstrap import App, http_app
from dispatcher.config import ConfigError, load_settings
from dispatcher.core.calls import Outcome
from dispatcher.entrypoints.http.app import ApiServer
from dispatcher.testing import FakeChannelSender, FakeClock
from tests.support.app import built_app, event, settings_for, snapshot

TOKEN, SECONDARY = "primary-auth-token", "secondary-auth-token"
PUBLIC = "https://centre.example.org"  # what Twilio calls; we sit behind a proxy
OUR_NUMBER = "+8610000000000"
DEMO_OPERATOR = "+8613800138000"  # zh, on the hotline around the clock
EMMA = "+8613916200104"  # emma-liu, en, on the hotline on Tuesday morning
SON = "+8613601110001"  # r-0001's first emergency contact, 张伟
STRANGER = "+8613999999999"


# ---------------------------------------------------------------- helpers


BEHIND_A_PROXY = {
    "sms": {"auth_token": TOKEN, "auth_token_secondary": SECONDARY},
    "http": {"public_url": PUBLIC},
}


@pytest.fixture
def webhook_settings() -> dict[str, Any]:
    """The settings of the daemon under test over settings_for's; a test parametrizes
    this name to run another wiring (no public URL, one token)."""
    return BEHIND_A_PROXY


@pytest.fixture
async def app(
    tmp_path: Path,
    database_url: str,
    clock: FakeClock,
    fake_sms: FakeChannelSender,
    webhook_settings: dict[str, Any],
) -> AsyncIterator[App]:
    settings = settings_for(tmp_path, database={"url": database_url}, **webhook_settings)
    built = await built_app(settings, clock, fake_sms)
    yield built
    await built.aclose()


@pytest.fixture
async def twilio(app: App) -> AsyncIterator[httpx.AsyncClient]:
    api = http_app(app)  # the daemon's own wiring, from its settings
    # The proxy forwards to a private address: not the URL that Twilio signed.
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.7:8080") as client:
        yield client


def sign(path: str, params: dict[str, str], token: str = TOKEN, base: str = PUBLIC) -> str:
    return str(RequestValidator(token).compute_signature(base + path, params))


async def post(
    client: httpx.AsyncClient,
    path: str,
    params: dict[str, str],
    *,
    token: str = TOKEN,
    signature: str | None = None,
) -> httpx.Response:
    headers = {"X-Twilio-Signature": signature or sign(path, params, token)}
    return await client.post(path, data=params, headers=headers)


def sms(sender: str, body: str) -> dict[str, str]:
    return {
        "MessageSid": "SM" + uuid.uuid4().hex,  # Twilio's sids are unique per message
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": OUR_NUMBER,
        "Body": body,
        "NumMedia": "0",
    }


async def text(client: httpx.AsyncClient, sender: str, body: str) -> str:
    """Send an SMS reply as Twilio would; return the answer's text."""
    response = await post(client, "/twilio/sms", sms(sender, body))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.text)
    assert root.tag == "Response"
    messages = root.findall("Message")
    assert len(messages) == 1
    return messages[0].text or ""


async def open_call(app: App, device: str = "dev-0001", kind: str = "emergency") -> str:
    ack = await app.intake.on_event(
        device, f"eldercall/v1/dev/{device}/event", event(f"{device}-{kind}", kind)
    )
    assert ack is not None and ack.call_id is not None
    await app.escalator.run_due()  # the first step: the hotline, with reply codes
    return ack.call_id


async def outbox(app: App, call_id: str) -> list[Any]:
    async with app.sessions() as s:
        rows = await s.execute(
            select(db.sms_outbox)
            .where(db.sms_outbox.c.call_id == call_id)
            .order_by(db.sms_outbox.c.id)
        )
        return list(rows)


async def row_for(app: App, call_id: str, to_number: str) -> int:
    return next(r.id for r in await outbox(app, call_id) if r.to_number == to_number)


async def device_states(app: App, device_id: str) -> list[str]:
    async with app.sessions() as s:
        rows = await s.scalars(
            select(db.device_outbox.c.payload)
            .where(db.device_outbox.c.device_id == device_id)
            .order_by(db.device_outbox.c.id)
        )
        return [json.loads(p)["state"] for p in rows]


# ---------------------------------------------------------------- signatures


async def test_an_sms_acknowledgement_stops_escalation_and_tells_the_device(
    app: App, twilio: httpx.AsyncClient, clock: FakeClock
) -> None:
    call_id = await open_call(app)
    assert {r.status for r in await outbox(app, call_id)} == {"pending"}

    answer = await text(twilio, DEMO_OPERATOR, "1A")

    assert answer == f"已确认 {call_id}，谢谢。请尽快处理。"
    view = await app.operations.get_call(call_id)
    assert (view.state, view.acknowledged_by) == ("acknowledged", "demo-operator")
    assert [(e.actor, e.channel) for e in view.timeline if e.action == "acknowledged"] == [
        ("demo-operator", "sms")
    ]
    assert (await device_states(app, "dev-0001"))[-1] == "acknowledged"
    # Nothing more leaves for this call: the unsent SMS are cancelled, no step follows.
    assert {r.status for r in await outbox(app, call_id)} == {"cancelled"}
    clock.advance(45 * 60 - 1)  # (at 45 min the acknowledgement timeout begins)
    await app.escalator.run_due()
    assert await app.outbox.send_due() == 0
    assert {r.status for r in await outbox(app, call_id)} == {"cancelled"}


@pytest.mark.parametrize(
    "forged",
    ["wrong token", "no signature", "changed body", "other url", "signed for our own url"],
)
async def test_a_request_that_is_not_twilios_gets_403_and_changes_nothing(
    app: App, twilio: httpx.AsyncClient, forged: str
) -> None:
    call_id = await open_call(app)
    voice_row = await row_for(app, call_id, DEMO_OPERATOR)
    before = await snapshot(app)
    params = sms(DEMO_OPERATOR, "1A")
    path = "/twilio/sms"
    signature: str | None = sign(path, params)
    if forged == "wrong token":
        signature = sign(path, params, token="some-other-token")
    elif forged == "no signature":
        signature = None
    elif forged == "changed body":
        # A captured request replayed with a field changed: "1A" signed, "1C" sent.
        params = {**params, "Body": "1C"}
    elif forged == "other url":
        path = f"/twilio/voice/{voice_row}/key"
        params = {"CallSid": "CA" + "2" * 32, "Digits": "1"}
        signature = sign(f"/twilio/voice/{voice_row + 1}/key", params)
    elif forged == "signed for our own url":
        # Behind the proxy, Twilio signs the public URL, never the internal one.
        signature = sign(path, params, base="http://10.0.0.7:8080")
    headers = {"X-Twilio-Signature": signature} if signature else {}

    response = await twilio.post(path, data=params, headers=headers)

    assert response.status_code == 403
    assert await snapshot(app) == before


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        # A reply or a key: a form that is not UTF-8 cannot carry Twilio's signature.
        ("/twilio/sms", b"From=%2B86138&Body=\xff1A", 403),
        ("/twilio/sms", b"Body=" + b"A" * (64 * 1024), 413),
        # A delivery report: refused as a bad request, before its signature is read.
        ("/twilio/status/1", b"MessageStatus=delivered&x=\xff", 400),
    ],
)
async def test_a_form_that_cannot_be_read_is_refused_and_changes_nothing(
    app: App, twilio: httpx.AsyncClient, path: str, body: bytes, status: int
) -> None:
    await open_call(app)
    before = await snapshot(app)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": sign(path, {}),
    }
    response = await twilio.post(path, content=body, headers=headers)
    assert response.status_code == status
    assert await snapshot(app) == before


async def test_the_secondary_token_is_accepted_during_rotation(
    app: App, twilio: httpx.AsyncClient
) -> None:
    call_id = await open_call(app)
    response = await post(twilio, "/twilio/sms", sms(DEMO_OPERATOR, "1A"), token=SECONDARY)
    assert response.status_code == 200
    assert (await app.operations.get_call(call_id)).state == "acknowledged"


@pytest.mark.parametrize("webhook_settings", [{"sms": {"auth_token": TOKEN}}])
async def test_without_a_public_url_the_request_url_is_what_is_signed(app: App) -> None:
    call_id = await open_call(app)
    api = http_app(app)
    base = "http://testserver"
    params = sms(DEMO_OPERATOR, "1A")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url=base) as c:
        refused = await post(c, "/twilio/sms", params)  # signed for PUBLIC
        assert refused.status_code == 403
        accepted = await post(
            c, "/twilio/sms", params, signature=sign("/twilio/sms", params, base=base)
        )
        assert accepted.status_code == 200
    assert (await app.operations.get_call(call_id)).state == "acknowledged"


@pytest.mark.parametrize("webhook_settings", [{}])
async def test_the_real_server_checks_the_url_it_was_called_at(app: App) -> None:
    call_id = await open_call(app)
    hooks = TwilioWebhooks.from_settings(app.phone, app.settings)  # no public_url
    assert hooks.auth_tokens == (app.settings.sms.auth_token,)
    server = ApiServer(http_app(app), "127.0.0.1", 0)
    await server.start()
    try:
        params = sms(DEMO_OPERATOR, "1A")
        signature = sign("/twilio/sms", params, hooks.auth_tokens[0], base=server.base_url)
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            response = await post(client, "/twilio/sms", params, signature=signature)
    finally:
        await server.stop()
    assert response.status_code == 200
    assert (await app.operations.get_call(call_id)).state == "acknowledged"


def test_public_url_and_secondary_token_settings() -> None:
    settings = load_settings(
        None,
        http={"public_url": "https://centre.example.org/"},
        sms={"auth_token": "a", "auth_token_secondary": "b"},
    )
    assert settings.http.public_url == "https://centre.example.org"
    assert load_settings(None).http.public_url is None
    with pytest.raises(ConfigError, match="public_url"):
        load_settings(None, http={"public_url": "centre.example.org"})


# ---------------------------------------------------------------- SMS replies


async def test_a_full_width_reply_in_english_for_an_english_speaker(
    app: App, twilio: httpx.AsyncClient
) -> None:
    call_id = await open_call(app)
    answer = await text(twilio, EMMA, " １ ａ。")
    assert answer == f"Acknowledged {call_id}. Thank you, please act now."
    assert (await app.operations.get_call(call_id)).acknowledged_by == "emma-liu"


async def test_a_second_acknowledgement_names_who_took_the_call(
    app: App, twilio: httpx.AsyncClient
) -> None:
    call_id = await open_call(app)
    await text(twilio, EMMA, "1A")
    before = await snapshot(app)
    answer = await text(twilio, DEMO_OPERATOR, "1a")
    assert answer == f"{call_id} 已由 Emma Liu 确认，无需再确认。"
    assert await snapshot(app) == before


async def test_e_passes_the_call_to_the_next_step_at_once(
    app: App, twilio: httpx.AsyncClient
) -> None:
    call_id = await open_call(app)
    await text(twilio, DEMO_OPERATOR, "1A")
    assert {r.step for r in await outbox(app, call_id)} == {0}

    answer = await text(twilio, DEMO_OPERATOR, "1E")

    assert answer == f"已将 {call_id} 转交下一级值班人员。"
    view = await app.operations.get_call(call_id)
    assert view.state == "open"
    assert [(e.actor, e.channel) for e in view.timeline if e.action == "escalation_requested"] == [
        ("demo-operator", "sms")
    ]
    assert await app.escalator.run_due() == 1  # no waiting out the step's 60 s
    assert {r.step for r in await outbox(app, call_id)} == {0, 1}
    # Someone else takes the call handed back: their acknowledgement stops it again.
    assert await text(twilio, EMMA, "1A") == f"Acknowledged {call_id}. Thank you, please act now."
    assert (await app.operations.get_call(call_id)).state == "acknowledged"


async def test_a_responder_on_site_is_neither_acknowledged_nor_passed_on(
    app: App, twilio: httpx.AsyncClient
) -> None:
    call_id = await open_call(app)
    topic = "eldercall/v1/dev/dev-0001/event"
    await app.intake.on_event("dev-0001", topic, event("on-site", "presence"))
    before = await snapshot(app)
    for body in ("1A", "1E"):
        answer = await text(twilio, DEMO_OPERATOR, body)
        assert answer == f"{call_id} 已有服务人员到达现场，无需操作。"
    assert await snapshot(app) == before


async def test_an_sms_posted_twice_acts_once(app: App, twilio: httpx.AsyncClient) -> None:
    call_id = await open_call(app)
    params = sms(DEMO_OPERATOR, "1E")
    first = await post(twilio, "/twilio/sms", params)
    await app.escalator.run_due()
    before = await snapshot(app)
    second = await post(twilio, "/twilio/sms", params)  # same MessageSid, same signature
    assert second.status_code == 200 and second.text == first.text
    assert await snapshot(app) == before
    view = await app.operations.get_call(call_id)
    assert [e.action for e in view.timeline].count("escalation_requested") == 1


async def test_c_closes_a_service_request(app: App, twilio: httpx.AsyncClient) -> None:
    call_id = await open_call(app, kind="service")
    answer = await text(twilio, DEMO_OPERATOR, "1C")
    assert answer == f"服务请求 {call_id} 已关闭，谢谢。"
    view = await app.operations.get_call(call_id)
    assert (view.state, view.outcome, view.resolved_by) == (
        "resolved",
        "service_done",
        "demo-operator",
    )
    assert (await device_states(app, "dev-0001"))[-1] == "resolved"
    assert "cancelled" in {r.status for r in await outbox(app, call_id)}


async def test_c_is_refused_for_an_emergency(app: App, twilio: httpx.AsyncClient) -> None:
    call_id = await open_call(app)
    before = await snapshot(app)
    answer = await text(twilio, DEMO_OPERATOR, "1C")
    assert answer == f"{call_id} 是紧急呼叫，只能由值班员在系统中关闭。回复 A 可确认。"
    english = await text(twilio, EMMA, "1C")
    assert "only an operator can close it" in english
    assert await snapshot(app) == before


async def test_a_stale_code_after_resolve_lists_the_senders_open_calls(
    app: App, twilio: httpx.AsyncClient
) -> None:
    first = await open_call(app, "dev-0001")
    second = await open_call(app, "dev-0002")
    await app.operations.resolve(first, "wang-fang", "api", Outcome.FALSE_ALARM)
    before = await snapshot(app)

    answer = await text(twilio, DEMO_OPERATOR, "1A")

    assert answer == f"1 不存在或已结束。您的待处理呼叫：2A {second} 紧急呼叫。"
    assert await snapshot(app) == before
    assert (await app.operations.get_call(first)).acknowledged_by == "wang-fang"


async def test_an_unknown_code_gets_a_helpful_answer(app: App, twilio: httpx.AsyncClient) -> None:
    call_id = await open_call(app)
    before = await snapshot(app)
    assert await text(twilio, EMMA, "9A") == (
        f"9 is unknown or already closed. Your open calls: 1A {call_id} emergency call."
    )
    assert await snapshot(app) == before
    await app.operations.resolve(call_id, "wang-fang", "api", Outcome.FALSE_ALARM)
    assert await text(twilio, DEMO_OPERATOR, "1A") == "1 不存在或已结束。您目前没有待处理的呼叫。"


async def test_an_unknown_sender_gets_a_polite_answer_and_nothing_changes(
    app: App, twilio: httpx.AsyncClient
) -> None:
    await open_call(app)
    before = await snapshot(app)
    answer = await text(twilio, STRANGER, "1A")
    assert "未在 Eldercall 登记" in answer and "not registered with Eldercall" in answer
    assert await snapshot(app) == before


async def test_a_garbled_reply_gets_the_usage(app: App, twilio: httpx.AsyncClient) -> None:
    call_id = await open_call(app)
    before = await snapshot(app)
    for body in ("", "好的，马上去", "A1"):
        answer = await text(twilio, DEMO_OPERATOR, body)
        assert answer.startswith("请回复编号加字母，例如 7A 确认")
        assert answer.endswith(f"您的待处理呼叫：1A {call_id} 紧急呼叫。")
    assert (await text(twilio, EMMA, "yes")).startswith("Reply with the number and a letter")
    assert await snapshot(app) == before


async def test_a_family_member_acknowledges_as_that_contact(
    app: App, twilio: httpx.AsyncClient, clock: FakeClock
) -> None:
    call_id = await open_call(app)
    clock.advance(60)
    await app.escalator.run_due()
    clock.advance(120)
    await app.escalator.run_due()  # the third step reaches the family
    assert SON in {r.to_number for r in await outbox(app, call_id)}

    answer = await text(twilio, SON, "1A")

    assert answer == f"已确认 {call_id}，谢谢。请尽快处理。"
    view = await app.operations.get_call(call_id)
    assert (view.state, view.acknowledged_by) == ("acknowledged", "contact:r-0001:1")
    assert (await device_states(app, "dev-0001"))[-1] == "acknowledged"
    assert "pending" not in {r.status for r in await outbox(app, call_id)}


# ---------------------------------------------------------------- voice


def voice_form(**extra: str) -> dict[str, str]:
    return {
        "CallSid": "CA" + "3" * 32,
        "AccountSid": "AC" + "0" * 32,
        "From": OUR_NUMBER,
        "To": DEMO_OPERATOR,
        "CallStatus": "in-progress",
        **extra,
    }


async def voice(client: httpx.AsyncClient, path: str, params: dict[str, str]) -> ET.Element:
    response = await post(client, path, params)
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.text)
    assert root.tag == "Response"
    return root


@pytest.mark.parametrize(
    ("phone", "language", "expected"),
    [
        (
            DEMO_OPERATOR,
            "zh-CN",
            ["紧急呼叫", "张桂兰", "柳湖社区", "柳湖路88弄3号502室", "请按 1"],
        ),
        (EMMA, "en-US", ["EMERGENCY call", "张桂兰", "柳湖社区", "柳湖路88弄3号502室", "Press 1"]),
    ],
)
async def test_the_voice_call_reads_the_call_and_asks_for_1(
    app: App, twilio: httpx.AsyncClient, phone: str, language: str, expected: list[str]
) -> None:
    call_id = await open_call(app)
    row = await row_for(app, call_id, phone)

    root = await voice(twilio, f"/twilio/voice/{row}", voice_form(To=phone, AnsweredBy="human"))

    assert [child.tag for child in root] == ["Gather", "Gather", "Say", "Hangup"]
    for gather in root.findall("Gather"):
        assert gather.get("numDigits") == "1"
        assert gather.get("action") == f"{PUBLIC}/twilio/voice/{row}/key"
        (say,) = list(gather)
        assert say.tag == "Say" and say.get("language") == language
        spoken = say.text or ""
        # The day's number of the call, digit by digit for the speech engine.
        assert " ".join(call_id.rsplit("-", 1)[-1]) in spoken
        assert all(part in spoken for part in expected), spoken
        assert "硝苯地平" not in spoken and "高血压" not in spoken  # no medical notes
    (no_key,) = root.findall("Say")
    assert no_key.get("language") == language and no_key.text  # said before hanging up
    assert (await app.operations.get_call(call_id)).state == "open"  # answering is not acking


async def test_pressing_1_acknowledges_the_call(app: App, twilio: httpx.AsyncClient) -> None:
    call_id = await open_call(app)
    row = await row_for(app, call_id, EMMA)

    root = await voice(twilio, f"/twilio/voice/{row}/key", voice_form(To=EMMA, Digits="1"))

    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert call_id in (root[0].text or "") and root[0].get("language") == "en-US"
    view = await app.operations.get_call(call_id)
    assert (view.state, view.acknowledged_by) == ("acknowledged", "emma-liu")
    assert [(e.actor, e.channel) for e in view.timeline if e.action == "acknowledged"] == [
        ("emma-liu", "voice")
    ]
    assert (await device_states(app, "dev-0001"))[-1] == "acknowledged"
    assert {r.status for r in await outbox(app, call_id)} == {"cancelled"}

    # A later call for the same call says it is taken and hangs up.
    other = await row_for(app, call_id, DEMO_OPERATOR)
    again = await voice(twilio, f"/twilio/voice/{other}", voice_form(AnsweredBy="human"))
    assert [child.tag for child in again] == ["Say", "Hangup"]
    assert "已有人确认" in (again[0].text or "")


async def test_other_keys_and_no_key_do_not_acknowledge(
    app: App, twilio: httpx.AsyncClient
) -> None:
    call_id = await open_call(app)
    row = await row_for(app, call_id, DEMO_OPERATOR)
    before = await snapshot(app)

    wrong = await voice(twilio, f"/twilio/voice/{row}/key", voice_form(Digits="2"))
    assert [child.tag for child in wrong] == ["Gather", "Gather", "Say", "Hangup"]  # again
    silent = await voice(twilio, f"/twilio/voice/{row}/key", voice_form(Digits=""))
    assert [child.tag for child in silent] == ["Say", "Hangup"]
    assert "未收到按键" in (silent[0].text or "")
    assert await snapshot(app) == before


@pytest.mark.parametrize("answered_by", ["machine_start", "machine_end_beep", "fax"])
async def test_a_machine_answering_is_hung_up_on_and_is_not_an_acknowledgement(
    app: App, twilio: httpx.AsyncClient, answered_by: str
) -> None:
    call_id = await open_call(app)
    row = await row_for(app, call_id, DEMO_OPERATOR)

    root = await voice(twilio, f"/twilio/voice/{row}", voice_form(AnsweredBy=answered_by))

    assert [child.tag for child in root] == ["Hangup"]
    view = await app.operations.get_call(call_id)
    assert view.state == "open" and view.acknowledged_at is None
    machine = [e for e in view.timeline if e.action == "machine_answered"]
    assert [(e.actor, e.channel) for e in machine] == [("demo-operator", "voice")]
    assert answered_by in machine[0].detail
    assert "pending" in {r.status for r in await outbox(app, call_id)}


async def test_a_voice_call_for_a_resolved_call_says_so(
    app: App, twilio: httpx.AsyncClient
) -> None:
    call_id = await open_call(app)
    row = await row_for(app, call_id, EMMA)
    await app.operations.resolve(call_id, "wang-fang", "api", Outcome.HELPED_BY_PHONE)
    before = await snapshot(app)
    for path, form in [
        (f"/twilio/voice/{row}", voice_form(AnsweredBy="human")),
        (f"/twilio/voice/{row}/key", voice_form(Digits="1")),
    ]:
        root = await voice(twilio, path, form)
        assert [child.tag for child in root] == ["Say", "Hangup"]
        assert root[0].text == "This call has already been closed. Nothing more is needed. Goodbye."
    assert await snapshot(app) == before


async def test_an_unknown_notification_is_hung_up_on(app: App, twilio: httpx.AsyncClient) -> None:
    await open_call(app)
    for path in ("/twilio/voice/999999", "/twilio/voice/abc/key"):
        root = await voice(twilio, path, voice_form(Digits="1"))
        assert [child.tag for child in root] == ["Hangup"]
