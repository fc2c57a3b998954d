"""The sink's bad days, as the real twilio library sees them: every other request
refused with a 503, requests to one number held open until released, and a held
request whose client gave up is never recorded as sent."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from dispatcher.adapters.twilio.sender import RebasingAsyncHttpClient
from simulator.phone_network.server import SmsSinkServer

FROM = "+8610000000000"
HELD, OTHER = "+8613800138000", "+8613916200101"


async def send(sink: SmsSinkServer, to: str, timeout: float = 5.0) -> str:  # noqa: ASYNC109
    http = RebasingAsyncHttpClient(sink.url, timeout=timeout)
    try:
        client = Client(sink.account_sid, sink.auth_token, http_client=http)
        message = await client.messages.create_async(to=to, from_=FROM, body="help")
        return str(message.sid)
    finally:
        await http.close()


async def test_every_other_request_fails_with_a_503(sms_sink: SmsSinkServer) -> None:
    sms_sink.fail_every(2)
    outcomes = []
    for _ in range(4):
        try:
            await send(sms_sink, OTHER)
            outcomes.append(201)
        except TwilioRestException as exc:
            outcomes.append(exc.status)
    assert outcomes == [201, 503, 201, 503]
    assert len(sms_sink.messages) == 2
    sms_sink.fail_every(0)
    await send(sms_sink, OTHER)
    assert len(sms_sink.messages) == 3


async def test_a_held_request_holds_only_itself_until_released(sms_sink: SmsSinkServer) -> None:
    sms_sink.hold(HELD)
    held = asyncio.create_task(send(sms_sink, HELD))
    await sms_sink.wait_for_held()
    await send(sms_sink, OTHER)  # answered while the other is held
    assert [m.to for m in sms_sink.messages] == [OTHER] and not held.done()
    sms_sink.release_held()
    assert (await held).startswith("SM")
    assert [m.to for m in sms_sink.messages] == [OTHER, HELD]
    assert sms_sink.held == 0


async def test_a_held_request_whose_client_gives_up_is_not_recorded(
    sms_sink: SmsSinkServer,
) -> None:
    sms_sink.hold(HELD, times=1)
    with pytest.raises(asyncio.TimeoutError):
        await send(sms_sink, HELD, timeout=0.3)
    async with asyncio.timeout(5):
        while sms_sink.held:  # noqa: ASYNC110  # the sink notices the disconnect
            await asyncio.sleep(0.01)
    assert sms_sink.messages == []
    assert [a.http_status for a in sms_sink.attempts] == [499]
    await send(sms_sink, HELD)  # held once only
    assert [m.to for m in sms_sink.messages] == [HELD]


def test_a_hold_with_seconds_answers_after_them(sms_sink: SmsSinkServer) -> None:
    sms_sink.hold(HELD, seconds=0.2)
    response = httpx.post(
        sms_sink.messages_url(),
        data={"To": HELD, "From": FROM, "Body": "help"},
        auth=(sms_sink.account_sid, sms_sink.auth_token),
        timeout=5.0,
    )
    assert response.status_code == 201
    assert [m.to for m in sms_sink.messages] == [HELD]
