"""``GET /api/v1/board``: the board for the token's staff member, over the in-memory
fakes (the token, the viewer passed on, 503 without a board) and over the production
wiring on the real database (the same figures the console shows)."""

from __future__ import annotations

import httpx

from dispatcher.bootstrap import App, http_app
from dispatcher.entrypoints.http.app import create_app
from dispatcher.testing import FakeClock
from tests.support.app import event
from tests.support.fake_boards import FakeBoards, sample_board
from tests.support.fake_ops import LI, sample_ops

TOPIC = "eldercall/v1/dev/x/event"


async def test_the_board_needs_a_token_and_is_asked_for_its_staff_member() -> None:
    ops = sample_ops()
    assert ops.directory is not None
    boards = FakeBoards(sample_board(ops.directory))
    transport = httpx.ASGITransport(app=create_app(ops, ops.clock, boards=boards))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        refused = await client.get("/api/v1/board")
        assert refused.status_code == 401 and boards.asked_by == []
        answer = await client.get(
            "/api/v1/board", headers={"Authorization": f"Bearer {LI.api_token}"}
        )
    assert answer.status_code == 200, answer.text
    assert boards.asked_by == [LI.id]
    body = answer.json()
    assert body["duty"][0]["on_duty"][0]["phone"] == "+8613800000002"
    assert [t["within_s"] for t in body["today"]["figures"]["overall"]["targets"]] == [60, 180]


async def test_a_server_without_a_board_says_so() -> None:
    ops = sample_ops()
    transport = httpx.ASGITransport(app=create_app(ops, ops.clock))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        answer = await client.get(
            "/api/v1/board", headers={"Authorization": f"Bearer {LI.api_token}"}
        )
    assert answer.status_code == 503 and "board" in answer.json()["error"]


async def test_the_daemons_board_is_scoped_to_the_tokens_area(app: App, clock: FakeClock) -> None:
    await app.intake.on_event("dev-0001", TOPIC, event("e1", "emergency"))  # 柳湖 c-lh
    clock.advance(5)
    transport = httpx.ASGITransport(app=http_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        centre = await client.get(
            "/api/v1/board", headers={"Authorization": "Bearer demo-operator-token"}
        )
        community = await client.get(
            "/api/v1/board", headers={"Authorization": "Bearer demo-wu-hong-47d0e3c8"}
        )
    assert centre.status_code == 200 and community.status_code == 200
    assert centre.json()["waiting"]["calls"] == 1
    assert centre.json()["today"]["figures"]["overall"]["calls"] == 1
    assert [a["area_id"] for a in community.json()["duty"]] == ["c-qs"]
    assert community.json()["waiting"]["calls"] == 0
    assert community.json()["today"]["figures"]["overall"]["calls"] == 0
