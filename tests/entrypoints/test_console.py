"""The console over HTTP, in process, on the real database (both backends) and the
production wiring (``bootstrap.http_app``): signing in, CSRF, taking a call, the area
scope and the withheld notes. The browser tests are in tests/e2e/test_console_browser.py."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from dispatcher.bootstrap import App, http_app
from dispatcher.entrypoints.http.app import ApiServer
from dispatcher.testing import FakeClock
from tests.support.app import event

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def web(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=http_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as client:
        yield client


async def sign_in(client: httpx.AsyncClient, staff_id: str, password: str | None = None) -> str:
    """Signs ``client`` in; the CSRF token of its session (from the queue page)."""
    form = await client.get("/console/login")
    token = CSRF.search(form.text)
    assert token is not None
    answer = await client.post(
        "/console/login",
        data={
            "staff_id": staff_id,
            "password": password or f"{staff_id}-password",
            "csrf": token.group(1),
        },
    )
    assert answer.status_code == 303, answer.text
    page = await client.get("/console/", headers={"accept": "text/html"})
    assert page.status_code == 200
    session_token = CSRF.search(page.text)
    assert session_token is not None
    return session_token.group(1)


async def open_call(app: App, device_id: str, ref: str = "e1", kind: str = "emergency") -> str:
    ack = await app.intake.on_event(
        device_id, f"eldercall/v1/dev/{device_id}/event", event(ref, kind)
    )
    assert ack is not None and ack.call_id is not None
    return ack.call_id


async def test_signing_in_sets_a_strict_http_only_session_cookie(
    web: httpx.AsyncClient,
) -> None:
    form = await web.get("/console/login")
    token = CSRF.search(form.text)
    assert token is not None
    answer = await web.post(
        "/console/login",
        data={
            "staff_id": "demo-operator",
            "password": "demo-operator-password",
            "csrf": token.group(1),
        },
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console/"
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith("eldercall_session=")
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Max-Age=43200" in cookie  # one 12-hour shift
    page = await web.get("/console/", headers={"accept": "text/html"})
    assert "演示值班员" in page.text


async def test_a_wrong_password_or_a_missing_form_token_signs_nobody_in(
    web: httpx.AsyncClient,
) -> None:
    form = await web.get("/console/login")
    token = CSRF.search(form.text)
    assert token is not None
    wrong = await web.post(
        "/console/login",
        data={"staff_id": "demo-operator", "password": "guess-guess-guess", "csrf": token.group(1)},
    )
    assert wrong.status_code == 401 and "工号或密码错误" in wrong.text
    no_token = await web.post(
        "/console/login",
        data={"staff_id": "demo-operator", "password": "demo-operator-password", "csrf": "x"},
    )
    assert no_token.status_code == 400
    assert "eldercall_session=" not in " ".join(no_token.headers.get_list("set-cookie"))
    assert (await web.get("/console/queue.json")).status_code == 401
    page = await web.get("/console/", headers={"accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"] == "/console/login"


async def test_taking_a_call_needs_the_session_csrf_token_and_goes_on_the_timeline(
    app: App, web: httpx.AsyncClient
) -> None:
    call_id = await open_call(app, "dev-0001")
    csrf = await sign_in(web, "demo-operator")
    refused = await web.post(f"/console/calls/{call_id}/take", data={"csrf": "forged"})
    assert refused.status_code == 403
    assert (await app.operations.get_call(call_id)).state == "open"

    taken = await web.post(f"/console/calls/{call_id}/take", data={"csrf": csrf})
    assert taken.status_code == 200, taken.text
    call = await app.operations.get_call(call_id)
    assert call.state == "acknowledged" and call.acknowledged_by == "demo-operator"
    assert any(
        e.actor == "demo-operator" and e.channel == "console" and e.action == "acknowledged"
        for e in call.timeline
    )
    queue = (await web.get("/console/queue.json")).json()
    row = next(r for r in queue["rows"] if r["call_id"] == call_id)
    assert row["untaken"] is False and row["taken_by"] == "demo-operator"
    assert row["alarm"] is False


async def test_a_call_taken_by_one_operator_stays_theirs(app: App, web: httpx.AsyncClient) -> None:
    call_id = await open_call(app, "dev-0001")
    first = await sign_in(web, "demo-operator")
    assert (await web.post(f"/console/calls/{call_id}/take", data={"csrf": first})).is_success
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=http_app(app)), base_url="http://console.test"
    ) as other:
        second = await sign_in(other, "wang-fang")
        again = await other.post(f"/console/calls/{call_id}/take", data={"csrf": second})
    assert again.status_code == 409
    assert "演示值班员" in again.json()["error"]
    assert (await app.operations.get_call(call_id)).acknowledged_by == "demo-operator"


async def test_the_queue_puts_alarms_first_then_the_longest_waiting(
    app: App, web: httpx.AsyncClient
) -> None:
    service = await open_call(app, "dev-0002", "s1", "service")
    first_alarm = await open_call(app, "dev-0003", "e1", "emergency")
    fall = await open_call(app, "dev-0004", "f1", "fall")
    await sign_in(web, "demo-operator")
    queue = (await web.get("/console/queue.json")).json()
    ids = [r["call_id"] for r in queue["rows"]]
    assert ids.index(first_alarm) < ids.index(fall) < ids.index(service)
    alarm = next(r for r in queue["rows"] if r["call_id"] == first_alarm)
    assert alarm["alarm"] is True and alarm["untaken"] is True and alarm["lateness"] == "on_time"
    assert queue["amber_after_s"] == 60 and queue["red_after_s"] == 180


async def test_community_staff_see_only_their_community_from_the_console(
    app: App, web: httpx.AsyncClient
) -> None:
    liuhu = await open_call(app, "dev-0001")  # 柳湖 (c-lh)
    qingshi = await open_call(app, "dev-0011")  # 青石 (c-qs)
    csrf = await sign_in(web, "wu-hong")  # 青石 community staff
    ids = {r["call_id"] for r in (await web.get("/console/queue.json")).json()["rows"]}
    assert qingshi in ids and liuhu not in ids
    page = await web.get(f"/console/calls/{liuhu}", headers={"accept": "text/html"})
    assert page.status_code == 404
    assert "张桂兰" not in page.text
    taken = await web.post(f"/console/calls/{liuhu}/take", data={"csrf": csrf})
    assert taken.status_code == 404
    assert (await app.operations.get_call(liuhu)).state == "open"


async def test_medical_notes_are_on_the_operators_page_and_withheld_from_community_staff(
    app: App, web: httpx.AsyncClient
) -> None:
    call_id = await open_call(app, "dev-0001")  # 张桂兰: 高血压，服用硝苯地平；独居
    await sign_in(web, "demo-operator")
    page = await web.get(f"/console/calls/{call_id}", headers={"accept": "text/html"})
    assert "硝苯地平" in page.text and 'href="tel:+8613601110001"' in page.text
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=http_app(app)), base_url="http://console.test"
    ) as staff:
        await sign_in(staff, "ma-lin")  # 柳湖 community staff
        withheld = await staff.get(f"/console/calls/{call_id}", headers={"accept": "text/html"})
    assert withheld.status_code == 200 and "张桂兰" in withheld.text
    assert "硝苯地平" not in withheld.text and "您的角色无权查看此项" in withheld.text


async def test_signing_out_ends_the_session(web: httpx.AsyncClient) -> None:
    csrf = await sign_in(web, "demo-operator")
    session = web.cookies.get("eldercall_session")
    assert (await web.post("/console/logout", data={"csrf": csrf})).status_code == 303
    web.cookies.set("eldercall_session", session or "", path="/console")
    assert (await web.get("/console/queue.json")).status_code == 401


async def test_the_language_switch_gives_the_english_catalogue(web: httpx.AsyncClient) -> None:
    await sign_in(web, "demo-operator")
    switched = await web.get("/console/language?to=en&back=/console/")
    assert switched.status_code == 303 and switched.headers["location"] == "/console/"
    page = await web.get("/console/", headers={"accept": "text/html"})
    assert "Call queue" in page.text and '<html lang="en">' in page.text
    elsewhere = await web.get("/console/language?to=en&back=https://evil.example/")
    assert elsewhere.headers["location"] == "/console/"


async def test_the_event_stream_brings_a_new_call_without_a_reload(app: App) -> None:
    server = ApiServer(http_app(app), "127.0.0.1", 0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            await sign_in(client, "demo-operator")
            async with client.stream("GET", "/console/events") as stream:
                lines = stream.aiter_lines()
                first = await _next_queue(lines)
                assert first["rows"] == []
                call_id = await open_call(app, "dev-0001")
                # The stream's own poll finds it (no reload, no request of the page's).
                later = await asyncio.wait_for(_next_queue(lines), 10)
                assert [r["call_id"] for r in later["rows"]] == [call_id]
                assert later["version"] > first["version"]
    finally:
        await server.stop()


async def _next_queue(lines: AsyncIterator[str]) -> dict[str, object]:
    kind = None
    async for line in lines:
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: ") and kind == "queue":
            data: dict[str, object] = json.loads(line.removeprefix("data: "))
            return data
    raise AssertionError("the stream ended")


async def test_an_untaken_call_turns_amber_then_red_and_is_flagged(
    app: App, web: httpx.AsyncClient, clock: FakeClock
) -> None:
    call_id = await open_call(app, "dev-0001")
    await sign_in(web, "demo-operator")

    async def row() -> dict[str, object]:
        rows = (await web.get("/console/queue.json")).json()["rows"]
        found: dict[str, object] = next(r for r in rows if r["call_id"] == call_id)
        return found

    assert (await row())["lateness"] == "on_time" and (await row())["unattended"] is False
    clock.advance(61)
    assert (await row())["lateness"] == "amber" and (await row())["unattended"] is True
    clock.advance(120)
    assert (await row())["lateness"] == "red"


async def test_the_call_page_notes_hands_over_and_resolves_on_the_timeline(
    app: App, web: httpx.AsyncClient
) -> None:
    call_id = await open_call(app, "dev-0001")
    csrf = await sign_in(web, "demo-operator")
    html = {"accept": "text/html"}
    page = f"/console/calls/{call_id}"
    taken = await web.post(f"{page}/take", data={"csrf": csrf}, headers=html)
    assert taken.status_code == 303 and taken.headers["location"] == page
    noted = await web.post(f"{page}/note", data={"csrf": csrf, "text": "她说胸口疼"})
    assert noted.status_code == 303
    handed = await web.post(f"{page}/hand-over", data={"csrf": csrf, "to": "wang-fang"})
    assert handed.status_code == 303
    # No longer hers: the next hand-over from her is refused and changes nothing.
    again = await web.post(f"{page}/hand-over", data={"csrf": csrf, "to": "li-qiang"})
    assert again.status_code == 409 and "王芳" in again.text
    resolved = await web.post(
        f"{page}/resolve", data={"csrf": csrf, "outcome": "family_attended", "text": "儿子到了"}
    )
    assert resolved.status_code == 303
    call = await app.operations.get_call(call_id)
    assert call.state == "resolved" and call.outcome == "family_attended"
    assert call.held_by == "wang-fang"
    mine = [(e.action, e.detail) for e in call.timeline if e.channel == "console"]
    assert mine == [
        ("acknowledged", ""),
        ("note", "她说胸口疼"),
        ("handed_over", "from demo-operator to wang-fang"),
        ("resolved", "family_attended: 儿子到了"),
    ]
    shown = (await web.get(page, headers=html)).text
    assert "家属已到场" in shown and "她说胸口疼" in shown


async def test_a_call_page_post_without_the_token_changes_nothing(
    app: App, web: httpx.AsyncClient
) -> None:
    call_id = await open_call(app, "dev-0001")
    await sign_in(web, "demo-operator")
    forged = await web.post(
        f"/console/calls/{call_id}/resolve", data={"csrf": "x", "outcome": "false_alarm"}
    )
    assert forged.status_code == 403
    assert (await app.operations.get_call(call_id)).state == "open"
