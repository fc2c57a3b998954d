"""The SMS port's senders, and the real Twilio adapter against the local sink."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable

import pytest
import structlog
from aiohttp import web
from twilio.request_validator import RequestValidator

from dispatcher.adapters.log_sender import LogSmsSender, LogVoiceSender
from dispatcher.adapters.twilio.sender import (
    RebasingAsyncHttpClient,
    TwilioSmsSender,
    TwilioVoiceSender,
)
from dispatcher.bootstrap import build_channels
from dispatcher.config import SmsSettings
from dispatcher.services.channels import Channels, Outgoing, Receipt, SendError, UnknownChannelError
from dispatcher.testing import FakeChannelSender
from simulator.phone_network.server import SmsSinkServer
from tests.support.sms import SINK_FROM_NUMBER, sms_settings_for

MOBILE = "+8613800138000"
SID = re.compile(r"^SM[0-9a-f]{32}$")


@pytest.fixture
async def twilio(sms_settings: SmsSettings) -> AsyncIterator[TwilioSmsSender]:
    sender = TwilioSmsSender(sms_settings, timeout=5.0)
    yield sender
    await sender.aclose()


# -- FakeChannelSender -------------------------------------------------------------------


async def test_fake_records_sends_with_distinct_sids() -> None:
    fake = FakeChannelSender()
    first = await fake.send(Outgoing(MOBILE, "Room 12 needs help", status_callback="http://cb/1"))
    second = await fake.send(Outgoing("+8613900000000", "again"))
    assert first.sid != second.sid
    assert first.status == "queued"
    assert [(s.to, s.body, s.status_callback) for s in fake.sent] == [
        (MOBILE, "Room 12 needs help", "http://cb/1"),
        ("+8613900000000", "again", None),
    ]
    assert fake.to(MOBILE)[0].sid == first.sid
    assert fake.attempts == 2


async def test_fake_fails_the_next_sends_then_recovers() -> None:
    fake = FakeChannelSender()
    fake.fail_next(2)
    fake.fail_next(1, permanent=True, code=21211)
    errors = []
    for _ in range(3):
        with pytest.raises(SendError) as caught:
            await fake.send(Outgoing(MOBILE, "x"))
        errors.append(caught.value)
    assert [(e.permanent, e.status, e.code) for e in errors] == [
        (False, 503, None),
        (False, 503, None),
        (True, 400, 21211),
    ]
    assert fake.sent == []
    assert len(fake.failures) == 3
    await fake.send(Outgoing(MOBILE, "now it works"))
    assert len(fake.sent) == 1
    assert fake.attempts == 4


async def test_fake_fails_a_number_every_time_until_healed() -> None:
    fake = FakeChannelSender()
    fake.fail_number("+861012345678")
    for _ in range(2):
        with pytest.raises(SendError) as caught:
            await fake.send(Outgoing("+861012345678", "x"))
        assert caught.value.permanent and caught.value.code == 21614
    await fake.send(Outgoing(MOBILE, "other numbers still work"))
    fake.heal()
    await fake.send(Outgoing("+861012345678", "healed"))
    assert [s.to for s in fake.sent] == [MOBILE, "+861012345678"]


async def test_fake_wait_for_sent_sees_background_sends_and_times_out() -> None:
    fake = FakeChannelSender()

    async def later() -> None:
        await asyncio.sleep(0.02)
        await fake.send(Outgoing(MOBILE, "one"))
        await fake.send(Outgoing(MOBILE, "two"))

    task = asyncio.create_task(later())
    sent = await fake.wait_for_sent(2, timeout=2.0)
    await task
    assert [s.body for s in sent] == ["one", "two"]
    with pytest.raises(TimeoutError):
        await fake.wait_for_sent(3, timeout=0.05)


async def test_fake_refuses_use_after_close() -> None:
    fake = FakeChannelSender()
    await fake.aclose()
    with pytest.raises(RuntimeError):
        await fake.send(Outgoing(MOBILE, "x"))


# -- the log senders, the registry and the factory -------------------------------------


async def test_log_sender_logs_each_sms_and_makes_up_a_sid() -> None:
    sender = LogSmsSender("+8610000000000")
    with structlog.testing.capture_logs() as logs:
        receipt = await sender.send(Outgoing(MOBILE, "Fall detected, room 3"))
    await sender.aclose()
    assert re.fullmatch(r"LG[0-9a-f]{32}", receipt.sid)
    assert receipt.status == "queued"
    [entry] = [e for e in logs if e["event"] == "sms.logged"]
    assert entry["to"] == MOBILE
    assert entry["body"] == "Fall detected, room 3"
    assert entry["sid"] == receipt.sid


async def test_build_channels_follows_the_provider_setting() -> None:
    logged = build_channels(SmsSettings(provider="log"))
    assert isinstance(logged.sender("sms"), LogSmsSender)
    assert isinstance(logged.sender("voice"), LogVoiceSender)
    twilio = build_channels(SmsSettings(provider="twilio"))
    assert isinstance(twilio.sender("sms"), TwilioSmsSender)
    assert isinstance(twilio.sender("voice"), TwilioVoiceSender)
    await twilio.aclose()


async def test_log_voice_sender_logs_each_call_and_makes_up_a_sid() -> None:
    sender = LogVoiceSender("+8610000000000")
    with structlog.testing.capture_logs() as logs:
        receipt = await sender.send(Outgoing(MOBILE, "script", script_url="http://h/twiml"))
    assert re.fullmatch(r"LC[0-9a-f]{32}", receipt.sid)
    [entry] = [e for e in logs if e["event"] == "call.logged"]
    assert (entry["to"], entry["url"], entry["sid"]) == (MOBILE, "http://h/twiml", receipt.sid)


def test_a_channel_nobody_registered_is_a_clear_error() -> None:
    channels = Channels([FakeChannelSender("sms")])
    with pytest.raises(UnknownChannelError, match=r"'voice'.*registered: sms"):
        channels.sender("voice")
    with pytest.raises(ValueError, match="two senders"):
        Channels([FakeChannelSender("sms"), FakeChannelSender("sms")])


def test_send_error_carries_its_kind() -> None:
    error = SendError("not a mobile number", permanent=True, status=400, code=21614)
    assert (error.permanent, error.status, error.code) == (True, 400, 21614)
    assert str(error) == "not a mobile number (permanent, HTTP 400, code 21614)"
    assert "temporary" in str(SendError("down", permanent=False))


def test_twilio_sender_refuses_unusable_settings() -> None:
    with pytest.raises(ValueError):
        TwilioSmsSender(SmsSettings(provider="twilio", auth_token=""))
    with pytest.raises(ValueError):
        TwilioSmsSender(SmsSettings(provider="twilio", api_base="api.twilio.com"))


# -- URL rewriting ----------------------------------------------------------------------


async def test_rewrite_keeps_path_and_query() -> None:
    http = RebasingAsyncHttpClient("http://127.0.0.1:8081")
    prefixed = RebasingAsyncHttpClient("http://127.0.0.1:8081/twilio/")
    real = RebasingAsyncHttpClient("https://api.twilio.com")
    try:
        url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?PageSize=20&To=%2B86"
        assert http.rewrite(url) == (
            "http://127.0.0.1:8081/2010-04-01/Accounts/AC1/Messages.json?PageSize=20&To=%2B86"
        )
        assert prefixed.rewrite(url) == (
            "http://127.0.0.1:8081/twilio/2010-04-01/Accounts/AC1/Messages.json"
            "?PageSize=20&To=%2B86"
        )
        # A regional host the library may build from TWILIO_REGION goes to the sink too.
        assert http.rewrite("https://api.dublin.ie1.twilio.com/2010-04-01/x.json") == (
            "http://127.0.0.1:8081/2010-04-01/x.json"
        )
        assert real.rewrite(url) == url
    finally:
        for client in (http, prefixed, real):
            await client.close()


# -- TwilioSmsSender against the sink ---------------------------------------------------


async def test_send_reaches_the_sink_with_to_from_body(
    twilio: TwilioSmsSender, sms_sink: SmsSinkServer
) -> None:
    receipt = await twilio.send(Outgoing(MOBILE, "紧急呼叫：3号房 Wang Li 需要帮助"))
    assert isinstance(receipt, Receipt)
    assert SID.match(receipt.sid)
    assert receipt.status == "queued"
    [message] = sms_sink.messages
    assert message.sid == receipt.sid
    assert (message.to, message.from_, message.body) == (
        MOBILE,
        SINK_FROM_NUMBER,
        "紧急呼叫：3号房 Wang Li 需要帮助",
    )
    assert message.status_callback is None


async def test_status_callback_is_passed_on(
    twilio: TwilioSmsSender, sms_sink: SmsSinkServer
) -> None:
    await twilio.send(Outgoing(MOBILE, "x", status_callback="http://127.0.0.1:8080/sms/status?n=1"))
    assert sms_sink.messages[0].status_callback == "http://127.0.0.1:8080/sms/status?n=1"


async def test_wrong_token_is_a_permanent_auth_failure(sms_sink: SmsSinkServer) -> None:
    sender = TwilioSmsSender(sms_settings_for(sms_sink, auth_token="not-the-token"))
    try:
        with pytest.raises(SendError) as caught:
            await sender.send(Outgoing(MOBILE, "x"))
    finally:
        await sender.aclose()
    assert caught.value.permanent
    assert (caught.value.status, caught.value.code) == (401, 20003)
    assert sms_sink.messages == []


@pytest.mark.parametrize(("status", "code"), [(500, 20500), (503, 20503), (429, 20429)])
async def test_server_errors_and_throttling_are_temporary_and_not_retried(
    twilio: TwilioSmsSender, sms_sink: SmsSinkServer, status: int, code: int
) -> None:
    sms_sink.fail_next(1, status=status)
    with pytest.raises(SendError) as caught:
        await twilio.send(Outgoing(MOBILE, "x"))
    assert not caught.value.permanent
    assert (caught.value.status, caught.value.code) == (status, code)
    # The library must not have retried by itself: exactly one POST reached the sink.
    assert [a.http_status for a in sms_sink.attempts] == [status]
    # The fault was one-off: the outbox's retry goes through.
    await twilio.send(Outgoing(MOBILE, "x"))
    assert [a.http_status for a in sms_sink.attempts] == [status, 201]
    assert len(sms_sink.messages) == 1


async def test_landline_is_a_permanent_failure(
    twilio: TwilioSmsSender, sms_sink: SmsSinkServer
) -> None:
    sms_sink.add_landline("+861062345678")
    with pytest.raises(SendError) as caught:
        await twilio.send(Outgoing("+861062345678", "x"))
    assert caught.value.permanent
    assert (caught.value.status, caught.value.code) == (400, 21614)
    assert "mobile" in caught.value.message


async def test_invalid_number_is_a_permanent_failure(
    twilio: TwilioSmsSender, sms_sink: SmsSinkServer
) -> None:
    with pytest.raises(SendError) as caught:
        await twilio.send(Outgoing("13800138000", "x"))  # not E.164
    assert caught.value.permanent
    assert caught.value.code == 21211


async def test_nothing_listening_is_temporary() -> None:
    sink = SmsSinkServer()
    sink.start()
    url = sink.url
    sink.stop()  # the port is now closed
    sender = TwilioSmsSender(SmsSettings(provider="twilio", api_base=url))
    try:
        with pytest.raises(SendError) as caught:
            await sender.send(Outgoing(MOBILE, "x"))
    finally:
        await sender.aclose()
    assert not caught.value.permanent
    assert caught.value.status is None


async def test_a_provider_that_never_answers_times_out_as_temporary() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sender = TwilioSmsSender(
        SmsSettings(provider="twilio", api_base=f"http://127.0.0.1:{port}"), timeout=0.3
    )
    started = time.monotonic()
    try:
        with pytest.raises(SendError) as caught:
            await sender.send(Outgoing(MOBILE, "x"))
    finally:
        await sender.aclose()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert time.monotonic() - started < 3.0
    assert not caught.value.permanent
    assert accepted, "the request never reached the hanging server"


async def test_concurrent_sends_all_arrive_with_distinct_sids(
    twilio: TwilioSmsSender, sms_sink: SmsSinkServer
) -> None:
    receipts = await asyncio.gather(
        *(twilio.send(Outgoing(f"+86138000000{i:02d}", f"message {i}")) for i in range(30))
    )
    assert len({r.sid for r in receipts}) == 30
    assert {m.sid for m in sms_sink.messages} == {r.sid for r in receipts}


async def test_aclose_closes_the_http_session(sms_settings: SmsSettings) -> None:
    sender = TwilioSmsSender(sms_settings)
    await sender.send(Outgoing(MOBILE, "x"))
    http = sender._http
    assert http is not None and not http.session.closed
    await sender.aclose()
    assert http.session.closed
    with pytest.raises(RuntimeError):
        await sender.send(Outgoing(MOBILE, "x"))
    await sender.aclose()  # twice is fine


async def test_status_callbacks_reach_the_dispatcher_signed(
    make_sms_sink: Callable[..., SmsSinkServer],
) -> None:
    sink = make_sms_sink(status_callbacks=True, callback_delay_s=0.01)
    received: list[tuple[str, dict[str, str], str]] = []
    both = asyncio.Event()

    async def status(request: web.Request) -> web.Response:
        form = await request.post()
        params = {k: str(v) for k, v in form.items()}
        received.append((str(request.url), params, request.headers["X-Twilio-Signature"]))
        if len(received) == 2:
            both.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/sms/status", status)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    callback = f"http://127.0.0.1:{port}/sms/status"
    sender = TwilioSmsSender(sms_settings_for(sink))
    try:
        receipt = await sender.send(Outgoing(MOBILE, "x", status_callback=callback))
        await asyncio.wait_for(both.wait(), 5.0)
    finally:
        await sender.aclose()
        await runner.cleanup()
    assert [p["MessageStatus"] for _, p, _ in received] == ["sent", "delivered"]
    validator = RequestValidator(sink.auth_token)
    for url, params, signature in received:
        assert params["MessageSid"] == receipt.sid
        assert params["To"] == MOBILE and params["From"] == SINK_FROM_NUMBER
        assert params["AccountSid"] == sink.account_sid
        assert validator.validate(url, params, signature)
        assert not validator.validate(url, {**params, "MessageStatus": "failed"}, signature)
    assert sink.message(receipt.sid) is not None
    assert sink.message(receipt.sid).status == "delivered"  # type: ignore[union-attr]
