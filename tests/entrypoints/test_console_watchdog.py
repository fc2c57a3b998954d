"""The console shows that the watchdog paged the shift supervisor: a mark in the live
queue's row (its JSON, and in Chromium) and on the call's page, and the API's call
carries the time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from playwright.async_api import Page

from dispatcher.bootstrap import App, http_app
from dispatcher.entrypoints.http.app import ApiServer
from dispatcher.testing import FakeClock
from tests.entrypoints.test_console import open_call, sign_in
from tests.support.app import TUESDAY_10AM


@pytest.fixture
async def web(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=http_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as client:
        yield client


async def queue_row(web: httpx.AsyncClient, call_id: str) -> dict[str, object]:
    answer = await web.get("/console/queue.json")
    assert answer.status_code == 200
    return next(r for r in answer.json()["rows"] if r["call_id"] == call_id)


async def test_the_queue_and_the_call_page_show_supervisor_paged(
    app: App, clock: FakeClock, web: httpx.AsyncClient
) -> None:
    call_id = await open_call(app, "dev-0001", "wd1")
    await sign_in(web, "demo-operator")
    clock.set(TUESDAY_10AM + timedelta(seconds=119))
    await app.escalation_cycle()
    assert (await queue_row(web, call_id))["watchdog_paged_at"] is None
    page = await web.get(f"/console/calls/{call_id}", headers={"accept": "text/html"})
    assert 'id="watchdog-paged"' not in page.text

    clock.set(TUESDAY_10AM + timedelta(seconds=120))
    await app.escalation_cycle()
    row = await queue_row(web, call_id)
    assert row["watchdog_paged_at"] is not None and row["untaken"] is True
    page = await web.get(f"/console/calls/{call_id}", headers={"accept": "text/html"})
    assert 'id="watchdog-paged"' in page.text and "已通知值班督导" in page.text
    assert "10:02:00" in page.text  # the first page, in the centre's time zone
    api = await web.get(
        f"/api/v1/calls/{call_id}", headers={"authorization": "Bearer demo-operator-token"}
    )
    assert api.json()["watchdog_paged_at"].startswith("2026-11-24T02:02:00")
    assert api.json()["watchdog_pages"] == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.timeout(60)
async def test_the_live_queue_marks_the_row_in_a_real_browser(
    app: App, clock: FakeClock, page: Page
) -> None:
    """Chromium on the in-process console: the row of the call gains the mark when the
    page is sent, from the queue's own updates (no reload)."""
    server = ApiServer(http_app(app), "127.0.0.1", 0)
    await server.start()
    try:
        call_id = await open_call(app, "dev-0001", "wd2")
        base = server.base_url
        await page.goto(f"{base}/console/login")
        await page.get_by_label("工号").fill("demo-operator")
        await page.get_by_label("密码").fill("demo-operator-password")
        await page.get_by_role("button", name="登录").click()
        await page.wait_for_url(f"{base}/console/")
        row = page.locator(f"#rows tr[data-call-id='{call_id}']")
        await row.wait_for()
        assert await row.locator(".paged").count() == 0
        clock.set(TUESDAY_10AM + timedelta(seconds=120))
        assert await app.escalation_cycle() >= 1
        await row.locator(".paged", has_text="已通知值班督导").wait_for()
    finally:
        await server.stop()
