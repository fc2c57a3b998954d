"""The console's board and wall screen over HTTP, in process, on the real database
(both backends) and the production wiring: who is on duty with their phone, the
chart with its two target lines and the table beside it, the devices, the scope of
a community's staff, the wall without forms, the panel the pages refresh from."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from dispatcher.bootstrap import App, http_app
from dispatcher.testing import FakeClock
from tests.entrypoints.test_console import open_call, sign_in
from tests.support.app import event

HTML = {"accept": "text/html"}
TOPIC = "eldercall/v1/dev/x/event"


@pytest.fixture
async def web(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=http_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as client:
        yield client


async def test_the_board_shows_who_is_on_duty_until_when_and_their_phone(
    app: App, web: httpx.AsyncClient
) -> None:
    await sign_in(web, "demo-operator")
    page = await web.get("/console/board", headers=HTML)
    assert page.status_code == 200
    html = page.text
    row = re.search(r'<tr data-area-id="c-lh".*?</tr>', html, re.S)
    assert row is not None
    assert "至 18:00" in row.group(0) and 'href="tel:+8613761400302"' in row.group(0)
    assert "主班" in row.group(0) and "备班" in row.group(0)
    hx = re.search(r'<tr data-area-id="s-hx".*?</tr>', html, re.S)
    assert hx is not None and "孙丽" in hx.group(0) and "至 21:00" in hx.group(0)
    assert "截至 2026-11-24 10:00（Asia/Shanghai）" in html
    # The gaps of the next 24 hours, with who answers instead.
    assert 'id="gaps"' in html and "青石社区" in html
    # Linked from the queue's header.
    queue = await web.get("/console/", headers=HTML)
    assert 'href="/console/board"' in queue.text and 'href="/console/wall"' in queue.text


async def test_the_chart_has_both_target_lines_and_a_table_of_the_same_figures(
    app: App, web: httpx.AsyncClient, clock: FakeClock
) -> None:
    call_id = await open_call(app, "dev-0001")
    clock.advance(50)
    await app.operations.acknowledge(call_id, "wang-fang", "api")
    await open_call(app, "dev-0002")  # waiting
    clock.advance(100)
    await sign_in(web, "demo-operator")
    html = (await web.get("/console/board", headers=HTML)).text
    svg = re.search(r'<svg id="answer-chart".*?</svg>', html, re.S)
    assert svg is not None
    assert svg.group(0).count('class="target"') == 2
    assert "97.5% ≤ 60 秒" in svg.group(0) and "99% ≤ 180 秒" in svg.group(0)
    assert '<title id="chart-title">' in svg.group(0)
    assert "<script" not in svg.group(0)
    table = re.search(r'<table id="distribution".*?</table>', html, re.S)
    assert table is not None
    assert '<th scope="row">45–60</th><td>1 (50%)</td>' in table.group(0)
    assert '<th scope="row">未接听</th><td>1 (50%)</td>' in table.group(0)
    # Today: one within 60 s, the waiting one missed it (150 s): 50.0%, missed.
    targets = re.search(r'<tr data-within="60">.*?</tr>', html, re.S)
    assert targets is not None and "50.0%" in targets.group(0) and "未达标" in targets.group(0)
    operators = re.search(r'<table id="operators-today".*?</table>', html, re.S)
    assert operators is not None and "王芳" in operators.group(0)
    # One waiting now, an emergency.
    assert "1 个呼叫无人接单，其中紧急或跌倒 1 个" in html


async def test_a_community_board_shows_its_own_devices_and_duty_only(
    app: App, web: httpx.AsyncClient
) -> None:
    await app.intake.on_status("dev-0001", b'{"state": "offline"}')  # 柳湖
    await app.intake.on_status("dev-0012", b'{"state": "offline"}')  # 青石
    await app.intake.on_event("dev-0013", TOPIC, event("h1", "heartbeat", battery=9))
    await app.intake.heartbeats.flush()
    await sign_in(web, "wu-hong")  # 青石 community staff
    html = (await web.get("/console/board", headers=HTML)).text
    assert 'data-device-id="dev-0012"' in html and 'data-device-id="dev-0013"' in html
    assert 'data-device-id="dev-0001"' not in html
    assert "电量低" in html and "9%" in html
    assert 'data-area-id="c-qs"' in html and 'data-area-id="c-lh"' not in html
    assert 'data-area-id="d-jb"' not in html


async def test_the_wall_has_the_queue_and_the_board_and_no_forms(
    app: App, web: httpx.AsyncClient
) -> None:
    await open_call(app, "dev-0001")
    await sign_in(web, "demo-operator")
    wall = await web.get("/console/wall", headers=HTML)
    assert wall.status_code == 200
    html = wall.text
    assert "<form" not in html and "<button" not in html
    assert 'class="wall"' in html and 'id="rows"' in html and 'id="board-panel"' in html
    config = re.search(r'<script id="console-config" type="application/json">(.*?)</script>', html)
    assert config is not None
    settings = json.loads(config.group(1))
    assert settings["readonly"] is True and settings["events"] == "/console/events"
    assert len(settings["snapshot"]["rows"]) == 1
    assert "/static/console/queue.js" in html and "/static/console/board.js" in html
    assert 'data-area-id="d-jb"' in html and "演示值班员" in html
    # The panel each page refreshes itself from, as the wall shows it.
    panel = await web.get("/console/board/panel?view=wall")
    assert panel.status_code == 200 and panel.headers["cache-control"] == "no-store"
    assert 'id="wall-figures"' in panel.text and "<form" not in panel.text


async def test_the_board_needs_a_session_and_speaks_english_on_request(
    web: httpx.AsyncClient,
) -> None:
    page = await web.get("/console/board", headers=HTML)
    assert page.status_code == 303 and page.headers["location"] == "/console/login"
    assert (await web.get("/console/board/panel")).status_code == 401
    await sign_in(web, "demo-operator")
    await web.get("/console/language?to=en&back=/console/board")
    html = (await web.get("/console/board", headers=HTML)).text
    assert "On duty now" in html and "97.5% ≤ 60 s" in html and "until 18:00" in html
