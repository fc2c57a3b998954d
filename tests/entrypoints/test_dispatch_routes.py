"""Dispatching responders over HTTP, in process on the real database (both backends)
and the production wiring (``bootstrap.http_app``): the API's routes with bearer
tokens, and the call page's forms in the console, both through the one service layer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from dispatcher.bootstrap import App, http_app
from dispatcher.testing import FakeClock
from tests.entrypoints.test_console import open_call, sign_in

OPERATOR = {"Authorization": "Bearer demo-operator-token"}
WU_HONG = {"Authorization": "Bearer demo-wu-hong-47d0e3c8"}  # 青石社区: not 柳湖's calls
MA_LIN = {"Authorization": "Bearer demo-ma-lin-b81f7d25"}  # 柳湖社区


@pytest.fixture
async def web(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=http_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as client:
        yield client


async def test_the_api_dispatches_marks_arrived_and_stands_down(
    app: App, web: httpx.AsyncClient
) -> None:
    call_id = await open_call(app, "dev-0001")
    base = f"/api/v1/calls/{call_id}/dispatches"
    sent = await web.post(
        base, json={"kind": "staff", "ref": "ma-lin", "eta_minutes": 12}, headers=OPERATOR
    )
    assert sent.status_code == 200, sent.text
    body = sent.json()
    assert body["state"] == "acknowledged" and body["held_by"] == "demo-operator"
    assert body["dispatches"][0]["responder_name"] == "马琳"
    assert body["dispatches"][0]["notice_status"] == "pending"
    ambulance = await web.post(
        base, json={"kind": "service", "ref": "120", "eta_minutes": 20}, headers=OPERATOR
    )
    assert [d["responder_ref"] for d in ambulance.json()["dispatches"]] == ["ma-lin", "120"]

    arrived = await web.post(
        f"{base}/1/arrived", headers={**OPERATOR, "X-Eldercall-Channel": "cli"}
    )
    assert arrived.status_code == 200
    assert arrived.json()["state"] == "responder_on_site"
    assert arrived.json()["dispatches"][0]["state"] == "arrived"
    again = await web.post(f"{base}/1/arrived", headers=OPERATOR)
    assert again.status_code == 409 and "arrived" in again.json()["error"]
    down = await web.post(f"{base}/2/stand-down", json={"note": "not needed"}, headers=OPERATOR)
    assert down.json()["dispatches"][1]["state"] == "stood_down"
    timeline = {(e["actor"], e["action"], e["channel"]) for e in down.json()["timeline"]}
    assert ("demo-operator", "dispatched", "api") in timeline
    assert ("demo-operator", "responder_on_site", "cli") in timeline
    assert ("demo-operator", "stood_down", "api") in timeline
    shown = await web.get(f"/api/v1/calls/{call_id}", headers=OPERATOR)
    assert len(shown.json()["dispatches"]) == 2
    listed = await web.get("/api/v1/calls", headers=OPERATOR)
    row = next(c for c in listed.json()["calls"] if c["call_id"] == call_id)
    assert [d["state"] for d in row["dispatches"]] == ["arrived", "stood_down"]


async def test_the_api_refuses_bad_dispatches_and_other_areas(
    app: App, web: httpx.AsyncClient
) -> None:
    call_id = await open_call(app, "dev-0001")
    base = f"/api/v1/calls/{call_id}/dispatches"
    cases = [
        ({"kind": "staff", "ref": "ma-lin", "eta_minutes": 0}, 422),
        ({"kind": "staff", "ref": "ma-lin", "eta_minutes": 10_000}, 422),
        ({"kind": "robot", "ref": "x"}, 422),
        ({"kind": "staff", "ref": "zheng-hua"}, 422),  # 梅林社区 cannot see 柳湖's call
        ({"kind": "service", "ref": "999"}, 422),
        ({"kind": "other", "name": "", "phone": "+8613700000000"}, 422),
        ({"kind": "other", "name": "老刘", "phone": "not a phone"}, 422),
    ]
    for body, status in cases:
        answer = await web.post(base, json=body, headers=OPERATOR)
        assert answer.status_code == status, (body, answer.text)
        assert "error" in answer.json()
    hidden = await web.post(base, json={"kind": "staff", "ref": "ma-lin"}, headers=WU_HONG)
    assert hidden.status_code == 404
    assert (
        await web.get(f"/api/v1/calls/{call_id}/dispatch-choices", headers=WU_HONG)
    ).status_code == 404
    assert (await app.operations.get_call(call_id)).dispatches == []
    assert (await app.operations.get_call(call_id)).state == "open"  # nothing changed
    # 柳湖's own staff may send her colleague.
    own = await web.post(base, json={"kind": "staff", "ref": "huang-lei"}, headers=MA_LIN)
    assert own.status_code == 200
    choices = await web.get(f"/api/v1/calls/{call_id}/dispatch-choices", headers=MA_LIN)
    kinds = [(c["kind"], c["ref"]) for c in choices.json()["choices"]]
    assert (
        ("staff", "ma-lin") in kinds and ("contact", "2") in kinds and ("service", "119") in kinds
    )


async def test_the_call_page_dispatches_and_marks_the_arrival(
    app: App, web: httpx.AsyncClient, clock: FakeClock
) -> None:
    call_id = await open_call(app, "dev-0001")
    csrf = await sign_in(web, "demo-operator")
    page = await web.get(f"/console/calls/{call_id}", headers={"accept": "text/html"})
    assert 'id="dispatch-form"' in page.text and 'value="staff:ma-lin"' in page.text
    assert 'value="contact:2"' in page.text and "持钥匙" in page.text  # 钱阿姨 holds a key
    assert 'value="service:120"' in page.text
    assert 'value="staff:zheng-hua"' not in page.text  # 梅林社区's staff are not offered

    forged = await web.post(
        f"/console/calls/{call_id}/dispatches", data={"who": "staff:ma-lin", "csrf": "forged"}
    )
    assert forged.status_code == 403
    bad = await web.post(
        f"/console/calls/{call_id}/dispatches",
        data={"who": "staff:zheng-hua", "eta_minutes": "10", "csrf": csrf},
    )
    assert bad.status_code == 409 and "cannot see" in bad.text
    sent = await web.post(
        f"/console/calls/{call_id}/dispatches",
        data={"who": "staff:ma-lin", "eta_minutes": "10", "text": "带血压计", "csrf": csrf},
    )
    assert sent.status_code == 303 and sent.headers["location"] == f"/console/calls/{call_id}"
    page = await web.get(f"/console/calls/{call_id}", headers={"accept": "text/html"})
    assert (
        'class="dispatch-on_the_way"' in page.text
        and "马琳" in page.text
        and "带血压计" in page.text
    )
    queue = (await web.get("/console/queue.json")).json()
    row = next(r for r in queue["rows"] if r["call_id"] == call_id)
    assert row["responder"] == "on_the_way" and row["attention"] is False

    clock.advance(11 * 60)
    await app.escalator.run_due()
    page = await web.get(f"/console/calls/{call_id}", headers={"accept": "text/html"})
    assert 'class="dispatch-overdue"' in page.text and "超时未到" in page.text
    queue = (await web.get("/console/queue.json")).json()
    assert queue["rows"][0]["call_id"] == call_id and queue["rows"][0]["attention"] is True

    arrived = await web.post(f"/console/calls/{call_id}/dispatches/1/arrived", data={"csrf": csrf})
    assert arrived.status_code == 303
    call = await app.operations.get_call(call_id)
    assert call.state == "responder_on_site" and call.dispatches[0].state == "arrived"
    assert ("demo-operator", "responder_on_site", "console") in {
        (e.actor, e.action, e.channel) for e in call.timeline
    }
    page = await web.get(f"/console/calls/{call_id}", headers={"accept": "text/html"})
    assert "mark-arrived" not in page.text  # nothing left to mark


async def test_english_dispatch_texts(app: App, web: httpx.AsyncClient) -> None:
    call_id = await open_call(app, "dev-0001")
    await sign_in(web, "demo-operator")
    await web.get("/console/language?to=en&back=/console/")
    page = await web.get(f"/console/calls/{call_id}", headers={"accept": "text/html"})
    assert "Responders" in page.text and "120 ambulance" in page.text
