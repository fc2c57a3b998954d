"""The operator REST API over the in-memory Operations fake, through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from structlog.testing import capture_logs

from dispatcher.core.calls import Outcome
from dispatcher.entrypoints.http.app import ApiServer, create_app, serve_api
from tests.support.fake_ops import FakeOperations, sample_ops

ZHANG = {"Authorization": "Bearer token-zhang"}
OPEN = "C-20261128-0001"
STRAY = "C-20261128-0002"
RESOLVED = "C-20261127-0009"


@pytest.fixture
def ops() -> FakeOperations:
    return sample_ops()


@pytest.fixture
async def client(ops: FakeOperations) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ops, ops.clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c


# ---------------------------------------------------------------- auth and meta


async def test_health_needs_no_token(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/calls"),
        ("GET", f"/api/v1/calls/{OPEN}"),
        ("POST", f"/api/v1/calls/{OPEN}/ack"),
        ("POST", f"/api/v1/calls/{OPEN}/resolve"),
        ("GET", "/api/v1/oncall"),
        ("GET", "/api/v1/reports/answer-times?since=2026-11-01"),
    ],
)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic dG9rZW4temhhbmc="}],
    ids=["none", "wrong", "basic"],
)
async def test_every_route_refuses_without_a_good_token(
    client: httpx.AsyncClient,
    ops: FakeOperations,
    method: str,
    path: str,
    headers: dict[str, str],
) -> None:
    r = await client.request(method, path, headers=headers, json={"outcome": "visit"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "token" in r.json()["error"]
    # nothing was done
    assert [x.method for x in ops.log if x.method != "list_calls"] == []
    assert ops.calls[OPEN].state == "open"


async def test_a_malformed_body_without_a_token_is_401_not_422(client: httpx.AsyncClient) -> None:
    r = await client.post(
        f"/api/v1/calls/{OPEN}/resolve",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 401


async def test_openapi_document_lists_the_routes(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    paths = doc["paths"]
    for path in (
        "/api/v1/health",
        "/api/v1/calls",
        "/api/v1/calls/{call_id}",
        "/api/v1/calls/{call_id}/ack",
        "/api/v1/calls/{call_id}/resolve",
        "/api/v1/oncall",
        "/api/v1/reports/answer-times",
    ):
        assert path in paths, path
    assert "post" in paths["/api/v1/calls/{call_id}/resolve"]
    assert "409" in paths["/api/v1/calls/{call_id}/resolve"]["post"]["responses"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    outcomes = doc["components"]["schemas"]["Outcome"]["enum"]
    assert set(outcomes) == {o.value for o in Outcome}
    docs = await client.get("/api/v1/docs")
    assert docs.status_code == 200
    assert "/api/v1/openapi.json" in docs.text


async def test_unknown_route_or_method_is_json(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/nothing", headers=ZHANG)
    assert r.status_code == 404
    assert r.json() == {"error": "not found: GET /api/v1/nothing"}
    r = await client.delete("/api/v1/health")
    assert r.status_code == 405
    assert r.json() == {"error": "method not allowed: DELETE /api/v1/health"}


# ---------------------------------------------------------------- calls


async def test_list_active_calls_by_default(client: httpx.AsyncClient, ops: FakeOperations) -> None:
    r = await client.get("/api/v1/calls", headers=ZHANG)
    assert r.status_code == 200
    ids = [c["call_id"] for c in r.json()["calls"]]
    assert ids == [STRAY, OPEN]  # newest first, the resolved one left out
    assert ops.log[-1].note == "active"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("all", {OPEN, STRAY, RESOLVED}),
        ("resolved", {RESOLVED}),
        ("open", {OPEN, STRAY}),
        ("acknowledged", set()),
        ("responder_on_site", set()),
        ("cancelled", set()),
    ],
)
async def test_list_calls_by_state(
    client: httpx.AsyncClient, state: str, expected: set[str]
) -> None:
    r = await client.get("/api/v1/calls", params={"state": state}, headers=ZHANG)
    assert r.status_code == 200
    assert {c["call_id"] for c in r.json()["calls"]} == expected


async def test_list_calls_with_a_bad_state_is_422(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/calls", params={"state": "closed"}, headers=ZHANG)
    assert r.status_code == 422
    body = r.json()
    assert body["error"].startswith("query parameter state:")
    assert "'active'" in body["error"] and "'resolved'" in body["error"]
    assert body["detail"][0]["loc"] == ["query", "state"]


async def test_get_call_with_timeline_and_notifications(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/api/v1/calls/{OPEN}", headers=ZHANG)
    assert r.status_code == 200
    call = r.json()
    assert call["call_id"] == OPEN
    assert call["resident"]["name"] == "王秀英"
    assert [e["action"] for e in call["timeline"]] == ["opened", "sms_queued"]
    assert call["notifications"][0]["status"] == "delivered"


async def test_get_unknown_call_is_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/calls/C-19990101-0001", headers=ZHANG)
    assert r.status_code == 404
    assert r.json() == {"error": "no call C-19990101-0001"}


async def test_ack_as_the_token_staff_over_api(
    client: httpx.AsyncClient, ops: FakeOperations
) -> None:
    r = await client.post(f"/api/v1/calls/{OPEN}/ack", headers=ZHANG)
    assert r.status_code == 200
    assert r.json()["state"] == "acknowledged"
    assert r.json()["acknowledged_by"] == "s-zhang"
    done = ops.log[-1]
    assert (done.method, done.staff_id, done.channel, done.note) == (
        "acknowledge",
        "s-zhang",
        "api",
        "",
    )
    assert r.json()["timeline"][-1]["channel"] == "api"


async def test_ack_with_a_note_from_the_cli(client: httpx.AsyncClient, ops: FakeOperations) -> None:
    r = await client.post(
        f"/api/v1/calls/{OPEN}/ack",
        headers={"Authorization": "Bearer token-li", "X-Eldercall-Channel": "cli"},
        json={"note": "calling her now"},
    )
    assert r.status_code == 200
    assert (ops.log[-1].staff_id, ops.log[-1].channel, ops.log[-1].note) == (
        "s-li",
        "cli",
        "calling her now",
    )


async def test_ack_with_another_channel_is_422(
    client: httpx.AsyncClient, ops: FakeOperations
) -> None:
    r = await client.post(
        f"/api/v1/calls/{OPEN}/ack", headers={**ZHANG, "X-Eldercall-Channel": "sms"}
    )
    assert r.status_code == 422
    assert "X-Eldercall-Channel" in r.json()["error"]
    assert ops.calls[OPEN].state == "open"


@pytest.mark.parametrize("strict", [False, True], ids=["service-idempotent", "service-strict"])
async def test_ack_twice_is_not_an_error(
    client: httpx.AsyncClient, ops: FakeOperations, strict: bool
) -> None:
    ops.strict_ack = strict
    first = await client.post(f"/api/v1/calls/{OPEN}/ack", headers=ZHANG)
    again = await client.post(
        f"/api/v1/calls/{OPEN}/ack", headers={"Authorization": "Bearer token-li"}
    )
    assert first.status_code == again.status_code == 200
    assert again.json()["acknowledged_by"] == "s-zhang"  # the first one stands
    assert again.json()["state"] == "acknowledged"


async def test_ack_a_resolved_call_is_409(client: httpx.AsyncClient) -> None:
    r = await client.post(f"/api/v1/calls/{RESOLVED}/ack", headers=ZHANG)
    assert r.status_code == 409
    assert r.json() == {"error": f"call {RESOLVED} is already resolved"}


async def test_ack_unknown_call_is_404(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/calls/C-0/ack", headers=ZHANG, json={"note": "x"})
    assert r.status_code == 404
    assert r.json() == {"error": "no call C-0"}


async def test_ack_with_a_note_of_the_wrong_type_is_422(client: httpx.AsyncClient) -> None:
    r = await client.post(f"/api/v1/calls/{OPEN}/ack", headers=ZHANG, json={"note": 5})
    assert r.status_code == 422
    assert r.json()["error"].startswith("note:")


async def test_a_note_with_control_characters_is_422_but_lines_are_fine(
    client: httpx.AsyncClient, ops: FakeOperations
) -> None:
    r = await client.post(f"/api/v1/calls/{OPEN}/ack", headers=ZHANG, json={"note": "a\x00b"})
    assert r.status_code == 422 and r.json()["error"].startswith("note:")
    assert ops.log == []
    ok = await client.post(
        f"/api/v1/calls/{OPEN}/ack", headers=ZHANG, json={"note": "line 1\nline 2\tend"}
    )
    assert ok.status_code == 200


async def test_resolve(client: httpx.AsyncClient, ops: FakeOperations) -> None:
    r = await client.post(
        f"/api/v1/calls/{OPEN}/resolve",
        headers=ZHANG,
        json={"outcome": "false_alarm", "note": "pressed by mistake"},
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["state"], body["outcome"], body["resolved_by"]) == (
        "resolved",
        "false_alarm",
        "s-zhang",
    )
    assert ops.log[-1].outcome is Outcome.FALSE_ALARM
    assert ops.log[-1].note == "pressed by mistake"


async def test_resolve_twice_is_409(client: httpx.AsyncClient) -> None:
    r = await client.post(
        f"/api/v1/calls/{RESOLVED}/resolve", headers=ZHANG, json={"outcome": "visit"}
    )
    assert r.status_code == 409
    assert "already resolved" in r.json()["error"]


async def test_resolve_unknown_call_is_404(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/calls/C-0/resolve", headers=ZHANG, json={"outcome": "visit"})
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"outcome": "fixed_it"}, "outcome: Input should be"),
        ({"note": "no outcome"}, "outcome: Field required"),
        ({"outcome": "visit", "note": ["x"]}, "note:"),
        ({"outcome": "visit", "notes": "typo"}, "notes: Extra inputs"),
        ([1, 2], "request body"),
        (None, "a JSON request body is required"),
    ],
)
async def test_resolve_with_a_bad_body_is_422(
    client: httpx.AsyncClient, ops: FakeOperations, body: object, needle: str
) -> None:
    kwargs = {} if body is None else {"json": body}
    r = await client.post(f"/api/v1/calls/{OPEN}/resolve", headers=ZHANG, **kwargs)  # type: ignore[arg-type]
    assert r.status_code == 422, r.text
    assert needle in r.json()["error"]
    assert isinstance(r.json()["detail"], list)
    assert ops.calls[OPEN].state == "open"


@pytest.mark.parametrize(
    "raw", [b"{", b'{"outcome": "visit",}', b"\xff\xfe", b"", b"null"], ids=repr
)
async def test_malformed_json_is_422_never_500(client: httpx.AsyncClient, raw: bytes) -> None:
    for path in (f"/api/v1/calls/{OPEN}/resolve", f"/api/v1/calls/{OPEN}/ack"):
        r = await client.post(
            path, headers={**ZHANG, "Content-Type": "application/json"}, content=raw
        )
        if path.endswith("/ack") and raw in (b"", b"null"):
            assert r.status_code == 200  # the body is optional
            continue
        assert r.status_code == 422, (path, raw, r.text)
        assert r.json()["error"]


async def test_malformed_json_reads_well(client: httpx.AsyncClient) -> None:
    r = await client.post(
        f"/api/v1/calls/{OPEN}/resolve",
        headers={**ZHANG, "Content-Type": "application/json"},
        content=b'{"outcome": ',
    )
    assert r.status_code == 422
    assert r.json()["error"].startswith("the request body is not valid JSON")
    assert r.json()["detail"][0]["type"] == "json_invalid"


async def test_wrong_content_type_is_422(client: httpx.AsyncClient) -> None:
    r = await client.post(
        f"/api/v1/calls/{OPEN}/resolve",
        headers={**ZHANG, "Content-Type": "text/plain"},
        content=b'{"outcome": "visit"}',
    )
    assert r.status_code == 422


# ---------------------------------------------------------------- on duty


async def test_oncall_for_a_community_at_a_time(
    client: httpx.AsyncClient, ops: FakeOperations
) -> None:
    r = await client.get(
        "/api/v1/oncall",
        params={"community": "c-yangguang", "at": "2026-11-28T08:00:00+08:00"},
        headers=ZHANG,
    )
    assert r.status_code == 200
    body = r.json()
    assert datetime.fromisoformat(body["at"]) == datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
    assert body["on_duty"][0]["staff"][0]["id"] == "s-zhang"
    asked = ops.log[-1]
    assert asked.community_id == "c-yangguang"
    assert asked.at == datetime(2026, 11, 28, 0, 0, tzinfo=UTC)


async def test_oncall_defaults_to_now_and_every_community(
    client: httpx.AsyncClient, ops: FakeOperations
) -> None:
    r = await client.get("/api/v1/oncall", headers=ZHANG)
    assert r.status_code == 200
    assert datetime.fromisoformat(r.json()["at"]) == ops.clock.now()
    assert [d["area_id"] for d in r.json()["on_duty"]] == ["c-yangguang", "c-hehua", "district"]
    assert ops.log[-1].community_id is None


@pytest.mark.parametrize(
    "at",
    ["tomorrow", "2026-11-28T08:00:00", "2026-13-01T00:00:00Z", "9999-12-31T23:59:59-08:00"],
)
async def test_oncall_with_a_bad_time_is_422(client: httpx.AsyncClient, at: str) -> None:
    r = await client.get("/api/v1/oncall", params={"at": at}, headers=ZHANG)
    assert r.status_code == 422
    assert r.json()["error"].startswith("query parameter at:")
    assert r.json()["detail"][0]["loc"] == ["query", "at"]


async def test_oncall_unknown_community_is_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/oncall", params={"community": "c-atlantis"}, headers=ZHANG)
    assert r.status_code == 404
    assert r.json() == {"error": "no community c-atlantis"}


# ---------------------------------------------------------------- logging


async def test_each_request_is_logged_with_its_outcome(client: httpx.AsyncClient) -> None:
    with capture_logs() as logs:
        await client.post(f"/api/v1/calls/{RESOLVED}/ack", headers=ZHANG)
    entry = next(e for e in logs if e["event"] == "api.request")
    assert entry["call_id"] == RESOLVED
    assert entry["status"] == 409
    assert entry["staff_id"] == "s-zhang"
    assert "already resolved" in entry["error"]


async def test_a_service_crash_is_a_json_500_and_logged(ops: FakeOperations) -> None:
    async def broken(state: str | None = None) -> list[object]:
        raise RuntimeError("database is gone")

    ops.list_calls = broken  # type: ignore[assignment,method-assign]
    transport = httpx.ASGITransport(app=create_app(ops), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        with capture_logs() as logs:
            r = await c.get("/api/v1/calls", headers=ZHANG)
    assert r.status_code == 500
    assert r.json()["error"].startswith("internal error")
    assert any(e["event"] == "api.crash" for e in logs)


# ---------------------------------------------------------------- the real server


async def test_serve_api_listens_until_stopped(ops: FakeOperations) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve_api(create_app(ops), "127.0.0.1", port, stop, started))
    await asyncio.wait_for(started.wait(), 10)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
        r = await c.get("/api/v1/calls", headers=ZHANG)
        assert r.status_code == 200
    stop.set()
    await asyncio.wait_for(task, 10)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as c:
            await c.get(f"http://127.0.0.1:{port}/api/v1/health")


async def test_api_server_refuses_a_taken_port_with_oserror(ops: FakeOperations) -> None:
    first = ApiServer(create_app(ops), "127.0.0.1", 0)
    await first.start()
    try:
        second = ApiServer(create_app(ops), "127.0.0.1", first.port)
        with pytest.raises(OSError):
            await second.start()
    finally:
        await first.stop()
