"""The hand-over sheet for the emergency services and the call page's resident and
device, in process, on the real database (both backends) with the example data's
staff: the API's JSON (GET /api/v1/calls/{id}/handover) and the console's printable
page hold the key safe for operators and supervisors and withhold it from community
staff, both give everyone the address and the contacts, and each printing goes on
the call's timeline. The browser test is tests/e2e/test_console_browser_sheet.py."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.files.directory_files import load_directory
from dispatcher.bootstrap import App, build, http_app
from dispatcher.core.contact_methods import Channel
from dispatcher.entrypoints.http.app import create_app
from dispatcher.services.channels import Channels
from dispatcher.testing import FakeChannelSender, FakeClock
from tests.entrypoints.test_console import sign_in
from tests.support.app import DATA, TUESDAY_10AM, event, settings_for

OPERATOR = {"Authorization": "Bearer demo-operator-token"}  # district hotline
ZHAO_MIN = {"Authorization": "Bearer demo-zhao-min-91c6ab04"}  # district supervisor
MA_LIN = {"Authorization": "Bearer demo-ma-lin-b81f7d25"}  # 柳湖 (c-lh) community staff
WU_HONG = {"Authorization": "Bearer demo-wu-hong-47d0e3c8"}  # 青石 (c-qs) community staff
KEY_SAFE = "2580"  # 张桂兰's (r-0001, dev-0001, c-lh) key safe code
MEDICATION = "硝苯地平"
ADDRESS = "江滨区柳湖路88弄3号502室"
CONTACTS = ["+8613601110001", "+8613601110002"]  # her son, then 钱阿姨 (a key-holder)
HTML = {"accept": "text/html"}


@pytest.fixture
async def api(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(app.operations, app.clock))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


def console(app: App) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=http_app(app))
    return httpx.AsyncClient(transport=transport, base_url="http://console.test")


async def press(
    app: App, device_id: str = "dev-0001", ref: str = "e1", kind: str = "emergency"
) -> str:
    ack = await app.intake.on_event(
        device_id, f"eldercall/v1/dev/{device_id}/event", event(ref, kind)
    )
    assert ack is not None and ack.call_id is not None
    return ack.call_id


async def printed(app: App, call_id: str) -> list[tuple[str, str]]:
    call = await app.operations.get_call(call_id)
    return [(e.actor, e.channel) for e in call.timeline if e.action == "handover_sheet_printed"]


async def test_the_api_sheet_holds_the_key_safe_for_operators_and_supervisors_only(
    app: App, api: httpx.AsyncClient
) -> None:
    call_id = await press(app)
    url = f"/api/v1/calls/{call_id}/handover"
    for headers in (ZHAO_MIN, OPERATOR):
        answer = await api.get(url, headers=headers)
        assert answer.status_code == 200, answer.text
        sheet = answer.json()
        assert KEY_SAFE in sheet["resident"]["key_safe"] and sheet["access_withheld"] is False
        assert MEDICATION in sheet["resident"]["medication"] and sheet["medical_withheld"] is False
        assert sheet["resident"]["address"] == ADDRESS and sheet["call_id"] == call_id
        assert [c["phone"] for c in sheet["resident"]["contacts"]] == CONTACTS
        assert [c["name"] for c in sheet["key_holders"]] == ["钱阿姨"]
        assert sheet["events"][0]["action"] == "opened"

    staff = await api.get(url, headers=MA_LIN)
    assert staff.status_code == 200
    sheet = staff.json()
    assert sheet["access_withheld"] is True and sheet["medical_withheld"] is True
    assert KEY_SAFE not in staff.text and MEDICATION not in staff.text
    assert sheet["resident"]["address"] == ADDRESS
    assert [c["phone"] for c in sheet["resident"]["contacts"]] == CONTACTS
    assert [c["name"] for c in sheet["key_holders"]] == ["钱阿姨"]  # who has a key, not the code
    assert sheet["printed_by"] == "ma-lin" and sheet["printed_by_name"] == "马琳"

    assert await printed(app, call_id) == [
        ("zhao-min", "api"),
        ("demo-operator", "api"),
        ("ma-lin", "api"),
    ]


async def test_another_areas_staff_get_no_sheet_and_leave_no_trace(
    app: App, api: httpx.AsyncClient
) -> None:
    call_id = await press(app)
    refused = await api.get(f"/api/v1/calls/{call_id}/handover", headers=WU_HONG)
    assert refused.status_code == 404 and "张桂兰" not in refused.text
    assert (await api.get("/api/v1/calls/C-nope/handover", headers=OPERATOR)).status_code == 404
    assert await printed(app, call_id) == []


async def test_the_sheet_says_what_has_happened_without_the_message_traffic(
    app: App, api: httpx.AsyncClient
) -> None:
    call_id = await press(app)
    await app.escalator.run_due()  # the hotline's SMS: on the timeline, not on the sheet
    await api.post(f"/api/v1/calls/{call_id}/take", headers=OPERATOR)
    await api.post(f"/api/v1/calls/{call_id}/notes", headers=OPERATOR, json={"note": "她摔倒了"})
    sheet = (await api.get(f"/api/v1/calls/{call_id}/handover", headers=OPERATOR)).json()
    actions = [e["action"] for e in sheet["events"]]
    assert actions[0] == "opened" and "acknowledged" in actions and actions[-1] == "note"
    assert not any(a.startswith("sms_") for a in actions)
    assert sheet["events"][-1]["actor_name"] == "演示值班员"
    assert sheet["holder"]["id"] == "demo-operator" and sheet["holder"]["phone"]
    # A second sheet lists the first printing no more than the message traffic.
    again = (await api.get(f"/api/v1/calls/{call_id}/handover", headers=OPERATOR)).json()
    assert [e["action"] for e in again["events"]] == actions


async def test_the_call_shows_the_devices_state_with_what_memory_holds(
    app: App, api: httpx.AsyncClient, clock: FakeClock
) -> None:
    call_id = await press(app)
    topic = "eldercall/v1/dev/dev-0001/event"
    clock.advance(30)
    await app.intake.on_event("dev-0001", topic, event("h1", "heartbeat", battery=64))
    # Not written yet (heartbeats are written in batches): read from memory.
    assert app.intake.heartbeats.knows("dev-0001")
    device = (await api.get(f"/api/v1/calls/{call_id}", headers=OPERATOR)).json()["device"]
    assert device["status"] == "online" and device["battery"] == 64
    assert device["last_seen_at"] == (clock.now()).isoformat().replace("+00:00", "Z")
    assert device["as_of"] == device["last_seen_at"] and device["alerts"] == []

    await app.intake.heartbeats.flush()
    await app.intake.on_event("dev-0001", topic, event("b1", "battery_low", battery=9))
    clock.advance(5)
    answer = (await api.get(f"/api/v1/calls/{call_id}", headers=OPERATOR)).json()
    device = answer["device"]
    assert device["battery"] == 9 and device["status"] == "online"
    assert [a["alert"] for a in device["alerts"]] == ["battery_low"]
    assert device["as_of"] > device["last_seen_at"]

    await app.intake.on_status("dev-0001", b'{"state": "offline"}')
    device = (await api.get(f"/api/v1/calls/{call_id}", headers=OPERATOR)).json()["device"]
    assert device["status"] == "offline"


async def test_a_device_never_heard_from_is_unknown(app: App, api: httpx.AsyncClient) -> None:
    call_id = await press(app)
    async with app.sessions() as session, session.begin():
        await session.execute(delete(db.device_links))
    app.intake.heartbeats.take("dev-0001")
    device = (await api.get(f"/api/v1/calls/{call_id}", headers=OPERATOR)).json()["device"]
    assert device["status"] == "unknown" and device["battery"] is None
    assert device["last_seen_at"] is None


async def test_the_console_sheet_and_the_call_page_withhold_by_role(app: App) -> None:
    call_id = await press(app)
    async with console(app) as supervisor:
        await sign_in(supervisor, "zhao-min")
        page = await supervisor.get(f"/console/calls/{call_id}", headers=HTML)
        assert page.status_code == 200
        assert f'href="/console/calls/{call_id}/sheet"' in page.text and "打印交接单" in page.text
        assert KEY_SAFE in page.text and "单元门禁按 502" in page.text
        assert 'href="tel:+862164110231"' in page.text  # the home phone
        assert all(f'href="tel:{phone}"' in page.text for phone in CONTACTS)
        assert "有钥匙" in page.text and "310105********1228" in page.text
        assert 'class="photo"' in page.text and "<img" not in page.text
        assert 'id="device-state"' in page.text and "在线" in page.text and "截至" in page.text
        sheet = await supervisor.get(f"/console/calls/{call_id}/sheet", headers=HTML)
        assert sheet.status_code == 200
        assert KEY_SAFE in sheet.text and MEDICATION in sheet.text and ADDRESS in sheet.text
        assert call_id in sheet.text and "打印人 赵敏" in sheet.text
        assert "@media print" not in sheet.text and "/static/console/sheet.css" in sheet.text

    async with console(app) as staff:
        await sign_in(staff, "ma-lin")
        page = await staff.get(f"/console/calls/{call_id}", headers=HTML)
        assert KEY_SAFE not in page.text and MEDICATION not in page.text
        assert page.text.count("您的角色无权查看此项") == 6  # 3 medical, 2 access, the notes
        assert all(f'href="tel:{phone}"' in page.text for phone in CONTACTS)
        sheet = await staff.get(f"/console/calls/{call_id}/sheet", headers=HTML)
        assert sheet.status_code == 200 and ADDRESS in sheet.text
        assert KEY_SAFE not in sheet.text and MEDICATION not in sheet.text
        assert sheet.text.count("您的角色无权查看此项") == 2  # access, medical
        assert all(phone in sheet.text for phone in CONTACTS) and "钱阿姨" in sheet.text

    async with console(app) as other:
        await sign_in(other, "wu-hong")
        assert (await other.get(f"/console/calls/{call_id}/sheet", headers=HTML)).status_code == 404
    assert await printed(app, call_id) == [("zhao-min", "console"), ("ma-lin", "console")]


async def test_the_sheet_in_english_and_the_print_stylesheet(app: App) -> None:
    call_id = await press(app)
    async with console(app) as web:
        await sign_in(web, "demo-operator")
        await web.get("/console/language?to=en&back=/console/")
        sheet = await web.get(f"/console/calls/{call_id}/sheet", headers=HTML)
        assert "Hand-over sheet for the emergency services" in sheet.text
        assert "pressed the button" in sheet.text  # the timeline's "opened", in words
        css = await web.get("/static/console/sheet.css")
    assert css.status_code == 200 and "@media print" in css.text and "size: A4" in css.text
    assert ".bar" in css.text.split("@media print", 1)[1]  # the navigation is not printed


@pytest.fixture
async def app_with_a_mobile(tmp_path: Path, clock: FakeClock) -> AsyncIterator[App]:
    """The example data, 张桂兰 with a mobile of her own (the file gives nobody one)."""
    directory = load_directory(DATA, "Asia/Shanghai")
    zhang = dataclasses.replace(directory.residents["r-0001"], mobile="+8613900000088")
    directory = dataclasses.replace(directory, residents={**directory.residents, "r-0001": zhang})
    channels = Channels(FakeChannelSender(c.value) for c in Channel)
    built = await build(settings_for(tmp_path), clock=clock, directory=directory, channels=channels)
    yield built
    await built.aclose()


async def test_the_residents_mobile_is_a_dialling_link(app_with_a_mobile: App) -> None:
    assert app_with_a_mobile.clock.now() == TUESDAY_10AM
    call_id = await press(app_with_a_mobile)
    async with console(app_with_a_mobile) as web:
        await sign_in(web, "demo-operator")
        page = await web.get(f"/console/calls/{call_id}", headers=HTML)
    assert 'href="tel:+8613900000088"' in page.text
