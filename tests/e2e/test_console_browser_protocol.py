"""A call's protocol (处置规程) in a real browser (Chromium through Playwright) against the
real daemon, Mosquitto and the local SMS sink: a resident presses the red button and
nobody speaks; the operator takes the call and switches its situation to "red button,
nobody speaks"; the page shows that protocol step by step, with checkboxes and choices,
"派人上门" (If in doubt, send someone) preselected as its decision; the operator answers
steps and confirms the decision, and every answer is on the call's timeline, on the
page and through ``GET /api/v1/calls/{id}``. Takes ``protocol.png``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.async_api import Locator, Page

from simulator.broker import MosquittoProcess
from simulator.phone_network.server import SmsSinkServer
from tests.e2e.test_console_browser import ROW, screenshots, sign_in
from tests.e2e.test_end_to_end import TOKEN, device, press, running_dispatcher, until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def record(page: Page, call_page: str, step: Locator) -> None:
    """Press the step's 记录 (record) and wait for the page to come back answered."""
    await step.get_by_role("button", name="记录").click()
    await page.wait_for_url(f"{call_page}#protocol")
    await step.locator(".step-answer").wait_for()


async def test_a_silent_emergency_is_worked_through_its_protocol_onto_the_timeline(
    tmp_path: Path,
    mosquitto: MosquittoProcess,
    sms_sink: SmsSinkServer,
    topic_root: str,
    page: Page,
    blocked_requests: list[str],
) -> None:
    shots = screenshots(tmp_path)
    async with running_dispatcher(tmp_path, mosquitto, sms_sink, topic_root) as running:
        base = running.api.removesuffix("/api/v1")
        await page.set_viewport_size({"width": 1280, "height": 900})
        await sign_in(page, base, "demo-operator")
        async with device(mosquitto.url, topic_root, "dev-0001") as dev:
            # The red button; nobody speaks through the device.
            await press(dev, topic_root, "dev-0001", {"ref": "s1", "type": "emergency"})
            call_id = (await until(dev, "ack"))["call_id"]
        row = page.locator(ROW.format(call_id=call_id))
        await row.get_by_role("link").click()
        call_page = f"{base}/console/calls/{call_id}"
        await page.wait_for_url(call_page)
        await page.get_by_role("button", name="接单").click()
        await page.wait_for_url(call_page)

        # An emergency starts on "the resident answers"; the operator says nobody speaks.
        protocol = page.locator("#protocol")
        assert await protocol.locator("h3").inner_text() == "紧急呼叫：老人能应答"
        situation = page.locator("#situation-form")
        await situation.get_by_label("情形").select_option("silent")
        await situation.get_by_role("button", name="切换").click()
        await page.wait_for_url(f"{call_page}#protocol")
        assert await protocol.locator("h3").inner_text() == "紧急呼叫：按了红键，无人应答"

        # Step by step, in the file's order; a checkbox for a check, choices for a choice.
        steps = protocol.locator("ol.protocol-steps > li")
        ids = [await s.get_attribute("id") for s in await steps.all()]
        assert ids == [
            "step-listen",
            "step-call_home",
            "step-call_mobile",
            "step-call_keyholder",
            "step-community",
            "step-decision",
        ]
        community = protocol.locator("#step-community")
        tick = community.get_by_role("checkbox", name="已完成")
        assert not await tick.is_checked()
        # The decision: "If in doubt, send someone", preselected before anyone answers.
        decision = protocol.locator("#step-decision")
        assert "决定：如有疑问，派人上门" in await decision.locator(".step-text").inner_text()
        assert await decision.locator(".step-default").inner_text() == "默认：派人上门"
        send = decision.get_by_role("radio", name="派人上门")
        assert await send.is_checked()
        assert not await decision.get_by_role(
            "radio", name="拨打120（听到呻吟或长时间无反应）"
        ).is_checked()
        assert await protocol.locator(".protocol-progress").inner_text() == "已完成 0/6 步"

        listen = protocol.locator("#step-listen")
        await listen.get_by_role("radio", name="没有声音").check()
        await listen.get_by_role("textbox", name="补充说明").fill("喊话两次无回应")
        await record(page, call_page, listen)
        call_home = protocol.locator("#step-call_home")
        await call_home.get_by_role("radio", name="无人接听").check()
        await record(page, call_page, call_home)
        await tick.check()
        await record(page, call_page, community)
        assert await tick.is_checked()
        assert await send.is_checked()  # still preselected: confirmed as it stands
        await record(page, call_page, decision)

        answered = await listen.locator(".step-answer").inner_text()
        assert "没有声音 · 演示值班员" in answered and "喊话两次无回应" in answered
        assert "派人上门 · 演示值班员" in await decision.locator(".step-answer").inner_text()
        assert await protocol.locator(".protocol-progress").inner_text() == "已完成 4/6 步"
        assert await protocol.locator("li.answered").count() == 4
        await protocol.screenshot(path=str(shots / "protocol.png"))

        # The answers are the call's timeline: on the page, and through the API.
        expected = [
            ("protocol_chosen", "emergency.silent"),
            ("protocol_answer", "emergency.silent listen = nothing · 喊话两次无回应"),
            ("protocol_answer", "emergency.silent call_home = no_answer"),
            ("protocol_answer", "emergency.silent community = done"),
            ("protocol_answer", "emergency.silent decision = send_someone"),
        ]
        on_page = await page.locator("#timeline-h + table").inner_text()
        for _, detail in expected:
            assert detail in on_page
        async with httpx.AsyncClient(base_url=running.api, headers=TOKEN) as api:
            call = (await api.get(f"/calls/{call_id}")).json()
            protocols = (await api.get(f"/calls/{call_id}/protocols")).json()
        lines = [
            (e["action"], e["detail"])
            for e in call["timeline"]
            if e["action"].startswith("protocol")
        ]
        assert lines == expected
        assert {
            (e["actor"], e["channel"])
            for e in call["timeline"]
            if e["action"].startswith("protocol")
        } == {("demo-operator", "console")}
        assert call["state"] == "acknowledged"  # answering is a record, not an action
        assert protocols["current"] == "emergency.silent"
    assert blocked_requests == []  # everything came from the dispatcher itself
