"""The sink's Calls resource and its scripted, signed status callbacks, with the real
``twilio`` client; and the Twilio adapter's voice channel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from dispatcher.adapters.twilio.sender import (
    RebasingAsyncHttpClient,
    TwilioSmsSender,
    TwilioVoiceSender,
)
from dispatcher.services.channels import Outgoing, SendError
from simulator.phone_network.server import SmsSinkServer
from tests.support.sms import SINK_FROM_NUMBER, sms_settings_for

# shared/ sits beside the repository (in a worktree, one level further up).
OPENAPI = next(
    (
        p
        for base in Path(__file__).resolve().parents[2:4]
        if (p := base.parent / "shared" / "twilio" / "twilio_api_v2010.json").is_file()
    ),
    Path("shared/twilio/twilio_api_v2010.json"),
)
MOBILE = "+8613800138000"
LANDLINE = "+862155550101"


@dataclass
class Listener:
    """An HTTP endpoint that records every callback posted to it."""

    url: str
    received: list[tuple[str, dict[str, str], str]] = field(default_factory=list)

    async def wait(self, count: int) -> list[dict[str, str]]:
        for _ in range(500):
            if len(self.received) >= count:
                return [p for _, p, _ in self.received]
            await asyncio.sleep(0.01)
        raise AssertionError(f"{len(self.received)} of {count} callbacks: {self.received}")


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    found = Listener("")

    async def record(request: web.Request) -> web.Response:
        form = await request.post()
        params = {k: str(v) for k, v in form.items()}
        found.received.append((str(request.url), params, request.headers["X-Twilio-Signature"]))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/cb", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    found.url = f"http://127.0.0.1:{runner.addresses[0][1]}/cb"
    yield found
    await runner.cleanup()


def assert_signed(sink: SmsSinkServer, listener: Listener) -> None:
    validator = RequestValidator(sink.auth_token)
    for url, params, signature in listener.received:
        assert validator.validate(url, params, signature)
        assert not validator.validate(url, {**params, "CallStatus": "completed?"}, signature)


@pytest.mark.skipif(not OPENAPI.is_file(), reason=f"{OPENAPI} not present")
def test_created_call_matches_the_openapi_schema(sms_sink: SmsSinkServer) -> None:
    spec = json.loads(OPENAPI.read_text())
    schema = spec["components"]["schemas"]["api.v2010.account.call"]["properties"]
    statuses = spec["components"]["schemas"]["call_enum_status"]["enum"]
    url = f"{sms_sink.url}/2010-04-01/Accounts/{sms_sink.account_sid}/Calls.json"
    form = {"To": MOBILE, "From": SINK_FROM_NUMBER, "Url": "http://127.0.0.1:1/twiml"}
    call = httpx.post(url, data=form, auth=(sms_sink.account_sid, sms_sink.auth_token)).json()
    assert set(call) == set(schema) and call["status"] in statuses
    for name, rule in schema.items():
        if call[name] is None:
            assert rule.get("nullable"), name


def test_calls_are_created_fetched_and_refused_like_twilio(sms_sink: SmsSinkServer) -> None:
    url = f"{sms_sink.url}/2010-04-01/Accounts/{sms_sink.account_sid}/Calls.json"
    auth = (sms_sink.account_sid, sms_sink.auth_token)
    form = {"To": MOBILE, "From": SINK_FROM_NUMBER, "Url": "http://127.0.0.1:1/twiml"}
    created = httpx.post(url, data=form, auth=auth)
    assert created.status_code == 201
    call = created.json()
    assert call["sid"].startswith("CA") and len(call["sid"]) == 34
    fetched = httpx.get(url.removesuffix(".json") + f"/{call['sid']}.json", auth=auth)
    assert fetched.json()["sid"] == call["sid"]

    assert httpx.post(url, data=form, auth=(sms_sink.account_sid, "wrong")).json()["code"] == 20003
    bad_to = httpx.post(url, data={**form, "To": "12345"}, auth=auth)
    assert (bad_to.status_code, bad_to.json()["code"]) == (400, 21211)
    no_url = httpx.post(url, data={"To": MOBILE, "From": SINK_FROM_NUMBER}, auth=auth)
    assert (no_url.status_code, no_url.json()["code"]) == (400, 21205)
    sms_sink.fail_next(1, 503)
    assert httpx.post(url, data=form, auth=auth).status_code == 503
    assert [c.to for c in sms_sink.calls] == [MOBILE]
    listed = httpx.get(f"{sms_sink.url}/sink/calls").json()
    assert [(c["sid"], c["to"], c["url"]) for c in listed] == [
        (call["sid"], MOBILE, "http://127.0.0.1:1/twiml")
    ]


async def test_the_library_places_a_call_and_its_progress_is_posted_signed(
    sms_sink: SmsSinkServer, listener: Listener
) -> None:
    http = RebasingAsyncHttpClient(sms_sink.url)
    client = Client(sms_sink.account_sid, sms_sink.auth_token, http_client=http)
    try:
        created = await client.calls.create_async(
            to=MOBILE,
            from_=SINK_FROM_NUMBER,
            url="http://127.0.0.1:1/twiml",
            status_callback=listener.url,
            status_callback_event=["initiated", "ringing", "answered", "completed"],
            machine_detection="Enable",
        )
    finally:
        await http.close()
    params = await listener.wait(4)
    assert [p["CallStatus"] for p in params] == ["initiated", "ringing", "in-progress", "completed"]
    assert {p["CallSid"] for p in params} == {created.sid}
    assert params[-1]["AnsweredBy"] == "human" and params[-1]["To"] == MOBILE
    assert_signed(sms_sink, listener)
    placed = sms_sink.calls[0]
    assert placed.status_callback_events == ("initiated", "ringing", "answered", "completed")
    assert placed.machine_detection == "Enable" and placed.status == "completed"


@pytest.mark.parametrize(
    ("outcome", "statuses", "answered_by"),
    [
        ("machine", ["initiated", "ringing", "in-progress", "completed"], "machine_end_beep"),
        ("no-answer", ["initiated", "ringing", "no-answer"], None),
        ("busy", ["initiated", "ringing", "busy"], None),
        ("failed", ["initiated", "failed"], None),
    ],
)
async def test_scripted_numbers_end_their_calls_as_told(
    sms_sink: SmsSinkServer,
    listener: Listener,
    outcome: str,
    statuses: list[str],
    answered_by: str | None,
) -> None:
    sms_sink.script_voice(MOBILE, outcome, times=1)
    sender = TwilioVoiceSender(sms_settings_for(sms_sink))
    try:
        await sender.send(
            Outgoing(
                MOBILE, "", script_url="http://127.0.0.1:1/twiml", status_callback=listener.url
            )
        )
        params = await listener.wait(len(statuses))
        await sender.send(
            Outgoing(
                MOBILE, "", script_url="http://127.0.0.1:1/twiml", status_callback=listener.url
            )
        )
        again = await listener.wait(len(statuses) + 4)
    finally:
        await sender.aclose()
    assert [p["CallStatus"] for p in params[: len(statuses)]] == statuses
    assert params[len(statuses) - 1].get("AnsweredBy") == answered_by
    assert again[-1]["CallStatus"] == "completed"  # the script was for one call only
    assert again[-1]["AnsweredBy"] == "human"
    assert_signed(sms_sink, listener)


async def test_a_scripted_landline_reports_the_sms_undelivered_30006(
    sms_sink: SmsSinkServer, listener: Listener
) -> None:
    sms_sink.script_sms(LANDLINE, "undelivered", 30006)
    sender = TwilioSmsSender(sms_settings_for(sms_sink))
    try:
        receipt = await sender.send(Outgoing(LANDLINE, "x", status_callback=listener.url))
        params = await listener.wait(2)
        await sender.send(
            Outgoing(MOBILE, "y", status_callback=listener.url)
        )  # unscripted: no callbacks
        await asyncio.sleep(0.1)
    finally:
        await sender.aclose()
    assert [(p["MessageStatus"], p.get("ErrorCode")) for p in params] == [
        ("sent", None),
        ("undelivered", "30006"),
    ]
    assert {p["MessageSid"] for p in params} == {receipt.sid}
    assert len(listener.received) == 2
    validator = RequestValidator(sms_sink.auth_token)
    assert all(validator.validate(u, p, s) for u, p, s in listener.received)
    assert sms_sink.message(receipt.sid).status == "undelivered"  # type: ignore[union-attr]


async def test_place_call_failures_are_classified_like_sends(
    make_sms_sink: Callable[..., SmsSinkServer],
) -> None:
    sink = make_sms_sink()
    sender = TwilioVoiceSender(sms_settings_for(sink))
    try:
        with pytest.raises(SendError) as invalid:
            await sender.send(Outgoing("12345", "", script_url="http://127.0.0.1:1/twiml"))
        sink.fail_next(1, 503)
        with pytest.raises(SendError) as unavailable:
            await sender.send(Outgoing(MOBILE, "", script_url="http://127.0.0.1:1/twiml"))
        receipt = await sender.send(Outgoing(MOBILE, "", script_url="http://127.0.0.1:1/twiml"))
    finally:
        await sender.aclose()
    assert (invalid.value.permanent, invalid.value.code) == (True, 21211)
    assert (unavailable.value.permanent, unavailable.value.status) == (False, 503)
    assert receipt.sid.startswith("CA") and receipt.status == "queued"
    assert [c.sid for c in sink.calls] == [receipt.sid]
