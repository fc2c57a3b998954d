"""The HTTP routes are built once per process and shared (served.py): each daemon's
app still answers from its own services, and a service swapped in is served at once."""

from __future__ import annotations

import httpx

from dispatcher.entrypoints.http.app import create_app
from dispatcher.entrypoints.http.served import Served
from tests.support.fake_ops import ZHANG, sample_ops

AUTH = {"Authorization": f"Bearer {ZHANG.api_token}"}


async def calls_of(app: Served) -> list[str]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        r = await c.get("/api/v1/calls", params={"state": "all"}, headers=AUTH)
    assert r.status_code == 200, r.text
    return sorted(call["call_id"] for call in r.json()["calls"])


async def test_two_apps_share_their_routes_and_keep_their_own_services() -> None:
    first, second = sample_ops(), sample_ops()
    gone = sorted(second.calls)[0]
    del second.calls[gone]
    one, two = create_app(first, first.clock), create_app(second, second.clock)
    assert one.routes is two.routes  # analysed once, not once per app

    assert await calls_of(one) == sorted(first.calls)
    assert await calls_of(two) == sorted(second.calls)
    assert gone in await calls_of(one) and gone not in await calls_of(two)

    one.provide(ops=second)
    assert await calls_of(one) == sorted(second.calls)
    assert await calls_of(two) == sorted(second.calls)  # the other app is untouched
