"""The board and the wall screen in a real browser (Debian's Chromium through
Playwright) against the real daemon, a real Mosquitto and the local SMS sink: the
board lists who is on duty with the end of their shift, the devices and the answer
times (the chart and its table); the wall shows a press in its queue by itself, with
nothing to click, beside the board.

The daemon runs on a fake clock (Tuesday 10:00 in Shanghai, moved by the test), so
what is on duty never depends on today's date. Screenshots go where
tests/e2e/test_console_browser.py puts them (``make screenshots``: docs/screenshots)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page

from simulator.broker import MosquittoProcess
from simulator.phone_network.server import SmsSinkServer
from tests.e2e.test_console_browser import ROW, screenshots, sign_in
from tests.e2e.test_end_to_end import Running, device, press, running_dispatcher, until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOKENS = {"demo-operator": "demo-operator-token", "wang-fang": "demo-wang-fang-3f9c1a7e"}


async def answered(running: Running, device_id: str, ref: str, after_s: float, by: str) -> None:
    """A press answered ``after_s`` seconds later (on the daemon's clock) by ``by``."""
    async with device(running.broker.url, running.root, device_id) as dev:
        await press(dev, running.root, device_id, {"ref": ref, "type": "emergency"})
        call_id = (await until(dev, "ack"))["call_id"]
    running.clock.advance(after_s)
    async with httpx.AsyncClient(
        base_url=running.api, headers={"Authorization": f"Bearer {TOKENS[by]}"}
    ) as api:
        assert (await api.post(f"/calls/{call_id}/ack")).is_success
        done = await api.post(f"/calls/{call_id}/resolve", json={"outcome": "helped_by_phone"})
        assert done.is_success


async def devices_on_the_board(running: Running, count: int) -> None:
    # Heartbeats are written to the device links every contacts_flush_s (0.2 s here).
    async with (
        asyncio.timeout(20),
        httpx.AsyncClient(
            base_url=running.api, headers={"Authorization": "Bearer demo-operator-token"}
        ) as api,
    ):
        while True:  # polling the daemon's API: no event to wait on from outside it
            if len((await api.get("/board")).json()["devices"]) >= count:
                return
            await asyncio.sleep(0.25)


async def test_the_board_and_the_wall_screen(
    tmp_path: Path,
    mosquitto: MosquittoProcess,
    sms_sink: SmsSinkServer,
    topic_root: str,
    page: Page,
    blocked_requests: list[str],
) -> None:
    shots = screenshots(tmp_path)
    flush_often = {"intake": {"contacts_flush_s": 0.2}}
    async with running_dispatcher(
        tmp_path, mosquitto, sms_sink, topic_root, **flush_often
    ) as running:
        base = running.api.removesuffix("/api/v1")
        # A morning's calls: answered at 12 s, 35 s and 48 s by the hotline, one at 95 s.
        for n, (after_s, by) in enumerate(
            [(12, "demo-operator"), (35, "wang-fang"), (48, "demo-operator"), (95, "wang-fang")]
        ):
            await answered(running, f"dev-00{n + 3:02d}", f"m{n}", after_s, by)
            running.clock.advance(600)
        async with device(mosquitto.url, topic_root, "dev-0012") as dev:
            await press(
                dev, topic_root, "dev-0012", {"ref": "h1", "type": "heartbeat", "battery": 11}
            )
            await dev.publish(f"{topic_root}/dev/dev-0013/status", b'{"state": "offline"}', qos=1)
        await devices_on_the_board(running, 2)

        await page.set_viewport_size({"width": 1280, "height": 900})
        await sign_in(page, base, "demo-operator")
        await page.get_by_role("link", name="值班看板").click()
        await page.wait_for_url(f"{base}/console/board")
        centre = page.locator("#duty tr[data-area-id='d-jb']")
        assert "演示值班员" in await centre.inner_text()
        liuhu = page.locator("#duty tr[data-area-id='c-lh']")
        assert "至 18:00" in await liuhu.inner_text()  # the day rotation hands over at 18:00
        assert await liuhu.locator("a[href^='tel:+86']").count() == 2
        assert await page.locator("#answer-chart line.target").count() == 2
        assert "45–60" in await page.locator("#distribution").inner_text()
        devices = page.locator("#devices")
        assert "电量低" in await devices.inner_text() and "离线" in await devices.inner_text()
        await page.screenshot(path=str(shots / "board.png"), full_page=True)

        await page.set_viewport_size({"width": 1920, "height": 1080})
        await page.goto(f"{base}/console/wall")
        await page.wait_for_function("window.eldercallConsole && window.eldercallConsole.live")
        assert await page.locator("form, button").count() == 0
        async with device(mosquitto.url, topic_root, "dev-0001") as dev:
            await press(dev, topic_root, "dev-0001", {"ref": "e1", "type": "emergency"})
            call_id = (await until(dev, "ack"))["call_id"]
            # By itself, from the queue's own stream: no reload.
            row = page.locator(ROW.format(call_id=call_id))
            await row.wait_for(timeout=5000)
            assert "张桂兰" in await row.inner_text()
            assert "alarm" in (await row.get_attribute("class") or "")
            assert await row.locator("button").count() == 0
            running.clock.advance(75)  # past the 60 s target: amber on the wall
            await page.locator(f"{ROW.format(call_id=call_id)} .waited.amber").wait_for()
        assert "演示值班员" in await page.locator("#duty").inner_text()
        await page.screenshot(path=str(shots / "wall.png"))
    assert blocked_requests == []  # everything came from the dispatcher itself
