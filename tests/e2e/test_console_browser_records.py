"""The residents' records in a real browser (Debian's Chromium through Playwright)
against the real daemon, Mosquitto and the SMS sink: a supervisor follows the nav's
"老人档案", finds a resident by searching her name, opens her record (her recent call
among it), edits her home phone, and sees the new number on her record, on the audit
trail under her own name, and on the call's page. The screenshot ``resident.png`` goes
where test_console_browser.py puts its own (``$ELDERCALL_SCREENSHOTS``, else the test's
temporary folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page

from simulator.broker import MosquittoProcess
from simulator.phone_network.server import SmsSinkServer
from tests.e2e.test_console_browser import screenshots, sign_in
from tests.e2e.test_end_to_end import device, press, running_dispatcher, until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

OLD_PHONE = "+862164110231"  # 张桂兰's (r-0001, dev-0001) home phone
NEW_PHONE = "+862164119999"


async def test_a_supervisor_finds_a_resident_edits_her_phone_and_sees_it(
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
        async with device(mosquitto.url, topic_root, "dev-0001") as dev:
            await press(dev, topic_root, "dev-0001", {"ref": "e1", "type": "emergency"})
            call_id = (await until(dev, "ack"))["call_id"]

        await page.set_viewport_size({"width": 1280, "height": 900})
        await sign_in(page, base, "sun-li")  # 河西 street supervisor: 柳湖 is hers
        await page.get_by_role("link", name="老人档案").click()
        await page.wait_for_url(f"{base}/console/residents")
        await page.get_by_label("查找").fill("张桂兰")
        await page.get_by_role("button", name="查找").click()
        rows = page.locator("#residents tbody tr")
        assert await rows.count() == 1
        await rows.get_by_role("link", name="张桂兰").click()
        await page.wait_for_url(f"{base}/console/residents/r-0001")
        assert await page.locator("#resident-phone").inner_text() == OLD_PHONE
        assert "310105********1228" in await page.locator("#resident-id-card").inner_text()
        assert call_id in await page.locator("#resident-calls").inner_text()

        await page.get_by_role("link", name="修改").click()
        await page.wait_for_url(f"{base}/console/residents/r-0001/edit")
        await page.locator("#f-phone").fill("6411")  # not a number: refused, beside it
        await page.get_by_role("button", name="保存").click()
        assert "E.164" in await page.locator("#phone-error").inner_text()
        await page.locator("#f-phone").fill(NEW_PHONE)
        await page.get_by_role("button", name="保存").click()
        await page.wait_for_url(f"{base}/console/residents/r-0001")
        assert await page.locator("#resident-phone").inner_text() == NEW_PHONE
        assert await page.locator(f"#resident-phone a[href='tel:{NEW_PHONE}']").count() == 1
        audit = await page.locator("#audit tbody tr").first.inner_text()
        assert "孙丽" in audit and OLD_PHONE in audit and NEW_PHONE in audit
        await page.screenshot(path=str(shots / "resident.png"), full_page=True)

        await page.goto(f"{base}/console/calls/{call_id}")  # in force at once
        assert NEW_PHONE in await page.locator("#resident-h + .resident-head + dl").inner_text()
    assert blocked_requests == []  # everything came from the dispatcher itself
