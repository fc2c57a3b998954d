"""The Twilio client's form, encoded by our HTTP client as aiohttp's FormData would:
the same bytes and content type on the wire, without FormData's cost."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestServer

from dispatcher.adapters.twilio.sender import RebasingAsyncHttpClient

FORM = {
    "To": "+8613800138000",
    "From": "+8610000000000",
    "Body": "张桂兰 按了紧急呼叫 & 需要帮助 = 是; reply 7A",
    "StatusCallback": "http://127.0.0.1:9/twilio/status?x=1&y=2",
    "MediaUrl": ["https://a.example/1.png", "https://a.example/2 b.png"],
}


async def test_the_form_is_sent_as_formdata_sends_it() -> None:
    seen: list[tuple[bytes, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((await request.read(), request.headers["Content-Type"]))
        return web.json_response({"sid": "SM1", "status": "queued"}, status=201)

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/AC1/Messages.json", record)
    async with TestServer(app, host="127.0.0.1", port=0) as server:
        client = RebasingAsyncHttpClient(str(server.make_url("")).rstrip("/"))
        try:
            url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"
            answer = await client.request("POST", url, data=dict(FORM), auth=("AC1", "token"))
        finally:
            await client.close()
    assert answer.status_code == 201
    [(body, content_type)] = seen
    expected: Any = FormData(dict(FORM))()  # aiohttp's own encoding of the same dict
    assert body == expected._value
    assert content_type == expected.content_type == "application/x-www-form-urlencoded"


@pytest.mark.parametrize("data", [None, {}])
async def test_no_form_is_no_body(data: dict[str, object] | None) -> None:
    seen: list[bytes] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(await request.read())
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/x", record)
    app.router.add_post("/x", record)
    async with TestServer(app, host="127.0.0.1", port=0) as server:
        client = RebasingAsyncHttpClient(str(server.make_url("")).rstrip("/"))
        try:
            await client.request(
                "POST" if data is not None else "GET", "https://api.twilio.com/x", data=data
            )
        finally:
            await client.close()
    assert seen == [b""]
