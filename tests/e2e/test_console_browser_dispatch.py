"""Dispatching a responder from the console in a real browser (Chromium through
Playwright) against the real daemon, Mosquitto and the local SMS sink: an operator
takes a press, sends 马琳 (柳湖社区's staff) with an expected arrival, 马琳 is told
where to go by SMS, the simulated device sends ``presence``, the page shows the
arrival, the operator resolves the call with an outcome, and the device hears each
step over MQTT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from playwright.async_api import Page

from simulator.broker import MosquittoProcess
from simulator.phone_network.server import SmsSinkServer
from tests.e2e.test_console_browser import ROW, screenshots, sign_in
from tests.e2e.test_end_to_end import device, press, running_dispatcher, until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MA_LIN = "+8613761400302"


async def call_update(dev: aiomqtt.Client, state: str) -> dict[str, Any]:
    """The device's next ``call_update`` in ``state`` (other commands skipped)."""
    while True:
        update = await until(dev, "cmd")
        if update.get("type") == "call_update" and update["state"] == state:
            return update


async def test_an_operator_dispatches_a_responder_whose_presence_marks_the_arrival(
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
            await press(dev, topic_root, "dev-0001", {"ref": "d1", "type": "fall"})
            call_id = (await until(dev, "ack"))["call_id"]
            row = page.locator(ROW.format(call_id=call_id))
            await row.wait_for(timeout=2000)
            await row.get_by_role("button", name="接单").click()
            assert (await call_update(dev, "acknowledged"))["call_id"] == call_id

            await page.goto(f"{base}/console/calls/{call_id}")
            form = page.locator("#dispatch-form")
            await form.get_by_label("派遣对象").select_option("staff:ma-lin")
            await form.get_by_label("预计几分钟到达").fill("12")
            await form.get_by_label("备注").fill("带上血压计")
            await form.get_by_role("button", name="派遣").click()
            await page.wait_for_url(f"{base}/console/calls/{call_id}")
            sent = page.locator("#dispatch-list tr[data-number='1']")
            await sent.locator("text=在途").wait_for()
            assert "马琳" in await sent.inner_text()
            # 马琳 is told where to go (never the resident's medical notes).
            [notice] = await sms_sink.wait_for_async(lambda m: m.to == MA_LIN)
            assert "柳湖路88弄3号502室" in notice.body and call_id in notice.body
            assert "硝苯地平" not in notice.body
            await page.screenshot(path=str(shots / "dispatch.png"), full_page=True)

            # The queue says a responder is on the way.
            await page.goto(f"{base}/console/")
            await row.locator("text=人员在途").wait_for()

            # 马琳 arrives and presses the presence key on the device.
            await press(dev, topic_root, "dev-0001", {"ref": "d2", "type": "presence"})
            assert (await until(dev, "ack"))["call_id"] == call_id
            assert (await call_update(dev, "responder_on_site"))["call_id"] == call_id
            await row.locator("text=人员已到场").wait_for(timeout=3000)
            await page.goto(f"{base}/console/calls/{call_id}")
            await sent.locator("text=已到场").wait_for()
            assert await page.locator("#dispatch-list .mark-arrived").count() == 0
            assert "已到场" in await page.locator("#call-state").inner_text()

            resolve = page.locator("#resolve-form")
            await resolve.get_by_label("处理结果").select_option("visit")
            await resolve.get_by_role("button", name="结案").click()
            await page.wait_for_url(f"{base}/console/calls/{call_id}")
            assert (await call_update(dev, "resolved"))["call_id"] == call_id
            assert "已上门" in await page.locator(".resolved").inner_text()
            timeline = await page.locator("#timeline-h + table").inner_text()
            for action in ("dispatched", "dispatch_arrived", "responder_on_site", "resolved"):
                assert action in timeline
    assert blocked_requests == []  # everything came from the dispatcher itself
