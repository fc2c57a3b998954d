"""A request's body is capped before anything reads it (entrypoints/http/body_limit.py):
one over the cap is answered 413 and changes nothing, whether its Content-Length says
so or a chunked body runs over; the registry's import takes a district's file. In
process, on the daemon's own HTTP app."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from dispatcher.bootstrap import App
from dispatcher.entrypoints.http.body_limit import DEFAULT_BYTES, IMPORT_BYTES
from tests.support.app import event
from tests.support.scrape import http_client

TOKEN = {"Authorization": "Bearer demo-operator-token"}
SUPERVISOR = {"Authorization": "Bearer demo-zhao-min-91c6ab04"}


async def opened(app: App) -> str:
    ack = await app.intake.on_event(
        "dev-0001", "eldercall/v1/dev/dev-0001/event", event("b1", "service")
    )
    assert ack is not None and ack.call_id
    return ack.call_id


def resolve_body(size: int) -> bytes:
    return json.dumps({"outcome": "other", "note": "x" * size}).encode()


async def test_a_body_over_the_cap_is_refused_and_changes_nothing(app: App) -> None:
    call_id = await opened(app)
    async with http_client(app) as client:
        r = await client.post(
            f"/api/v1/calls/{call_id}/resolve",
            content=resolve_body(DEFAULT_BYTES + 1),
            headers=TOKEN | {"Content-Type": "application/json"},
        )
        assert r.status_code == 413, r.text
        assert "bytes" in r.json()["detail"]
        r = await client.get(f"/api/v1/calls/{call_id}", headers=TOKEN)
        assert r.json()["state"] == "open"


async def test_a_chunked_body_that_runs_over_is_refused(app: App) -> None:
    call_id = await opened(app)
    body = resolve_body(DEFAULT_BYTES * 2)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    async with http_client(app) as client:
        r = await client.post(
            f"/api/v1/calls/{call_id}/resolve",
            content=chunks(),
            headers=TOKEN | {"Content-Type": "application/json"},
        )
        assert r.status_code == 413, r.text
        r = await client.get(f"/api/v1/calls/{call_id}", headers=TOKEN)
        assert r.json()["state"] == "open"


async def test_a_body_under_the_cap_is_served_as_before(app: App) -> None:
    call_id = await opened(app)
    async with http_client(app) as client:
        r = await client.post(
            f"/api/v1/calls/{call_id}/resolve",
            content=resolve_body(100),
            headers=TOKEN | {"Content-Type": "application/json"},
        )
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("over", [False, True])
async def test_the_import_takes_a_district_s_file_and_no_more(app: App, over: bool) -> None:
    size = IMPORT_BYTES + 1 if over else 4 * DEFAULT_BYTES
    body = json.dumps({"dry_run": True, "rows": {}, "padding": "x" * size}).encode()
    async with http_client(app) as client:
        r = await client.post(
            "/api/v1/registry/import",
            content=body,
            headers=SUPERVISOR | {"Content-Type": "application/json"},
        )
    if over:
        assert r.status_code == 413, r.text
    else:  # read and answered by the route (its own validation), not refused for size
        assert r.status_code in (200, 422), r.text
        assert "bytes" not in r.text
