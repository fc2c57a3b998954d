"""The local Twilio-compatible SMS sink, spoken to over real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from dispatcher.adapters.twilio.sender import RebasingAsyncHttpClient
from dispatcher.config import SmsSettings
from simulator.phone_network.server import (
    SinkMessage,
    SmsSinkServer,
    format_sms_line,
    num_segments,
)

REPO = Path(__file__).resolve().parents[2]
OPENAPI = REPO.parent / "shared" / "twilio" / "twilio_api_v2010.json"
MOBILE = "+8613800138000"
FROM = "+8610000000000"


@pytest.fixture
def http(sms_sink: SmsSinkServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sms_sink.url, auth=(sms_sink.account_sid, sms_sink.auth_token), timeout=5.0
    ) as client:
        yield client


def post_sms(http: httpx.Client, sink: SmsSinkServer, **form: str) -> httpx.Response:
    return http.post(sink.messages_url(), data=form)


def assert_twilio_error(response: httpx.Response, status: int, code: int) -> None:
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["code"] == code
    assert payload["status"] == status
    assert payload["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert payload["message"]


# -- authentication ---------------------------------------------------------------------


def test_requests_without_the_right_credentials_are_refused(
    sms_sink: SmsSinkServer, http: httpx.Client
) -> None:
    form = {"To": MOBILE, "From": FROM, "Body": "x"}
    anonymous = httpx.post(sms_sink.messages_url(), data=form)
    assert_twilio_error(anonymous, 401, 20003)
    assert anonymous.headers["www-authenticate"].startswith("Basic")
    wrong_token = httpx.post(sms_sink.messages_url(), data=form, auth=(sms_sink.account_sid, "x"))
    assert_twilio_error(wrong_token, 401, 20003)
    wrong_user = httpx.post(
        sms_sink.messages_url(), data=form, auth=("AC" + "1" * 32, sms_sink.auth_token)
    )
    assert_twilio_error(wrong_user, 401, 20003)
    garbage = httpx.post(
        sms_sink.messages_url(), data=form, headers={"Authorization": "Basic !!!notbase64"}
    )
    assert_twilio_error(garbage, 401, 20003)
    other_account = http.post(sms_sink.messages_url("AC" + "2" * 32), data=form)
    assert_twilio_error(other_account, 404, 20404)
    assert sms_sink.messages == []
    assert [a.http_status for a in sms_sink.attempts] == [401, 401, 401, 401, 404]
    assert post_sms(http, sms_sink, **form).status_code == 201


def test_a_sink_with_its_own_credentials(make_sms_sink: Callable[..., SmsSinkServer]) -> None:
    sink = make_sms_sink(account_sid="AC" + "ab" * 16, auth_token="s3cret")
    form = {"To": MOBILE, "From": FROM, "Body": "x"}
    ok = httpx.post(sink.messages_url(), data=form, auth=("AC" + "ab" * 16, "s3cret"))
    assert ok.status_code == 201
    assert ok.json()["account_sid"] == "AC" + "ab" * 16
    refused = httpx.post(sink.messages_url(), data=form, auth=(sink.account_sid, "wrong"))
    assert refused.status_code == 401


# -- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": FROM, "Body": "x"}, 21604),  # no To
        ({"To": "", "From": FROM, "Body": "x"}, 21604),
        ({"To": "13800138000", "From": FROM, "Body": "x"}, 21211),  # not E.164
        ({"To": "+86 138 0013 8000", "From": FROM, "Body": "x"}, 21211),
        ({"To": "+0123", "From": FROM, "Body": "x"}, 21211),
        ({"To": MOBILE, "Body": "x"}, 21603),  # no From
        ({"To": MOBILE, "From": FROM}, 21602),  # no Body
        ({"To": MOBILE, "From": FROM, "Body": ""}, 21602),
        ({"To": MOBILE, "From": FROM, "Body": "x" * 1601}, 21617),
        ({"To": MOBILE, "From": FROM, "Body": "x", "StatusCallback": "ftp://x/y"}, 21609),
    ],
)
def test_bad_forms_are_refused_with_twilio_codes(
    sms_sink: SmsSinkServer, http: httpx.Client, form: dict[str, str], code: int
) -> None:
    assert_twilio_error(post_sms(http, sms_sink, **form), 400, code)
    assert sms_sink.messages == []
    [attempt] = sms_sink.attempts
    assert (attempt.http_status, attempt.code) == (400, code)


def test_landlines_are_refused_with_21614(
    make_sms_sink: Callable[..., SmsSinkServer],
) -> None:
    sink = make_sms_sink(landlines=["+861062345678"])
    sink.add_landline("+861062345679")
    auth = (sink.account_sid, sink.auth_token)
    for number in ("+861062345678", "+861062345679"):
        response = httpx.post(
            sink.messages_url(), data={"To": number, "From": FROM, "Body": "x"}, auth=auth
        )
        assert_twilio_error(response, 400, 21614)
    ok = httpx.post(sink.messages_url(), data={"To": MOBILE, "From": FROM, "Body": "x"}, auth=auth)
    assert ok.status_code == 201
    assert [m.to for m in sink.messages] == [MOBILE]


# -- the Message resource ---------------------------------------------------------------


def test_created_message_has_twilios_shape(sms_sink: SmsSinkServer, http: httpx.Client) -> None:
    response = post_sms(
        http,
        sms_sink,
        To=MOBILE,
        From=FROM,
        Body="Help, room 7 ✓",
        StatusCallback="http://127.0.0.1:1/cb",
    )
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/json")
    assert re.fullmatch(r"RQ[0-9a-f]{32}", response.headers["twilio-request-id"])
    message = response.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["sid"])
    assert message["status"] == "queued"
    assert message["account_sid"] == sms_sink.account_sid
    assert (message["to"], message["from"], message["body"]) == (MOBILE, FROM, "Help, room 7 ✓")
    assert message["direction"] == "outbound-api"
    assert message["api_version"] == "2010-04-01"
    assert message["num_segments"] == "1"
    assert message["num_media"] == "0"
    assert message["uri"] == (
        f"/2010-04-01/Accounts/{sms_sink.account_sid}/Messages/{message['sid']}.json"
    )
    created = parsedate_to_datetime(message["date_created"])
    assert created.tzinfo is not None
    assert abs(time.time() - created.timestamp()) < 60
    assert message["date_sent"] is None  # still queued
    [recorded] = sms_sink.messages
    assert recorded.sid == message["sid"]
    assert recorded.status_callback == "http://127.0.0.1:1/cb"


@pytest.mark.skipif(not OPENAPI.is_file(), reason=f"{OPENAPI} not present")
def test_created_message_matches_the_openapi_schema(
    sms_sink: SmsSinkServer, http: httpx.Client
) -> None:
    spec = json.loads(OPENAPI.read_text())
    schema = spec["components"]["schemas"]["api.v2010.account.message"]["properties"]
    statuses = spec["components"]["schemas"]["message_enum_status"]["enum"]
    message = post_sms(http, sms_sink, To=MOBILE, From=FROM, Body="x").json()
    assert set(message) == set(schema)
    for name, rule in schema.items():
        value = message[name]
        if value is None:
            assert rule.get("nullable"), name
            continue
        expected = {"string": str, "integer": int, "object": dict}.get(rule.get("type", ""))
        if expected is not None:
            assert isinstance(value, expected), name
        if "pattern" in rule:
            assert re.match(rule["pattern"], value), name
        if rule.get("format") == "date-time-rfc-2822":
            parsedate_to_datetime(value)
    assert message["status"] in statuses


async def test_the_twilio_library_parses_created_and_fetched_messages(
    sms_sink: SmsSinkServer,
) -> None:
    http = RebasingAsyncHttpClient(sms_sink.url)
    client = Client(sms_sink.account_sid, sms_sink.auth_token, http_client=http)
    try:
        created = await client.messages.create_async(
            to=MOBILE, from_=FROM, body="你好，这是一条测试短信"
        )
        fetched = await client.messages(created.sid).fetch_async()
        with pytest.raises(TwilioRestException) as caught:
            await client.messages("SM" + "0" * 32).fetch_async()
    finally:
        await http.close()
    assert type(created).__name__ == "MessageInstance"
    assert fetched.sid == created.sid
    assert (fetched.to, fetched.from_, fetched.body) == (MOBILE, FROM, "你好，这是一条测试短信")
    assert fetched.status == "queued"
    assert fetched.date_created is not None and fetched.date_created.tzinfo is not None
    assert fetched.direction == "outbound-api"
    assert (caught.value.status, caught.value.code) == (404, 20404)


def test_num_segments_follows_gsm7_and_ucs2_limits() -> None:
    assert num_segments("hello") == 1
    assert num_segments("a" * 160) == 1
    assert num_segments("a" * 161) == 2
    assert num_segments("a" * 306) == 2
    assert num_segments("a" * 307) == 3
    assert num_segments("€" * 80) == 1  # extension characters take two septets
    assert num_segments("€" * 81) == 2
    assert num_segments("紧" * 70) == 1  # any non-GSM character forces UCS-2
    assert num_segments("紧" * 71) == 2
    assert num_segments("a" * 100 + "紧") == 2


# -- inspection and fault injection -----------------------------------------------------


def test_sink_endpoints_list_clear_and_inject_faults(
    sms_sink: SmsSinkServer, http: httpx.Client
) -> None:
    post_sms(http, sms_sink, To=MOBILE, From=FROM, Body="one")
    listed = httpx.get(f"{sms_sink.url}/sink/messages").json()
    assert [(m["to"], m["from"], m["body"], m["status"]) for m in listed] == [
        (MOBILE, FROM, "one", "queued")
    ]
    injected = httpx.post(f"{sms_sink.url}/sink/fail", params={"count": 2, "status": 503})
    assert injected.json() == {"queued_faults": 2, "status": 503, "code": 20503}
    assert_twilio_error(post_sms(http, sms_sink, To=MOBILE, From=FROM, Body="x"), 503, 20503)
    assert_twilio_error(post_sms(http, sms_sink, To=MOBILE, From=FROM, Body="x"), 503, 20503)
    assert post_sms(http, sms_sink, To=MOBILE, From=FROM, Body="two").status_code == 201
    assert httpx.delete(f"{sms_sink.url}/sink/messages").status_code == 204
    assert httpx.get(f"{sms_sink.url}/sink/messages").json() == []
    assert sms_sink.messages == []


def test_unknown_paths_answer_twilio_shaped_404(sms_sink: SmsSinkServer) -> None:
    assert_twilio_error(httpx.get(f"{sms_sink.url}/2010-04-01/Nope.json"), 404, 20404)
    assert httpx.get(sms_sink.messages_url()).status_code == 405


def test_fail_next_answers_the_given_status_then_recovers(
    sms_sink: SmsSinkServer, http: httpx.Client
) -> None:
    sms_sink.fail_next(1, status=429)
    sms_sink.fail_next(1, status=500, code=30001)
    assert_twilio_error(post_sms(http, sms_sink, To=MOBILE, From=FROM, Body="x"), 429, 20429)
    assert_twilio_error(post_sms(http, sms_sink, To=MOBILE, From=FROM, Body="x"), 500, 30001)
    assert post_sms(http, sms_sink, To=MOBILE, From=FROM, Body="x").status_code == 201
    sms_sink.fail_next(5)
    sms_sink.clear()  # forgets pending faults too
    assert post_sms(http, sms_sink, To=MOBILE, From=FROM, Body="x").status_code == 201
    assert len(sms_sink.messages) == 1
    assert [a.http_status for a in sms_sink.attempts] == [201]


# -- waiting, callbacks, console line ---------------------------------------------------


def test_wait_for_blocks_until_matching_messages_arrive(
    sms_sink: SmsSinkServer, http: httpx.Client
) -> None:
    def send_later() -> None:
        time.sleep(0.05)
        with httpx.Client(auth=(sms_sink.account_sid, sms_sink.auth_token)) as client:
            for body in ("first", "other", "second"):
                to = "+8613900000000" if body == "other" else MOBILE
                client.post(sms_sink.messages_url(), data={"To": to, "From": FROM, "Body": body})

    sender = threading.Thread(target=send_later)
    sender.start()
    try:
        got = sms_sink.wait_for(lambda m: m.to == MOBILE, timeout=5.0, count=2)
    finally:
        sender.join()
    assert [m.body for m in got] == ["first", "second"]
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="2 of 3"):
        sms_sink.wait_for(lambda m: m.to == MOBILE, timeout=0.1, count=3)
    assert time.monotonic() - started < 2.0


async def test_wait_for_async_does_not_block_the_loop(sms_sink: SmsSinkServer) -> None:
    async def send_later() -> None:
        await asyncio.sleep(0.05)
        async with httpx.AsyncClient(auth=(sms_sink.account_sid, sms_sink.auth_token)) as client:
            await client.post(
                sms_sink.messages_url(), data={"To": MOBILE, "From": FROM, "Body": "async"}
            )

    task = asyncio.create_task(send_later())  # runs only if wait_for_async yields the loop
    [message] = await sms_sink.wait_for_async(timeout=5.0)
    await task
    assert message.body == "async"
    with pytest.raises(TimeoutError):
        await sms_sink.wait_for_async(lambda m: m.body == "never", timeout=0.05)


def test_on_message_is_called_and_its_errors_do_not_break_the_sink(
    make_sms_sink: Callable[..., SmsSinkServer],
) -> None:
    seen: list[SinkMessage] = []

    def on_message(message: SinkMessage) -> None:
        seen.append(message)
        if message.body == "boom":
            raise RuntimeError("a broken printer")

    sink = make_sms_sink(on_message=on_message)
    auth = (sink.account_sid, sink.auth_token)
    for body in ("boom", "after"):
        response = httpx.post(
            sink.messages_url(), data={"To": MOBILE, "From": FROM, "Body": body}, auth=auth
        )
        assert response.status_code == 201
    assert [m.body for m in seen] == ["boom", "after"]
    assert seen[0].sid == sink.messages[0].sid


def test_console_line() -> None:
    message = SinkMessage(
        sid="SM" + "0" * 32,
        to="+8613800138000",
        from_=FROM,
        body="Call from room 3\nplease answer",
        received_at=parsedate_to_datetime("Sat, 28 Nov 2026 00:15:00 +0000"),
    )
    assert format_sms_line(message) == "SMS → +8613800138000 : Call from room 3 ⏎ please answer"


def test_status_callbacks_without_a_listener_are_recorded_as_failed(
    make_sms_sink: Callable[..., SmsSinkServer],
) -> None:
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/cb"
    sink = make_sms_sink(status_callbacks=True, callback_delay_s=0.01)
    response = httpx.post(
        sink.messages_url(),
        data={"To": MOBILE, "From": FROM, "Body": "x", "StatusCallback": dead},
        auth=(sink.account_sid, sink.auth_token),
    )
    sid = response.json()["sid"]
    sink.wait_for(lambda m: m.status == "delivered", timeout=5.0)
    deadline = time.monotonic() + 5.0
    while len(sink.callbacks) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [(c.sid, c.status, c.http_status) for c in sink.callbacks] == [
        (sid, "sent", None),
        (sid, "delivered", None),
    ]
    assert all(c.error for c in sink.callbacks)
    fetched = httpx.get(
        f"{sink.url}/2010-04-01/Accounts/{sink.account_sid}/Messages/{sid}.json",
        auth=(sink.account_sid, sink.auth_token),
    ).json()
    assert fetched["status"] == "delivered"
    assert fetched["date_sent"] is not None


def test_callbacks_are_off_by_default(sms_sink: SmsSinkServer, http: httpx.Client) -> None:
    post_sms(http, sms_sink, To=MOBILE, From=FROM, Body="x", StatusCallback="http://127.0.0.1:1/")
    time.sleep(0.1)
    assert sms_sink.callbacks == []
    assert sms_sink.messages[0].status == "queued"


# -- serving ----------------------------------------------------------------------------


def test_start_stop_frees_the_port_and_two_sinks_coexist() -> None:
    first, second = SmsSinkServer(), SmsSinkServer()
    with first, second:
        assert first.port != second.port
        assert httpx.get(f"{first.url}/sink/messages").status_code == 200
        assert httpx.get(f"{second.url}/sink/messages").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{first.url}/sink/messages")
    first.stop()  # stopping twice is harmless


def test_a_taken_port_fails_start(sms_sink: SmsSinkServer) -> None:
    with pytest.raises(OSError):
        SmsSinkServer(port=sms_sink.port).start()


async def test_many_concurrent_clients_are_served_promptly(sms_sink: SmsSinkServer) -> None:
    auth = (sms_sink.account_sid, sms_sink.auth_token)
    limits = httpx.Limits(max_connections=100)
    started = time.monotonic()
    async with httpx.AsyncClient(auth=auth, limits=limits, timeout=10.0) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    sms_sink.messages_url(), data={"To": MOBILE, "From": FROM, "Body": f"n{i}"}
                )
                for i in range(60)
            )
        )
    assert [r.status_code for r in responses] == [201] * 60
    assert len({m.sid for m in sms_sink.messages}) == 60
    # A backlog of 5 would stall some connects for a second or more (see field notes).
    assert time.monotonic() - started < 5.0


def test_command_line_sink_prints_each_sms() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator.phone_network.server", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15.0
        while True:
            try:
                httpx.get(f"{url}/sink/messages", timeout=1.0)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "sink did not come up"
                time.sleep(0.05)
        # The command line sink takes the configuration's default account and token.
        defaults = SmsSettings()
        response = httpx.post(
            f"{url}/2010-04-01/Accounts/{defaults.account_sid}/Messages.json",
            data={"To": MOBILE, "From": FROM, "Body": "from the command line"},
            auth=(defaults.account_sid, defaults.auth_token),
        )
        assert response.status_code == 201
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=10)
    assert f"SMS → {MOBILE} : from the command line" in stdout
    assert process.returncode == 0


def test_the_sinks_own_demo_credentials_are_the_daemons_defaults() -> None:
    from dispatcher.config import SmsSettings
    from simulator.phone_network.state import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

    defaults = SmsSettings()
    assert (defaults.account_sid, defaults.auth_token) == (DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)
