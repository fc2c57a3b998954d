"""The console in a real browser (Debian's Chromium through Playwright) against the real
daemon, a real Mosquitto and the local Twilio-compatible SMS sink: an operator signs in,
a resident presses, the call appears and rings, the operator takes it, the device hears
``acknowledged``, a second operator's screen shows it taken, a community's staff member
does not see it, and a dropped connection shows the banner and recovers.

Screenshots go to ``$ELDERCALL_SCREENSHOTS`` when it is set (``make screenshots`` sets
it to docs/screenshots), else into the test's temporary folder."""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Page

from simulator.broker import MosquittoProcess
from simulator.phone_network.server import SmsSinkServer
from tests.e2e.test_end_to_end import device, press, running_dispatcher, until
from tests.support.browser import loopback_context
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROW = "#rows tr[data-call-id='{call_id}']"


def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ELDERCALL_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def sign_in(page: Page, base: str, staff_id: str) -> None:
    await page.goto(f"{base}/console/login")
    await page.get_by_label("工号").fill(staff_id)
    await page.get_by_label("密码").fill(f"{staff_id}-password")
    await page.get_by_role("button", name="登录").click()
    await page.wait_for_url(f"{base}/console/")
    await page.wait_for_function("window.eldercallConsole && window.eldercallConsole.live")


async def test_an_operator_works_a_press_from_the_console(
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
        daemon_port = urlsplit(running.api).port
        assert daemon_port is not None
        proxy = TcpProxy(daemon_port)  # the first operator's line, to be cut later
        await proxy.start()
        direct = running.api.removesuffix("/api/v1")
        try:
            await page.set_viewport_size({"width": 1280, "height": 720})
            await sign_in(page, proxy.base_url, "demo-operator")
            second_context = await loopback_context(browser, blocked_requests)
            community_context = await loopback_context(browser, blocked_requests)
            second = await second_context.new_page()
            community = await community_context.new_page()
            await sign_in(second, direct, "wang-fang")
            await sign_in(community, direct, "wu-hong")  # 青石 (c-qs) community staff

            async with device(mosquitto.url, topic_root, "dev-0001") as dev:
                await press(dev, topic_root, "dev-0001", {"ref": "e1", "type": "emergency"})
                call_id = (await until(dev, "ack"))["call_id"]
                stored = time.monotonic()
                # By itself (no reload), within a second of the press being stored.
                await page.wait_for_selector(ROW.format(call_id=call_id), timeout=1000)
                appeared_s = time.monotonic() - stored
                row = page.locator(ROW.format(call_id=call_id))
                assert await row.get_attribute("class") == "alarm untaken selected"
                await page.wait_for_function("window.eldercallConsole.beeps > 0")
                assert (await page.title()).startswith("【1 个新报警】")
                await second.wait_for_selector(ROW.format(call_id=call_id))
                await page.screenshot(path=str(shots / "queue.png"))

                await row.get_by_role("button", name="接单").click()
                update = await until(dev, "cmd")
                while update.get("type") != "call_update" or update["state"] != "acknowledged":
                    update = await until(dev, "cmd")
                assert update["call_id"] == call_id
                # The other operator sees at once that it is taken, and by whom.
                taken = second.locator(ROW.format(call_id=call_id))
                await taken.locator("text=已接单: 演示值班员").wait_for()
                assert "taken" in (await taken.get_attribute("class") or "")

                # Another community's staff see nothing of it, on the page or the API.
                assert await community.locator(ROW.format(call_id=call_id)).count() == 0
                async with httpx.AsyncClient(base_url=running.api) as api:
                    refused = await api.get(
                        f"/calls/{call_id}",
                        headers={"Authorization": "Bearer demo-wu-hong-47d0e3c8"},
                    )
                assert refused.status_code == 404

                # The line drops: the banner says the queue is not live; a press made
                # meanwhile is there once the line is back, and the banner goes.
                await proxy.cut()
                await page.wait_for_selector("#not-live", state="visible")
                await press(dev, topic_root, "dev-0002", {"ref": "e2", "type": "fall"})
                await proxy.start()
                await page.wait_for_selector("#not-live", state="hidden", timeout=10_000)
                rows = page.locator("#rows tr")
                await page.wait_for_function("document.querySelectorAll('#rows tr').length == 2")
                assert await rows.count() == 2

                await page.goto(f"{proxy.base_url}/console/calls/{call_id}")
                assert "硝苯地平" in await page.content()
                await page.screenshot(path=str(shots / "call.png"), full_page=True)
            await second_context.close()
            await community_context.close()
        finally:
            await proxy.close()
    assert blocked_requests == []  # everything came from the dispatcher itself
    print(f"press stored -> row on screen: {appeared_s * 1000:.0f} ms")
