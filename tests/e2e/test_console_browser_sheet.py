"""The hand-over sheet in a real browser (Debian's Chromium through Playwright) against
the real daemon, Mosquitto and the SMS sink: a resident presses, a supervisor opens the
call's page, follows "打印交接单" and sees the door code; a community staff member opens
the same sheet and does not; printed (print media emulated), the page has no
navigation. The screenshot ``sheet.png`` goes where test_console_browser.py puts its
own (``$ELDERCALL_SCREENSHOTS``, else the test's temporary folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from simulator.broker import MosquittoProcess
from simulator.phone_network.server import SmsSinkServer
from tests.e2e.test_console_browser import screenshots, sign_in
from tests.e2e.test_end_to_end import device, press, running_dispatcher, until
from tests.support.browser import loopback_context

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

KEY_SAFE = "2580"  # 张桂兰's (r-0001, dev-0001) key safe code
ADDRESS = "江滨区柳湖路88弄3号502室"
WITHHELD = "您的角色无权查看此项"


async def test_the_sheet_shows_the_door_code_by_role_and_prints_without_navigation(
    tmp_path: Path,
    mosquitto: MosquittoProcess,
    sms_sink: SmsSinkServer,
    topic_root: str,
    browser: Browser,
    page: Page,
    blocked_requests: list[str],
) -> None:
    shots = screenshots(tmp_path)
    async with running_dispatcher(tmp_path, mosquitto, sms_sink, topic_root) as running:
        base = running.api.removesuffix("/api/v1")
        community_context = await loopback_context(browser, blocked_requests)
        community = await community_context.new_page()
        try:
            await page.set_viewport_size({"width": 900, "height": 1270})
            await sign_in(page, base, "zhao-min")  # the command centre's supervisor
            await sign_in(community, base, "ma-lin")  # 柳湖 (c-lh) community staff
            async with device(mosquitto.url, topic_root, "dev-0001") as dev:
                await press(dev, topic_root, "dev-0001", {"ref": "e1", "type": "emergency"})
                call_id = (await until(dev, "ack"))["call_id"]

            await page.goto(f"{base}/console/calls/{call_id}")
            await page.get_by_role("link", name="打印交接单").click()
            await page.wait_for_url(f"{base}/console/calls/{call_id}/sheet")
            assert KEY_SAFE in await page.locator("#sheet-access").inner_text()
            assert await page.locator("#sheet-address").inner_text() == ADDRESS
            assert call_id in await page.locator("#sheet-call-id").inner_text()
            assert "赵敏" in await page.locator("#sheet-printed").inner_text()
            assert await page.locator("header.bar").is_visible()  # on screen: navigation

            await page.emulate_media(media="print")
            assert await page.locator("header.bar").is_hidden()
            assert await page.locator(".sheet-nav").is_hidden()
            assert await page.locator("#sheet-address").is_visible()
            assert await page.locator("#sheet-access").is_visible()
            await page.screenshot(path=str(shots / "sheet.png"), full_page=True)

            await community.goto(f"{base}/console/calls/{call_id}/sheet")
            access = await community.locator("#sheet-access").inner_text()
            assert KEY_SAFE not in access and WITHHELD in access
            assert KEY_SAFE not in await community.content()
            assert await community.locator("#sheet-address").inner_text() == ADDRESS
            assert (
                "钱阿姨"
                in await community.locator("section", has_text="钥匙持有人").first.inner_text()
            )
        finally:
            await community_context.close()
    assert blocked_requests == []  # everything came from the dispatcher itself
